//! The `abi_stable` boundary between host and plugin.
//!
//! Partners do not use this module directly: [`crate::sdk`] implements it for
//! them. The host uses it to load plugins. Everything here is `#[repr(C)]` and
//! checked by `abi_stable` at load time; the root module and the trait objects are
//! prefix types, so fields and methods can be appended in later minor versions.
//!
//! Canonical records cross the boundary as postcard-encoded [`RecordBatch`]es in
//! an `RVec<u8>` (one call per batch of thousands of records, never per row); the
//! manifest and settings cross as JSON. See `docs/decisions/0002-batch-encoding.md`.
//!
//! [`RecordBatch`]: crate::canonical::RecordBatch

// The derive and attribute macros of abi_stable generate items without docs, and
// their expansions implement unsafe traits: this module is the plugin boundary,
// the one place where that is expected. abi_stable checks every layout at load.
#![allow(missing_docs, unsafe_code, non_local_definitions)]

use abi_stable::{
    declare_root_module_statics,
    library::RootModule,
    package_version_strings, sabi_trait,
    sabi_types::VersionStrings,
    std_types::{RArc, RBox, ROption, RResult, RStr, RString, RVec},
    StableAbi,
};
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};

/// The version of this crate, which a plugin is built against and the host checks
/// with semver's caret rule (`^plugin_version` must match the host's version).
pub const API_VERSION: &str = env!("CARGO_PKG_VERSION");

/// The exported symbol `abi_stable` looks up in every plugin library.
pub const ROOT_MODULE_SYMBOL: &str = abi_stable::library::ROOT_MODULE_LOADER_NAME;

/// The root module every plugin exports.
#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = PluginModuleRef)))]
#[sabi(missing_field(panic))]
pub struct PluginModule {
    /// The plugin's [`Manifest`](crate::sdk::Manifest) as JSON.
    pub manifest_json: extern "C" fn() -> RResult<RString, PluginError>,
    /// Opens a source with settings given as a JSON object.
    #[sabi(last_prefix_field)]
    pub open: extern "C" fn(settings_json: RStr<'_>, host: HostContext) -> RResult<SourceBox, PluginError>,
}

impl RootModule for PluginModuleRef {
    declare_root_module_statics! {PluginModuleRef}
    const BASE_NAME: &'static str = "ledgerlink_plugin";
    const NAME: &'static str = "ledgerlink_plugin";
    const VERSION_STRINGS: VersionStrings = package_version_strings!();
}

/// What the host hands a plugin when it opens a source.
#[repr(C)]
#[derive(StableAbi, Clone)]
pub struct HostContext {
    /// Where the plugin's log lines go (they end up in the host's `tracing`).
    pub logger: HostLoggerBox,
}

/// Severity of a plugin log line.
#[repr(u8)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    /// Something failed.
    Error,
    /// Something is off but work goes on.
    Warn,
    /// Normal progress.
    Info,
    /// Detail for debugging.
    Debug,
    /// Very detailed tracing.
    Trace,
}

/// Receives plugin log lines on the host side.
#[sabi_trait]
pub trait HostLogger: Send + Sync + Clone {
    /// Logs one line.
    #[sabi(last_prefix_field)]
    fn log(&self, level: LogLevel, message: RStr<'_>);
}

/// A host logger as passed across the boundary.
pub type HostLoggerBox = HostLogger_TO<'static, RArc<()>>;

/// A flag the host sets to ask a running extraction to stop.
#[repr(transparent)]
#[derive(StableAbi, Clone, Default)]
pub struct CancelFlag(RArc<AtomicBool>);

impl CancelFlag {
    /// A new, unset flag.
    pub fn new() -> Self {
        Self::default()
    }

    /// Asks the plugin to stop as soon as it can.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    /// True once the host asked to stop.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

impl fmt::Debug for CancelFlag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CancelFlag({})", self.is_cancelled())
    }
}

/// An opened source of one plugin, as seen across the boundary.
#[sabi_trait]
pub trait SourceFfi: Send + Sync {
    /// Tests the connection; returns a human description (e.g. the server version).
    fn check(&self) -> RResult<RString, PluginError>;

    /// The companies the source can see, postcard-encoded `Vec<Company>`.
    fn companies(&self) -> RResult<RVec<u8>, PluginError>;

    /// A cheap fingerprint of one company's fiscal year; equal tokens mean unchanged data.
    fn change_token(&self, company: RStr<'_>, fiscal_year: i32) -> RResult<RString, PluginError>;

    /// Starts extracting one entity of one company and fiscal year.
    #[sabi(last_prefix_field)]
    fn extract(
        &self,
        company: RStr<'_>,
        entity: RStr<'_>,
        fiscal_year: i32,
        cancel: CancelFlag,
    ) -> RResult<BatchStreamBox, PluginError>;
}

/// A source as passed across the boundary.
pub type SourceBox = SourceFfi_TO<'static, RBox<()>>;

/// A stream of batches of one extraction.
#[sabi_trait]
pub trait BatchStreamFfi: Send {
    /// The next postcard-encoded [`RecordBatch`](crate::canonical::RecordBatch), or none at the end.
    #[sabi(last_prefix_field)]
    fn next_batch(&mut self) -> RResult<ROption<RVec<u8>>, PluginError>;
}

/// A batch stream as passed across the boundary.
pub type BatchStreamBox = BatchStreamFfi_TO<'static, RBox<()>>;

/// What went wrong, as a number that stays stable when kinds are added.
#[repr(transparent)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ErrorKind(pub u32);

impl ErrorKind {
    /// The ERP or its database cannot be reached.
    pub const CONNECTION: ErrorKind = ErrorKind(1);
    /// The ERP refused the credentials.
    pub const AUTHENTICATION: ErrorKind = ErrorKind(2);
    /// The settings are missing or malformed.
    pub const INVALID_SETTINGS: ErrorKind = ErrorKind(3);
    /// A company, table or entity the request needs does not exist.
    pub const NOT_FOUND: ErrorKind = ErrorKind(4);
    /// The plugin cannot do what was asked (e.g. an entity it does not extract).
    pub const UNSUPPORTED: ErrorKind = ErrorKind(5);
    /// The host cancelled the work.
    pub const CANCELLED: ErrorKind = ErrorKind(6);
    /// The ERP did not answer in time.
    pub const TIMEOUT: ErrorKind = ErrorKind(7);
    /// The ERP returned data the plugin cannot convert.
    pub const DATA: ErrorKind = ErrorKind(8);
    /// The plugin panicked (a bug in the plugin); the SDK caught it.
    pub const PANIC: ErrorKind = ErrorKind(9);
    /// Any other failure inside the plugin.
    pub const INTERNAL: ErrorKind = ErrorKind(10);

    /// A stable snake_case name, "other" for kinds this version does not know.
    pub fn name(self) -> &'static str {
        match self.0 {
            1 => "connection",
            2 => "authentication",
            3 => "invalid_settings",
            4 => "not_found",
            5 => "unsupported",
            6 => "cancelled",
            7 => "timeout",
            8 => "data",
            9 => "panic",
            10 => "internal",
            _ => "other",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An error a plugin reports: what happened, and what a person can do about it.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq, Eq)]
pub struct PluginError {
    /// Category, for retry decisions and exit codes.
    pub kind: ErrorKind,
    /// What happened, in one sentence; never contains a secret.
    pub message: RString,
    /// What to do about it ("Check that the SQL Server service is running…").
    pub resolution: RString,
}

impl PluginError {
    /// An error of the given kind.
    pub fn new(kind: ErrorKind, message: impl Into<String>, resolution: impl Into<String>) -> Self {
        Self { kind, message: RString::from(message.into()), resolution: RString::from(resolution.into()) }
    }
}

impl fmt::Display for PluginError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.message)?;
        if !self.resolution.is_empty() {
            write!(f, " Resolution: {}", self.resolution)?;
        }
        Ok(())
    }
}

impl std::error::Error for PluginError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sdk_macro_exports_the_symbol_abi_stable_looks_for() {
        assert_eq!(crate::sdk::ROOT_SYMBOL_LITERAL, ROOT_MODULE_SYMBOL);
    }

    #[test]
    fn error_kinds_have_stable_names() {
        assert_eq!(ErrorKind::PANIC.name(), "panic");
        assert_eq!(ErrorKind(999).name(), "other");
    }
}
