//! hello-erp — the smallest useful Ledgerlink plugin.
//!
//! It "reads" an ERP that lives in memory: two companies, two fiscal years each,
//! a chart of accounts, customers, suppliers, two dimensions and balanced
//! vouchers. Copy this folder to start a plugin of your own; the only Ledgerlink
//! crate you need is `ledgerlink-plugin-api`.
//!
//! The shape of every plugin is the same:
//! 1. a settings struct (deserialized from the JSON object the host passes);
//! 2. a type implementing [`Plugin`] — manifest, open, check, companies,
//!    change_token and extract;
//! 3. one call to [`export_plugin!`] at the bottom of `lib.rs`.
//!
//! Build it with `cargo build --release`; the plugin file is
//! `target/release/libhello_erp.so` (`hello_erp.dll` on Windows). Then run the
//! host's conformance kit on it:
//! `ledgerlink plugins check target/release/libhello_erp.so --settings settings.example.json`.

pub mod data;

use ledgerlink_plugin_api::canonical::{Company, RecordBatch};
use ledgerlink_plugin_api::sdk::{batches_of, Batches, Capability, ExtractRequest, Host, Manifest, Plugin};
use ledgerlink_plugin_api::{export_plugin, Entity, ErrorKind, PluginError};
use serde::Deserialize;

/// Settings of a hello-erp source, as written in the host's configuration.
///
/// `deny_unknown_fields` turns a typo in the configuration into a clear error
/// instead of a silently ignored setting.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Which of the built-in companies to show; all of them when absent.
    #[serde(default)]
    pub companies: Option<Vec<String>>,
    /// Records per batch. Real plugins pick thousands: one boundary call per batch.
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
}

fn default_batch_size() -> usize {
    5_000
}

/// The plugin itself: whatever a source needs between calls (a connection pool,
/// an HTTP client, …). Here: the settings and the host handle for logging.
pub struct HelloErp {
    settings: Settings,
    host: Host,
}

impl HelloErp {
    /// Fails with a helpful error when asked for a company this source does not show.
    fn company(&self, id: &str) -> Result<Company, PluginError> {
        self.companies()?.into_iter().find(|c| c.id == id).ok_or_else(|| {
            PluginError::new(
                ErrorKind::NOT_FOUND,
                format!("hello-erp has no company `{id}`"),
                "Use one of the companies listed by `ledgerlink plugins check` (1 or 2).",
            )
        })
    }
}

impl Plugin for HelloErp {
    type Settings = Settings;

    fn manifest() -> Manifest {
        Manifest {
            // The id is how configurations refer to the plugin: keep it stable forever.
            id: "hello-erp".into(),
            display_name: "Hello ERP (example)".into(),
            // The plugin's own version; the host shows it and reports it to the hub.
            version: env!("CARGO_PKG_VERSION").into(),
            // Filled in by the SDK with the plugin-api version you build against.
            api_version: String::new(),
            // Reported in the host's User-Agent, so support sees which ERP runs where.
            erp_system: "Hello ERP 1.0".into(),
            entities: Entity::ALL.to_vec(),
            capabilities: vec![Capability::Extract, Capability::ChangeToken],
            // A JSON Schema of `Settings`, so setup tools can render a form for it.
            settings_schema: serde_json_schema(),
        }
    }

    fn open(settings: Settings, host: Host) -> Result<Self, PluginError> {
        // Validate settings here, with an error a person can act on.
        if settings.batch_size == 0 {
            return Err(PluginError::new(
                ErrorKind::INVALID_SETTINGS,
                "batch_size must be at least 1",
                "Set `batch_size` to a few thousand, or remove it to use the default.",
            ));
        }
        // Logging goes through the host: a plugin's own `tracing` would go nowhere.
        host.debug("hello-erp source opened");
        Ok(HelloErp { settings, host })
    }

    fn check(&self) -> Result<String, PluginError> {
        // A real plugin connects here and reports what it found (server version, …).
        Ok(format!("Hello ERP in-memory database, {} companies", data::COMPANIES.len()))
    }

    fn companies(&self) -> Result<Vec<Company>, PluginError> {
        let all = data::companies();
        Ok(match &self.settings.companies {
            Some(wanted) => all.into_iter().filter(|c| wanted.contains(&c.id)).collect(),
            None => all,
        })
    }

    fn change_token(&self, company: &str, fiscal_year: i32) -> Result<String, PluginError> {
        // A change token must be cheap (an ODBC plugin uses MAX(change stamp),
        // COUNT(*) and SUM(amount) over an index) and must change whenever any row
        // of that company's year changes. Our data never changes, so a digest of
        // what we would send is both cheap and correct.
        self.company(company)?;
        let lines = data::voucher_lines(company, fiscal_year);
        let sum: ledgerlink_plugin_api::canonical::Decimal = lines.iter().map(|l| l.amount.abs()).sum();
        Ok(format!("v1:{}:{}", lines.len(), sum))
    }

    fn extract(&self, request: &ExtractRequest) -> Result<Batches, PluginError> {
        self.company(&request.company)?;
        let (company, year, size) = (request.company.as_str(), request.fiscal_year, self.settings.batch_size);
        self.host.debug(&format!("extracting {} of company {company}, {year}", request.entity));
        // Hand the host an iterator of batches. A database plugin streams here
        // (one fetch of a few thousand rows per batch) instead of loading all rows;
        // `batches_of` is the helper for data that is already in memory.
        Ok(match request.entity {
            Entity::Accounts => batches_of(data::accounts(company), size, RecordBatch::Accounts),
            Entity::Customers => batches_of(data::customers(company), size, RecordBatch::Customers),
            Entity::Suppliers => batches_of(data::suppliers(company), size, RecordBatch::Suppliers),
            Entity::DimensionTypes => batches_of(data::dimension_types(), size, RecordBatch::DimensionTypes),
            Entity::DimensionValues => {
                batches_of(data::dimension_values(), size, RecordBatch::DimensionValues)
            }
            Entity::TaxCodes => batches_of(data::tax_codes(), size, RecordBatch::TaxCodes),
            Entity::Vouchers => batches_of(data::vouchers(company, year), size, RecordBatch::Vouchers),
            Entity::VoucherLines => {
                batches_of(data::voucher_lines(company, year), size, RecordBatch::VoucherLines)
            }
        })
    }
}

/// The JSON Schema of [`Settings`], written by hand to keep the example free of
/// extra dependencies.
fn serde_json_schema() -> ledgerlink_plugin_api::sdk::JsonValue {
    ledgerlink_plugin_api::sdk::json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "hello-erp settings",
        "type": "object",
        "additionalProperties": false,
        "properties": {
            "companies": { "type": "array", "items": { "type": "string" }, "description": "Companies to show (default: all)" },
            "batch_size": { "type": "integer", "minimum": 1, "default": 5000, "description": "Records per batch" }
        }
    })
}

// The one line that makes this library a Ledgerlink plugin. It exports the root
// module the host looks for and wraps every call so a panic becomes an error.
export_plugin!(HelloErp);
