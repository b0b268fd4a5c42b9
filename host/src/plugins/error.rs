//! Errors of loading plugins and of calling them, each with a resolution for people.

use ledgerlink_plugin_api::{ErrorKind, PluginError};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::PathBuf;

/// Why a file in a plugin directory cannot be used as a plugin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum LoadError {
    /// The file could not be opened as a shared library.
    #[error("not a loadable library: {detail}")]
    NotALibrary {
        /// The loader's own words.
        detail: String,
    },
    /// Loading the file killed the probe process (typically a truncated or corrupt file).
    #[error("loading the file crashed a probe process ({how}); the file is damaged, e.g. truncated by an interrupted copy")]
    Crashed {
        /// "signal 7 (SIGBUS)" or "exit code 101".
        how: String,
    },
    /// The plugin's own code panicked (with `panic = "abort"`, or in a library
    /// constructor) while it was loaded: a bug in the plugin, not a damaged file.
    #[error(
        "the plugin's code panicked while it was loaded, which ended the probe process ({how}): {panic}"
    )]
    Panicked {
        /// "signal 6 (SIGABRT)" or "exit code 101".
        how: String,
        /// The panic message, from the probe's stderr.
        panic: String,
    },
    /// Loading the file did not finish in time.
    #[error("loading the file did not finish within {secs} s (a damaged file, or plugin code that blocks while it is loaded)")]
    Hung {
        /// The limit that was exceeded.
        secs: u64,
    },
    /// The library is not a Ledgerlink plugin.
    #[error("the library exports no Ledgerlink plugin (root module symbol missing): {detail}")]
    MissingRootModule {
        /// The loader's own words.
        detail: String,
    },
    /// Built against a plugin-api this host cannot load.
    #[error("plugin was built against plugin-api {plugin}, but this host provides plugin-api {host}")]
    IncompatibleApi {
        /// The plugin's plugin-api version.
        plugin: String,
        /// The host's plugin-api version.
        host: String,
    },
    /// abi_stable found a layout that differs from the host's.
    #[error("the plugin's binary interface does not match the host's: {detail}")]
    AbiMismatch {
        /// abi_stable's description of the difference.
        detail: String,
    },
    /// The plugin failed while initializing or describing itself.
    #[error("the plugin failed to initialize: {detail}")]
    InitFailed {
        /// What the plugin or loader said.
        detail: String,
    },
    /// The plugin's manifest is unusable.
    #[error("the plugin's manifest is invalid: {detail}")]
    InvalidManifest {
        /// What is wrong with it.
        detail: String,
    },
    /// Other files provide a plugin with the same id: none of them is used.
    #[error("duplicate plugin id `{id}`: also provided by {}; none of these files is used", others.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "))]
    DuplicateId {
        /// The id.
        id: String,
        /// The other files that provide it.
        others: Vec<PathBuf>,
    },
    /// The probe process could not be run or answered nonsense.
    #[error("the plugin could not be probed: {detail}")]
    ProbeFailed {
        /// What went wrong.
        detail: String,
    },
}

impl LoadError {
    /// A stable snake_case name of the error kind.
    pub fn kind(&self) -> &'static str {
        match self {
            LoadError::NotALibrary { .. } => "not_a_library",
            LoadError::Crashed { .. } => "crashed",
            LoadError::Panicked { .. } => "panicked",
            LoadError::Hung { .. } => "hung",
            LoadError::MissingRootModule { .. } => "missing_root_module",
            LoadError::IncompatibleApi { .. } => "incompatible_api",
            LoadError::AbiMismatch { .. } => "abi_mismatch",
            LoadError::InitFailed { .. } => "init_failed",
            LoadError::InvalidManifest { .. } => "invalid_manifest",
            LoadError::DuplicateId { .. } => "duplicate_id",
            LoadError::ProbeFailed { .. } => "probe_failed",
        }
    }

    /// What a person can do about it.
    pub fn resolution(&self) -> String {
        match self {
            LoadError::NotALibrary { .. } => format!(
                "Remove the file from the plugin directory, or replace it with a plugin built for {}-{}.",
                std::env::consts::ARCH,
                std::env::consts::OS
            ),
            LoadError::Panicked { .. } => "Report it to the plugin's vendor with this message. If you build \
                the plugin: fix the panic, return the manifest without I/O, and keep `panic = \"unwind\"` in \
                every profile (the SDK contains panics only when they unwind)."
                .into(),
            LoadError::Crashed { .. } | LoadError::Hung { .. } => {
                "Copy the plugin file again from its original package (compare its checksum), then run \
                 `ledgerlink plugins list` again."
                    .into()
            }
            LoadError::MissingRootModule { .. } => "If you build this plugin, export it with \
                `ledgerlink_plugin_api::export_plugin!(YourType);`. Otherwise remove the file from the plugin directory."
                .into(),
            LoadError::IncompatibleApi { plugin, host } => format!(
                "Install a plugin release built against plugin-api ^{host}, or a host release that provides \
                 plugin-api ^{plugin}. Plugin authors: rebuild against ledgerlink-plugin-api {host}."
            ),
            LoadError::AbiMismatch { .. } => {
                "Rebuild the plugin against the ledgerlink-plugin-api release this host provides.".into()
            }
            LoadError::InitFailed { .. } | LoadError::InvalidManifest { .. } => "If you build this plugin, fix \
                what the message names in its `manifest()`; otherwise report it to the plugin's vendor."
                .into(),
            LoadError::DuplicateId { .. } => "Keep one file per plugin id: remove the others from the plugin \
                directories (a copied or renamed plugin must change its id), and sources of this id run again."
                .into(),
            LoadError::ProbeFailed { .. } => {
                "Check that the ledgerlink executable can be started and that the plugin file is readable.".into()
            }
        }
    }
}

/// A plugin call failed; the message names the plugin and what it was doing.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SourceError {
    /// The plugin reported an error (a caught panic included).
    #[error("plugin `{plugin}` failed in {operation}: {error}")]
    Plugin {
        /// The plugin's id.
        plugin: String,
        /// What the host asked, e.g. "extract voucher_lines (company 1, 2025)".
        operation: String,
        /// The plugin's error.
        error: PluginError,
    },
    /// The plugin's worker process died or was killed by its supervisor.
    #[error("plugin `{plugin}` {reason} (during {operation}). Resolution: the job fails and is retried by the \
             source's retry policy; if it keeps happening, report it to the plugin's vendor with the host log")]
    Crashed {
        /// The plugin's id.
        plugin: String,
        /// What the host asked.
        operation: String,
        /// "crashed: signal 11 (SIGSEGV)", "killed: it made no progress for 300 s", …
        reason: String,
    },
    /// The plugin sent bytes that are not canonical records.
    #[error("plugin `{plugin}` sent malformed data in {operation}: {detail}. Resolution: report this to the plugin's vendor.")]
    Malformed {
        /// The plugin's id.
        plugin: String,
        /// What the host asked.
        operation: String,
        /// The decoder's words.
        detail: String,
    },
}

impl SourceError {
    /// The plugin's error kind, or `DATA` for malformed data.
    pub fn kind(&self) -> ErrorKind {
        match self {
            SourceError::Plugin { error, .. } => error.kind,
            SourceError::Malformed { .. } => ErrorKind::DATA,
            SourceError::Crashed { .. } => ErrorKind::INTERNAL,
        }
    }
}

/// `LoadError` as shown to people and in JSON output: kind, message, resolution.
#[derive(Debug, Clone, Serialize)]
pub struct LoadErrorView {
    /// Stable kind name.
    pub kind: &'static str,
    /// What happened.
    pub message: String,
    /// What to do.
    pub resolution: String,
}

impl From<&LoadError> for LoadErrorView {
    fn from(e: &LoadError) -> Self {
        Self { kind: e.kind(), message: e.to_string(), resolution: e.resolution() }
    }
}

impl fmt::Display for LoadErrorView {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} Resolution: {}", self.message, self.resolution)
    }
}
