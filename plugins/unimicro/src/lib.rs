//! Ledgerlink plugin: Uni Micro (Uni Economy) over its REST API.
//!
//! The plugin is synchronous like every plugin: it uses a blocking HTTP client
//! (ureq, rustls) and never the host's tokio. See `docs/plugins/unimicro.md` and
//! `docs/decisions/0008-unimicro-http-client.md`.

pub mod client;

use client::{Client, ClientConfig, Secret};
use ledgerlink_plugin_api::canonical::{
    Account, Company, Decimal, DimensionRef, DimensionType, DimensionValue, FiscalYear, NaiveDate, Party,
    RecordBatch, TaxCode, Voucher, VoucherLine,
};
use ledgerlink_plugin_api::sdk::{
    batches_of, json, Batches, Capability, ExtractRequest, Host, Manifest, Plugin,
};
use ledgerlink_plugin_api::{export_plugin, Entity, ErrorKind, PluginError};
use serde::{Deserialize, Deserializer};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// Settings of a Uni Micro source.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Base URL of the service, e.g. `https://test.unimicro.no`.
    pub base_url: String,
    /// OAuth2 token endpoint of Uni Micro's identity service.
    pub token_url: String,
    /// OAuth2 client id.
    pub client_id: String,
    /// OAuth2 client secret (never logged).
    pub client_secret: Secret,
    /// Refresh token from an `offline_access` consent (never logged); optional.
    #[serde(default)]
    pub refresh_token: Option<Secret>,
    /// Companies to read, by organisation number or company key; all when absent.
    #[serde(default)]
    pub companies: Option<Vec<String>>,
    /// Records per API page (`top`), at most 1000.
    #[serde(default = "default_page_size")]
    pub page_size: usize,
    /// Timeout of one HTTP request, in seconds.
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: u64,
    /// How many 429 answers in a row one request survives.
    #[serde(default = "default_rate_limit_retries")]
    pub max_rate_limit_retries: u32,
}

fn default_page_size() -> usize {
    500
}
fn default_timeout_secs() -> u64 {
    30
}
fn default_rate_limit_retries() -> u32 {
    5
}

/// The Uni Micro source.
pub struct UniMicro {
    settings: Settings,
    client: Arc<Client>,
    host: Host,
}

fn de_money<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Decimal>, D::Error> {
    // Amounts are JSON numbers: read their text, never an f64.
    let raw: Option<Box<serde_json::value::RawValue>> = Option::deserialize(d)?;
    match raw {
        None => Ok(None),
        Some(raw) if raw.get() == "null" => Ok(None),
        Some(raw) => {
            let text = raw.get().trim_matches('"');
            Decimal::from_str_exact(text)
                .or_else(|_| Decimal::from_scientific(text))
                .map(Some)
                .map_err(|e| serde::de::Error::custom(format!("`{text}` is not an exact decimal: {e}")))
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct InitCompany {
    key: String,
    name: String,
    organization_number: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CompanySettingsRow {
    company_name: Option<String>,
    organization_number: Option<String>,
    #[serde(rename = "BaseCurrencyCodeID")]
    base_currency_code_id: Option<i64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CurrencyRow {
    #[serde(rename = "ID")]
    id: i64,
    code: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct YearRow {
    year: i32,
    valid_from: String,
    valid_to: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct AccountRow {
    #[serde(rename = "ID")]
    id: i64,
    account_number: i64,
    account_name: Option<String>,
    #[serde(rename = "VatTypeID")]
    vat_type_id: Option<i64>,
    #[serde(rename = "SaftMappingAccountID")]
    saft_mapping_account_id: Option<i64>,
    #[serde(rename = "CustomerID")]
    customer_id: Option<i64>,
    #[serde(rename = "SupplierID")]
    supplier_id: Option<i64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct InfoRow {
    name: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PartyRow {
    #[serde(rename = "ID")]
    id: i64,
    #[serde(alias = "SupplierNumber")]
    customer_number: Option<i64>,
    org_number: Option<String>,
    info: Option<InfoRow>,
    #[serde(rename = "CurrencyCodeID")]
    currency_code_id: Option<i64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct VatRow {
    #[serde(rename = "ID")]
    id: i64,
    vat_code: String,
    name: Option<String>,
    #[serde(deserialize_with = "de_money", default)]
    vat_percent: Option<Decimal>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct NumberedRow {
    #[serde(rename = "ID")]
    id: i64,
    #[serde(alias = "DepartmentNumber")]
    project_number: Option<String>,
    name: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DimensionsRow {
    #[serde(rename = "ID")]
    id: i64,
    #[serde(rename = "ProjectID")]
    project_id: Option<i64>,
    #[serde(rename = "DepartmentID")]
    department_id: Option<i64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct LineRow {
    #[serde(rename = "ID")]
    id: i64,
    #[serde(rename = "JournalEntryID")]
    journal_entry_id: i64,
    journal_entry_number: Option<String>,
    #[serde(rename = "AccountID")]
    account_id: i64,
    #[serde(rename = "SubAccountID")]
    sub_account_id: Option<i64>,
    #[serde(deserialize_with = "de_money", default)]
    amount: Option<Decimal>,
    #[serde(deserialize_with = "de_money", default)]
    amount_currency: Option<Decimal>,
    #[serde(rename = "CurrencyCodeID")]
    currency_code_id: Option<i64>,
    financial_date: String,
    description: Option<String>,
    #[serde(rename = "DimensionsID")]
    dimensions_id: Option<i64>,
    #[serde(rename = "VatTypeID")]
    vat_type_id: Option<i64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct StampRow {
    #[serde(rename = "ID")]
    id: i64,
    created_at: Option<String>,
    updated_at: Option<String>,
}

fn date(text: &str, what: &str) -> Result<NaiveDate, PluginError> {
    NaiveDate::parse_from_str(text.get(..10).unwrap_or(text), "%Y-%m-%d").map_err(|_| {
        PluginError::new(
            ErrorKind::DATA,
            format!("{what} `{text}` is not a date"),
            "Report this with the plugin version.",
        )
    })
}

/// What lines need to become canonical: id → number maps.
struct Lookups {
    accounts: HashMap<i64, AccountRow>,
    customers: HashMap<i64, String>,
    suppliers: HashMap<i64, String>,
    vat_codes: HashMap<i64, String>,
    projects: HashMap<i64, String>,
    departments: HashMap<i64, String>,
    dimensions: HashMap<i64, DimensionsRow>,
    currencies: HashMap<i64, String>,
    base_currency: Option<i64>,
}

impl UniMicro {
    fn key_of(&self, company: &str) -> Result<String, PluginError> {
        let all: Vec<InitCompany> = self.client.get("init/companies", &[], None)?;
        all.into_iter()
            .find(|c| c.organization_number.as_deref() == Some(company) || c.key == company)
            .map(|c| c.key)
            .ok_or_else(|| {
                PluginError::new(
                    ErrorKind::NOT_FOUND,
                    format!("Uni Micro has no company `{company}` this API client may read"),
                    "Use a company listed by `ledgerlink plugins check`, or grant the API client access to it.",
                )
            })
    }

    /// Every row of an entity, page by page (`top`/`skip`), each page handed to `each`.
    fn pages<T: serde::de::DeserializeOwned>(
        &self,
        key: &str,
        entity: &str,
        params: &[(&str, String)],
        mut each: impl FnMut(Vec<T>) -> Result<(), PluginError>,
    ) -> Result<(), PluginError> {
        let top = self.settings.page_size;
        let mut skip = 0usize;
        loop {
            let mut query: Vec<(&str, String)> = params.to_vec();
            query.push(("top", top.to_string()));
            query.push(("skip", skip.to_string()));
            let page: Vec<T> = self.client.get(&format!("biz/{entity}"), &query, Some(key))?;
            let n = page.len();
            each(page)?;
            if n < top {
                return Ok(());
            }
            skip += n;
        }
    }

    fn all<T: serde::de::DeserializeOwned>(
        &self,
        key: &str,
        entity: &str,
        params: &[(&str, String)],
    ) -> Result<Vec<T>, PluginError> {
        let mut rows = Vec::new();
        self.pages(key, entity, params, |page| {
            rows.extend(page);
            Ok(())
        })?;
        Ok(rows)
    }

    fn live() -> (&'static str, String) {
        ("filter", "Deleted eq false".to_owned())
    }

    fn currencies(&self, key: &str) -> HashMap<i64, String> {
        // `currencycodes` is outside the documented subset: use it when offered, else only the base currency.
        self.all::<CurrencyRow>(key, "currencycodes", &[]).map_or_else(
            |_| HashMap::from([(1, "NOK".to_owned())]),
            |rows| rows.into_iter().map(|r| (r.id, r.code)).collect(),
        )
    }

    fn lookups(&self, key: &str) -> Result<Lookups, PluginError> {
        let settings: Vec<CompanySettingsRow> = self.all(key, "companysettings", &[])?;
        let accounts: Vec<AccountRow> =
            self.all(key, "accounts", &[Self::live(), ("orderby", "ID".into())])?;
        let parties = |entity: &str| -> Result<HashMap<i64, String>, PluginError> {
            let rows: Vec<PartyRow> = self.all(key, entity, &[Self::live(), ("orderby", "ID".into())])?;
            Ok(rows.into_iter().map(|r| (r.id, r.customer_number.unwrap_or(r.id).to_string())).collect())
        };
        let numbered = |entity: &str| -> Result<HashMap<i64, String>, PluginError> {
            let rows: Vec<NumberedRow> = self.all(key, entity, &[Self::live()])?;
            Ok(rows
                .into_iter()
                .map(|r| (r.id, r.project_number.unwrap_or_else(|| r.id.to_string())))
                .collect())
        };
        let vat: Vec<VatRow> = self.all(key, "vattypes", &[])?;
        let dimensions: Vec<DimensionsRow> = self.all(key, "dimensions", &[("orderby", "ID".into())])?;
        Ok(Lookups {
            accounts: accounts.into_iter().map(|a| (a.id, a)).collect(),
            customers: parties("customers")?,
            suppliers: parties("suppliers")?,
            vat_codes: vat.into_iter().map(|v| (v.id, v.vat_code)).collect(),
            projects: numbered("projects")?,
            departments: numbered("departments")?,
            dimensions: dimensions.into_iter().map(|d| (d.id, d)).collect(),
            currencies: self.currencies(key),
            base_currency: settings.first().and_then(|s| s.base_currency_code_id),
        })
    }

    fn year_range(&self, key: &str, year: i32) -> Result<(NaiveDate, NaiveDate), PluginError> {
        let years: Vec<YearRow> = self.all(key, "financialyears", &[])?;
        let y = years.into_iter().find(|y| y.year == year).ok_or_else(|| {
            PluginError::new(
                ErrorKind::NOT_FOUND,
                format!("the company has no financial year {year} in Uni Micro"),
                "Sync only the years listed by `ledgerlink plugins check`.",
            )
        })?;
        Ok((date(&y.valid_from, "ValidFrom")?, date(&y.valid_to, "ValidTo")?))
    }

    fn extract_ledger(
        &self,
        key: &str,
        year: i32,
        entity: Entity,
        cancel: &ledgerlink_plugin_api::sdk::Cancel,
    ) -> Result<Vec<RecordBatch>, PluginError> {
        let lk = self.lookups(key)?;
        let (from, to) = self.year_range(key, year)?;
        let filter = format!(
            "FinancialDate ge '{}' and FinancialDate le '{}' and Deleted eq false",
            from.format("%Y-%m-%d"),
            to.format("%Y-%m-%d")
        );
        let mut batches = Vec::new();
        let mut open: Option<(i64, u32)> = None;
        self.pages::<LineRow>(
            key,
            "journalentrylines",
            &[("filter", filter), ("orderby", "JournalEntryID".into())],
            |page| {
                if cancel.is_cancelled() {
                    return Err(PluginError::new(ErrorKind::CANCELLED, "extraction cancelled", ""));
                }
                let mut vouchers = Vec::new();
                let mut lines = Vec::with_capacity(page.len());
                for r in page {
                    let voucher_id =
                        r.journal_entry_number.clone().unwrap_or_else(|| r.journal_entry_id.to_string());
                    let day = date(&r.financial_date, "FinancialDate")?;
                    let line_no = match open {
                        Some((id, n)) if id == r.journal_entry_id => n + 1,
                        _ => {
                            vouchers.push(Voucher {
                                id: voucher_id.clone(),
                                date: day,
                                period: None,
                                voucher_type: None,
                                description: r.description.clone(),
                                source_key: format!("JournalEntry:{}", r.journal_entry_id),
                            });
                            1
                        }
                    };
                    open = Some((r.journal_entry_id, line_no));
                    if entity != Entity::VoucherLines {
                        continue;
                    }
                    let account = lk.accounts.get(&r.account_id).ok_or_else(|| {
                        PluginError::new(
                            ErrorKind::DATA,
                            format!(
                                "journal entry line {} posts to account id {} which Uni Micro did not list",
                                r.id, r.account_id
                            ),
                            "Check that the account is not deleted; then sync again.",
                        )
                    })?;
                    let sub = r.sub_account_id.and_then(|s| lk.accounts.get(&s));
                    let customer_id =
                        sub.and_then(|s| s.customer_id).and_then(|c| lk.customers.get(&c).cloned());
                    let supplier_id =
                        sub.and_then(|s| s.supplier_id).and_then(|c| lk.suppliers.get(&c).cloned());
                    let mut dimensions = Vec::new();
                    if let Some(d) = r.dimensions_id.and_then(|d| lk.dimensions.get(&d)) {
                        if let Some(p) = d.project_id.and_then(|p| lk.projects.get(&p)) {
                            dimensions
                                .push(DimensionRef { dimension_type: "project".into(), value: p.clone() });
                        }
                        if let Some(p) = d.department_id.and_then(|p| lk.departments.get(&p)) {
                            dimensions
                                .push(DimensionRef { dimension_type: "department".into(), value: p.clone() });
                        }
                    }
                    let foreign = r
                        .currency_code_id
                        .filter(|c| Some(*c) != lk.base_currency)
                        .and_then(|c| lk.currencies.get(&c).cloned());
                    let amount = r.amount.ok_or_else(|| {
                        PluginError::new(
                            ErrorKind::DATA,
                            format!("journal entry line {} has no Amount", r.id),
                            "Report this with the plugin version.",
                        )
                    })?;
                    lines.push(VoucherLine {
                        voucher_id,
                        line_no,
                        account_id: account.account_number.to_string(),
                        date: day,
                        description: r.description,
                        amount,
                        amount_currency: foreign.as_ref().and(r.amount_currency),
                        currency: foreign,
                        tax_code: r.vat_type_id.and_then(|v| lk.vat_codes.get(&v).cloned()),
                        tax_amount: None,
                        dimensions,
                        customer_id,
                        supplier_id,
                        source_key: format!("JournalEntryLine:{}", r.id),
                    });
                }
                match entity {
                    Entity::Vouchers if !vouchers.is_empty() => batches.push(RecordBatch::Vouchers(vouchers)),
                    Entity::VoucherLines if !lines.is_empty() => {
                        batches.push(RecordBatch::VoucherLines(lines))
                    }
                    _ => {}
                }
                Ok(())
            },
        )?;
        Ok(batches)
    }
}

fn party(rows: Vec<PartyRow>, kind: &str, currencies: &HashMap<i64, String>) -> Vec<Party> {
    rows.into_iter()
        .map(|r| Party {
            id: r.customer_number.unwrap_or(r.id).to_string(),
            name: r.info.and_then(|i| i.name).unwrap_or_default(),
            organisation_number: r.org_number.filter(|o| !o.trim().is_empty()),
            street: None,
            postal_code: None,
            city: None,
            country: None,
            email: None,
            phone: None,
            currency: r.currency_code_id.and_then(|c| currencies.get(&c).cloned()),
            source_key: format!("{kind}:{}", r.id),
        })
        .collect()
}

impl Plugin for UniMicro {
    type Settings = Settings;

    fn manifest() -> Manifest {
        Manifest {
            id: "unimicro".into(),
            display_name: "Uni Micro (Uni Economy)".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            api_version: String::new(),
            erp_system: "Uni Micro".into(),
            entities: Entity::ALL.to_vec(),
            capabilities: vec![Capability::Extract, Capability::ChangeToken],
            settings_schema: json!({
                "$schema": "https://json-schema.org/draft/2020-12/schema",
                "title": "unimicro settings",
                "type": "object",
                "additionalProperties": false,
                "required": ["base_url", "token_url", "client_id", "client_secret"],
                "properties": {
                    "base_url": { "type": "string", "description": "Service URL, e.g. https://test.unimicro.no (the API is under /api/)" },
                    "token_url": { "type": "string", "description": "OAuth2 token endpoint of Uni Micro's identity service" },
                    "client_id": { "type": "string" },
                    "client_secret": { "type": "string", "writeOnly": true, "description": "Secret; never logged" },
                    "refresh_token": { "type": "string", "writeOnly": true, "description": "From an offline_access consent; secret, never logged" },
                    "companies": { "type": "array", "items": { "type": "string" }, "description": "Organisation numbers or company keys (default: all)" },
                    "page_size": { "type": "integer", "minimum": 1, "maximum": 1000, "default": 500 },
                    "timeout_secs": { "type": "integer", "minimum": 1, "default": 30 },
                    "max_rate_limit_retries": { "type": "integer", "minimum": 0, "default": 5 }
                }
            }),
        }
    }

    fn open(settings: Settings, host: Host) -> Result<Self, PluginError> {
        let invalid = |m: &str, r: &str| Err(PluginError::new(ErrorKind::INVALID_SETTINGS, m, r));
        if !(1..=1000).contains(&settings.page_size) {
            return invalid(
                "page_size must be between 1 and 1000",
                "Uni Micro returns at most 1000 rows per call; use 500.",
            );
        }
        if settings.timeout_secs == 0 {
            return invalid("timeout_secs must be at least 1", "Use 30, or remove it for the default.");
        }
        for (name, url) in [("base_url", &settings.base_url), ("token_url", &settings.token_url)] {
            let local = url.starts_with("http://127.0.0.1") || url.starts_with("http://localhost");
            if !url.starts_with("https://") && !local {
                return invalid(
                    &format!("{name} `{url}` is not an https:// URL"),
                    "Use the https:// address of the Uni Micro service; plain HTTP is accepted only on loopback.",
                );
            }
        }
        let client = Client::new(
            ClientConfig {
                base_url: settings.base_url.clone(),
                token_url: settings.token_url.clone(),
                client_id: settings.client_id.clone(),
                client_secret: settings.client_secret.clone(),
                refresh_token: settings.refresh_token.clone(),
                timeout: Duration::from_secs(settings.timeout_secs),
                max_rate_limit_retries: settings.max_rate_limit_retries,
            },
            host.clone(),
        );
        Ok(UniMicro { settings, client: Arc::new(client), host })
    }

    fn check(&self) -> Result<String, PluginError> {
        let all: Vec<InitCompany> = self.client.get("init/companies", &[], None)?;
        Ok(format!("Uni Micro at {}: {} companies visible", self.settings.base_url, all.len()))
    }

    fn companies(&self) -> Result<Vec<Company>, PluginError> {
        let all: Vec<InitCompany> = self.client.get("init/companies", &[], None)?;
        let mut companies = Vec::new();
        for c in all {
            let id = c.organization_number.clone().filter(|o| !o.is_empty()).unwrap_or_else(|| c.key.clone());
            if let Some(wanted) = &self.settings.companies {
                if !wanted.contains(&id) && !wanted.contains(&c.key) {
                    continue;
                }
            }
            let settings: Vec<CompanySettingsRow> = self.all(&c.key, "companysettings", &[])?;
            let s = settings.into_iter().next();
            let currencies = self.currencies(&c.key);
            let currency = s
                .as_ref()
                .and_then(|s| s.base_currency_code_id)
                .and_then(|id| currencies.get(&id).cloned())
                .unwrap_or_else(|| "NOK".to_owned());
            let years: Vec<YearRow> = self.all(&c.key, "financialyears", &[])?;
            let mut fiscal_years = Vec::new();
            for y in years {
                fiscal_years.push(FiscalYear {
                    year: y.year,
                    start: date(&y.valid_from, "ValidFrom")?,
                    end: date(&y.valid_to, "ValidTo")?,
                });
            }
            fiscal_years.sort_by_key(|y| y.year);
            companies.push(Company {
                id,
                name: s.as_ref().and_then(|s| s.company_name.clone()).unwrap_or(c.name),
                organisation_number: s.and_then(|s| s.organization_number).or(c.organization_number),
                currency,
                fiscal_years,
                source_key: format!("CompanyKey:{}", c.key),
            });
        }
        Ok(companies)
    }

    /// `um:v1:<max line ID>:<max line stamp>:<max account stamp>`: new lines raise the
    /// ID, changed or (soft-)deleted ones their `UpdatedAt`; three one-row requests.
    fn change_token(&self, company: &str, fiscal_year: i32) -> Result<String, PluginError> {
        let key = self.key_of(company)?;
        let (from, to) = self.year_range(&key, fiscal_year)?;
        let filter = format!(
            "FinancialDate ge '{}' and FinancialDate le '{}'",
            from.format("%Y-%m-%d"),
            to.format("%Y-%m-%d")
        );
        let newest =
            |order: &str, entity: &str, filter: Option<&str>| -> Result<Option<StampRow>, PluginError> {
                let mut q = vec![("orderby", order.to_owned()), ("top", "1".to_owned())];
                if let Some(f) = filter {
                    q.push(("filter", f.to_owned()));
                }
                let rows: Vec<StampRow> = self.client.get(&format!("biz/{entity}"), &q, Some(&key))?;
                Ok(rows.into_iter().next())
            };
        let max_id = newest("ID desc", "journalentrylines", Some(&filter))?.map_or(0, |r| r.id);
        let stamp = |r: Option<StampRow>| r.and_then(|r| r.updated_at.or(r.created_at)).unwrap_or_default();
        let lines = stamp(newest("UpdatedAt desc", "journalentrylines", Some(&filter))?);
        let accounts = stamp(newest("UpdatedAt desc", "accounts", None)?);
        Ok(format!("um:v1:{max_id}:{lines}:{accounts}"))
    }

    fn extract(&self, request: &ExtractRequest) -> Result<Batches, PluginError> {
        let key = self.key_of(&request.company)?;
        let size = self.settings.page_size.max(1);
        self.host
            .debug(&format!("extracting {} of {} {}", request.entity, request.company, request.fiscal_year));
        let live = [Self::live(), ("orderby", "ID".to_owned())];
        Ok(match request.entity {
            Entity::Accounts => {
                let lk = self.lookups(&key)?;
                let mut rows: Vec<&AccountRow> = lk
                    .accounts
                    .values()
                    .filter(|a| a.customer_id.is_none() && a.supplier_id.is_none())
                    .collect();
                rows.sort_by_key(|a| a.account_number);
                let accounts = rows
                    .into_iter()
                    .map(|a| Account {
                        id: a.account_number.to_string(),
                        name: a.account_name.clone().unwrap_or_default(),
                        grouping_category: None,
                        grouping_code: None,
                        standard_account: a.saft_mapping_account_id.map(|s| s.to_string()),
                        default_tax_code: a.vat_type_id.and_then(|v| lk.vat_codes.get(&v).cloned()),
                        source_key: format!("Account:{}", a.id),
                    })
                    .collect();
                batches_of(accounts, size, RecordBatch::Accounts)
            }
            Entity::Customers | Entity::Suppliers => {
                let entity = if request.entity == Entity::Customers { "customers" } else { "suppliers" };
                let mut params = live.to_vec();
                params.push(("expand", "Info".to_owned()));
                let rows: Vec<PartyRow> = self.all(&key, entity, &params)?;
                let currencies = self.currencies(&key);
                let wrap = if request.entity == Entity::Customers {
                    RecordBatch::Customers
                } else {
                    RecordBatch::Suppliers
                };
                batches_of(
                    party(rows, if entity == "customers" { "Customer" } else { "Supplier" }, &currencies),
                    size,
                    wrap,
                )
            }
            Entity::DimensionTypes => batches_of(
                vec![
                    DimensionType {
                        id: "project".into(),
                        name: "Prosjekt".into(),
                        source_key: "projects".into(),
                    },
                    DimensionType {
                        id: "department".into(),
                        name: "Avdeling".into(),
                        source_key: "departments".into(),
                    },
                ],
                size,
                RecordBatch::DimensionTypes,
            ),
            Entity::DimensionValues => {
                let mut values = Vec::new();
                for (entity, kind) in [("projects", "project"), ("departments", "department")] {
                    let rows: Vec<NumberedRow> = self.all(&key, entity, &live)?;
                    values.extend(rows.into_iter().map(|r| DimensionValue {
                        dimension_type: kind.into(),
                        id: r.project_number.clone().unwrap_or_else(|| r.id.to_string()),
                        name: r.name.unwrap_or_default(),
                        source_key: format!("{entity}:{}", r.id),
                    }));
                }
                batches_of(values, size, RecordBatch::DimensionValues)
            }
            Entity::TaxCodes => {
                let rows: Vec<VatRow> = self.all(&key, "vattypes", &[])?;
                let codes = rows
                    .into_iter()
                    .map(|v| TaxCode {
                        id: v.vat_code.clone(),
                        description: v.name.unwrap_or_default(),
                        rate: v.vat_percent,
                        standard_tax_code: None,
                        source_key: format!("VatType:{}", v.id),
                    })
                    .collect();
                batches_of(codes, size, RecordBatch::TaxCodes)
            }
            Entity::Vouchers | Entity::VoucherLines => {
                let batches =
                    self.extract_ledger(&key, request.fiscal_year, request.entity, &request.cancel)?;
                Box::new(batches.into_iter().map(Ok))
            }
        })
    }
}

export_plugin!(UniMicro);
