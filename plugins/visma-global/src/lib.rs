//! Ledgerlink plugin for Visma Global, read over ODBC.
//!
//! Visma Global keeps every company in one database, one SQL schema per company;
//! a schema is a company when it has a `CompanyInformation` table. Amounts are
//! signed (credit negative), dates are datetimes, and rows carry `LastUpdate`.
//! On SQLite (tests) there are no schemas: each company is a database file that
//! the plugin attaches under its file name.
//! See `docs/plugins/visma-global.md` for settings and the read-only login.

mod queries;

use ledgerlink_odbc_common::{
    checked_identifier, convert, ConnectionPool, ConnectionSettings, Database, Dialect, TableChecks,
};
use ledgerlink_plugin_api::canonical::{Company, DimensionType, FiscalYear, RecordBatch};
use ledgerlink_plugin_api::sdk::{json, Batches, ExtractRequest, Host, JsonValue, Manifest, Plugin};
use ledgerlink_plugin_api::{export_plugin, Entity, ErrorKind, PluginError};
use serde::Deserialize;

/// The ERP's name in messages and in the User-Agent.
const ERP: &str = "Visma Global";

/// Tables every company schema must have.
const COMPANY_TABLES: [&str; 4] =
    ["CompanyInformation", "AccountingYear", "GLAccount", "GLAccountTransaction"];

/// Settings of a Visma Global source.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// How to reach the database server.
    pub connection: ConnectionSettings,
    /// The database holding the company schemas (SQLite: the main file's name).
    pub database: String,
}

/// A Visma Global source.
pub struct VismaGlobal {
    settings: Settings,
    host: Host,
    /// Company schemas whose tables were found readable.
    table_checks: TableChecks,
    /// Connections kept between extractions (not on SQLite, where each
    /// connection attaches the company files anew).
    connections: ConnectionPool,
}

impl VismaGlobal {
    /// Connects to the database; on SQLite attaches every company file as a schema.
    fn connect(&self) -> Result<(Database, Vec<String>), PluginError> {
        self.connect_with(&self.settings.connection)
    }

    /// The same over `connection` (see [`VismaGlobal::open_company`]).
    fn connect_with(&self, connection: &ConnectionSettings) -> Result<(Database, Vec<String>), PluginError> {
        let sqlite = self.settings.connection.dialect() == Dialect::Sqlite;
        let db = match sqlite {
            true => Database::connect(connection, Some(&self.settings.database))?,
            false => self.connections.connect(connection, Some(&self.settings.database))?,
        };
        let candidates = if sqlite {
            let mut attached = Vec::new();
            for (schema, path) in self.company_files()? {
                db.execute(&format!("ATTACH DATABASE '{}' AS {schema}", path.replace('\'', "''")))?;
                attached.push(schema);
            }
            attached
        } else {
            db.schemas_with_table("CompanyInformation")?
        };
        let schemas = candidates
            .into_iter()
            .filter(|s| checked_identifier(s).is_ok() && db.can_read(&format!("{s}.CompanyInformation")))
            .collect();
        Ok((db, schemas))
    }

    /// SQLite: the `*.db` files beside the main database, as (schema, path).
    fn company_files(&self) -> Result<Vec<(String, String)>, PluginError> {
        let dir = self.settings.connection.directory.clone().unwrap_or_default();
        let entries = std::fs::read_dir(&dir).map_err(|e| {
            PluginError::new(
                ErrorKind::CONNECTION,
                format!("cannot list the database folder {}: {e}", dir.display()),
                "Check `connection.directory`.",
            )
        })?;
        let mut files: Vec<(String, String)> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "db"))
            .filter_map(|p| {
                let stem = p.file_stem()?.to_str()?.to_owned();
                (stem != self.settings.database && checked_identifier(&stem).is_ok())
                    .then(|| (stem, p.display().to_string()))
            })
            .collect();
        files.sort();
        Ok(files)
    }

    /// Connects over `connection` (the settings', or
    /// [`ConnectionSettings::for_small_results`] for aggregates) and returns the
    /// checked schema of `company`.
    fn open_company(
        &self,
        company: &str,
        connection: &ConnectionSettings,
    ) -> Result<(Database, String), PluginError> {
        let (db, schemas) = self.connect_with(connection)?;
        let Some(schema) = schemas.into_iter().find(|s| s.eq_ignore_ascii_case(company)) else {
            return Err(PluginError::new(
                ErrorKind::NOT_FOUND,
                format!("{} has no company schema `{company}` with a CompanyInformation table", db.place()),
                "Use a company listed by `ledgerlink plugins check`.",
            ));
        };
        let tables: Vec<String> = COMPANY_TABLES.iter().map(|t| format!("{schema}.{t}")).collect();
        self.table_checks.require(&db, ERP, &tables.iter().map(String::as_str).collect::<Vec<_>>())?;
        Ok((db, schema))
    }
}

fn settings_schema() -> JsonValue {
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "Visma Global source",
        "type": "object",
        "additionalProperties": false,
        "required": ["connection", "database"],
        "properties": {
            "connection": ConnectionSettings::json_schema(),
            "database": {"type": "string", "description": "The Visma Global database (one schema per company)"}
        }
    })
}

impl Plugin for VismaGlobal {
    type Settings = Settings;

    fn manifest() -> Manifest {
        ledgerlink_odbc_common::manifest(
            "visma-global",
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
        checked_identifier(&settings.database)?;
        host.debug(&format!(
            "Visma Global source on {}",
            settings.connection.redacted_connection_string(Some(&settings.database))
        ));
        Ok(Self {
            settings,
            host,
            table_checks: TableChecks::default(),
            connections: ConnectionPool::default(),
        })
    }

    fn check(&self) -> Result<String, PluginError> {
        let (db, schemas) = self.connect()?;
        if schemas.is_empty() {
            return Err(ledgerlink_odbc_common::missing_table_error("CompanyInformation", ERP, db.place()));
        }
        Ok(format!(
            "{ERP} database {} ({}), {} companies",
            self.settings.database,
            db.server_description(),
            schemas.len()
        ))
    }

    fn companies(&self) -> Result<Vec<Company>, PluginError> {
        let (db, schemas) = self.connect()?;
        if schemas.is_empty() {
            return Err(ledgerlink_odbc_common::missing_table_error("CompanyInformation", ERP, db.place()));
        }
        let mut companies = Vec::new();
        for schema in schemas {
            let info = db.query(&queries::company(&schema), |row| {
                Ok((row.opt_string(0)?.unwrap_or_default(), row.opt_string(1)?, row.opt_string(2)?))
            })?;
            let Some((name, organisation_number, currency)) = info.into_iter().next() else {
                self.host.warn(&format!("schema {schema} has an empty CompanyInformation; skipped"));
                continue;
            };
            let fiscal_years = db.query(&queries::fiscal_years(&schema), |row| {
                let start =
                    convert::date(row.required(1, "AccountingYear.StartDate")?, "AccountingYear.StartDate")?;
                let end =
                    convert::date(row.required(2, "AccountingYear.EndDate")?, "AccountingYear.EndDate")?;
                Ok(FiscalYear { year: row.int(0, "AccountingYear.AccountingYearID")? as i32, start, end })
            })?;
            companies.push(Company {
                source_key: format!("{schema}.CompanyInformation"),
                id: schema,
                name,
                organisation_number,
                currency: currency.unwrap_or_else(|| "NOK".into()),
                fiscal_years,
            });
        }
        Ok(companies)
    }

    fn change_token(&self, company: &str, fiscal_year: i32) -> Result<String, PluginError> {
        let (db, schema) = self.open_company(company, &self.settings.connection.for_small_results())?;
        let labels = [
            "lines",
            "sum",
            "weighted",
            "max_change",
            "accounts",
            "accounts_change",
            "customers_change",
            "suppliers_change",
        ];
        db.change_token(&queries::change_token(&schema, fiscal_year), &labels)
    }

    fn extract(&self, request: &ExtractRequest) -> Result<Batches, PluginError> {
        let (db, schema) = self.open_company(&request.company, &self.settings.connection)?;
        let labels = db
            .query(&queries::dimension_labels(&schema), |row| Ok((row.opt_string(0)?, row.opt_string(1)?)))?;
        let (department, project) = labels.into_iter().next().unwrap_or_default();
        let currency = db
            .query(&queries::company(&schema), |row| row.opt_string(2))?
            .into_iter()
            .flatten()
            .next()
            .unwrap_or_else(|| "NOK".into());
        let (cancel, year, s) = (request.cancel.clone(), request.fiscal_year, schema.as_str());
        self.host.debug(&format!("extracting {} from {} schema {schema}", request.entity, db.place()));
        match request.entity {
            Entity::Accounts => {
                db.stream(&queries::accounts(s), queries::account, RecordBatch::Accounts, cancel)
            }
            Entity::Customers => {
                db.stream(&queries::customers(s), queries::party, RecordBatch::Customers, cancel)
            }
            Entity::Suppliers => {
                db.stream(&queries::suppliers(s), queries::party, RecordBatch::Suppliers, cancel)
            }
            Entity::DimensionTypes => {
                let usage = db.query(&queries::dimension_usage(s), |row| {
                    Ok([
                        row.int(0, "count")?,
                        row.int(1, "count")?,
                        row.int(2, "count")?,
                        row.int(3, "count")?,
                    ])
                })?;
                let usage = usage.into_iter().next().unwrap_or_default();
                let types = queries::dimension_types(usage, department, project)
                    .into_iter()
                    .map(|(id, name)| DimensionType {
                        source_key: format!("{schema}/{id}"),
                        id: id.into(),
                        name,
                    })
                    .collect();
                Ok(Box::new(std::iter::once(Ok(RecordBatch::DimensionTypes(types)))))
            }
            Entity::DimensionValues => db.stream(
                &queries::dimension_values(s),
                queries::dimension_value,
                RecordBatch::DimensionValues,
                cancel,
            ),
            Entity::Vouchers => {
                db.stream(&queries::vouchers(s, year), queries::voucher, RecordBatch::Vouchers, cancel)
            }
            Entity::VoucherLines => db.stream(
                &queries::voucher_lines(s, year),
                queries::line_mapper(currency),
                RecordBatch::VoucherLines,
                cancel,
            ),
            other => Err(ledgerlink_odbc_common::unsupported_entity(ERP, other)),
        }
    }
}

export_plugin!(VismaGlobal);
