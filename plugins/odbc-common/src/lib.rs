//! Helpers shared by Ledgerlink's ODBC plugins (statically linked into each).
//!
//! - [`ConnectionSettings`]: the `connection` part of a plugin's settings, and the
//!   escaped ODBC connection string built from it (passwords never logged);
//! - [`Database`]: one connection, with error mapping to [`PluginError`]s that
//!   name the source and say what to do;
//! - [`ConnectionPool`]: connections kept open between a plugin instance's
//!   extractions (a connection costs ≈ 25 round trips);
//! - [`Database::stream`]: columnar bulk fetch into batches, with a buffer bounded
//!   in rows *and* bytes, cancellation and query timeouts ([`Database::stream_encoded`]
//!   writes each row straight into an encoded batch instead);
//! - [`stream_lanes`]: one large ordered read split into key ranges over parallel
//!   connections, the output unchanged;
//! - [`convert`]: the ERPs' encodings (int yyyymmdd dates, CHAR padding, exact decimals);
//! - [`ChangeToken`]: building change tokens from aggregate rows.

pub mod convert;
mod database;
mod errors;
mod lanes;
mod pool;
mod settings;
mod table_checks;
mod token;

pub use database::{Database, Row};
pub use errors::{missing_table_error, odbc_error};
pub use lanes::{stream_lanes, LaneRead};
pub use pool::ConnectionPool;
pub use settings::{ConnectionSettings, Dialect, Secret};
pub use table_checks::TableChecks;
pub use token::ChangeToken;

/// The manifest of an ODBC plugin: extract and change-token capabilities.
pub fn manifest(
    id: &str,
    version: &str,
    erp_system: &str,
    entities: Vec<ledgerlink_plugin_api::Entity>,
    settings_schema: ledgerlink_plugin_api::sdk::JsonValue,
) -> ledgerlink_plugin_api::Manifest {
    use ledgerlink_plugin_api::Capability;
    ledgerlink_plugin_api::Manifest {
        id: id.into(),
        display_name: erp_system.into(),
        version: version.into(),
        api_version: String::new(),
        erp_system: erp_system.into(),
        entities,
        capabilities: vec![Capability::Extract, Capability::ChangeToken],
        settings_schema,
    }
}

/// The error for an entity the ERP has no table for.
pub fn unsupported_entity(
    erp: &str,
    entity: ledgerlink_plugin_api::Entity,
) -> ledgerlink_plugin_api::PluginError {
    ledgerlink_plugin_api::PluginError::new(
        ledgerlink_plugin_api::ErrorKind::UNSUPPORTED,
        format!("{erp} has no {entity} table"),
        "Ask only for the entities in the plugin's manifest.",
    )
}

/// Checks an identifier taken from the database (schema or database names) before
/// it is put into SQL text: letters, digits and `_` only.
pub fn checked_identifier(name: &str) -> Result<&str, ledgerlink_plugin_api::PluginError> {
    let ok = !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(name)
    } else {
        Err(ledgerlink_plugin_api::PluginError::new(
            ledgerlink_plugin_api::ErrorKind::DATA,
            format!("the name `{name}` cannot be used in a query (only letters, digits and `_` are allowed)"),
            "Rename the database or schema, or exclude it from the source's companies.",
        ))
    }
}
