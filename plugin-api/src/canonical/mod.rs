//! Canonical accounting schema v1 — what every plugin produces and the hub stores.
//!
//! Modelled on SAF-T Financial: money is [`rust_decimal::Decimal`] (signed, debit
//! positive), dates are [`chrono::NaiveDate`], and every record carries the
//! `source_key` of the ERP row it came from. Nothing here is a float.

mod batch_writer;
mod borrowed;
mod codec;
mod currency;
mod dimension;
mod ledger;
mod party;
mod trial_balance;
mod validate;
mod voucher;
mod voucher_runs;

pub use batch_writer::{BatchWriter, EncodesAs};
pub use borrowed::{decode_borrowed_voucher_lines, BorrowedDimensionRef, BorrowedVoucherLine, Text};
pub use codec::{
    decode_batch, decode_companies, encode_batch, encode_batch_into, encode_companies, serde_date,
    serde_decimal, DecodeError,
};
pub use currency::{is_iso4217, is_past_the_cent};
pub use dimension::{DimensionRef, DimensionType, DimensionValue};
pub use ledger::{Account, Company, FiscalYear, TaxCode};
pub use party::{Customer, Party, Supplier};
pub use trial_balance::{TrialBalance, TrialBalanceRow};
pub use validate::{
    validate_company, CheckedLines, LineChecker, Problem, SnapshotValidator, ValidationReport,
};
pub use voucher::{Voucher, VoucherLine};
pub use voucher_runs::{RepeatedRuns, RunOrder, StretchRuns};

pub use chrono::{Datelike, NaiveDate};
pub use rust_decimal::Decimal;

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Version of the canonical schema; the hub accepts the versions it knows.
pub const SCHEMA_VERSION: u32 = 1;

/// A kind of record a plugin can extract for one company and fiscal year.
///
/// [`Entity::ALL`] is the canonical order: master data before the vouchers that
/// reference it, which is the order the host extracts and validates in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Entity {
    /// Chart of accounts.
    Accounts,
    /// Customers (accounts receivable parties).
    Customers,
    /// Suppliers (accounts payable parties).
    Suppliers,
    /// Dimension types (department, project, …).
    DimensionTypes,
    /// Values of the dimension types.
    DimensionValues,
    /// VAT / tax codes.
    TaxCodes,
    /// Voucher headers.
    Vouchers,
    /// General-ledger lines of the vouchers.
    VoucherLines,
}

impl Entity {
    /// Every entity, in canonical (extraction and validation) order.
    pub const ALL: [Entity; 8] = [
        Entity::Accounts,
        Entity::Customers,
        Entity::Suppliers,
        Entity::DimensionTypes,
        Entity::DimensionValues,
        Entity::TaxCodes,
        Entity::Vouchers,
        Entity::VoucherLines,
    ];

    /// The stable snake_case name used across the ABI, in files and on the wire.
    pub const fn as_str(self) -> &'static str {
        match self {
            Entity::Accounts => "accounts",
            Entity::Customers => "customers",
            Entity::Suppliers => "suppliers",
            Entity::DimensionTypes => "dimension_types",
            Entity::DimensionValues => "dimension_values",
            Entity::TaxCodes => "tax_codes",
            Entity::Vouchers => "vouchers",
            Entity::VoucherLines => "voucher_lines",
        }
    }
}

impl fmt::Display for Entity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The name is not one of [`Entity::ALL`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownEntity(pub String);

impl fmt::Display for UnknownEntity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let known: Vec<&str> = Entity::ALL.iter().map(|e| e.as_str()).collect();
        write!(f, "unknown entity `{}` (known: {})", self.0, known.join(", "))
    }
}

impl std::error::Error for UnknownEntity {}

impl FromStr for Entity {
    type Err = UnknownEntity;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Entity::ALL.into_iter().find(|e| e.as_str() == s).ok_or_else(|| UnknownEntity(s.to_owned()))
    }
}

/// A batch of records of one entity: the unit that crosses the plugin boundary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum RecordBatch {
    /// Accounts.
    Accounts(Vec<Account>),
    /// Customers.
    Customers(Vec<Customer>),
    /// Suppliers.
    Suppliers(Vec<Supplier>),
    /// Dimension types.
    DimensionTypes(Vec<DimensionType>),
    /// Dimension values.
    DimensionValues(Vec<DimensionValue>),
    /// Tax codes.
    TaxCodes(Vec<TaxCode>),
    /// Voucher headers.
    Vouchers(Vec<Voucher>),
    /// Voucher lines.
    VoucherLines(Vec<VoucherLine>),
}

impl RecordBatch {
    /// The entity of the records in this batch.
    pub fn entity(&self) -> Entity {
        match self {
            RecordBatch::Accounts(_) => Entity::Accounts,
            RecordBatch::Customers(_) => Entity::Customers,
            RecordBatch::Suppliers(_) => Entity::Suppliers,
            RecordBatch::DimensionTypes(_) => Entity::DimensionTypes,
            RecordBatch::DimensionValues(_) => Entity::DimensionValues,
            RecordBatch::TaxCodes(_) => Entity::TaxCodes,
            RecordBatch::Vouchers(_) => Entity::Vouchers,
            RecordBatch::VoucherLines(_) => Entity::VoucherLines,
        }
    }

    /// Number of records in the batch.
    pub fn len(&self) -> usize {
        match self {
            RecordBatch::Accounts(v) => v.len(),
            RecordBatch::Customers(v) => v.len(),
            RecordBatch::Suppliers(v) => v.len(),
            RecordBatch::DimensionTypes(v) => v.len(),
            RecordBatch::DimensionValues(v) => v.len(),
            RecordBatch::TaxCodes(v) => v.len(),
            RecordBatch::Vouchers(v) => v.len(),
            RecordBatch::VoucherLines(v) => v.len(),
        }
    }

    /// True when the batch holds no records.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
