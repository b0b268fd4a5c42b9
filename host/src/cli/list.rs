//! `ledgerlink plugins list`.

use crate::exit::Exit;
use crate::plugins::{scan, LoadErrorView, PluginStatus};
use serde_json::json;
use std::path::{Path, PathBuf};

/// Lists the plugin files of `dirs`; exit 1 when any file is unusable or a
/// directory does not exist.
pub fn run(dirs: &[PathBuf], probe_exe: &Path, as_json: bool) -> Exit {
    let entries = scan(dirs, probe_exe);
    let broken = entries.iter().filter(|e| matches!(e.status, PluginStatus::Error { .. })).count();
    let missing: Vec<&PathBuf> = dirs.iter().filter(|d| !d.is_dir()).collect();
    for dir in &missing {
        eprintln!(
            "The plugin directory {} does not exist. Resolution: create it and copy the plugin files there, \
             or correct `plugins.directories` (or --plugin-dir).",
            dir.display()
        );
    }
    if as_json {
        let plugins: Vec<_> = entries
            .iter()
            .map(|e| match &e.status {
                PluginStatus::Ok { manifest } => json!({
                    "path": e.path, "status": "ok", "id": manifest.id, "display_name": manifest.display_name,
                    "version": manifest.version, "api_version": manifest.api_version,
                    "erp_system": manifest.erp_system, "entities": manifest.entities,
                    "capabilities": manifest.capabilities,
                }),
                PluginStatus::Error { error } => json!({
                    "path": e.path, "status": "error", "error": LoadErrorView::from(error),
                }),
            })
            .collect();
        outln!("{}", serde_json::to_string_pretty(&json!({ "plugins": plugins })).expect("json"));
    } else if entries.is_empty() {
        let shown: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
        outln!("No plugin files (*.so, *.dll, *.dylib) in {}.", shown.join(", "));
    } else {
        outln!("{:<20} {:<10} {:<8} {:<24} {:<6} PATH", "PLUGIN", "VERSION", "API", "ERP SYSTEM", "STATUS");
        for e in &entries {
            match &e.status {
                PluginStatus::Ok { manifest: m } => outln!(
                    "{:<20} {:<10} {:<8} {:<24} {:<6} {}",
                    m.id,
                    m.version,
                    m.api_version,
                    m.erp_system,
                    "ok",
                    e.path.display()
                ),
                PluginStatus::Error { error } => {
                    outln!(
                        "{:<20} {:<10} {:<8} {:<24} {:<6} {}",
                        "-",
                        "-",
                        "-",
                        "-",
                        "error",
                        e.path.display()
                    );
                    outln!("    {error}");
                    outln!("    Resolution: {}", error.resolution());
                }
            }
        }
        if broken > 0 {
            outln!("\n{broken} of {} files cannot be used as plugins (see above).", entries.len());
        }
    }
    if broken > 0 || !missing.is_empty() {
        Exit::Problems
    } else {
        Exit::Success
    }
}
