//! Reading SAF-T Financial files (1.10, 1.20, 1.30) into canonical records.
//!
//! Elements are matched by local name, so the namespace prefix does not matter,
//! and by the names all three versions share; where they differ (1.10's
//! `TaxAmount` against 1.30's `DebitTaxAmount`/`CreditTaxAmount`, 1.10's
//! `StandardAccountID` against 1.30's `GroupingCategory`/`GroupingCode`) both are read.

use crate::xml::{PathReader, Step, XmlError};
use ledgerlink_plugin_api::canonical::{
    is_iso4217, Account, Customer, Decimal, DimensionRef, DimensionType, DimensionValue, NaiveDate, Party,
    Supplier, TaxCode, Voucher, VoucherLine,
};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// What the header of a file says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The file.
    pub file: PathBuf,
    /// `AuditFileVersion`.
    pub version: String,
    /// `Company/RegistrationNumber` (the organisation number).
    pub registration_number: Option<String>,
    /// `Company/Name`.
    pub name: String,
    /// `DefaultCurrencyCode`.
    pub currency: String,
    /// First and last year the selection covers.
    pub years: (i32, i32),
    /// `SelectionStartDate`/`SelectionEndDate`, when the file selects by dates.
    pub dates: Option<(NaiveDate, NaiveDate)>,
    /// SHA-256 (hex) of the bytes from the start of the file to the end of the header.
    pub header_sha256: String,
}

fn parse_decimal(reader: &PathReader, text: &str) -> Result<Decimal, XmlError> {
    Decimal::from_str_exact(text.trim()).or_else(|_| Decimal::from_scientific(text.trim())).map_err(|_| {
        reader.error(format!("`{}` is not a decimal number (use `.` as decimal point)", text.trim()))
    })
}

fn parse_date(reader: &PathReader, text: &str) -> Result<NaiveDate, XmlError> {
    let t = text.trim();
    // xs:date may carry a time zone (`2025-01-31Z`, `2025-01-31+01:00`): the date part is what counts.
    let date_part = t.get(..10).unwrap_or(t);
    NaiveDate::parse_from_str(date_part, "%Y-%m-%d")
        .map_err(|_| reader.error(format!("`{t}` is not a date (YYYY-MM-DD)")))
}

fn parse_year(reader: &PathReader, text: &str) -> Result<i32, XmlError> {
    text.trim().parse().map_err(|_| reader.error(format!("`{}` is not a year", text.trim())))
}

fn non_empty(text: &str) -> Option<String> {
    let t = text.trim();
    (!t.is_empty()).then(|| t.to_owned())
}

/// Reads the header (and only the header) of a file.
pub fn read_header(file: &Path) -> Result<Header, XmlError> {
    let mut r = PathReader::open(file)?;
    let mut version = String::new();
    let mut registration_number = None;
    let mut name = String::new();
    let mut currency = String::new();
    let (mut start_year, mut end_year) = (None, None);
    let (mut start_date, mut end_date) = (None, None);
    let mut saw_root = false;
    loop {
        match r.step()? {
            Step::Eof => return Err(r.error("the file has no <Header>: it is not a SAF-T Financial file")),
            Step::Open => {
                if r.path.len() == 1 {
                    if r.current() != "AuditFile" {
                        return Err(r.error(format!(
                            "the root element is <{}>, not <AuditFile>: this is not a SAF-T Financial file",
                            r.current()
                        )));
                    }
                    saw_root = true;
                } else if r.path.len() == 2 && r.current() != "Header" {
                    return Err(r.error("<Header> must be the first element of <AuditFile>"));
                }
            }
            Step::Close => {
                let text = r.text.clone();
                if r.ends_with(&["Header", "AuditFileVersion"]) {
                    version = text.trim().to_owned();
                } else if r.ends_with(&["Header", "Company", "RegistrationNumber"]) {
                    registration_number = non_empty(&text);
                } else if r.ends_with(&["Header", "Company", "Name"]) {
                    name = text.trim().to_owned();
                } else if r.ends_with(&["Header", "DefaultCurrencyCode"]) {
                    currency = text.trim().to_owned();
                } else if r.ends_with(&["SelectionCriteria", "PeriodStartYear"]) {
                    start_year = Some(parse_year(&r, &text)?);
                } else if r.ends_with(&["SelectionCriteria", "PeriodEndYear"]) {
                    end_year = Some(parse_year(&r, &text)?);
                } else if r.ends_with(&["SelectionCriteria", "SelectionStartDate"]) {
                    start_date = Some(parse_date(&r, &text)?);
                } else if r.ends_with(&["SelectionCriteria", "SelectionEndDate"]) {
                    end_date = Some(parse_date(&r, &text)?);
                } else if r.path.len() == 2 && r.current() == "Header" {
                    break;
                }
            }
        }
    }
    debug_assert!(saw_root);
    let header_end = r.position();
    if name.is_empty() {
        return Err(r.error("the header has no <Company><Name>"));
    }
    if currency.is_empty() {
        return Err(r.error("the header has no <DefaultCurrencyCode>"));
    }
    let dates = start_date.zip(end_date);
    let years = match (start_year, end_year, dates) {
        (Some(s), Some(e), _) => (s, e),
        (_, _, Some((s, e))) => {
            use ledgerlink_plugin_api::canonical::Datelike;
            (s.year(), e.year())
        }
        _ => return Err(r.error("the header's <SelectionCriteria> names neither period years nor dates")),
    };
    if years.0 > years.1 {
        return Err(r.error(format!("the selection starts in {} after it ends in {}", years.0, years.1)));
    }
    Ok(Header {
        file: file.to_owned(),
        version,
        registration_number,
        name,
        currency,
        years,
        dates,
        header_sha256: hash_prefix(file, header_end),
    })
}

fn hash_prefix(file: &Path, len: u64) -> String {
    use std::io::Read;
    let mut hasher = Sha256::new();
    if let Ok(f) = std::fs::File::open(file) {
        let mut reader = std::io::BufReader::new(f).take(len);
        let mut chunk = [0u8; 16 * 1024];
        while let Ok(n) = reader.read(&mut chunk) {
            if n == 0 {
                break;
            }
            hasher.update(&chunk[..n]);
        }
    }
    hasher.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// All master data of a file (read in one pass that stops at the end of `MasterFiles`).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct MasterData {
    /// `GeneralLedgerAccounts/Account`.
    pub accounts: Vec<Account>,
    /// `Customers/Customer`.
    pub customers: Vec<Customer>,
    /// `Suppliers/Supplier`.
    pub suppliers: Vec<Supplier>,
    /// `TaxTable/TaxTableEntry/TaxCodeDetails`.
    pub tax_codes: Vec<TaxCode>,
    /// Distinct `AnalysisTypeTableEntry/AnalysisType`.
    pub dimension_types: Vec<DimensionType>,
    /// `AnalysisTypeTableEntry` (type, id).
    pub dimension_values: Vec<DimensionValue>,
}

fn empty_party(source_key: String) -> Party {
    Party {
        id: String::new(),
        name: String::new(),
        organisation_number: None,
        street: None,
        postal_code: None,
        city: None,
        country: None,
        email: None,
        phone: None,
        currency: None,
        source_key,
    }
}

/// Reads `MasterFiles`.
pub fn read_master_data(file: &Path) -> Result<MasterData, XmlError> {
    let mut r = PathReader::open(file)?;
    let name = file.file_name().map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    let mut data = MasterData::default();
    let mut account: Option<Account> = None;
    let mut party: Option<Party> = None;
    let mut street_number: Option<String> = None;
    let mut address_done = false;
    let mut tax: Option<TaxCode> = None;
    let mut tax_entry_description = String::new();
    let mut seen_tax: std::collections::HashSet<String> = Default::default();
    let mut analysis: (String, String, String, String) = Default::default();
    let mut types: BTreeMap<String, String> = BTreeMap::new();
    let mut seen_values: std::collections::HashSet<(String, String)> = Default::default();
    loop {
        let step = r.step()?;
        if step == Step::Eof {
            break;
        }
        // The master data sits under AuditFile/MasterFiles/<Section>/<Record>.
        if r.path.len() >= 2 && r.path[1] == "GeneralLedgerEntries" {
            break;
        }
        if r.path.len() < 4 || r.path[1] != "MasterFiles" {
            continue;
        }
        let section = r.path[2].clone();
        let depth = r.path.len();
        match step {
            Step::Open => match (section.as_str(), depth) {
                ("GeneralLedgerAccounts", 4) => {
                    account = Some(Account {
                        id: String::new(),
                        name: String::new(),
                        grouping_category: None,
                        grouping_code: None,
                        standard_account: None,
                        default_tax_code: None,
                        source_key: String::new(),
                    })
                }
                ("Customers", 4) | ("Suppliers", 4) => {
                    party = Some(empty_party(String::new()));
                    street_number = None;
                    address_done = false;
                }
                ("TaxTable", 5) if r.current() == "TaxCodeDetails" => {
                    tax = Some(TaxCode {
                        id: String::new(),
                        description: String::new(),
                        rate: None,
                        standard_tax_code: None,
                        source_key: String::new(),
                    })
                }
                ("TaxTable", 4) => tax_entry_description.clear(),
                ("AnalysisTypeTable", 4) => analysis = Default::default(),
                _ => {}
            },
            Step::Close => {
                let text = std::mem::take(&mut r.text);
                let field = r.current().to_owned();
                match (section.as_str(), depth) {
                    ("GeneralLedgerAccounts", 5) => {
                        let a = account.as_mut().expect("open account");
                        match field.as_str() {
                            "AccountID" => a.id = text.trim().to_owned(),
                            "AccountDescription" => a.name = text.trim().to_owned(),
                            "StandardAccountID" => a.standard_account = non_empty(&text),
                            "GroupingCategory" => a.grouping_category = non_empty(&text),
                            "GroupingCode" => a.grouping_code = non_empty(&text),
                            _ => {}
                        }
                    }
                    ("GeneralLedgerAccounts", 4) => {
                        let mut a = account.take().expect("open account");
                        if a.id.is_empty() {
                            return Err(r.error("an <Account> has no <AccountID>"));
                        }
                        a.source_key = format!("{name}:Account:{}", a.id);
                        data.accounts.push(a);
                    }
                    ("Customers", 5) | ("Suppliers", 5) => {
                        let p = party.as_mut().expect("open party");
                        match field.as_str() {
                            "CustomerID" | "SupplierID" => p.id = text.trim().to_owned(),
                            "Name" => p.name = text.trim().to_owned(),
                            "RegistrationNumber" => p.organisation_number = non_empty(&text),
                            "Address" => address_done = true,
                            _ => {}
                        }
                    }
                    ("Customers", 6) | ("Suppliers", 6) => {
                        let p = party.as_mut().expect("open party");
                        let parent = r.path[4].as_str();
                        match (parent, field.as_str()) {
                            ("Address", "StreetName") if !address_done => p.street = non_empty(&text),
                            ("Address", "Number") if !address_done => street_number = non_empty(&text),
                            ("Address", "PostalCode") if !address_done => p.postal_code = non_empty(&text),
                            ("Address", "City") if !address_done => p.city = non_empty(&text),
                            ("Address", "Country") if !address_done => p.country = non_empty(&text),
                            ("Contact", "Email") if p.email.is_none() => p.email = non_empty(&text),
                            ("Contact", "Telephone") if p.phone.is_none() => p.phone = non_empty(&text),
                            // Files in the wild carry codes like `NOR`: only ISO 4217 codes are kept.
                            ("PartyInfo", "CurrencyCode") => {
                                p.currency = non_empty(&text).filter(|c| is_iso4217(c))
                            }
                            _ => {}
                        }
                    }
                    ("Customers", 4) | ("Suppliers", 4) => {
                        let mut p = party.take().expect("open party");
                        if p.id.is_empty() {
                            return Err(r.error(format!("a <{field}> has no <{field}ID>")));
                        }
                        if let (Some(street), Some(number)) = (&p.street, street_number.take()) {
                            p.street = Some(format!("{street} {number}"));
                        }
                        p.source_key = format!("{name}:{field}:{}", p.id);
                        if section == "Customers" {
                            data.customers.push(p);
                        } else {
                            data.suppliers.push(p);
                        }
                    }
                    ("TaxTable", 5) if field == "Description" => {
                        tax_entry_description = text.trim().to_owned()
                    }
                    ("TaxTable", 6) => {
                        let t = tax.as_mut().expect("open tax code");
                        match field.as_str() {
                            "TaxCode" => t.id = text.trim().to_owned(),
                            "Description" => t.description = text.trim().to_owned(),
                            "TaxPercentage" => t.rate = Some(parse_decimal(&r, &text)?),
                            "StandardTaxCode" => t.standard_tax_code = non_empty(&text),
                            _ => {}
                        }
                    }
                    ("TaxTable", 5) if field == "TaxCodeDetails" => {
                        let mut t = tax.take().expect("open tax code");
                        if t.id.is_empty() {
                            return Err(r.error("a <TaxCodeDetails> has no <TaxCode>"));
                        }
                        if t.description.is_empty() {
                            t.description = tax_entry_description.clone();
                        }
                        t.source_key = format!("{name}:TaxCode:{}", t.id);
                        if seen_tax.insert(t.id.clone()) {
                            data.tax_codes.push(t);
                        }
                    }
                    ("AnalysisTypeTable", 5) => match field.as_str() {
                        "AnalysisType" => analysis.0 = text.trim().to_owned(),
                        "AnalysisTypeDescription" => analysis.1 = text.trim().to_owned(),
                        "AnalysisID" => analysis.2 = text.trim().to_owned(),
                        "AnalysisIDDescription" => analysis.3 = text.trim().to_owned(),
                        _ => {}
                    },
                    ("AnalysisTypeTable", 4) => {
                        let (kind, kind_name, id, id_name) = std::mem::take(&mut analysis);
                        if kind.is_empty() || id.is_empty() {
                            return Err(
                                r.error("an <AnalysisTypeTableEntry> lacks <AnalysisType> or <AnalysisID>")
                            );
                        }
                        types.entry(kind.clone()).or_insert_with(|| kind_name.clone());
                        if seen_values.insert((kind.clone(), id.clone())) {
                            data.dimension_values.push(DimensionValue {
                                source_key: format!("{name}:Analysis:{kind}:{id}"),
                                dimension_type: kind,
                                id,
                                name: if id_name.is_empty() { kind_name } else { id_name },
                            });
                        }
                    }
                    _ => {}
                }
            }
            Step::Eof => unreachable!(),
        }
    }
    data.dimension_types = types
        .into_iter()
        .map(|(id, type_name)| DimensionType {
            source_key: format!("{name}:AnalysisType:{id}"),
            name: if type_name.is_empty() { id.clone() } else { type_name },
            id,
        })
        .collect();
    Ok(data)
}

/// What a ledger pass produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LedgerOutput {
    /// Voucher headers (`Transaction`).
    Vouchers,
    /// Voucher lines (`Line`).
    Lines,
}

/// An item of a ledger pass.
#[derive(Debug, Clone, PartialEq)]
pub enum LedgerItem {
    /// A voucher.
    Voucher(Voucher),
    /// A voucher line.
    Line(VoucherLine),
}

#[derive(Debug, Default)]
struct OpenTransaction {
    id: String,
    journal: String,
    voucher_type: Option<String>,
    period: Option<u8>,
    date: Option<NaiveDate>,
    description: Option<String>,
    lines: u32,
}

#[derive(Debug, Default)]
struct OpenLine {
    record_id: String,
    account_id: String,
    description: Option<String>,
    amount: Option<Decimal>,
    currency: Option<String>,
    amount_currency: Option<Decimal>,
    tax_code: Option<String>,
    tax_amount: Option<Decimal>,
    tax_sign_from_line: bool,
    dimensions: Vec<DimensionRef>,
    analysis: (String, String),
    customer_id: Option<String>,
    supplier_id: Option<String>,
}

/// Streams `GeneralLedgerEntries` of a file: memory stays flat whatever the file's size.
pub struct LedgerStream {
    reader: PathReader,
    file_name: String,
    output: LedgerOutput,
    range: (NaiveDate, NaiveDate),
    company_currency: String,
    journal: String,
    transaction: Option<OpenTransaction>,
    line: Option<OpenLine>,
    done: bool,
}

impl LedgerStream {
    /// Opens a pass over the transactions dated within `range` (inclusive).
    pub fn open(
        file: &Path,
        output: LedgerOutput,
        range: (NaiveDate, NaiveDate),
        company_currency: &str,
    ) -> Result<Self, XmlError> {
        Ok(Self {
            reader: PathReader::open(file)?,
            file_name: file.file_name().map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
            output,
            range,
            company_currency: company_currency.to_owned(),
            journal: String::new(),
            transaction: None,
            line: None,
            done: false,
        })
    }

    fn in_range(&self, date: NaiveDate) -> bool {
        self.range.0 <= date && date <= self.range.1
    }

    /// The next voucher or line, `None` at the end of the ledger.
    pub fn next_item(&mut self) -> Result<Option<LedgerItem>, XmlError> {
        if self.done {
            return Ok(None);
        }
        loop {
            let step = self.reader.step()?;
            if step == Step::Eof {
                self.done = true;
                return Ok(None);
            }
            let r = &self.reader;
            if r.path.len() < 2 || r.path[1] != "GeneralLedgerEntries" {
                if r.path.len() == 2 && step == Step::Open && r.path[1] != "GeneralLedgerEntries" {
                    // Header, MasterFiles, SourceDocuments: not needed in this pass.
                    self.reader.skip_current()?;
                }
                continue;
            }
            let depth = r.path.len();
            let field = r.current().to_owned();
            match step {
                Step::Open => match depth {
                    3 if field == "Journal" => self.journal.clear(),
                    4 if field == "Transaction" => {
                        self.transaction =
                            Some(OpenTransaction { journal: self.journal.clone(), ..Default::default() })
                    }
                    5 if field == "Line" => {
                        let t = self.transaction.as_ref().expect("open transaction");
                        if t.date.is_none() {
                            return Err(r.error("a <Line> comes before its transaction's <TransactionDate>"));
                        }
                        self.line = Some(OpenLine::default());
                    }
                    _ => {}
                },
                Step::Close => {
                    let text = std::mem::take(&mut self.reader.text);
                    if let Some(item) = self.close(depth, &field, &text)? {
                        return Ok(Some(item));
                    }
                }
                Step::Eof => unreachable!(),
            }
        }
    }

    fn close(&mut self, depth: usize, field: &str, text: &str) -> Result<Option<LedgerItem>, XmlError> {
        let r = &self.reader;
        match depth {
            4 if field == "JournalID" => self.journal = text.trim().to_owned(),
            5 if field != "Line" => {
                let t = self.transaction.as_mut().expect("open transaction");
                match field {
                    "TransactionID" => t.id = text.trim().to_owned(),
                    "Period" => t.period = text.trim().parse().ok().filter(|p| (1..=255).contains(p)),
                    "TransactionDate" => t.date = Some(parse_date(r, text)?),
                    "VoucherType" => t.voucher_type = non_empty(text),
                    "Description" => t.description = non_empty(text),
                    _ => {}
                }
            }
            4 if field == "Transaction" => {
                let t = self.transaction.take().expect("open transaction");
                if t.id.is_empty() {
                    return Err(r.error("a <Transaction> has no <TransactionID>"));
                }
                let Some(date) = t.date else {
                    return Err(r.error(format!("transaction `{}` has no <TransactionDate>", t.id)));
                };
                if self.output == LedgerOutput::Vouchers && self.in_range(date) {
                    return Ok(Some(LedgerItem::Voucher(Voucher {
                        source_key: format!("{}:Transaction:{}", self.file_name, t.id),
                        id: t.id,
                        date,
                        period: t.period,
                        voucher_type: t.voucher_type.or_else(|| non_empty(&t.journal)),
                        description: t.description,
                    })));
                }
            }
            6 => {
                let l = self.line.as_mut().expect("open line");
                match field {
                    "RecordID" => l.record_id = text.trim().to_owned(),
                    "AccountID" => l.account_id = text.trim().to_owned(),
                    "CustomerID" => l.customer_id = non_empty(text),
                    "SupplierID" => l.supplier_id = non_empty(text),
                    "Description" => l.description = non_empty(text),
                    "Analysis" => {
                        let (kind, id) = std::mem::take(&mut l.analysis);
                        if !kind.is_empty() && !id.is_empty() {
                            l.dimensions.push(DimensionRef { dimension_type: kind, value: id });
                        }
                    }
                    _ => {}
                }
            }
            7 => {
                let parent = r.path[5].as_str();
                let value = || parse_decimal(r, text);
                let l = self.line.as_mut().expect("open line");
                match (parent, field) {
                    ("Analysis", "AnalysisType") => l.analysis.0 = text.trim().to_owned(),
                    ("Analysis", "AnalysisID") => l.analysis.1 = text.trim().to_owned(),
                    ("TaxInformation", "TaxCode") if l.tax_code.is_none() => l.tax_code = non_empty(text),
                    ("DebitAmount", "Amount") => l.amount = Some(value()?),
                    ("CreditAmount", "Amount") => l.amount = Some(-value()?),
                    ("DebitAmount", "CurrencyCode") | ("CreditAmount", "CurrencyCode") => {
                        l.currency = non_empty(text)
                    }
                    ("DebitAmount", "CurrencyAmount") => l.amount_currency = Some(value()?),
                    ("CreditAmount", "CurrencyAmount") => l.amount_currency = Some(-value()?),
                    _ => {}
                }
            }
            8 => {
                let (grand, parent) = (r.path[5].as_str(), r.path[6].as_str());
                let value = || parse_decimal(r, text);
                let l = self.line.as_mut().expect("open line");
                match (grand, parent, field) {
                    ("TaxInformation", "DebitTaxAmount", "Amount") if l.tax_amount.is_none() => {
                        l.tax_amount = Some(value()?)
                    }
                    ("TaxInformation", "CreditTaxAmount", "Amount") if l.tax_amount.is_none() => {
                        l.tax_amount = Some(-value()?)
                    }
                    ("TaxInformation", "TaxAmount", "Amount") if l.tax_amount.is_none() => {
                        // 1.10: an unsigned tax amount on the side of its line.
                        l.tax_amount = Some(value()?);
                        l.tax_sign_from_line = true;
                    }
                    _ => {}
                }
            }
            5 if field == "Line" => {
                let mut l = self.line.take().expect("open line");
                let t = self.transaction.as_mut().expect("open transaction");
                t.lines += 1;
                let date = t.date.expect("checked at <Line>");
                if l.account_id.is_empty() {
                    return Err(r.error(format!("a line of transaction `{}` has no <AccountID>", t.id)));
                }
                let Some(amount) = l.amount else {
                    return Err(r.error(format!(
                        "a line of transaction `{}` has neither <DebitAmount> nor <CreditAmount>",
                        t.id
                    )));
                };
                if self.output != LedgerOutput::Lines || !(self.range.0 <= date && date <= self.range.1) {
                    return Ok(None);
                }
                if l.tax_sign_from_line && amount.is_sign_negative() {
                    l.tax_amount = l.tax_amount.map(|a| -a);
                }
                if l.currency.as_deref() == Some(self.company_currency.as_str()) {
                    l.currency = None;
                    l.amount_currency = None;
                }
                if l.currency.is_none() {
                    l.amount_currency = None;
                }
                let record = if l.record_id.is_empty() { t.lines.to_string() } else { l.record_id };
                return Ok(Some(LedgerItem::Line(VoucherLine {
                    voucher_id: t.id.clone(),
                    line_no: t.lines,
                    account_id: l.account_id,
                    date,
                    description: l.description.or_else(|| t.description.clone()),
                    amount,
                    currency: l.currency,
                    amount_currency: l.amount_currency,
                    tax_code: l.tax_code,
                    tax_amount: l.tax_amount,
                    dimensions: l.dimensions,
                    customer_id: l.customer_id,
                    supplier_id: l.supplier_id,
                    source_key: format!("{}:Transaction:{}:{}", self.file_name, t.id, record),
                })));
            }
            _ => {}
        }
        Ok(None)
    }
}
