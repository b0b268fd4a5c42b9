//! The SQL SAP Business One is read with, and the mapping of its rows.

use ledgerlink_odbc_common::{convert, Row};
use ledgerlink_plugin_api::canonical::{
    Account, Datelike, DimensionRef, DimensionType, DimensionValue, Party, TaxCode, Voucher, VoucherLine,
};
use ledgerlink_plugin_api::PluginError;

/// Number of company databases.
pub const COUNT_COMPANIES: &str = "SELECT COUNT(*) FROM SRGC";

/// The company databases, from the system database.
pub const COMPANIES: &str = "SELECT dbName FROM SRGC ORDER BY dbName";

/// Name, tax id and currency of the company (one row).
pub const COMPANY: &str = "SELECT CompnyName, TaxIdNum, MainCurncy FROM OADM";

/// The posting dates in use (few: at most one per day), to find the fiscal years.
pub const POSTING_DATES: &str = "SELECT DISTINCT RefDate FROM OJDT WHERE RefDate IS NOT NULL";

/// Journal entries of a calendar fiscal year.
fn year_range(column: &str, year: i32) -> String {
    format!("{column} >= '{year}-01-01' AND {column} < '{}-01-01'", year + 1)
}

/// The dimension id of a cost-accounting dimension number: its column in `JDT1`.
fn dimension_id(code: i64) -> String {
    match code {
        0 => "Project".into(),
        1 => "ProfitCode".into(),
        n => format!("OcrCode{n}"),
    }
}

/// Aggregates that change whenever a journal entry of the year or the master data changes.
pub fn change_token(year: i32) -> String {
    // One pass over the year's lines with their headers, and the small master tables.
    let range = year_range("h.RefDate", year);
    format!(
        "SELECT COUNT(*), SUM(l.Debit), SUM(l.Credit), SUM((l.Debit - l.Credit) * (l.Line_ID % 97 + 1) + l.TransId),
                COUNT(DISTINCT l.TransId), MAX(h.UpdateDate),
                (SELECT COUNT(*) FROM OACT),
                (SELECT MAX(UpdateDate) FROM OACT),
                (SELECT MAX(UpdateTS) FROM OCRD WHERE UpdateDate = (SELECT MAX(UpdateDate) FROM OCRD))
         FROM JDT1 l JOIN OJDT h ON h.TransId = l.TransId WHERE {range}"
    )
}

/// The chart of accounts.
///
/// Only postable accounts: title accounts (`Postable = 'N'`) structure reports, they hold no postings.
pub const ACCOUNTS: &str =
    "SELECT AcctCode, AcctName, FormatCode FROM OACT WHERE Postable = 'Y' ORDER BY AcctCode";

/// Maps an `OACT` row.
pub fn account(row: &Row<'_>) -> Result<Account, PluginError> {
    let id = row.required(0, "OACT.AcctCode")?.to_owned();
    Ok(Account {
        name: row.opt_string(1)?.unwrap_or_default(),
        grouping_category: None,
        grouping_code: None,
        standard_account: row
            .opt_string(2)?
            .filter(|c| c.len() == 4 && c.chars().all(|c| c.is_ascii_digit())),
        default_tax_code: None,
        source_key: format!("OACT/{id}"),
        id,
    })
}

/// Business partners of one type: `C` customers, `S` suppliers.
pub fn partners(card_type: char) -> String {
    format!(
        "SELECT CardCode, CardName, LicTradNum, Address, ZipCode, City, Country, E_Mail, Currency
         FROM OCRD WHERE CardType = '{card_type}' ORDER BY CardCode"
    )
}

/// Maps a row of [`partners`].
pub fn party(row: &Row<'_>) -> Result<Party, PluginError> {
    let id = row.required(0, "OCRD.CardCode")?.to_owned();
    let iso = |v: Option<String>, len: usize| {
        v.filter(|c| c.len() == len && c.chars().all(|c| c.is_ascii_uppercase()))
    };
    Ok(Party {
        name: row.opt_string(1)?.unwrap_or_default(),
        organisation_number: row.opt_string(2)?,
        street: row.opt_string(3)?,
        postal_code: row.opt_string(4)?,
        city: row.opt_string(5)?,
        country: iso(row.opt_string(6)?, 2),
        email: row.opt_string(7)?,
        phone: None,
        // "##" means "all currencies" in SAP.
        currency: iso(row.opt_string(8)?, 3),
        source_key: format!("OCRD/{id}"),
        id,
    })
}

/// The active cost-accounting dimensions, and projects when there are any.
pub const DIMENSION_TYPES: &str = "SELECT DimCode, DimName FROM ODIM WHERE DimActive = 'Y'
     UNION ALL SELECT 0, 'Prosjekt' FROM OPRJ WHERE PrjCode = (SELECT MIN(PrjCode) FROM OPRJ)
     ORDER BY 1";

/// Maps a row of [`DIMENSION_TYPES`].
pub fn dimension_type(row: &Row<'_>) -> Result<DimensionType, PluginError> {
    let id = dimension_id(row.int(0, "ODIM.DimCode")?);
    Ok(DimensionType {
        name: row.opt_string(1)?.unwrap_or_else(|| id.clone()),
        source_key: format!("ODIM/{id}"),
        id,
    })
}

/// Cost centres of the active dimensions, and projects (dimension 0 here).
pub const DIMENSION_VALUES: &str = "SELECT DimCode, PrcCode, PrcName FROM OPRC
       WHERE DimCode IN (SELECT DimCode FROM ODIM WHERE DimActive = 'Y')
     UNION ALL SELECT 0, PrjCode, PrjName FROM OPRJ ORDER BY 1, 2";

/// Maps a row of [`DIMENSION_VALUES`].
pub fn dimension_value(row: &Row<'_>) -> Result<DimensionValue, PluginError> {
    let dimension_type = dimension_id(row.int(0, "OPRC.DimCode")?);
    let id = row.required(1, "OPRC.PrcCode")?.to_owned();
    Ok(DimensionValue {
        source_key: format!("{}/{id}", if dimension_type == "Project" { "OPRJ" } else { "OPRC" }),
        name: row.opt_string(2)?.unwrap_or_default(),
        dimension_type,
        id,
    })
}

/// VAT groups.
pub const TAX_CODES: &str = "SELECT Code, Name, Rate FROM OVTG ORDER BY Code";

/// Maps an `OVTG` row.
pub fn tax_code(row: &Row<'_>) -> Result<TaxCode, PluginError> {
    let id = row.required(0, "OVTG.Code")?.to_owned();
    Ok(TaxCode {
        description: row.opt_string(1)?.unwrap_or_default(),
        rate: row.opt_decimal(2, 6, "OVTG.Rate")?.map(|r| r.normalize()),
        standard_tax_code: None,
        source_key: format!("OVTG/{id}"),
        id,
    })
}

/// Journal entry headers of a fiscal year.
pub fn vouchers(year: i32) -> String {
    format!(
        "SELECT TransId, RefDate, TransType, Memo FROM OJDT WHERE {} ORDER BY TransId",
        year_range("RefDate", year)
    )
}

/// Maps a row of [`vouchers`].
pub fn voucher(row: &Row<'_>) -> Result<Voucher, PluginError> {
    let id = row.int(0, "OJDT.TransId")?;
    let date = convert::date(row.required(1, "OJDT.RefDate")?, "OJDT.RefDate")?;
    Ok(Voucher {
        id: id.to_string(),
        date,
        period: Some(date.month() as u8),
        voucher_type: row.opt_string(2)?,
        description: row.opt_string(3)?,
        source_key: format!("OJDT/{id}"),
    })
}

/// Journal entry lines of a fiscal year, grouped by entry.
pub fn voucher_lines(year: i32) -> String {
    format!(
        "SELECT l.TransId, l.Line_ID, l.Account, l.ShortName, l.Debit, l.Credit, l.FCCurrency, l.FCDebit,
                l.FCCredit, h.RefDate, l.LineMemo, l.VatGroup, l.ProfitCode, l.OcrCode2, l.OcrCode3, l.OcrCode4,
                l.OcrCode5, l.Project, bp.CardType
         FROM JDT1 l JOIN OJDT h ON h.TransId = l.TransId LEFT JOIN OCRD bp ON bp.CardCode = l.ShortName
         WHERE {} ORDER BY l.TransId, l.Line_ID",
        year_range("h.RefDate", year)
    )
}

/// A mapper of [`voucher_lines`] rows: signed amounts (debit − credit), dimensions,
/// and the business partner of control-account lines.
pub fn line_mapper(
    company_currency: String,
) -> impl FnMut(&Row<'_>) -> Result<VoucherLine, PluginError> + Send {
    const DIMENSIONS: [&str; 6] = ["ProfitCode", "OcrCode2", "OcrCode3", "OcrCode4", "OcrCode5", "Project"];
    move |row| {
        let (entry, line) = (row.int(0, "JDT1.TransId")?, row.int(1, "JDT1.Line_ID")?);
        let debit = row.opt_decimal(4, 6, "JDT1.Debit")?.unwrap_or_default();
        let credit = row.opt_decimal(5, 6, "JDT1.Credit")?.unwrap_or_default();
        let currency = row.opt_string(6)?.filter(|c| *c != company_currency && c.len() == 3);
        let amount_currency = match currency {
            Some(_) => {
                let fc_debit = row.opt_decimal(7, 6, "JDT1.FCDebit")?.unwrap_or_default();
                let fc_credit = row.opt_decimal(8, 6, "JDT1.FCCredit")?.unwrap_or_default();
                Some(convert::money(fc_debit - fc_credit))
            }
            None => None,
        };
        let mut dimensions = Vec::new();
        for (i, dimension) in DIMENSIONS.iter().enumerate() {
            if let Some(value) = row.opt_string(12 + i)? {
                dimensions.push(DimensionRef { dimension_type: (*dimension).into(), value });
            }
        }
        let partner = row.opt_string(3)?;
        let card_type = row.opt_string(18)?;
        Ok(VoucherLine {
            voucher_id: entry.to_string(),
            line_no: line as u32 + 1,
            account_id: row.required(2, "JDT1.Account")?.to_owned(),
            date: convert::date(row.required(9, "OJDT.RefDate")?, "OJDT.RefDate")?,
            description: row.opt_string(10)?,
            amount: convert::money(debit - credit),
            currency,
            amount_currency,
            tax_code: row.opt_string(11)?,
            tax_amount: None,
            dimensions,
            customer_id: partner.clone().filter(|_| card_type.as_deref() == Some("C")),
            supplier_id: partner.filter(|_| card_type.as_deref() == Some("S")),
            source_key: format!("JDT1/{entry}/{line}"),
        })
    }
}
