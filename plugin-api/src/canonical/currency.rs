//! ISO 4217 currency codes.

/// Active ISO 4217 alphabetic codes (plus the common X-codes), sorted for binary search.
const ISO_4217: &[&str] = &[
    "AED", "AFN", "ALL", "AMD", "ANG", "AOA", "ARS", "AUD", "AWG", "AZN", "BAM", "BBD", "BDT", "BGN", "BHD",
    "BIF", "BMD", "BND", "BOB", "BOV", "BRL", "BSD", "BTN", "BWP", "BYN", "BZD", "CAD", "CDF", "CHE", "CHF",
    "CHW", "CLF", "CLP", "CNY", "COP", "COU", "CRC", "CUC", "CUP", "CVE", "CZK", "DJF", "DKK", "DOP", "DZD",
    "EGP", "ERN", "ETB", "EUR", "FJD", "FKP", "GBP", "GEL", "GHS", "GIP", "GMD", "GNF", "GTQ", "GYD", "HKD",
    "HNL", "HTG", "HUF", "IDR", "ILS", "INR", "IQD", "IRR", "ISK", "JMD", "JOD", "JPY", "KES", "KGS", "KHR",
    "KMF", "KPW", "KRW", "KWD", "KYD", "KZT", "LAK", "LBP", "LKR", "LRD", "LSL", "LYD", "MAD", "MDL", "MGA",
    "MKD", "MMK", "MNT", "MOP", "MRU", "MUR", "MVR", "MWK", "MXN", "MXV", "MYR", "MZN", "NAD", "NGN", "NIO",
    "NOK", "NPR", "NZD", "OMR", "PAB", "PEN", "PGK", "PHP", "PKR", "PLN", "PYG", "QAR", "RON", "RSD", "RUB",
    "RWF", "SAR", "SBD", "SCR", "SDG", "SEK", "SGD", "SHP", "SLE", "SLL", "SOS", "SRD", "SSP", "STN", "SVC",
    "SYP", "SZL", "THB", "TJS", "TMT", "TND", "TOP", "TRY", "TTD", "TWD", "TZS", "UAH", "UGX", "USD", "USN",
    "UYI", "UYU", "UYW", "UZS", "VED", "VES", "VND", "VUV", "WST", "XAF", "XAG", "XAU", "XCD", "XCG", "XDR",
    "XOF", "XPD", "XPF", "XPT", "XSU", "XUA", "YER", "ZAR", "ZMW", "ZWG", "ZWL",
];

/// True when `amount` has more than two decimals once trailing zeros are
/// dropped: exact money still (some ERPs keep mills), but past what SAF-T and
/// most reports show.
pub fn is_past_the_cent(amount: rust_decimal::Decimal) -> bool {
    amount.scale() > 2 && amount.normalize().scale() > 2
}

/// True when `code` is an ISO 4217 alphabetic currency code (upper case, e.g. "NOK").
pub fn is_iso4217(code: &str) -> bool {
    ISO_4217.binary_search(&code).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_is_sorted_so_binary_search_is_valid() {
        assert!(ISO_4217.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn known_and_unknown_codes() {
        assert!(is_iso4217("NOK") && is_iso4217("EUR") && is_iso4217("SEK"));
        assert!(!is_iso4217("nok") && !is_iso4217("KR") && !is_iso4217("XYZ") && !is_iso4217(""));
    }
}

#[cfg(test)]
mod cent_tests {
    use super::is_past_the_cent;
    use std::str::FromStr;

    #[test]
    fn trailing_zeros_do_not_count_past_the_cent() {
        let past = |text: &str| is_past_the_cent(rust_decimal::Decimal::from_str(text).unwrap());
        assert!(!past("12500.0000") && !past("0.01") && !past("-3") && !past("12.5"));
        assert!(past("12500.004") && past("-0.0000000001"));
    }
}
