//! Turning ODBC errors into plugin errors a person can act on.

use ledgerlink_plugin_api::{ErrorKind, PluginError};

/// Classifies an ODBC error raised while `doing` something against `place`
/// (e.g. "connecting", "database F0001 on erp-sql:1433").
///
/// The driver's own words are kept (they are the most precise), but any
/// occurrence of `password` is removed from them first.
pub fn odbc_error(error: &odbc_api::Error, doing: &str, place: &str, password: Option<&str>) -> PluginError {
    if let odbc_api::Error::TooLargeValueForBuffer { .. } = error {
        return PluginError::new(
            ErrorKind::DATA,
            format!("{doing} {place} failed: a value is longer than the fetch buffer allows"),
            "Report the table and column to the plugin's vendor; the buffer limit is 4096 bytes per value.",
        );
    }
    let (state, text) = match error {
        odbc_api::Error::Diagnostics { record, .. } => {
            (String::from_utf8_lossy(&record.state.0).into_owned(), record.to_string())
        }
        other => (String::new(), other.to_string()),
    };
    let mut text = text.replace('\n', " ");
    if let Some(password) = password.filter(|p| !p.is_empty()) {
        text = text.replace(password, "***");
    }
    let lower = text.to_ascii_lowercase();
    let (kind, resolution) = if state == "28000"
        || lower.contains("password authentication failed")
        || lower.contains("login failed")
        || lower.contains("authentication failed")
    {
        (
            ErrorKind::AUTHENTICATION,
            "Check the user name and password in the source's connection settings, and that the login is allowed \
             on the database server.",
        )
    } else if state == "IM002"
        || lower.contains("data source name not found")
        || lower.contains("can't open lib")
    {
        (
            ErrorKind::INVALID_SETTINGS,
            "Install the ODBC driver, or correct `connection.driver` to a name listed by `odbcinst -q -d`.",
        )
    } else if state == "HYT00"
        || state == "HYT01"
        || lower.contains("timeout expired")
        || lower.contains("canceling statement due to statement timeout")
    {
        (
            ErrorKind::TIMEOUT,
            "The database did not answer in time. Check the server's load, or raise `connection.query_timeout_secs`.",
        )
    } else if lower.contains("does not exist") && lower.contains("database") {
        (ErrorKind::NOT_FOUND, "Check the database name, and that the login may connect to it.")
    } else if state == "53300"
        || lower.contains("too many connections")
        || lower.contains("too many clients")
        || lower.contains("remaining connection slots are reserved")
        || (lower.contains("maximum number of") && lower.contains("connections"))
    {
        (
            ErrorKind::CONNECTION,
            "The database server takes no more connections from this login or to this database. Lower \
             `connection.lanes` (each lane reads over a connection of its own; 1 reads over one), or ask the \
             database administrator to raise the limit.",
        )
    } else if state.starts_with("08")
        || lower.contains("could not connect")
        || lower.contains("connection refused")
        || lower.contains("server closed the connection")
        || lower.contains("terminating connection")
        || lower.contains("no connection to the server")
    {
        (
            ErrorKind::CONNECTION,
            "Check that the database server is running and reachable from this machine (host, port, firewall), \
             then run the sync again.",
        )
    } else if state == "42S02" || state == "42P01" || lower.contains("no such table") {
        (
            ErrorKind::NOT_FOUND,
            "A table this plugin reads is missing: check that the source points at the right ERP and database.",
        )
    } else if state == "42501" || lower.contains("permission denied") {
        (
            ErrorKind::AUTHENTICATION,
            "Grant the login SELECT on the ERP's tables (see the plugin's documentation for the read-only login).",
        )
    } else {
        (ErrorKind::CONNECTION, "Check the database server's log for the statement, then run the sync again.")
    };
    PluginError::new(kind, format!("{doing} {place} failed: {text}"), resolution)
}

/// The error for an ERP table that does not exist: names the table and the ERP.
pub fn missing_table_error(table: &str, erp: &str, place: &str) -> PluginError {
    PluginError::new(
        ErrorKind::NOT_FOUND,
        format!("table `{table}` does not exist in {place} (or the login may not read it), so this is not a {erp} database"),
        format!(
            "Check that the source uses the plugin for the ERP that owns this database, and that the connection \
             points at the right database or schema. {erp} keeps `{table}` in every company database."
        ),
    )
}
