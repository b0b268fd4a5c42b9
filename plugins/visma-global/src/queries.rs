//! The SQL Visma Global is read with, and the mapping of its rows.
//!
//! Every table is qualified with the company's schema (checked to be a plain
//! identifier before it gets here). Columns are always named.

use ledgerlink_odbc_common::{convert, Row};
use ledgerlink_plugin_api::canonical::{Account, DimensionRef, DimensionValue, Party, Voucher, VoucherLine};
use ledgerlink_plugin_api::{ErrorKind, PluginError};

/// Name, organisation number and currency of the company.
pub fn company(s: &str) -> String {
    format!("SELECT Name, CompanyNo, LocalCurrency FROM {s}.CompanyInformation ORDER BY UniqueNo")
}

/// The company's own labels of its department and project dimensions.
pub fn dimension_labels(s: &str) -> String {
    format!("SELECT VismaDepartment, VismaProject FROM {s}.CompanyInformation ORDER BY UniqueNo")
}

/// The fiscal years.
pub fn fiscal_years(s: &str) -> String {
    format!("SELECT AccountingYearID, StartDate, EndDate FROM {s}.AccountingYear ORDER BY AccountingYearID")
}

/// Aggregates that change whenever a transaction of the year or the master data changes.
pub fn change_token(s: &str, year: i32) -> String {
    // One pass over the year's transactions, and the small master tables.
    format!(
        "SELECT COUNT(*), SUM(Amount), SUM(Amount * (UniqueNo % 97 + 1) + GLAccountNo), MAX(LastUpdate),
                (SELECT COUNT(*) FROM {s}.GLAccount),
                (SELECT MAX(LastUpdate) FROM {s}.GLAccount),
                (SELECT MAX(LastUpdate) FROM {s}.Customer),
                (SELECT MAX(LastUpdate) FROM {s}.Supplier)
         FROM {s}.GLAccountTransaction WHERE AccountingYear = {year}"
    )
}

/// The chart of accounts.
pub fn accounts(s: &str) -> String {
    format!("SELECT GLAccountNo, Name, VATCode FROM {s}.GLAccount ORDER BY GLAccountNo")
}

/// Maps a `GLAccount` row.
pub fn account(row: &Row<'_>) -> Result<Account, PluginError> {
    let id = row.int(0, "GLAccount.GLAccountNo")?.to_string();
    Ok(Account {
        name: row.opt_string(1)?.unwrap_or_default(),
        grouping_category: None,
        grouping_code: None,
        standard_account: None,
        default_tax_code: row.opt_int(2, "GLAccount.VATCode")?.filter(|&c| c != 0).map(|c| c.to_string()),
        source_key: format!("GLAccount/{id}"),
        id,
    })
}

/// Customers.
pub fn customers(s: &str) -> String {
    format!(
        "SELECT CustomerNo, Name, CompanyNo, Address1, PostCode, PostOffice, EmailAddress, CurrencyNo
         FROM {s}.Customer ORDER BY CustomerNo"
    )
}

/// Suppliers, in the same column order as [`customers`].
pub fn suppliers(s: &str) -> String {
    format!(
        "SELECT SupplierNo, Name, CompanyNo, Address1, PostCode, PostOffice, NULL, CurrencyNo
         FROM {s}.Supplier ORDER BY SupplierNo"
    )
}

/// Maps a row of [`customers`] or [`suppliers`].
pub fn party(row: &Row<'_>) -> Result<Party, PluginError> {
    let id = row.int(0, "party number")?.to_string();
    let currency = row.opt_int(7, "CurrencyNo")?.and_then(convert::iso4217_alpha).map(str::to_owned);
    Ok(Party {
        name: row.opt_string(1)?.unwrap_or_default(),
        organisation_number: row.opt_string(2)?,
        street: row.opt_string(3)?,
        postal_code: row.opt_string(4)?,
        city: row.opt_string(5)?,
        country: None,
        email: row.opt_string(6)?,
        phone: None,
        currency,
        source_key: format!("party/{id}"),
        id,
    })
}

/// How many departments and projects exist, and how many lines use the extra cost units.
pub fn dimension_usage(s: &str) -> String {
    format!(
        "SELECT (SELECT COUNT(*) FROM {s}.Department), (SELECT COUNT(*) FROM {s}.Project),
                (SELECT COUNT(*) FROM {s}.GLAccountTransaction WHERE ExtraCostUnitINo > 0),
                (SELECT COUNT(*) FROM {s}.GLAccountTransaction WHERE ExtraCostUnitIINo > 0)"
    )
}

/// The dimension types in use: departments and projects with the company's labels,
/// and the two extra cost units when lines use them.
pub fn dimension_types(
    usage: [i64; 4],
    department: Option<String>,
    project: Option<String>,
) -> Vec<(&'static str, String)> {
    let all = [
        ("DepNo", department.unwrap_or_else(|| "Avdeling".into())),
        ("ProjectNo", project.unwrap_or_else(|| "Prosjekt".into())),
        ("ExtraCostUnitINo", "Ekstra kostnadsbærer I".into()),
        ("ExtraCostUnitIINo", "Ekstra kostnadsbærer II".into()),
    ];
    all.into_iter().zip(usage).filter(|(_, used)| *used > 0).map(|(t, _)| t).collect()
}

/// Departments and projects.
pub fn dimension_values(s: &str) -> String {
    format!(
        "SELECT 'DepNo', DepNo, Name FROM {s}.Department
         UNION ALL SELECT 'ProjectNo', ProjectNo, Name FROM {s}.Project ORDER BY 1, 2"
    )
}

/// Maps a row of [`dimension_values`].
pub fn dimension_value(row: &Row<'_>) -> Result<DimensionValue, PluginError> {
    let dimension_type = row.required(0, "dimension")?.to_owned();
    let id = row.int(1, "dimension value")?.to_string();
    Ok(DimensionValue {
        source_key: format!("{dimension_type}/{id}"),
        name: row.opt_string(2)?.unwrap_or_default(),
        dimension_type,
        id,
    })
}

/// Voucher headers of a fiscal year.
pub fn vouchers(s: &str, year: i32) -> String {
    format!(
        "SELECT VoucherNo, MIN(VoucherDate), MIN(Period), MIN(VoucherTypeNo), MIN(Description)
         FROM {s}.GLAccountTransaction WHERE AccountingYear = {year} GROUP BY VoucherNo ORDER BY VoucherNo"
    )
}

/// Maps a row of [`vouchers`].
pub fn voucher(row: &Row<'_>) -> Result<Voucher, PluginError> {
    let number = row.int(0, "GLAccountTransaction.VoucherNo")?;
    Ok(Voucher {
        id: number.to_string(),
        date: convert::date(row.required(1, "VoucherDate")?, "GLAccountTransaction.VoucherDate")?,
        period: row
            .opt_int(2, "GLAccountTransaction.Period")?
            .filter(|p| (1..=255).contains(p))
            .map(|p| p as u8),
        voucher_type: row.opt_string(3)?,
        description: row.opt_string(4)?,
        source_key: format!("GLAccountTransaction/VoucherNo={number}"),
    })
}

/// General-ledger lines of a fiscal year, grouped by voucher.
pub fn voucher_lines(s: &str, year: i32) -> String {
    format!(
        "SELECT VoucherNo, UniqueNo, GLAccountNo, VoucherDate, Description, Amount, CurrencyNo, ExchangeAmount,
                VATCode, CustomerNo, SupplierNo, DepNo, ProjectNo, ExtraCostUnitINo, ExtraCostUnitIINo
         FROM {s}.GLAccountTransaction WHERE AccountingYear = {year} ORDER BY VoucherNo, UniqueNo"
    )
}

/// A mapper of [`voucher_lines`] rows.
pub fn line_mapper(
    company_currency: String,
) -> impl FnMut(&Row<'_>) -> Result<VoucherLine, PluginError> + Send {
    const DIMENSIONS: [&str; 4] = ["DepNo", "ProjectNo", "ExtraCostUnitINo", "ExtraCostUnitIINo"];
    let mut current_voucher = i64::MIN;
    let mut line_no = 0u32;
    move |row| {
        let voucher = row.int(0, "GLAccountTransaction.VoucherNo")?;
        if voucher != current_voucher {
            current_voucher = voucher;
            line_no = 0;
        }
        line_no += 1;
        let unique = row.int(1, "GLAccountTransaction.UniqueNo")?;
        let currency = match row.opt_int(6, "GLAccountTransaction.CurrencyNo")? {
            None => None,
            Some(n) => Some(convert::iso4217_alpha(n).ok_or_else(|| {
                PluginError::new(
                    ErrorKind::DATA,
                    format!("GLAccountTransaction {unique}: currency number {n} is unknown"),
                    "Report the currency to the plugin's vendor.",
                )
            })?),
        }
        .filter(|c| *c != company_currency)
        .map(str::to_owned);
        let amount_currency = match currency {
            Some(_) => row.opt_decimal(7, 8, "GLAccountTransaction.ExchangeAmount")?.map(convert::money),
            None => None,
        };
        let positive = |column, what| -> Result<Option<String>, PluginError> {
            Ok(row.opt_int(column, what)?.filter(|&n| n > 0).map(|n| n.to_string()))
        };
        let mut dimensions = Vec::new();
        for (i, dimension) in DIMENSIONS.iter().enumerate() {
            if let Some(value) = positive(11 + i, dimension)? {
                dimensions.push(DimensionRef { dimension_type: (*dimension).into(), value });
            }
        }
        Ok(VoucherLine {
            voucher_id: voucher.to_string(),
            line_no,
            account_id: row.int(2, "GLAccountTransaction.GLAccountNo")?.to_string(),
            date: convert::date(row.required(3, "VoucherDate")?, "GLAccountTransaction.VoucherDate")?,
            description: row.opt_string(4)?,
            amount: convert::money(row.decimal(5, 8, "GLAccountTransaction.Amount")?),
            currency,
            amount_currency,
            tax_code: positive(8, "GLAccountTransaction.VATCode")?,
            tax_amount: None,
            dimensions,
            customer_id: positive(9, "GLAccountTransaction.CustomerNo")?,
            supplier_id: positive(10, "GLAccountTransaction.SupplierNo")?,
            source_key: format!("GLAccountTransaction/{unique}"),
        })
    }
}
