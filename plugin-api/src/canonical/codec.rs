//! Encodings of canonical records.
//!
//! Across the plugin boundary and in spool files, records travel as postcard
//! (compact binary, varint integers); decimals as (mantissa, scale) and dates as
//! days since 0001-01-01. In human-readable formats (JSON, NDJSON) decimals are
//! exact strings ("-1234.50") and dates ISO 8601 ("2025-01-31").
//! See `docs/decisions/0002-batch-encoding.md`.

use super::{Company, RecordBatch};
use std::fmt;

/// Bytes that do not decode as canonical records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError(pub String);

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "malformed canonical batch: {}", self.0)
    }
}

impl std::error::Error for DecodeError {}

/// Encodes a batch for the plugin boundary or a spool file.
pub fn encode_batch(batch: &RecordBatch) -> Vec<u8> {
    postcard::to_stdvec(batch).expect("canonical records always serialize")
}

/// Encodes a batch, appending to `buffer` (give it room to avoid regrowing it).
pub fn encode_batch_into(batch: &RecordBatch, buffer: Vec<u8>) -> Vec<u8> {
    postcard::to_extend(batch, buffer).expect("canonical records always serialize")
}

/// Decodes a batch produced by [`encode_batch`].
pub fn decode_batch(bytes: &[u8]) -> Result<RecordBatch, DecodeError> {
    postcard::from_bytes(bytes).map_err(|e| DecodeError(e.to_string()))
}

/// Encodes a company list for the plugin boundary.
pub fn encode_companies(companies: &[Company]) -> Vec<u8> {
    postcard::to_stdvec(companies).expect("canonical records always serialize")
}

/// Decodes a company list produced by [`encode_companies`].
pub fn decode_companies(bytes: &[u8]) -> Result<Vec<Company>, DecodeError> {
    postcard::from_bytes(bytes).map_err(|e| DecodeError(e.to_string()))
}

/// Serde for [`rust_decimal::Decimal`]: exact string when human-readable, else (mantissa, scale).
pub mod serde_decimal {
    use rust_decimal::Decimal;
    use serde::{de::Error, Deserialize, Deserializer, Serialize, Serializer};

    /// Serializes a decimal without ever going through a float.
    pub fn serialize<S: Serializer>(value: &Decimal, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.collect_str(value)
        } else {
            (value.mantissa(), value.scale() as u8).serialize(serializer)
        }
    }

    /// Deserializes a decimal; a JSON number is refused so no float can sneak in.
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Decimal, D::Error> {
        if deserializer.is_human_readable() {
            // Borrowed from the input when it can be (no copy per amount or date).
            let text = super::super::Text::deserialize(deserializer)?;
            Decimal::from_str_exact(&text)
                .map_err(|e| D::Error::custom(format!("`{text}` is not an exact decimal: {e}")))
        } else {
            let (mantissa, scale) = <(i128, u8)>::deserialize(deserializer)?;
            Decimal::try_from_i128_with_scale(mantissa, u32::from(scale))
                .map_err(|e| D::Error::custom(format!("decimal out of range: {e}")))
        }
    }

    /// The same for `Option<Decimal>`.
    pub mod option {
        use super::Decimal;
        use serde::{Deserialize, Deserializer, Serialize, Serializer};

        #[derive(Serialize, Deserialize)]
        #[serde(transparent)]
        struct Wrapped(#[serde(with = "super")] Decimal);

        /// Serializes an optional decimal.
        pub fn serialize<S: Serializer>(value: &Option<Decimal>, s: S) -> Result<S::Ok, S::Error> {
            value.map(Wrapped).serialize(s)
        }

        /// Deserializes an optional decimal.
        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Decimal>, D::Error> {
            Ok(Option::<Wrapped>::deserialize(d)?.map(|w| w.0))
        }
    }
}

/// Serde for [`chrono::NaiveDate`]: ISO 8601 when human-readable, else days since 0001-01-01.
pub mod serde_date {
    use chrono::{Datelike, NaiveDate};
    use serde::{de::Error, Deserialize, Deserializer, Serialize, Serializer};

    /// Serializes a date.
    pub fn serialize<S: Serializer>(value: &NaiveDate, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            match iso_date(value) {
                Some(bytes) => serializer.serialize_str(std::str::from_utf8(&bytes).expect("ASCII digits")),
                None => serializer.collect_str(&value.format("%Y-%m-%d")),
            }
        } else {
            value.num_days_from_ce().serialize(serializer)
        }
    }

    /// `YYYY-MM-DD` for the years 0–9999, without going through chrono's
    /// formatter (a third of NDJSON encoding time was spent there, issue 9).
    fn iso_date(value: &NaiveDate) -> Option<[u8; 10]> {
        let (year, month, day) = (u32::try_from(value.year()).ok()?, value.month(), value.day());
        if year > 9999 {
            return None;
        }
        let digit = |n: u32| b'0' + (n % 10) as u8;
        Some([
            digit(year / 1000),
            digit(year / 100),
            digit(year / 10),
            digit(year),
            b'-',
            digit(month / 10),
            digit(month),
            b'-',
            digit(day / 10),
            digit(day),
        ])
    }

    /// A valid date written exactly `YYYY-MM-DD`; anything else is left to chrono's
    /// parser (and its error message).
    fn parse_iso_date(text: &str) -> Option<NaiveDate> {
        let b = text.as_bytes();
        if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
            return None;
        }
        let number = |digits: &[u8]| {
            digits.iter().try_fold(0u32, |n, &d| d.is_ascii_digit().then(|| n * 10 + u32::from(d - b'0')))
        };
        let year = i32::try_from(number(&b[..4])?).ok()?;
        NaiveDate::from_ymd_opt(year, number(&b[5..7])?, number(&b[8..])?)
    }

    /// Deserializes a date.
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<NaiveDate, D::Error> {
        if deserializer.is_human_readable() {
            // Borrowed from the input when it can be (no copy per amount or date).
            let text = super::super::Text::deserialize(deserializer)?;
            parse_iso_date(&text).map(Ok).unwrap_or_else(|| {
                NaiveDate::parse_from_str(&text, "%Y-%m-%d")
                    .map_err(|e| D::Error::custom(format!("`{text}` is not a date (YYYY-MM-DD): {e}")))
            })
        } else {
            let days = i32::deserialize(deserializer)?;
            NaiveDate::from_num_days_from_ce_opt(days)
                .ok_or_else(|| D::Error::custom(format!("day number {days} is not a date")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::*;
    use std::str::FromStr;

    fn line(amount: &str) -> VoucherLine {
        VoucherLine {
            voucher_id: "1".into(),
            line_no: 1,
            account_id: "1920".into(),
            date: NaiveDate::from_ymd_opt(2025, 2, 28).unwrap(),
            description: Some("Bæreposer".into()),
            amount: Decimal::from_str(amount).unwrap(),
            currency: Some("EUR".into()),
            amount_currency: Some(Decimal::from_str("-0.01").unwrap()),
            tax_code: None,
            tax_amount: None,
            dimensions: vec![DimensionRef { dimension_type: "1".into(), value: "10".into() }],
            customer_id: None,
            supplier_id: Some("30001".into()),
            source_key: "AcTr:1:1".into(),
        }
    }

    #[test]
    fn json_dates_match_chrono_iso_format_for_every_year() {
        #[derive(serde::Serialize)]
        struct Dated(#[serde(with = "crate::canonical::codec::serde_date")] NaiveDate);
        for (y, m, d) in
            [(2025, 2, 28), (1, 1, 1), (999, 12, 31), (9999, 12, 31), (10000, 1, 1), (-44, 3, 15)]
        {
            let date = NaiveDate::from_ymd_opt(y, m, d).unwrap();
            let json = serde_json::to_string(&Dated(date)).unwrap();
            assert_eq!(json, format!("\"{}\"", date.format("%Y-%m-%d")), "{y}-{m}-{d}");
            let back: serde_json::Value = serde_json::from_str(&json).unwrap();
            assert_eq!(
                serde_json::from_value::<Voucher>(serde_json::json!({
                    "id": "1", "date": back, "source_key": "k"
                }))
                .unwrap()
                .date,
                date
            );
        }
        for bad in ["2025-02-30", "2025-13-01", "2025/01/01", "20250101", "２０２５-01-01"] {
            let voucher = serde_json::json!({"id": "1", "date": bad, "source_key": "k"});
            let error = serde_json::from_value::<Voucher>(voucher).unwrap_err().to_string();
            assert!(error.contains(bad) && error.contains("YYYY-MM-DD"), "{bad}: {error}");
        }
    }

    #[test]
    fn binary_round_trip_keeps_every_digit() {
        let amounts = ["0", "-0.01", "79228162514264337593543950335", "-12345678901234567.89", "1.000000"];
        let batch = RecordBatch::VoucherLines(amounts.iter().map(|a| line(a)).collect());
        let decoded = decode_batch(&encode_batch(&batch)).unwrap();
        assert_eq!(decoded, batch);
        if let RecordBatch::VoucherLines(lines) = decoded {
            assert_eq!(lines[4].amount.to_string(), "1.000000", "scale is kept");
        }
    }

    #[test]
    fn json_uses_exact_strings_and_iso_dates() {
        let json = serde_json::to_string(&line("-1234.50")).unwrap();
        assert!(json.contains(r#""amount":"-1234.50""#), "{json}");
        assert!(json.contains(r#""date":"2025-02-28""#), "{json}");
        let back: VoucherLine = serde_json::from_str(&json).unwrap();
        assert_eq!(back, line("-1234.50"));
    }

    #[test]
    fn json_number_for_money_is_refused() {
        let json = serde_json::to_string(&line("1")).unwrap().replace(r#""amount":"1""#, r#""amount":1.1"#);
        let err = serde_json::from_str::<VoucherLine>(&json).unwrap_err().to_string();
        assert!(err.contains("invalid type"), "{err}");
    }

    #[test]
    fn truncated_bytes_are_an_error_not_a_panic() {
        let bytes = encode_batch(&RecordBatch::VoucherLines(vec![line("1")]));
        for cut in 0..bytes.len() {
            assert!(decode_batch(&bytes[..cut]).is_err(), "cut at {cut}");
        }
    }
}
