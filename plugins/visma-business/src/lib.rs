//! Ledgerlink plugin for Visma Business, read over ODBC.
//!
//! Visma Business keeps one database per company (`F0001`, `F0002`, …) and a
//! system database (`vbsys`) whose `Frm` table lists the companies. Amounts are
//! signed (credit negative), dates are integers `yyyymmdd`, periods `yyyypp`,
//! and rows carry change stamps `ChDt` (yyyymmdd, 0 = never stamped) + `ChTm`.
//! See `docs/plugins/visma-business.md` for settings and the read-only login.

mod queries;

use ledgerlink_odbc_common::{checked_identifier, ConnectionSettings, Database};
use ledgerlink_plugin_api::canonical::{Company, DimensionType, FiscalYear, NaiveDate, RecordBatch};
use ledgerlink_plugin_api::sdk::{json, Batches, ExtractRequest, Host, JsonValue, Manifest, Plugin};
use ledgerlink_plugin_api::{export_plugin, Entity, ErrorKind, PluginError};
use serde::Deserialize;

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

    /// Connects to a company's database and checks it is one.
    fn open_company(&self, company: &str) -> Result<Database, PluginError> {
        let db = Database::connect(&self.settings.connection, Some(&self.company_database(company)?))?;
        db.require_tables(ERP, &COMPANY_TABLES)?;
        Ok(db)
    }

    fn system(&self) -> Result<Database, PluginError> {
        let db = Database::connect(&self.settings.connection, Some(&self.settings.system_database))?;
        db.require_tables(ERP, &["Frm"])?;
        Ok(db)
    }

    fn fiscal_years(&self, db: &Database) -> Result<Vec<FiscalYear>, PluginError> {
        db.query(queries::FISCAL_YEARS, |row| {
            let year = row.int(0, "AcTr.AcYrPr / 100")? as i32;
            let day = |m, d| NaiveDate::from_ymd_opt(year, m, d);
            match (day(1, 1), day(12, 31)) {
                (Some(start), Some(end)) => Ok(FiscalYear { year, start, end }),
                _ => Err(PluginError::new(ErrorKind::DATA, format!("year {year} is out of range"), "")),
            }
        })
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
        Ok(Self { settings, host })
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
            let db = self.open_company(&id)?;
            companies.push(Company {
                fiscal_years: self.fiscal_years(&db)?,
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
        let labels = [
            "lines",
            "sum",
            "weighted",
            "max_change",
            "unstamped",
            "unstamped_sum",
            "accounts",
            "accounts_change",
            "actors_change",
        ];
        self.open_company(company)?.change_token(&queries::change_token(fiscal_year), &labels)
    }

    fn extract(&self, request: &ExtractRequest) -> Result<Batches, PluginError> {
        let db = self.open_company(&request.company)?;
        let company = self.companies_currency(&request.company).unwrap_or_else(|_| "NOK".to_owned());
        let cancel = request.cancel.clone();
        let year = request.fiscal_year;
        self.host.debug(&format!("extracting {} from {}", request.entity, db.place()));
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
            Entity::Vouchers => {
                db.stream(&queries::vouchers(year), queries::voucher, RecordBatch::Vouchers, cancel)
            }
            Entity::VoucherLines => db.stream(
                &queries::voucher_lines(year),
                queries::line_mapper(company),
                RecordBatch::VoucherLines,
                cancel,
            ),
            other => Err(ledgerlink_odbc_common::unsupported_entity(ERP, other)),
        }
    }
}

impl VismaBusiness {
    fn companies_currency(&self, company: &str) -> Result<String, PluginError> {
        let sql = queries::company_currency(company.parse::<i64>().unwrap_or(-1));
        let rows = self.system()?.query(&sql, |row| row.opt_string(0))?;
        Ok(rows.into_iter().flatten().next().unwrap_or_else(|| "NOK".into()))
    }
}

export_plugin!(VismaBusiness);
