//! Ledgerlink plugin: SAF-T Financial (Norway) XML files as a source.
//!
//! For ERPs Ledgerlink has no driver for: the ERP exports SAF-T Financial files
//! (versions 1.10, 1.20 or 1.30) into a folder, and this plugin reads them. One
//! file is one company (its header's `RegistrationNumber`, else the file name)
//! and the fiscal year(s) its `SelectionCriteria` cover. Files are parsed as a
//! stream (quick-xml): master data in one pass that stops before the ledger,
//! vouchers and lines in passes of their own, so memory stays flat for files of
//! hundreds of megabytes. See `docs/plugins/saf-t.md`.

pub mod parse;
pub mod xml;

use ledgerlink_plugin_api::canonical::{Company, FiscalYear, NaiveDate, RecordBatch};
use ledgerlink_plugin_api::sdk::{
    batches_of, json, Batches, Capability, ExtractRequest, Host, Manifest, Plugin,
};
use ledgerlink_plugin_api::{export_plugin, Entity, ErrorKind, PluginError};
use parse::{Header, LedgerItem, LedgerOutput, LedgerStream};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use xml::XmlError;

/// Settings of a SAF-T source.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Folder holding the SAF-T files (`*.xml`, not recursive).
    pub directory: PathBuf,
    /// Records per batch.
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
}

fn default_batch_size() -> usize {
    5_000
}

/// The SAF-T file source.
pub struct SafT {
    settings: Settings,
    host: Host,
}

/// Turns a parse error into a plugin error that says where and what to do.
pub fn data_error(e: XmlError) -> PluginError {
    PluginError::new(
        ErrorKind::DATA,
        format!("cannot read SAF-T file {e}"),
        "Export the file again from the accounting system, or fix the element named above; \
         the file must be a well-formed SAF-T Financial XML file (version 1.10, 1.20 or 1.30).",
    )
}

/// One file and what its header says.
#[derive(Debug, Clone)]
struct FileEntry {
    header: Header,
    company_id: String,
}

fn year_range(header: &Header, year: i32) -> (NaiveDate, NaiveDate) {
    let start = NaiveDate::from_ymd_opt(year, 1, 1).expect("valid year");
    let end = NaiveDate::from_ymd_opt(year, 12, 31).expect("valid year");
    // A file that selects by dates covers only those dates of each calendar year.
    match header.dates {
        Some((s, e)) => (s.max(start), e.min(end)),
        None => (start, end),
    }
}

impl SafT {
    fn files(&self) -> Result<Vec<FileEntry>, PluginError> {
        let dir = &self.settings.directory;
        let entries = std::fs::read_dir(dir).map_err(|e| {
            PluginError::new(
                ErrorKind::INVALID_SETTINGS,
                format!("cannot read the folder {}: {e}", dir.display()),
                "Set `directory` to an existing folder the Ledgerlink service user may read.",
            )
        })?;
        let mut paths: Vec<PathBuf> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.is_file() && p.extension().is_some_and(|x| x.eq_ignore_ascii_case("xml")))
            .collect();
        paths.sort();
        let mut files = Vec::with_capacity(paths.len());
        for path in paths {
            let header = parse::read_header(&path).map_err(data_error)?;
            let company_id = header.registration_number.clone().unwrap_or_else(|| {
                path.file_stem().map_or_else(|| "unknown".into(), |s| s.to_string_lossy().into_owned())
            });
            files.push(FileEntry { header, company_id });
        }
        Ok(files)
    }

    /// The file holding a company's fiscal year.
    fn file_for(&self, company: &str, year: i32) -> Result<FileEntry, PluginError> {
        let files = self.files()?;
        let mut matching = files
            .iter()
            .filter(|f| f.company_id == company && f.header.years.0 <= year && year <= f.header.years.1);
        let found = matching.next().cloned();
        if let Some(other) = matching.next() {
            let first = found.as_ref().map(|f| f.header.file.display().to_string()).unwrap_or_default();
            return Err(PluginError::new(
                ErrorKind::DATA,
                format!(
                    "two files cover company {company}, fiscal year {year}: {first} and {}",
                    other.header.file.display()
                ),
                "Keep one file per company and fiscal year in the folder (move the older export away).",
            ));
        }
        found.ok_or_else(|| {
            PluginError::new(
                ErrorKind::NOT_FOUND,
                format!("no SAF-T file in {} covers company {company}, fiscal year {year}", self.settings.directory.display()),
                "Put the company's SAF-T export for that year into the folder, or sync only the years listed by `ledgerlink plugins check`.",
            )
        })
    }
}

fn ledger_batches(
    file: &Path,
    output: LedgerOutput,
    range: (NaiveDate, NaiveDate),
    currency: &str,
    size: usize,
    request: &ExtractRequest,
) -> Result<Batches, PluginError> {
    let mut stream = LedgerStream::open(file, output, range, currency).map_err(data_error)?;
    let cancel = request.cancel.clone();
    let mut failed = false;
    Ok(Box::new(std::iter::from_fn(move || {
        if failed {
            return None;
        }
        let mut vouchers = Vec::new();
        let mut lines = Vec::new();
        let mut last_voucher: Option<String> = None;
        loop {
            if cancel.is_cancelled() {
                failed = true;
                return Some(Err(PluginError::new(ErrorKind::CANCELLED, "extraction cancelled", "")));
            }
            match stream.next_item() {
                Err(e) => {
                    failed = true;
                    return Some(Err(data_error(e)));
                }
                Ok(None) => break,
                Ok(Some(LedgerItem::Voucher(v))) => {
                    vouchers.push(v);
                    if vouchers.len() >= size {
                        break;
                    }
                }
                Ok(Some(LedgerItem::Line(l))) => {
                    // Keep a voucher's lines together in one batch when the batch is full.
                    let same_voucher = last_voucher.as_deref() == Some(l.voucher_id.as_str());
                    last_voucher = Some(l.voucher_id.clone());
                    lines.push(l);
                    if lines.len() >= size && !same_voucher {
                        break;
                    }
                }
            }
        }
        match output {
            LedgerOutput::Vouchers if !vouchers.is_empty() => Some(Ok(RecordBatch::Vouchers(vouchers))),
            LedgerOutput::Lines if !lines.is_empty() => Some(Ok(RecordBatch::VoucherLines(lines))),
            _ => None,
        }
    })))
}

impl Plugin for SafT {
    type Settings = Settings;

    fn manifest() -> Manifest {
        Manifest {
            id: "saf-t".into(),
            display_name: "SAF-T Financial files (Norway)".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            api_version: String::new(),
            erp_system: "SAF-T Financial 1.10/1.20/1.30".into(),
            entities: Entity::ALL.to_vec(),
            capabilities: vec![Capability::Extract, Capability::ChangeToken],
            settings_schema: json!({
                "$schema": "https://json-schema.org/draft/2020-12/schema",
                "title": "saf-t settings",
                "type": "object",
                "additionalProperties": false,
                "required": ["directory"],
                "properties": {
                    "directory": { "type": "string", "description": "Folder with the SAF-T Financial XML files (one file per company and fiscal year)" },
                    "batch_size": { "type": "integer", "minimum": 1, "default": 5000, "description": "Records per batch" }
                }
            }),
        }
    }

    fn open(settings: Settings, host: Host) -> Result<Self, PluginError> {
        if settings.batch_size == 0 {
            return Err(PluginError::new(
                ErrorKind::INVALID_SETTINGS,
                "batch_size must be at least 1",
                "Set `batch_size` to a few thousand, or remove it to use the default.",
            ));
        }
        if !settings.directory.is_dir() {
            return Err(PluginError::new(
                ErrorKind::INVALID_SETTINGS,
                format!("`directory` {} is not a folder", settings.directory.display()),
                "Set `directory` to the folder the ERP writes its SAF-T exports to.",
            ));
        }
        Ok(SafT { settings, host })
    }

    fn check(&self) -> Result<String, PluginError> {
        let files = self.files()?;
        let versions: std::collections::BTreeSet<&str> =
            files.iter().map(|f| f.header.version.as_str()).collect();
        Ok(format!(
            "{} SAF-T file(s) in {} (AuditFileVersion {})",
            files.len(),
            self.settings.directory.display(),
            versions.into_iter().collect::<Vec<_>>().join(", ")
        ))
    }

    fn companies(&self) -> Result<Vec<Company>, PluginError> {
        let mut companies: BTreeMap<String, Company> = BTreeMap::new();
        for f in self.files()? {
            let company = companies.entry(f.company_id.clone()).or_insert_with(|| Company {
                id: f.company_id.clone(),
                name: f.header.name.clone(),
                organisation_number: f.header.registration_number.clone(),
                currency: f.header.currency.clone(),
                fiscal_years: Vec::new(),
                source_key: format!("RegistrationNumber:{}", f.company_id),
            });
            for year in f.header.years.0..=f.header.years.1 {
                if company.fiscal_years.iter().any(|y| y.year == year) {
                    continue;
                }
                let (start, end) = year_range(&f.header, year);
                company.fiscal_years.push(FiscalYear { year, start, end });
            }
            company.fiscal_years.sort_by_key(|y| y.year);
        }
        Ok(companies.into_values().collect())
    }

    /// `saft:v1:<size>:<mtime ns>:<sha256 of the header, 16 hex>`: any rewrite of the
    /// file changes size or mtime, and a new export changes its header's creation date.
    fn change_token(&self, company: &str, fiscal_year: i32) -> Result<String, PluginError> {
        let f = self.file_for(company, fiscal_year)?;
        let meta = std::fs::metadata(&f.header.file).map_err(|e| {
            PluginError::new(ErrorKind::DATA, format!("cannot stat {}: {e}", f.header.file.display()), "")
        })?;
        let mtime = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos());
        Ok(format!("saft:v1:{}:{mtime}:{}", meta.len(), &f.header.header_sha256[..16]))
    }

    fn extract(&self, request: &ExtractRequest) -> Result<Batches, PluginError> {
        let f = self.file_for(&request.company, request.fiscal_year)?;
        let size = self.settings.batch_size;
        let file = f.header.file.clone();
        self.host.debug(&format!(
            "reading {} of {} from {}",
            request.entity,
            request.company,
            file.display()
        ));
        let master = || parse::read_master_data(&file).map_err(data_error);
        Ok(match request.entity {
            Entity::Accounts => batches_of(master()?.accounts, size, RecordBatch::Accounts),
            Entity::Customers => batches_of(master()?.customers, size, RecordBatch::Customers),
            Entity::Suppliers => batches_of(master()?.suppliers, size, RecordBatch::Suppliers),
            Entity::DimensionTypes => {
                batches_of(master()?.dimension_types, size, RecordBatch::DimensionTypes)
            }
            Entity::DimensionValues => {
                batches_of(master()?.dimension_values, size, RecordBatch::DimensionValues)
            }
            Entity::TaxCodes => batches_of(master()?.tax_codes, size, RecordBatch::TaxCodes),
            Entity::Vouchers | Entity::VoucherLines => {
                let output = if request.entity == Entity::Vouchers {
                    LedgerOutput::Vouchers
                } else {
                    LedgerOutput::Lines
                };
                let range = year_range(&f.header, request.fiscal_year);
                ledger_batches(&file, output, range, &f.header.currency, size, request)?
            }
        })
    }
}

export_plugin!(SafT);
