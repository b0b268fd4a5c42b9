//! Vouchers (SAF-T transactions) and their general-ledger lines.

use super::codec::{serde_date, serde_decimal};
use super::DimensionRef;
use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// A voucher header: one balanced posting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Voucher {
    /// Voucher id, unique within company and fiscal year.
    pub id: String,
    /// Voucher (transaction) date.
    #[serde(with = "serde_date")]
    pub date: NaiveDate,
    /// Accounting period within the fiscal year (1-based), when the ERP has one.
    pub period: Option<u8>,
    /// The ERP's voucher type / journal.
    pub voucher_type: Option<String>,
    /// Free text.
    pub description: Option<String>,
    /// Where the record came from in the ERP.
    pub source_key: String,
}

/// One general-ledger line of a voucher.
///
/// Lines of one voucher are emitted contiguously; together they sum to zero.
/// A new field must be added to [`super::BorrowedVoucherLine`] too (its tests
/// fail otherwise; decision 0016).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VoucherLine {
    /// The [`Voucher::id`] this line belongs to.
    pub voucher_id: String,
    /// Line number within the voucher.
    pub line_no: u32,
    /// Account posted to.
    pub account_id: String,
    /// Posting date.
    #[serde(with = "serde_date")]
    pub date: NaiveDate,
    /// Line text.
    pub description: Option<String>,
    /// Amount in company currency, signed: debit positive, credit negative.
    #[serde(with = "serde_decimal")]
    pub amount: Decimal,
    /// ISO 4217 code of the transaction currency, when not the company currency.
    pub currency: Option<String>,
    /// Amount in `currency`, signed like `amount`.
    #[serde(with = "serde_decimal::option")]
    pub amount_currency: Option<Decimal>,
    /// Tax code applied.
    pub tax_code: Option<String>,
    /// Tax amount in company currency, signed like `amount`.
    #[serde(with = "serde_decimal::option")]
    pub tax_amount: Option<Decimal>,
    /// Dimension values the line is analysed by.
    pub dimensions: Vec<DimensionRef>,
    /// Customer the line concerns (accounts receivable).
    pub customer_id: Option<String>,
    /// Supplier the line concerns (accounts payable).
    pub supplier_id: Option<String>,
    /// Where the record came from in the ERP.
    pub source_key: String,
}
