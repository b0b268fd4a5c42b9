//! Conversions of the ERPs' column encodings into canonical values.

use ledgerlink_plugin_api::canonical::{Decimal, NaiveDate};
use ledgerlink_plugin_api::{ErrorKind, PluginError};

fn bad(what: &str, value: &str, expected: &str) -> PluginError {
    PluginError::new(
        ErrorKind::DATA,
        format!("{what}: `{value}` is not {expected}"),
        "Fix the row in the ERP, or report the value to the plugin's vendor.",
    )
}

/// An integer column.
pub fn int(value: &str, what: &str) -> Result<i64, PluginError> {
    let trimmed = value.trim();
    // Some drivers render integer columns of SQLite as "12.0".
    let trimmed = trimmed.strip_suffix(".0").unwrap_or(trimmed);
    trimmed.parse().map_err(|_| bad(what, value, "a whole number"))
}

/// An exact decimal from the driver's text ("-1234.50", "1.5E+3").
///
/// `scale` is the column's declared scale: SQLite stores non-integral decimals as
/// binary floating point, and its driver may print them with noise digits
/// ("0.30000000000000004"); rounding to the declared scale recovers the stored value.
pub fn decimal(value: &str, scale: u32, what: &str) -> Result<Decimal, PluginError> {
    let trimmed = value.trim();
    let parsed = Decimal::from_str_exact(trimmed)
        .or_else(|_| trimmed.parse::<Decimal>())
        .or_else(|_| Decimal::from_scientific(trimmed))
        .map_err(|_| bad(what, value, "a decimal number"))?;
    Ok(if parsed.scale() > scale { parsed.round_dp(scale) } else { parsed })
}

/// A money amount from a wide decimal column (e.g. DECIMAL(28,8)): trailing zeros
/// beyond two decimals dropped, so 1250.50000000 reads 1250.50; the value is unchanged.
pub fn money(value: Decimal) -> Decimal {
    let mut normalized = value.normalize();
    if normalized.scale() < 2 {
        normalized.rescale(2);
    }
    normalized
}

/// The alphabetic ISO 4217 code of a numeric one (578 → NOK), for the common currencies.
pub fn iso4217_alpha(numeric: i64) -> Option<&'static str> {
    Some(match numeric {
        36 => "AUD",
        124 => "CAD",
        156 => "CNY",
        208 => "DKK",
        348 => "HUF",
        352 => "ISK",
        392 => "JPY",
        578 => "NOK",
        752 => "SEK",
        756 => "CHF",
        826 => "GBP",
        840 => "USD",
        978 => "EUR",
        985 => "PLN",
        _ => return None,
    })
}

/// An integer date `yyyymmdd` (Visma Business) as text; `0` means no date.
pub fn date_yyyymmdd(value: &str, what: &str) -> Result<Option<NaiveDate>, PluginError> {
    date_of_yyyymmdd(int(value, what)?, what)
}

/// An integer date `yyyymmdd` (Visma Business); `0` means no date.
pub fn date_of_yyyymmdd(n: i64, what: &str) -> Result<Option<NaiveDate>, PluginError> {
    if n == 0 {
        return Ok(None);
    }
    let (y, m, d) = (n / 10_000, (n / 100) % 100, n % 100);
    let day = |y: i64, m: i64, d: i64| NaiveDate::from_ymd_opt(y.try_into().ok()?, m as u32, d as u32);
    day(y, m, d).map(Some).ok_or_else(|| bad(what, &n.to_string(), "a date in the form yyyymmdd"))
}

/// A SQL date or timestamp as text ("2025-01-31", "2025-01-31 13:45:00.000").
pub fn date(value: &str, what: &str) -> Result<NaiveDate, PluginError> {
    let day = value.trim().get(..10).unwrap_or(value);
    NaiveDate::parse_from_str(day, "%Y-%m-%d").map_err(|_| bad(what, value, "a date (YYYY-MM-DD)"))
}

/// A period `yyyypp` (Visma Business `AcYrPr`) as text, split into (year, period).
pub fn year_period(value: &str, what: &str) -> Result<(i32, u8), PluginError> {
    year_period_of(int(value, what)?, what)
}

/// A period `yyyypp` (Visma Business `AcYrPr`) split into (year, period).
pub fn year_period_of(n: i64, what: &str) -> Result<(i32, u8), PluginError> {
    let (year, period) = (n / 100, n % 100);
    if !(1900..=9999).contains(&year) || !(0..=99).contains(&period) {
        return Err(bad(what, &n.to_string(), "a period in the form yyyypp"));
    }
    Ok((year as i32, period as u8))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_stay_exact_and_float_noise_is_rounded_to_the_column_scale() {
        assert_eq!(decimal("-1234.50", 2, "x").unwrap().to_string(), "-1234.50");
        assert_eq!(decimal("9999999999999.99", 2, "x").unwrap().to_string(), "9999999999999.99");
        assert_eq!(decimal("0.30000000000000004", 2, "x").unwrap().to_string(), "0.30");
        assert_eq!(decimal("1.5E+3", 2, "x").unwrap().to_string(), "1500");
        assert!(decimal("12,50", 2, "AcAm").unwrap_err().message.contains("AcAm"));
    }

    #[test]
    fn money_drops_only_meaningless_zeros() {
        assert_eq!(money(decimal("1250.50000000", 8, "x").unwrap()).to_string(), "1250.50");
        assert_eq!(money(decimal("-7.12345678", 8, "x").unwrap()).to_string(), "-7.12345678");
        assert_eq!(money(decimal("0E-8", 8, "x").unwrap()).to_string(), "0.00");
        assert_eq!(iso4217_alpha(578), Some("NOK"));
    }

    #[test]
    fn visma_dates_and_periods() {
        assert_eq!(date_yyyymmdd("20250228", "VoDt").unwrap(), NaiveDate::from_ymd_opt(2025, 2, 28));
        assert_eq!(date_yyyymmdd("0", "VoDt").unwrap(), None);
        assert!(date_yyyymmdd("20250230", "VoDt").is_err());
        assert_eq!(year_period("202513", "AcYrPr").unwrap(), (2025, 13));
        assert_eq!(int("12.0", "x").unwrap(), 12);
        assert_eq!(date_of_yyyymmdd(20250228, "VoDt").unwrap(), NaiveDate::from_ymd_opt(2025, 2, 28));
        assert!(date_of_yyyymmdd(i64::MAX, "VoDt").unwrap_err().message.contains("yyyymmdd"));
        assert_eq!(year_period_of(202513, "AcYrPr").unwrap(), (2025, 13));
        assert!(year_period_of(-202501, "AcYrPr").is_err());
    }

    #[test]
    fn sql_dates_and_timestamps() {
        let d = NaiveDate::from_ymd_opt(2025, 1, 31).unwrap();
        assert_eq!(date("2025-01-31", "x").unwrap(), d);
        assert_eq!(date("2025-01-31 13:45:00.000", "x").unwrap(), d);
        assert!(date("31.01.2025", "x").is_err());
    }
}
