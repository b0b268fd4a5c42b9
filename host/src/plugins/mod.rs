//! Plugins: discovery, vetting in a child process, loading, and calling them.
//!
//! A file found in a plugin directory is never loaded into the host before a
//! short-lived child process (`ledgerlink plugin-probe`) has loaded it first:
//! `dlopen` of a damaged library can kill the loading process (SIGBUS), and that
//! must not be the host.

mod discovery;
mod error;
mod exit_status;
mod host_logger;
mod load;
mod probe;
mod source;
mod version;

pub use discovery::{discover, is_plugin_file};
pub use error::{LoadError, LoadErrorView, SourceError};
pub use exit_status::describe as describe_exit_status;
pub use load::LoadedPlugin;
pub use probe::{probe, run_probe_child, ProbeOutcome, PROBE_SUBCOMMAND};
pub use source::{BatchBytes, BatchIter, Extractor, PluginSource, RawBatches};
pub use version::{check_api_version, HOST_API_VERSION};

use ledgerlink_plugin_api::sdk::Manifest;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// What the host knows about one file in a plugin directory.
#[derive(Debug, Clone)]
pub struct PluginEntry {
    /// The file.
    pub path: PathBuf,
    /// Its manifest, or why it cannot be used.
    pub status: PluginStatus,
}

/// A usable plugin or the reason a file is not one.
#[derive(Debug, Clone)]
pub enum PluginStatus {
    /// Vetted and compatible.
    Ok {
        /// What the plugin says about itself.
        manifest: Manifest,
    },
    /// Not usable.
    Error {
        /// Why, and what to do.
        error: LoadError,
    },
}

/// Discovers and probes every plugin file in `dirs`, marking duplicate ids.
///
/// When several files provide one id, none of them is used: which one wins by
/// name or directory order would be an accident, and a copied example or an
/// old file left behind must not take over a source silently.
pub fn scan(dirs: &[PathBuf], probe_exe: &Path) -> Vec<PluginEntry> {
    let files: Vec<PathBuf> = dirs.iter().flat_map(|dir| discover(dir)).collect();
    let mut entries: Vec<PluginEntry> = std::thread::scope(|scope| {
        let handles: Vec<_> = files.iter().map(|path| scope.spawn(move || probe(probe_exe, path))).collect();
        files
            .iter()
            .zip(handles)
            .map(|(path, handle)| {
                let status = match handle.join().expect("probe thread does not panic") {
                    Ok(manifest) => PluginStatus::Ok { manifest },
                    Err(error) => PluginStatus::Error { error },
                };
                PluginEntry { path: path.clone(), status }
            })
            .collect()
    });
    let mut files_by_id: HashMap<String, Vec<PathBuf>> = HashMap::new();
    for entry in &entries {
        if let PluginStatus::Ok { manifest } = &entry.status {
            files_by_id.entry(manifest.id.clone()).or_default().push(entry.path.clone());
        }
    }
    for entry in &mut entries {
        let PluginStatus::Ok { manifest } = &entry.status else { continue };
        let files = &files_by_id[&manifest.id];
        if files.len() > 1 {
            let others = files.iter().filter(|p| **p != entry.path).cloned().collect();
            entry.status =
                PluginStatus::Error { error: LoadError::DuplicateId { id: manifest.id.clone(), others } };
        }
    }
    entries
}
