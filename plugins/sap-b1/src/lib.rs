//! Ledgerlink plugin for SAP Business One, read over ODBC.
//!
//! SAP Business One keeps one database per company; the system database
//! `SBOCOMMON` lists them in `SRGC`. Journal entries are `OJDT` (header) and
//! `JDT1` (lines) with `Debit` and `Credit` both positive; the plugin turns them
//! into signed amounts (debit positive). Five cost-accounting dimensions
//! (`ProfitCode`, `OcrCode2`..`OcrCode5`) and `Project` become dimensions.
//! See `docs/plugins/sap-b1.md` for settings and the read-only login.

mod queries;

use ledgerlink_odbc_common::{
    checked_identifier, convert, ConnectionPool, ConnectionSettings, Database, TableChecks,
};
use ledgerlink_plugin_api::canonical::{Company, Datelike, FiscalYear, NaiveDate, RecordBatch};
use ledgerlink_plugin_api::sdk::{json, Batches, ExtractRequest, Host, JsonValue, Manifest, Plugin};
use ledgerlink_plugin_api::{export_plugin, Entity, PluginError};
use serde::Deserialize;
use std::collections::BTreeSet;

/// The ERP's name in messages and in the User-Agent.
const ERP: &str = "SAP Business One";

/// Tables every company database must have.
const COMPANY_TABLES: [&str; 8] = ["OADM", "OACT", "OCRD", "OJDT", "JDT1", "ODIM", "OPRC", "OVTG"];

/// Settings of a SAP Business One source.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// How to reach the database server.
    pub connection: ConnectionSettings,
    /// The system database listing the company databases in `SRGC`.
    #[serde(default = "default_system_database")]
    pub system_database: String,
}

fn default_system_database() -> String {
    "SBOCOMMON".into()
}

/// A SAP Business One source.
pub struct SapB1 {
    settings: Settings,
    host: Host,
    /// Company databases whose tables were found readable.
    table_checks: TableChecks,
    /// Connections kept between extractions.
    connections: ConnectionPool,
}

impl SapB1 {
    fn system(&self) -> Result<Database, PluginError> {
        let db = self.connections.connect(&self.settings.connection, Some(&self.settings.system_database))?;
        self.table_checks.require(&db, ERP, &["SRGC"])?;
        Ok(db)
    }

    /// Connects to a company's database over `connection` (the settings', or
    /// [`ConnectionSettings::for_small_results`] for aggregates) and checks it is one.
    fn open_company(&self, company: &str, connection: &ConnectionSettings) -> Result<Database, PluginError> {
        let db = self.connections.connect(connection, Some(checked_identifier(company)?))?;
        self.table_checks.require(&db, ERP, &COMPANY_TABLES)?;
        Ok(db)
    }

    fn company_currency(db: &Database) -> Result<String, PluginError> {
        let rows = db.query(queries::COMPANY, |row| row.opt_string(2))?;
        Ok(rows.into_iter().flatten().next().unwrap_or_else(|| "NOK".into()))
    }
}

fn settings_schema() -> JsonValue {
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "SAP Business One source",
        "type": "object",
        "additionalProperties": false,
        "required": ["connection"],
        "properties": {
            "connection": ConnectionSettings::json_schema(),
            "system_database": {"type": "string", "default": "SBOCOMMON", "description": "Database listing the company databases (table SRGC)"}
        }
    })
}

impl Plugin for SapB1 {
    type Settings = Settings;

    fn manifest() -> Manifest {
        ledgerlink_odbc_common::manifest(
            "sap-b1",
            env!("CARGO_PKG_VERSION"),
            ERP,
            Entity::ALL.to_vec(),
            settings_schema(),
        )
    }

    fn open(settings: Settings, host: Host) -> Result<Self, PluginError> {
        checked_identifier(&settings.system_database)?;
        host.debug(&format!(
            "SAP Business One source on {}",
            settings.connection.redacted_connection_string(Some(&settings.system_database))
        ));
        Ok(Self {
            settings,
            host,
            table_checks: TableChecks::default(),
            connections: ConnectionPool::default(),
        })
    }

    fn check(&self) -> Result<String, PluginError> {
        let system = self.system()?;
        system.system_summary(ERP, &self.settings.system_database, queries::COUNT_COMPANIES)
    }

    fn companies(&self) -> Result<Vec<Company>, PluginError> {
        let listed =
            self.system()?.query(queries::COMPANIES, |row| Ok(row.required(0, "SRGC.dbName")?.to_owned()))?;
        let mut companies = Vec::new();
        for database in listed {
            let db = self.open_company(&database, &self.settings.connection)?;
            let info = db.query(queries::COMPANY, |row| {
                Ok((row.opt_string(0)?.unwrap_or_default(), row.opt_string(1)?, row.opt_string(2)?))
            })?;
            let Some((name, organisation_number, currency)) = info.into_iter().next() else {
                self.host.warn(&format!("company database {database} has no OADM row; skipped"));
                continue;
            };
            let dates = db.query(queries::POSTING_DATES, |row| {
                convert::date(row.required(0, "OJDT.RefDate")?, "OJDT.RefDate")
            })?;
            let years: BTreeSet<i32> = dates.iter().map(|d| d.year()).collect();
            let fiscal_years = years
                .into_iter()
                .filter_map(|year| {
                    Some(FiscalYear {
                        year,
                        start: NaiveDate::from_ymd_opt(year, 1, 1)?,
                        end: NaiveDate::from_ymd_opt(year, 12, 31)?,
                    })
                })
                .collect();
            companies.push(Company {
                source_key: format!("{database}.OADM"),
                id: database,
                name,
                organisation_number,
                currency: currency.unwrap_or_else(|| "NOK".into()),
                fiscal_years,
            });
        }
        Ok(companies)
    }

    fn change_token(&self, company: &str, fiscal_year: i32) -> Result<String, PluginError> {
        let db = self.open_company(company, &self.settings.connection.for_small_results())?;
        let labels = [
            "lines",
            "debit",
            "credit",
            "weighted",
            "entries",
            "max_update",
            "accounts",
            "accounts_update",
            "partners_update",
        ];
        db.change_token(&queries::change_token(fiscal_year), &labels)
    }

    fn extract(&self, request: &ExtractRequest) -> Result<Batches, PluginError> {
        let db = self.open_company(&request.company, &self.settings.connection)?;
        let currency = Self::company_currency(&db)?;
        let (cancel, year) = (request.cancel.clone(), request.fiscal_year);
        self.host.debug(&format!("extracting {} from {}", request.entity, db.place()));
        match request.entity {
            Entity::Accounts => db.stream(queries::ACCOUNTS, queries::account, RecordBatch::Accounts, cancel),
            Entity::Customers => {
                db.stream(&queries::partners('C'), queries::party, RecordBatch::Customers, cancel)
            }
            Entity::Suppliers => {
                db.stream(&queries::partners('S'), queries::party, RecordBatch::Suppliers, cancel)
            }
            Entity::DimensionTypes => db.stream(
                queries::DIMENSION_TYPES,
                queries::dimension_type,
                RecordBatch::DimensionTypes,
                cancel,
            ),
            Entity::DimensionValues => db.stream(
                queries::DIMENSION_VALUES,
                queries::dimension_value,
                RecordBatch::DimensionValues,
                cancel,
            ),
            Entity::TaxCodes => {
                db.stream(queries::TAX_CODES, queries::tax_code, RecordBatch::TaxCodes, cancel)
            }
            Entity::Vouchers => {
                db.stream(&queries::vouchers(year), queries::voucher, RecordBatch::Vouchers, cancel)
            }
            Entity::VoucherLines => db.stream(
                &queries::voucher_lines(year),
                queries::line_mapper(currency),
                RecordBatch::VoucherLines,
                cancel,
            ),
        }
    }
}

export_plugin!(SapB1);
