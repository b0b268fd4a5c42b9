//! SAF-T Financial 1.30 export of a company's fiscal year from its current snapshot.
//!
//! [`prepare`] reads the master data and makes one pass over the voucher lines
//! (counts and totals, which the file states before the transactions), checks
//! that every account maps to a `GroupingCategory`/`GroupingCode`, and fails
//! before any byte is written; [`Prepared::write`] then streams the XML with a
//! second pass over the lines. Memory holds master data and voucher headers,
//! never the lines. See `docs/hub.md` and `docs/decisions/0009-saf-t.md`.

pub mod cli;
pub mod http;
pub mod mapping;
mod xml;

use crate::storage::{BlobKey, BlobStore, CompanyKey, MetadataStore, StoreError, Tenant};
use ledgerlink_plugin_api::canonical::{
    Account, Company, Datelike, Decimal, DimensionType, DimensionValue, Entity, NaiveDate, Party,
    RecordBatch, TaxCode, TrialBalance, Voucher, VoucherLine,
};
use ledgerlink_protocol::{PartFormat, PartInfo, PartReader};
use mapping::Mapping;
use std::collections::{BTreeMap, HashMap};
use std::io::{BufReader, Write};
use xml::XmlWriter;

/// The SAF-T version this module writes.
pub const AUDIT_FILE_VERSION: &str = "1.30";
/// The SAF-T namespace.
pub const NAMESPACE: &str = "urn:StandardAuditFile-Taxation-Financial:NO";

/// Why an export failed.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// No committed snapshot for that company and year.
    #[error("company `{company}` has no committed snapshot for fiscal year {year}")]
    NoSnapshot {
        /// Company id.
        company: String,
        /// Fiscal year.
        year: i32,
    },
    /// The data cannot be expressed in SAF-T as it is.
    #[error("{0}")]
    Data(String),
    /// Accounts without a grouping.
    #[error(
        "accounts {} have no GroupingCategory/GroupingCode: the ERP does not map them and their numbers are not standard 4-digit accounts. \
         Resolution: give a mapping file with lines `account;<id>;<GroupingCategory>;<GroupingCode>` (codes from naeringsspesifikasjon.csv)",
        .0.join(", ")
    )]
    Unmapped(Vec<String>),
    /// Storage failed.
    #[error("storage: {0}")]
    Store(#[from] StoreError),
    /// Writing failed.
    #[error("cannot write the file: {0}")]
    Io(#[from] std::io::Error),
}

/// What the header needs that the canonical data does not carry.
#[derive(Debug, Clone)]
pub struct ExportOptions {
    /// Account and tax code mapping.
    pub mapping: Mapping,
    /// Contact person's first name (mandatory in the header).
    pub contact_first_name: String,
    /// Contact person's last name.
    pub contact_last_name: String,
    /// Contact telephone (mandatory in the header).
    pub contact_telephone: String,
    /// `AuditFileDateCreated`.
    pub created: NaiveDate,
}

impl Default for ExportOptions {
    fn default() -> Self {
        Self {
            mapping: Mapping::official(),
            contact_first_name: "Ikke".into(),
            contact_last_name: "oppgitt".into(),
            contact_telephone: "-".into(),
            created: chrono::Utc::now().date_naive(),
        }
    }
}

/// Everything checked and counted, ready to stream.
pub struct Prepared<'a> {
    blobs: &'a dyn BlobStore,
    tenant_id: i64,
    snapshot_id: String,
    part_format: PartFormat,
    line_parts: Vec<PartInfo>,
    company: Company,
    year: i32,
    start: NaiveDate,
    end: NaiveDate,
    options: ExportOptions,
    accounts: Vec<(Account, mapping::Grouping)>,
    customers: Vec<Party>,
    suppliers: Vec<Party>,
    tax_codes: Vec<TaxCode>,
    dimension_types: Vec<DimensionType>,
    dimension_values: Vec<DimensionValue>,
    vouchers: HashMap<String, Voucher>,
    trial_balance: TrialBalance,
    entries: u64,
    total_debit: Decimal,
    total_credit: Decimal,
}

fn read_entity(
    blobs: &dyn BlobStore,
    tenant_id: i64,
    snapshot_id: &str,
    format: PartFormat,
    parts: &[PartInfo],
    mut each: impl FnMut(RecordBatch) -> Result<(), ExportError>,
) -> Result<(), ExportError> {
    for part in parts {
        let key = BlobKey { tenant_id, snapshot_id: snapshot_id.to_owned(), index: part.index };
        let reader = blobs.open(&key)?.ok_or_else(|| {
            ExportError::Store(StoreError::Corrupt(format!(
                "part {} of committed snapshot {snapshot_id} is missing",
                part.index
            )))
        })?;
        let batches = PartReader::new(format, part.entity, part.index, BufReader::new(reader))
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        for batch in batches {
            each(batch.map_err(|e| StoreError::Corrupt(e.to_string()))?)?;
        }
    }
    Ok(())
}

/// Checks a money amount fits SAF-T's two decimals.
fn money(value: Decimal, what: &dyn Fn() -> String) -> Result<Decimal, ExportError> {
    let normalized = value.normalize();
    if ledgerlink_plugin_api::canonical::is_past_the_cent(value) {
        return Err(ExportError::Data(format!(
            "{} is {value}, which has more than the 2 decimals SAF-T allows; the export does not round money",
            what()
        )));
    }
    Ok(normalized)
}

/// Loads and checks everything for an export of `company`'s fiscal `year`.
pub fn prepare<'a>(
    meta: &dyn MetadataStore,
    blobs: &'a dyn BlobStore,
    tenant: &Tenant,
    company: &CompanyKey,
    year: i32,
    options: ExportOptions,
) -> Result<Prepared<'a>, ExportError> {
    let no_snapshot = || ExportError::NoSnapshot { company: company.company_id.clone(), year };
    let record = meta.current(tenant, company, year)?.ok_or_else(no_snapshot)?;
    let stored = meta.trial_balance(tenant, company, year)?.ok_or_else(no_snapshot)?;
    let manifest = record.manifest;
    let fiscal =
        manifest.company.fiscal_years.iter().find(|y| y.year == year).cloned().ok_or_else(no_snapshot)?;
    let Some(org) = manifest.company.organisation_number.as_deref().filter(|o| !o.trim().is_empty()) else {
        return Err(ExportError::Data(format!(
            "company `{}` has no organisation number, which SAF-T requires (Header/Company/RegistrationNumber). \
             Resolution: record it in the ERP and sync again",
            manifest.company.id
        )));
    };
    let _ = org;
    let mut parts: BTreeMap<Entity, Vec<PartInfo>> = BTreeMap::new();
    for p in &manifest.parts {
        parts.entry(p.entity).or_default().push(p.clone());
    }
    for list in parts.values_mut() {
        list.sort_by_key(|p| p.index);
    }
    let of = |e: Entity| parts.get(&e).cloned().unwrap_or_default();
    let sid = record.snapshot_id.clone();
    let format = manifest.part_format;
    let mut p = Prepared {
        part_format: format,
        blobs,
        tenant_id: tenant.id,
        snapshot_id: sid.clone(),
        line_parts: of(Entity::VoucherLines),
        company: manifest.company.clone(),
        year,
        start: fiscal.start,
        end: fiscal.end,
        options,
        accounts: Vec::new(),
        customers: Vec::new(),
        suppliers: Vec::new(),
        tax_codes: Vec::new(),
        dimension_types: Vec::new(),
        dimension_values: Vec::new(),
        vouchers: HashMap::new(),
        trial_balance: stored.trial_balance,
        entries: 0,
        total_debit: Decimal::ZERO,
        total_credit: Decimal::ZERO,
    };
    let mut accounts: Vec<Account> = Vec::new();
    read_entity(blobs, tenant.id, &sid, format, &of(Entity::Accounts), |b| {
        if let RecordBatch::Accounts(rows) = b {
            accounts.extend(rows);
        }
        Ok(())
    })?;
    read_entity(blobs, tenant.id, &sid, format, &of(Entity::Customers), |b| {
        if let RecordBatch::Customers(rows) = b {
            p.customers.extend(rows);
        }
        Ok(())
    })?;
    read_entity(blobs, tenant.id, &sid, format, &of(Entity::Suppliers), |b| {
        if let RecordBatch::Suppliers(rows) = b {
            p.suppliers.extend(rows);
        }
        Ok(())
    })?;
    read_entity(blobs, tenant.id, &sid, format, &of(Entity::TaxCodes), |b| {
        if let RecordBatch::TaxCodes(rows) = b {
            p.tax_codes.extend(rows);
        }
        Ok(())
    })?;
    read_entity(blobs, tenant.id, &sid, format, &of(Entity::DimensionTypes), |b| {
        if let RecordBatch::DimensionTypes(rows) = b {
            p.dimension_types.extend(rows);
        }
        Ok(())
    })?;
    read_entity(blobs, tenant.id, &sid, format, &of(Entity::DimensionValues), |b| {
        if let RecordBatch::DimensionValues(rows) = b {
            p.dimension_values.extend(rows);
        }
        Ok(())
    })?;
    read_entity(blobs, tenant.id, &sid, format, &of(Entity::Vouchers), |b| {
        if let RecordBatch::Vouchers(rows) = b {
            p.vouchers.extend(rows.into_iter().map(|v| (v.id.clone(), v)));
        }
        Ok(())
    })?;
    // Accounts that lines use but the source did not list still need a master record.
    for id in p.trial_balance.accounts.keys() {
        if !accounts.iter().any(|a| &a.id == id) {
            accounts.push(Account {
                id: id.clone(),
                name: format!("Konto {id}"),
                grouping_category: None,
                grouping_code: None,
                standard_account: None,
                default_tax_code: None,
                source_key: String::new(),
            });
        }
    }
    let mut unmapped = Vec::new();
    for a in accounts {
        let erp = a.grouping_category.as_deref().zip(a.grouping_code.as_deref());
        match p.options.mapping.account(&a.id, erp, a.standard_account.as_deref()) {
            Some(g) => p.accounts.push((a, g)),
            None => unmapped.push(a.id),
        }
    }
    if !unmapped.is_empty() {
        return Err(ExportError::Unmapped(unmapped));
    }
    // First pass over the lines: NumberOfEntries, TotalDebit and TotalCredit come first in the file.
    let mut last: Option<String> = None;
    let (mut entries, mut debit, mut credit) = (0u64, Decimal::ZERO, Decimal::ZERO);
    read_entity(blobs, tenant.id, &sid, format, &p.line_parts, |b| {
        if let RecordBatch::VoucherLines(rows) = b {
            for l in rows {
                let amount =
                    money(l.amount, &|| format!("voucher {} line {} amount", l.voucher_id, l.line_no))?;
                if amount.is_sign_negative() {
                    credit -= amount;
                } else {
                    debit += amount;
                }
                if last.as_deref() != Some(l.voucher_id.as_str()) {
                    entries += 1;
                    last = Some(l.voucher_id);
                }
            }
        }
        Ok(())
    })?;
    (p.entries, p.total_debit, p.total_credit) = (entries, debit, credit);
    Ok(p)
}

fn period_of(start: NaiveDate, date: NaiveDate) -> u32 {
    let months = (date.year() - start.year()) * 12 + date.month() as i32 - start.month() as i32;
    u32::try_from(months + 1).unwrap_or(1).max(1)
}

impl Prepared<'_> {
    /// Number of transactions the file will hold.
    pub fn entries(&self) -> u64 {
        self.entries
    }

    /// Streams the SAF-T 1.30 file.
    pub fn write(self, out: impl Write) -> Result<(), ExportError> {
        let mut w = XmlWriter::new(out);
        w.declaration()?;
        w.open_root("AuditFile", NAMESPACE)?;
        self.write_header(&mut w)?;
        self.write_master_files(&mut w)?;
        self.write_entries(&mut w)?;
        w.close("AuditFile")?;
        w.finish()?;
        Ok(())
    }

    fn write_header<W: Write>(&self, w: &mut XmlWriter<W>) -> Result<(), ExportError> {
        let c = &self.company;
        let o = &self.options;
        w.open("Header")?;
        w.leaf("AuditFileVersion", AUDIT_FILE_VERSION, 9)?;
        w.leaf("AuditFileCountry", "NO", 2)?;
        w.leaf("AuditFileDateCreated", &o.created.format("%Y-%m-%d").to_string(), 10)?;
        w.leaf("SoftwareCompanyName", "Ledgerlink", 70)?;
        w.leaf("SoftwareID", "Ledgerlink hub", 256)?;
        w.leaf("SoftwareVersion", env!("CARGO_PKG_VERSION"), 18)?;
        w.open("Company")?;
        w.leaf("RegistrationNumber", c.organisation_number.as_deref().unwrap_or_default(), 35)?;
        w.leaf("Name", &c.name, 256)?;
        w.open("Contact")?;
        w.open("ContactPerson")?;
        w.leaf("FirstName", &o.contact_first_name, 35)?;
        w.leaf("LastName", &o.contact_last_name, 70)?;
        w.close("ContactPerson")?;
        w.leaf("Telephone", &o.contact_telephone, 18)?;
        w.close("Contact")?;
        w.close("Company")?;
        w.leaf("DefaultCurrencyCode", &c.currency, 3)?;
        w.open("SelectionCriteria")?;
        w.leaf("PeriodStart", "1", 9)?;
        w.leaf("PeriodStartYear", &self.start.year().to_string(), 4)?;
        w.leaf("PeriodEnd", &period_of(self.start, self.end).to_string(), 9)?;
        w.leaf("PeriodEndYear", &self.end.year().to_string(), 4)?;
        w.close("SelectionCriteria")?;
        w.leaf("HeaderComment", &format!("Fiscal year {} exported by Ledgerlink", self.year), 256)?;
        w.leaf("TaxAccountingBasis", "A", 18)?;
        w.close("Header")?;
        Ok(())
    }

    fn write_party<W: Write>(w: &mut XmlWriter<W>, p: &Party, id_element: &str) -> Result<(), ExportError> {
        if let Some(org) = &p.organisation_number {
            w.leaf("RegistrationNumber", org, 35)?;
        }
        w.leaf("Name", if p.name.trim().is_empty() { &p.id } else { &p.name }, 256)?;
        if p.street.is_some() || p.city.is_some() || p.postal_code.is_some() || p.country.is_some() {
            w.open("Address")?;
            w.opt_leaf("StreetName", p.street.as_deref(), 256)?;
            w.opt_leaf("City", p.city.as_deref(), 256)?;
            w.opt_leaf("PostalCode", p.postal_code.as_deref(), 70)?;
            w.opt_leaf("Country", p.country.as_deref().filter(|c| c.len() == 2), 2)?;
            w.close("Address")?;
        }
        w.leaf(id_element, &p.id, 35)?;
        if let Some(currency) = p.currency.as_deref().filter(|c| c.len() == 3) {
            w.open("PartyInfo")?;
            w.leaf("CurrencyCode", currency, 3)?;
            w.close("PartyInfo")?;
        }
        Ok(())
    }

    fn write_master_files<W: Write>(&self, w: &mut XmlWriter<W>) -> Result<(), ExportError> {
        w.open("MasterFiles")?;
        if !self.accounts.is_empty() {
            w.open("GeneralLedgerAccounts")?;
            for (a, g) in &self.accounts {
                w.open("Account")?;
                w.leaf("AccountID", &a.id, 70)?;
                w.leaf("AccountDescription", if a.name.trim().is_empty() { &a.id } else { &a.name }, 256)?;
                w.leaf("GroupingCategory", &g.category, 256)?;
                w.leaf("GroupingCode", &g.code, 35)?;
                w.leaf("AccountType", "GL", 9)?;
                // The canonical schema has no opening balances: a year's lines carry them
                // (as an opening voucher, where the ERP posts one), so the opening is 0.
                w.leaf("OpeningDebitBalance", "0.00", 20)?;
                let net = self.trial_balance.accounts.get(&a.id).map_or(Decimal::ZERO, |r| r.net);
                let net = money(net, &|| format!("the balance of account {}", a.id))?;
                if net.is_sign_negative() {
                    w.leaf("ClosingCreditBalance", &format!("{:.2}", -net), 20)?;
                } else {
                    w.leaf("ClosingDebitBalance", &format!("{net:.2}"), 20)?;
                }
                w.close("Account")?;
            }
            w.close("GeneralLedgerAccounts")?;
        }
        if !self.customers.is_empty() {
            w.open("Customers")?;
            for c in &self.customers {
                w.open("Customer")?;
                Self::write_party(w, c, "CustomerID")?;
                w.close("Customer")?;
            }
            w.close("Customers")?;
        }
        if !self.suppliers.is_empty() {
            w.open("Suppliers")?;
            for s in &self.suppliers {
                w.open("Supplier")?;
                Self::write_party(w, s, "SupplierID")?;
                w.close("Supplier")?;
            }
            w.close("Suppliers")?;
        }
        if !self.tax_codes.is_empty() {
            w.open("TaxTable")?;
            w.open("TaxTableEntry")?;
            w.leaf("TaxType", "MVA", 9)?;
            w.leaf("Description", "Merverdiavgift", 256)?;
            for t in &self.tax_codes {
                w.open("TaxCodeDetails")?;
                w.leaf("TaxCode", &t.id, 70)?;
                w.leaf(
                    "Description",
                    if t.description.trim().is_empty() { &t.id } else { &t.description },
                    256,
                )?;
                w.leaf("TaxPercentage", &t.rate.unwrap_or(Decimal::ZERO).normalize().to_string(), 30)?;
                w.leaf("Country", "NO", 2)?;
                let standard = self.options.mapping.standard_tax_code(&t.id, t.standard_tax_code.as_deref());
                w.leaf("StandardTaxCode", &standard, 2)?;
                w.leaf("BaseRate", "100", 3)?;
                w.close("TaxCodeDetails")?;
            }
            w.close("TaxTableEntry")?;
            w.close("TaxTable")?;
        }
        if !self.dimension_values.is_empty() {
            let type_names: HashMap<&str, &str> =
                self.dimension_types.iter().map(|t| (t.id.as_str(), t.name.as_str())).collect();
            w.open("AnalysisTypeTable")?;
            for v in &self.dimension_values {
                w.open("AnalysisTypeTableEntry")?;
                w.leaf("AnalysisType", &v.dimension_type, 9)?;
                let type_name =
                    type_names.get(v.dimension_type.as_str()).copied().unwrap_or(&v.dimension_type);
                w.leaf("AnalysisTypeDescription", type_name, 256)?;
                w.leaf("AnalysisID", &v.id, 35)?;
                w.leaf("AnalysisIDDescription", if v.name.trim().is_empty() { &v.id } else { &v.name }, 256)?;
                w.close("AnalysisTypeTableEntry")?;
            }
            w.close("AnalysisTypeTable")?;
        }
        w.close("MasterFiles")?;
        Ok(())
    }

    fn write_entries<W: Write>(&self, w: &mut XmlWriter<W>) -> Result<(), ExportError> {
        w.open("GeneralLedgerEntries")?;
        w.leaf("NumberOfEntries", &self.entries.to_string(), 20)?;
        w.leaf("TotalDebit", &format!("{:.2}", self.total_debit), 20)?;
        w.leaf("TotalCredit", &format!("{:.2}", self.total_credit), 20)?;
        if self.entries > 0 {
            w.open("Journal")?;
            w.leaf("JournalID", "GL", 18)?;
            w.leaf("Description", "Hovedbok", 256)?;
            w.leaf("Type", "GL", 9)?;
            let mut open: Option<String> = None;
            read_entity(
                self.blobs,
                self.tenant_id,
                &self.snapshot_id,
                self.part_format,
                &self.line_parts,
                |b| {
                    let RecordBatch::VoucherLines(rows) = b else { return Ok(()) };
                    for l in rows {
                        if open.as_deref() != Some(l.voucher_id.as_str()) {
                            if open.is_some() {
                                w.close("Transaction")?;
                            }
                            self.open_transaction(w, &l)?;
                            open = Some(l.voucher_id.clone());
                        }
                        self.write_line(w, &l)?;
                    }
                    Ok(())
                },
            )?;
            if open.is_some() {
                w.close("Transaction")?;
            }
            w.close("Journal")?;
        }
        w.close("GeneralLedgerEntries")?;
        Ok(())
    }

    fn open_transaction<W: Write>(
        &self,
        w: &mut XmlWriter<W>,
        first: &VoucherLine,
    ) -> Result<(), ExportError> {
        let v = self.vouchers.get(&first.voucher_id);
        let date = v.map_or(first.date, |v| v.date);
        let day = date.format("%Y-%m-%d").to_string();
        w.open("Transaction")?;
        w.leaf("TransactionID", &first.voucher_id, 70)?;
        let period = v.and_then(|v| v.period).map_or_else(|| period_of(self.start, date), u32::from);
        w.leaf("Period", &period.to_string(), 9)?;
        w.leaf("PeriodYear", &date.year().to_string(), 4)?;
        w.leaf("TransactionDate", &day, 10)?;
        w.opt_leaf("VoucherType", v.and_then(|v| v.voucher_type.as_deref()), 70)?;
        let description = v
            .and_then(|v| v.description.clone())
            .or_else(|| first.description.clone())
            .unwrap_or_else(|| format!("Bilag {}", first.voucher_id));
        w.leaf("Description", &description, 256)?;
        w.leaf("SystemEntryDate", &day, 10)?;
        w.leaf("GLPostingDate", &day, 10)?;
        Ok(())
    }

    fn write_line<W: Write>(&self, w: &mut XmlWriter<W>, l: &VoucherLine) -> Result<(), ExportError> {
        w.open("Line")?;
        w.leaf("RecordID", &l.line_no.to_string(), 18)?;
        w.leaf("AccountID", &l.account_id, 70)?;
        for d in &l.dimensions {
            w.open("Analysis")?;
            w.leaf("AnalysisType", &d.dimension_type, 9)?;
            w.leaf("AnalysisID", &d.value, 256)?;
            w.close("Analysis")?;
        }
        w.opt_leaf("CustomerID", l.customer_id.as_deref(), 35)?;
        w.opt_leaf("SupplierID", l.supplier_id.as_deref(), 35)?;
        let description = l.description.clone().unwrap_or_else(|| format!("Bilag {}", l.voucher_id));
        w.leaf("Description", &description, 256)?;
        let amount = money(l.amount, &|| format!("voucher {} line {} amount", l.voucher_id, l.line_no))?;
        let side = if amount.is_sign_negative() { "CreditAmount" } else { "DebitAmount" };
        w.open(side)?;
        w.leaf("Amount", &format!("{:.2}", amount.abs()), 20)?;
        if let (Some(currency), Some(foreign)) = (l.currency.as_deref(), l.amount_currency) {
            let foreign =
                money(foreign, &|| format!("voucher {} line {} currency amount", l.voucher_id, l.line_no))?;
            w.leaf("CurrencyCode", currency, 3)?;
            w.leaf("CurrencyAmount", &format!("{:.2}", foreign.abs()), 20)?;
        }
        w.close(side)?;
        if let Some(code) = &l.tax_code {
            w.open("TaxInformation")?;
            w.leaf("TaxType", "MVA", 9)?;
            w.leaf("TaxCode", code, 70)?;
            if let Some(rate) = self.tax_codes.iter().find(|t| &t.id == code).and_then(|t| t.rate) {
                w.leaf("TaxPercentage", &rate.normalize().to_string(), 30)?;
            }
            let tax = money(l.tax_amount.unwrap_or(Decimal::ZERO), &|| {
                format!("voucher {} line {} tax amount", l.voucher_id, l.line_no)
            })?;
            let tax_side = if tax.is_sign_negative() { "CreditTaxAmount" } else { "DebitTaxAmount" };
            w.open(tax_side)?;
            w.leaf("Amount", &format!("{:.2}", tax.abs()), 20)?;
            w.close(tax_side)?;
            w.close("TaxInformation")?;
        }
        w.close("Line")?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_count_months_from_the_start_of_the_fiscal_year() {
        let d = |y, m, d| NaiveDate::from_ymd_opt(y, m, d).unwrap();
        assert_eq!(period_of(d(2025, 1, 1), d(2025, 1, 31)), 1);
        assert_eq!(period_of(d(2025, 1, 1), d(2025, 12, 31)), 12);
        assert_eq!(period_of(d(2024, 7, 1), d(2025, 6, 30)), 12);
    }

    #[test]
    fn money_with_more_than_two_decimals_is_refused_not_rounded() {
        let what = || "x".to_owned();
        assert_eq!(money("12.500".parse().unwrap(), &what).unwrap().to_string(), "12.5");
        assert!(money("0.001".parse().unwrap(), &what).is_err());
    }
}
