//! Voucher lines read without allocating: fields borrowed from the encoded bytes.
//!
//! The host reads millions of lines per sync from the plugin boundary (postcard)
//! and the hub from NDJSON parts; decoding each into an owned
//! [`VoucherLine`](super::VoucherLine) spent a quarter of that time in `malloc`
//! and `free`. [`BorrowedVoucherLine`] has the same fields, decodes exactly the
//! same bytes and JSON and encodes to the same JSON, but its text fields point
//! into the input (or own their text only when the JSON escaped it).

use super::codec::{serde_date, serde_decimal, DecodeError};
use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::de::{Deserializer, Error, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use std::borrow::Cow;
use std::fmt;
use std::ops::Deref;
use std::sync::OnceLock;

/// A string field borrowed from the input when it can be, owned when it was escaped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Text<'a>(pub Cow<'a, str>);

impl Deref for Text<'_> {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl<'a> From<&'a str> for Text<'a> {
    fn from(text: &'a str) -> Self {
        Text(Cow::Borrowed(text))
    }
}

impl fmt::Display for Text<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for Text<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TextVisitor;

        impl<'de> Visitor<'de> for TextVisitor {
            type Value = Text<'de>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }

            fn visit_borrowed_str<E: Error>(self, value: &'de str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Borrowed(value)))
            }

            fn visit_str<E: Error>(self, value: &str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(value.to_owned())))
            }

            fn visit_string<E: Error>(self, value: String) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(value)))
            }
        }

        deserializer.deserialize_str(TextVisitor)
    }
}

/// A [`DimensionRef`](super::DimensionRef) borrowed from its encoded text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BorrowedDimensionRef<'a> {
    /// The dimension type's id.
    #[serde(borrow)]
    pub dimension_type: Text<'a>,
    /// The dimension value's id.
    #[serde(borrow)]
    pub value: Text<'a>,
}

/// A [`VoucherLine`](super::VoucherLine) borrowed from its encoded text: the
/// same fields, the same accepted JSON (see the module documentation).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BorrowedVoucherLine<'a> {
    /// The voucher this line belongs to.
    #[serde(borrow)]
    pub voucher_id: Text<'a>,
    /// Line number within the voucher.
    pub line_no: u32,
    /// Account posted to.
    #[serde(borrow)]
    pub account_id: Text<'a>,
    /// Posting date.
    #[serde(with = "serde_date")]
    pub date: NaiveDate,
    /// Line text.
    #[serde(borrow)]
    pub description: Option<Text<'a>>,
    /// Amount in company currency, signed.
    #[serde(with = "serde_decimal")]
    pub amount: Decimal,
    /// ISO 4217 code of the transaction currency.
    #[serde(borrow)]
    pub currency: Option<Text<'a>>,
    /// Amount in `currency`.
    #[serde(with = "serde_decimal::option")]
    pub amount_currency: Option<Decimal>,
    /// Tax code applied.
    #[serde(borrow)]
    pub tax_code: Option<Text<'a>>,
    /// Tax amount in company currency.
    #[serde(with = "serde_decimal::option")]
    pub tax_amount: Option<Decimal>,
    /// Dimension values the line is analysed by.
    #[serde(borrow)]
    pub dimensions: Vec<BorrowedDimensionRef<'a>>,
    /// Customer the line concerns.
    #[serde(borrow)]
    pub customer_id: Option<Text<'a>>,
    /// Supplier the line concerns.
    #[serde(borrow)]
    pub supplier_id: Option<Text<'a>>,
    /// Where the record came from in the ERP.
    #[serde(borrow)]
    pub source_key: Text<'a>,
}

/// Decodes a batch encoded by [`encode_batch`](super::encode_batch) as borrowed
/// voucher lines; `Ok(None)` when it holds another entity (decode it with
/// [`decode_batch`](super::decode_batch)).
pub fn decode_borrowed_voucher_lines(
    bytes: &[u8],
) -> Result<Option<Vec<BorrowedVoucherLine<'_>>>, DecodeError> {
    static VARIANT: OnceLock<u32> = OnceLock::new();
    let lines_variant = *VARIANT.get_or_init(|| {
        let empty = super::encode_batch(&super::RecordBatch::VoucherLines(Vec::new()));
        postcard::take_from_bytes::<u32>(&empty).map(|(variant, _)| variant).expect("an encoded variant")
    });
    let (variant, rest) = postcard::take_from_bytes::<u32>(bytes).map_err(|e| DecodeError(e.to_string()))?;
    if variant != lines_variant {
        return Ok(None);
    }
    postcard::from_bytes(rest).map(Some).map_err(|e| DecodeError(e.to_string()))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::super::*;
    use super::*;
    use std::str::FromStr;

    /// A line with every field set (tests of other modules use it too).
    pub(crate) fn owned_line() -> VoucherLine {
        VoucherLine {
            voucher_id: "1001".into(),
            line_no: 2,
            account_id: "1920".into(),
            date: NaiveDate::from_ymd_opt(2025, 2, 28).unwrap(),
            description: Some("Bæreposer \"store\" \\ 10 %".into()),
            amount: Decimal::from_str("-1234.50").unwrap(),
            currency: Some("EUR".into()),
            amount_currency: Some(Decimal::from_str("-105.10").unwrap()),
            tax_code: Some("3".into()),
            tax_amount: Some(Decimal::from_str("-246.90").unwrap()),
            dimensions: vec![DimensionRef { dimension_type: "R1".into(), value: "10".into() }],
            customer_id: Some("10001".into()),
            supplier_id: None,
            source_key: "AcTr/JNo=7/EntNo=2".into(),
        }
    }

    /// Every field of the borrowed line, owned again.
    fn to_owned(line: &BorrowedVoucherLine<'_>) -> VoucherLine {
        let text = |t: &Option<Text<'_>>| t.as_ref().map(|t| t.to_string());
        VoucherLine {
            voucher_id: line.voucher_id.to_string(),
            line_no: line.line_no,
            account_id: line.account_id.to_string(),
            date: line.date,
            description: text(&line.description),
            amount: line.amount,
            currency: text(&line.currency),
            amount_currency: line.amount_currency,
            tax_code: text(&line.tax_code),
            tax_amount: line.tax_amount,
            dimensions: line
                .dimensions
                .iter()
                .map(|d| DimensionRef {
                    dimension_type: d.dimension_type.to_string(),
                    value: d.value.to_string(),
                })
                .collect(),
            customer_id: text(&line.customer_id),
            supplier_id: text(&line.supplier_id),
            source_key: line.source_key.to_string(),
        }
    }

    #[test]
    fn reads_every_field_of_an_owned_lines_json_and_borrows_unescaped_text() {
        let json = serde_json::to_string(&owned_line()).unwrap();
        let line: BorrowedVoucherLine<'_> = serde_json::from_str(&json).unwrap();
        assert_eq!(to_owned(&line), owned_line());
        assert!(
            matches!(line.voucher_id.0, Cow::Borrowed(_)) && matches!(line.source_key.0, Cow::Borrowed(_))
        );
        let description = line.description.as_ref().unwrap();
        assert!(matches!(description.0, Cow::Owned(_)), "escaped text is unescaped into its own string");
    }

    #[test]
    fn accepts_and_refuses_exactly_what_the_owned_line_does() {
        let good = serde_json::to_value(owned_line()).unwrap();
        let variants = [
            ("as written", good.clone()),
            ("amount as a number", with(&good, "amount", serde_json::json!(1.5))),
            ("date not ISO", with(&good, "date", serde_json::json!("28.02.2025"))),
            ("voucher id a number", with(&good, "voucher_id", serde_json::json!(1001))),
            ("optional text missing", without(&good, "description")),
            ("optional text null", with(&good, "currency", serde_json::Value::Null)),
            ("required text missing", without(&good, "source_key")),
            ("dimensions missing", without(&good, "dimensions")),
            ("line_no negative", with(&good, "line_no", serde_json::json!(-1))),
            ("unknown field", with(&good, "extra", serde_json::json!("x"))),
        ];
        for (what, value) in variants {
            let json = value.to_string();
            let owned = serde_json::from_str::<VoucherLine>(&json);
            let borrowed = serde_json::from_str::<BorrowedVoucherLine<'_>>(&json);
            assert_eq!(owned.is_ok(), borrowed.is_ok(), "{what}: {owned:?} / {borrowed:?}");
            if let (Ok(owned), Ok(borrowed)) = (owned, borrowed) {
                assert_eq!(to_owned(&borrowed), owned, "{what}");
            }
        }
    }

    #[test]
    fn encodes_to_the_same_json_as_the_owned_line() {
        let mut bare = owned_line();
        (bare.description, bare.currency, bare.amount_currency, bare.dimensions) = (None, None, None, vec![]);
        for owned in [owned_line(), bare] {
            let json = serde_json::to_string(&owned).unwrap();
            let borrowed: BorrowedVoucherLine<'_> = serde_json::from_str(&json).unwrap();
            assert_eq!(serde_json::to_string(&borrowed).unwrap(), json);
        }
    }

    #[test]
    fn decodes_a_boundary_batch_of_lines_borrowed() {
        let lines = vec![owned_line(), VoucherLine { line_no: 3, description: None, ..owned_line() }];
        let bytes = encode_batch(&RecordBatch::VoucherLines(lines.clone()));
        let borrowed = decode_borrowed_voucher_lines(&bytes).unwrap().expect("a batch of voucher lines");
        assert_eq!(borrowed.iter().map(to_owned).collect::<Vec<_>>(), lines);
        assert!(
            matches!(borrowed[0].description.as_ref().unwrap().0, Cow::Borrowed(_)),
            "no escaping in postcard"
        );

        let accounts = encode_batch(&RecordBatch::Accounts(vec![]));
        assert_eq!(
            decode_borrowed_voucher_lines(&accounts).unwrap(),
            None,
            "another entity is left to decode_batch"
        );
        for cut in 0..bytes.len() {
            assert!(decode_borrowed_voucher_lines(&bytes[..cut]).is_err(), "cut at {cut}");
        }
    }

    fn with(value: &serde_json::Value, field: &str, new: serde_json::Value) -> serde_json::Value {
        let mut value = value.clone();
        value[field] = new;
        value
    }

    fn without(value: &serde_json::Value, field: &str) -> serde_json::Value {
        let mut value = value.clone();
        value.as_object_mut().unwrap().remove(field);
        value
    }
}
