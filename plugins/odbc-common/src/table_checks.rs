//! Table checks remembered per database, for plugins that connect per extraction.

use crate::Database;
use ledgerlink_plugin_api::PluginError;
use std::collections::HashSet;
use std::sync::Mutex;

/// The databases whose required tables were found readable. A plugin opens a
/// connection per extraction, and checking five tables each time costs a dozen
/// round trips; with this each database is checked once per plugin instance.
#[derive(Debug, Default)]
pub struct TableChecks(Mutex<HashSet<String>>);

impl TableChecks {
    /// [`Database::require_tables`], unless `tables` of this database passed before.
    pub fn require(&self, db: &Database, erp: &str, tables: &[&str]) -> Result<(), PluginError> {
        let key = format!("{}\u{0}{}", db.place(), tables.join(","));
        if self.0.lock().unwrap_or_else(|e| e.into_inner()).contains(&key) {
            return Ok(());
        }
        db.require_tables(erp, tables)?;
        self.0.lock().unwrap_or_else(|e| e.into_inner()).insert(key);
        Ok(())
    }
}
