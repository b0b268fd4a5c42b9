//! Company, fiscal year, account and tax code records.

use super::codec::{serde_date, serde_decimal};
use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// A company (client, "firma") whose books a source can read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Company {
    /// The company's key in the ERP (e.g. Visma Business company number "0001").
    pub id: String,
    /// Registered name.
    pub name: String,
    /// Organisation number (Norway: 9 digits), when the ERP has it.
    pub organisation_number: Option<String>,
    /// ISO 4217 code of the company currency; every `amount` is in it.
    pub currency: String,
    /// The fiscal years that hold data.
    pub fiscal_years: Vec<FiscalYear>,
    /// Where the record came from in the ERP.
    pub source_key: String,
}

/// One fiscal year of a company.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FiscalYear {
    /// The year's number as the ERP names it (usually the calendar year it starts in).
    pub year: i32,
    /// First day.
    #[serde(with = "serde_date")]
    pub start: NaiveDate,
    /// Last day.
    #[serde(with = "serde_date")]
    pub end: NaiveDate,
}

/// A general-ledger account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    /// Account number.
    pub id: String,
    /// Account name.
    pub name: String,
    /// SAF-T 1.30 grouping category (e.g. "RF-1167"), when the ERP maps it.
    pub grouping_category: Option<String>,
    /// SAF-T 1.30 grouping code within the category.
    pub grouping_code: Option<String>,
    /// SAF-T 1.10 standard account (4-character), when the ERP maps it.
    pub standard_account: Option<String>,
    /// Default tax code of the account.
    pub default_tax_code: Option<String>,
    /// Where the record came from in the ERP.
    pub source_key: String,
}

/// A VAT / tax code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaxCode {
    /// The ERP's code.
    pub id: String,
    /// Description.
    pub description: String,
    /// Rate in percent (25 means 25 %), exact.
    #[serde(with = "serde_decimal::option")]
    pub rate: Option<Decimal>,
    /// SAF-T StandardTaxCode it maps to.
    pub standard_tax_code: Option<String>,
    /// Where the record came from in the ERP.
    pub source_key: String,
}
