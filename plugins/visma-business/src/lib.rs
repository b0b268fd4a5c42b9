//! Ledgerlink plugin for Visma Business, read over ODBC.
//!
//! Visma Business keeps one database per company (`F0001`, `F0002`, …) and a
//! system database (`vbsys`) whose `Frm` table lists the companies. Amounts are
//! signed (credit negative), dates are integers `yyyymmdd`, periods `yyyypp`,
//! and rows carry change stamps `ChDt` (yyyymmdd, 0 = never stamped) + `ChTm`.
//! See `docs/plugins/visma-business.md` for settings and the read-only login.

mod headers;
mod queries;

use ledgerlink_odbc_common::{
    checked_identifier, stream_lanes, ChangeToken, ConnectionPool, ConnectionSettings, Database, LaneRead,
    TableChecks,
};
use ledgerlink_plugin_api::canonical::{Company, DimensionType, FiscalYear, NaiveDate, RecordBatch};
use ledgerlink_plugin_api::sdk::{
    decoded, encoded, json, Batches, EncodedBatches, ExtractRequest, Host, JsonValue, Manifest, Plugin,
};
use ledgerlink_plugin_api::{export_plugin, Entity, ErrorKind, PluginError};
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The ERP's name in messages and in the User-Agent.
const ERP: &str = "Visma Business";

/// Tables every company database must have.
const COMPANY_TABLES: [&str; 5] = ["Ac", "Actor", "AcTr", "Cur", "Ctry"];

/// Settings of a Visma Business source.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// How to reach the SQL Server (or test database server).
    pub connection: ConnectionSettings,
    /// The system database listing the companies in `Frm`.
    #[serde(default = "default_system_database")]
    pub system_database: String,
    /// The name of a company's database; `{company}` is the company number padded to 4 digits.
    #[serde(default = "default_company_database")]
    pub company_database: String,
}

fn default_system_database() -> String {
    "vbsys".into()
}

fn default_company_database() -> String {
    "F{company}".into()
}

/// A Visma Business source.
pub struct VismaBusiness {
    settings: Settings,
    host: Host,
    /// Change tokens computed with the fiscal-year list, each handed out once.
    tokens: Mutex<TokenCache>,
    /// Size and voucher-number range of each company's years, for the lanes.
    extents: Mutex<HashMap<(String, i32), queries::YearExtent>>,
    /// Voucher headers folded from the last voucher-line pass.
    headers: headers::SharedCollector,
    /// Company databases whose tables were found readable.
    table_checks: TableChecks,
    /// Connections kept between extractions.
    connections: ConnectionPool,
}

/// How long a token computed ahead stays usable. A token taken before the data
/// is extracted is always safe (a change in between only costs one more
/// extraction); the age limit keeps a long-lived instance from skipping a change
/// for longer than this.
const TOKEN_CACHE_AGE: Duration = Duration::from_secs(600);

/// Change tokens per company and year, from one pass over the transactions.
#[derive(Default)]
struct TokenCache {
    tokens: HashMap<(String, i32), (Instant, String)>,
}

impl TokenCache {
    /// The cached token of a company's year if fresh; it is removed (used once).
    fn take(&mut self, company: &str, year: i32) -> Option<String> {
        let (at, token) = self.tokens.remove(&(company.to_owned(), year))?;
        (at.elapsed() < TOKEN_CACHE_AGE).then_some(token)
    }

    fn store(&mut self, company: &str, tokens: &BTreeMap<i32, String>) {
        let now = Instant::now();
        for (year, token) in tokens {
            self.tokens.insert((company.to_owned(), *year), (now, token.clone()));
        }
    }
}

impl VismaBusiness {
    fn company_database(&self, company: &str) -> Result<String, PluginError> {
        let number: u32 = company.parse().map_err(|_| {
            PluginError::new(
                ErrorKind::NOT_FOUND,
                format!("`{company}` is not a Visma Business company number"),
                "Use a company number listed by `ledgerlink plugins check` (e.g. 1).",
            )
        })?;
        let name = self.settings.company_database.replace("{company}", &format!("{number:04}"));
        checked_identifier(&name).map(str::to_owned)
    }

    /// Connects to a company's database over `connection` (the settings', or
    /// [`ConnectionSettings::for_small_results`] for aggregates) and checks it is one.
    fn open_company(&self, company: &str, connection: &ConnectionSettings) -> Result<Database, PluginError> {
        let db = self.connections.connect(connection, Some(&self.company_database(company)?))?;
        self.table_checks.require(&db, ERP, &COMPANY_TABLES)?;
        Ok(db)
    }

    fn system(&self) -> Result<Database, PluginError> {
        let db = self.connections.connect(&self.settings.connection, Some(&self.settings.system_database))?;
        self.table_checks.require(&db, ERP, &["Frm"])?;
        Ok(db)
    }

    /// The change token of every fiscal year with transactions, from one pass, and
    /// the token of a year without any; remembers each year's extent for the lanes.
    fn year_tokens(
        &self,
        company: &str,
        db: &Database,
    ) -> Result<(BTreeMap<i32, String>, String), PluginError> {
        let masters = db.query(queries::MASTER_AGGREGATES, |row| {
            (0..queries::MASTER_AGGREGATE_LABELS.len())
                .map(|i| row.opt_string(i))
                .collect::<Result<Vec<_>, _>>()
        })?;
        let masters = masters.into_iter().next().unwrap_or_default();
        let token = |values: &[Option<&str>]| {
            let labels = queries::YEAR_AGGREGATE_LABELS.iter().chain(&queries::MASTER_AGGREGATE_LABELS);
            let values = values.iter().copied().chain(masters.iter().map(Option::as_deref));
            labels.zip(values).fold(ChangeToken::new(2), |t, (label, value)| t.push(label, value)).finish()
        };
        let years = db.query(queries::YEAR_AGGREGATES, |row| {
            let year = row.int(0, "AcTr.AcYrPr / 100")? as i32;
            let values = (1..=queries::YEAR_AGGREGATE_LABELS.len())
                .map(|i| row.trimmed(i))
                .collect::<Result<Vec<_>, _>>()?;
            let first = queries::YEAR_FIRST_VOUCHER_COLUMN;
            let extent =
                match (row.opt_int(first, "MIN(AcTr.VoNo)")?, row.opt_int(first + 1, "MAX(AcTr.VoNo)")?) {
                    (Some(low), Some(high)) => Some(queries::YearExtent {
                        lines: row.int(1, "COUNT(*)")?.try_into().unwrap_or(0),
                        vouchers: (low, high),
                    }),
                    _ => None,
                };
            Ok((year, token(&values), extent))
        })?;
        let mut extents = self.extents.lock().unwrap_or_else(|e| e.into_inner());
        for (year, _, extent) in &years {
            match extent {
                Some(extent) => extents.insert((company.to_owned(), *year), *extent),
                None => extents.remove(&(company.to_owned(), *year)),
            };
        }
        let empty = token(&[Some("0")]);
        Ok((years.into_iter().map(|(year, token, _)| (year, token)).collect(), empty))
    }

    /// The voucher-line queries of a year, one per lane: as many lanes as the
    /// settings allow for the year's size (known from the fiscal-year pass), else one.
    fn voucher_line_lanes(&self, company: &str, year: i32) -> Vec<String> {
        let extent =
            self.extents.lock().unwrap_or_else(|e| e.into_inner()).get(&(company.to_owned(), year)).copied();
        match extent {
            Some(extent) => {
                let lanes = self.settings.connection.lanes_for(extent.lines);
                queries::voucher_line_lanes(year, extent.vouchers, lanes)
            }
            None => vec![queries::voucher_lines(year)],
        }
    }

    fn fiscal_years(&self, company: &str, db: &Database) -> Result<Vec<FiscalYear>, PluginError> {
        let (tokens, _) = self.year_tokens(company, db)?;
        self.tokens.lock().unwrap_or_else(|e| e.into_inner()).store(company, &tokens);
        tokens
            .keys()
            .map(|&year| {
                let day = |m, d| NaiveDate::from_ymd_opt(year, m, d);
                match (day(1, 1), day(12, 31)) {
                    (Some(start), Some(end)) => Ok(FiscalYear { year, start, end }),
                    _ => Err(PluginError::new(ErrorKind::DATA, format!("year {year} is out of range"), "")),
                }
            })
            .collect()
    }
}

fn settings_schema() -> JsonValue {
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "Visma Business source",
        "type": "object",
        "additionalProperties": false,
        "required": ["connection"],
        "properties": {
            "connection": ledgerlink_odbc_common::ConnectionSettings::json_schema(),
            "system_database": {"type": "string", "default": "vbsys", "description": "Database holding the company list (table Frm)"},
            "company_database": {"type": "string", "default": "F{company}", "description": "Name of a company's database; {company} is the 4-digit company number"}
        }
    })
}

impl Plugin for VismaBusiness {
    type Settings = Settings;

    fn manifest() -> Manifest {
        ledgerlink_odbc_common::manifest(
            "visma-business",
            env!("CARGO_PKG_VERSION"),
            ERP,
            vec![
                Entity::Accounts,
                Entity::Customers,
                Entity::Suppliers,
                Entity::DimensionTypes,
                Entity::DimensionValues,
                Entity::Vouchers,
                Entity::VoucherLines,
            ],
            settings_schema(),
        )
    }

    fn open(settings: Settings, host: Host) -> Result<Self, PluginError> {
        checked_identifier(&settings.system_database)?;
        host.debug(&format!(
            "Visma Business source on {}",
            settings.connection.redacted_connection_string(Some(&settings.system_database))
        ));
        Ok(Self {
            settings,
            host,
            tokens: Mutex::default(),
            extents: Mutex::default(),
            table_checks: TableChecks::default(),
            connections: ConnectionPool::default(),
            headers: Default::default(),
        })
    }

    fn check(&self) -> Result<String, PluginError> {
        let system = self.system()?;
        system.system_summary(ERP, &self.settings.system_database, queries::COUNT_COMPANIES)
    }

    fn companies(&self) -> Result<Vec<Company>, PluginError> {
        let listed = self.system()?.query(queries::COMPANIES, |row| {
            Ok((
                row.int(0, "Frm.FrmNo")?,
                row.required(1, "Frm.Nm")?.to_owned(),
                row.opt_string(2)?,
                row.opt_string(3)?.unwrap_or_else(|| "NOK".into()),
            ))
        })?;
        let mut companies = Vec::with_capacity(listed.len());
        for (number, name, organisation_number, currency) in listed {
            let id = number.to_string();
            let db = self.open_company(&id, &self.settings.connection.for_small_results())?;
            companies.push(Company {
                fiscal_years: self.fiscal_years(&id, &db)?,
                id,
                name,
                organisation_number,
                currency,
                source_key: format!("vbsys.Frm/{number}"),
            });
        }
        Ok(companies)
    }

    fn change_token(&self, company: &str, fiscal_year: i32) -> Result<String, PluginError> {
        if let Some(token) = self.tokens.lock().unwrap_or_else(|e| e.into_inner()).take(company, fiscal_year)
        {
            return Ok(token);
        }
        let (mut tokens, empty_year) = self.year_tokens(
            company,
            &self.open_company(company, &self.settings.connection.for_small_results())?,
        )?;
        let token = tokens.remove(&fiscal_year).unwrap_or(empty_year);
        self.tokens.lock().unwrap_or_else(|e| e.into_inner()).store(company, &tokens);
        Ok(token)
    }

    fn extract(&self, request: &ExtractRequest) -> Result<Batches, PluginError> {
        if request.entity == Entity::VoucherLines {
            return Ok(decoded(self.extract_encoded(request)?));
        }
        let db = self.open_for_extraction(request)?;
        let cancel = request.cancel.clone();
        let year = request.fiscal_year;
        match request.entity {
            Entity::Accounts => db.stream(queries::ACCOUNTS, queries::account, RecordBatch::Accounts, cancel),
            Entity::Customers => {
                db.stream(&queries::actors("CustNo"), queries::party, RecordBatch::Customers, cancel)
            }
            Entity::Suppliers => {
                db.stream(&queries::actors("SupNo"), queries::party, RecordBatch::Suppliers, cancel)
            }
            Entity::DimensionTypes => {
                let types = queries::dimension_tables(&db)?
                    .into_iter()
                    .map(|r| DimensionType {
                        name: format!("Organisasjonsenhet {}", &r[1..]),
                        source_key: r.clone(),
                        id: r,
                    })
                    .collect();
                Ok(Box::new(std::iter::once(Ok(RecordBatch::DimensionTypes(types)))))
            }
            Entity::DimensionValues => {
                let tables = queries::dimension_tables(&db)?;
                db.stream(
                    &queries::dimension_values(&tables),
                    queries::dimension_value,
                    RecordBatch::DimensionValues,
                    cancel,
                )
            }
            Entity::Vouchers => match headers::take(&self.headers, &request.company, year, |w| {
                self.host.warn(w)
            }) {
                Some(from_lines) => from_lines,
                None => db.stream(&queries::vouchers(year), queries::voucher, RecordBatch::Vouchers, cancel),
            },
            other => Err(ledgerlink_odbc_common::unsupported_entity(ERP, other)),
        }
    }

    fn extract_encoded(&self, request: &ExtractRequest) -> Result<EncodedBatches, PluginError> {
        match request.entity {
            // Passed on encoded: a spilled lane's batches are not decoded again.
            Entity::VoucherLines => {
                let db = self.open_for_extraction(request)?;
                self.voucher_lines(request, db)
            }
            _ => Ok(encoded(self.extract(request)?)),
        }
    }
}

impl VismaBusiness {
    /// The company's database for an extraction.
    fn open_for_extraction(&self, request: &ExtractRequest) -> Result<Database, PluginError> {
        let db = self.open_company(&request.company, &self.settings.connection)?;
        self.host.debug(&format!("extracting {} from {}", request.entity, db.place()));
        Ok(db)
    }

    /// A year's voucher lines, in lanes when the year is large, folding the
    /// vouchers' headers on the way.
    fn voucher_lines(&self, request: &ExtractRequest, db: Database) -> Result<EncodedBatches, PluginError> {
        // A line in the company's own currency is written without one.
        let currency = self.companies_currency(&request.company).unwrap_or_else(|_| "NOK".to_owned());
        let year = request.fiscal_year;
        let lanes = self.voucher_line_lanes(&request.company, year);
        if lanes.len() > 1 {
            self.host.debug(&format!("reading the lines of {year} in {} lanes", lanes.len()));
        }
        let collectors = headers::start(&self.headers, &request.company, year, lanes.len())?;
        let writer = |lane: usize| queries::line_writer(currency.clone(), collectors[lane].clone());
        let (integers, wrap) = (queries::VOUCHER_LINE_INTEGERS, RecordBatch::VoucherLines);
        let database = self.company_database(&request.company)?;
        let read = LaneRead { database: Some(&database), queries: lanes, integer_columns: integers };
        let lines = stream_lanes(db, read, writer, wrap, request.cancel.clone())?;
        Ok(headers::completing(self.headers.clone(), lines))
    }

    fn companies_currency(&self, company: &str) -> Result<String, PluginError> {
        let sql = queries::company_currency(company.parse::<i64>().unwrap_or(-1));
        let rows = self.system()?.query(&sql, |row| row.opt_string(0))?;
        Ok(rows.into_iter().flatten().next().unwrap_or_else(|| "NOK".into()))
    }
}

export_plugin!(VismaBusiness);
