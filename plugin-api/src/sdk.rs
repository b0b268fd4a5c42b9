//! The plugin SDK: implement [`Plugin`] for a plain Rust type, then call
//! [`export_plugin!`](crate::export_plugin) once.
//!
//! The SDK turns the trait into the `abi_stable` root module the host loads, and
//! wraps every entry point so that a panic inside the plugin becomes a
//! [`PluginError`] of kind [`ErrorKind::PANIC`] instead of aborting the host (a
//! panic unwinding through an `extern "C"` boundary aborts the process).

use crate::abi::{
    BatchStreamBox, BatchStreamFfi, BatchStreamFfi_TO, CancelFlag, ErrorKind, HostContext, HostLoggerBox,
    LogLevel, PluginError, PluginModule, PluginModuleRef, SourceBox, SourceFfi, SourceFfi_TO, API_VERSION,
};
use crate::canonical::{decode_batch, encode_batch_into, encode_companies, Company, Entity, RecordBatch};
use abi_stable::{
    prefix_type::PrefixTypeTrait,
    sabi_trait::TD_Opaque,
    std_types::{RErr, ROk, RResult, RStr, RString, RVec},
};
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};

pub use crate::abi::CancelFlag as Cancel;
/// JSON values and the `json!` macro, for settings schemas.
pub use serde_json::{json, Value as JsonValue};

/// The name [`export_plugin!`](crate::export_plugin) exports the root module under;
/// equal to `abi_stable::library::ROOT_MODULE_LOADER_NAME` (a unit test checks).
#[doc(hidden)]
pub const ROOT_SYMBOL_LITERAL: &str = "_1as_0lib_1header_0root_bmodule_bloader";

/// What a plugin can do besides extracting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Capability {
    /// Extracts canonical entities.
    Extract,
    /// Computes cheap change tokens, so unchanged years are skipped.
    ChangeToken,
    /// Can write documents back into the ERP (download direction).
    WriteBack,
}

/// What a plugin tells the host about itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Stable, unique id (lower-case, dashes), e.g. `visma-business`.
    pub id: String,
    /// Name shown to people.
    pub display_name: String,
    /// The plugin's own version (semver).
    pub version: String,
    /// The plugin-api version the plugin was built against (filled in by the SDK).
    #[serde(default)]
    pub api_version: String,
    /// The ERP system, as reported in the host's User-Agent.
    pub erp_system: String,
    /// The entities [`Plugin::extract`] supports.
    pub entities: Vec<Entity>,
    /// What else the plugin can do.
    pub capabilities: Vec<Capability>,
    /// JSON Schema of the plugin's settings, so setup tools can render its fields.
    pub settings_schema: serde_json::Value,
}

/// The services the host offers a plugin: for now, logging.
///
/// A plugin's own `tracing` or `log` output goes nowhere (a shared library has its
/// own copy of their globals); log through this handle instead.
#[derive(Clone)]
pub struct Host {
    logger: HostLoggerBox,
}

impl Host {
    /// Logs a line at the given level; it reaches the host's log tagged with the plugin.
    pub fn log(&self, level: LogLevel, message: &str) {
        self.logger.log(level, RStr::from(message));
    }

    /// Logs at info level.
    pub fn info(&self, message: &str) {
        self.log(LogLevel::Info, message);
    }

    /// Logs at warn level.
    pub fn warn(&self, message: &str) {
        self.log(LogLevel::Warn, message);
    }

    /// Logs at debug level.
    pub fn debug(&self, message: &str) {
        self.log(LogLevel::Debug, message);
    }
}

/// One extraction: an entity of a company's fiscal year.
#[derive(Debug, Clone)]
pub struct ExtractRequest {
    /// Company id as returned by [`Plugin::companies`].
    pub company: String,
    /// What to extract.
    pub entity: Entity,
    /// Fiscal year. Master data (accounts, parties, …) is returned whole for any year.
    pub fiscal_year: i32,
    /// Set by the host to stop early; check it between batches of long work.
    pub cancel: CancelFlag,
}

/// The batches of one extraction. Each batch should hold thousands of records.
pub type Batches = Box<dyn Iterator<Item = Result<RecordBatch, PluginError>> + Send>;

/// A batch encoded for the plugin boundary, as [`Plugin::extract_encoded`] returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedBatch {
    entity: Entity,
    bytes: Vec<u8>,
}

impl EncodedBatch {
    /// Encodes a batch of records.
    pub fn encode(batch: &RecordBatch) -> Self {
        Self::encode_with_capacity(batch, 0)
    }

    /// Encodes into a buffer of `capacity` bytes (room for it avoids regrowing).
    fn encode_with_capacity(batch: &RecordBatch, capacity: usize) -> Self {
        Self { entity: batch.entity(), bytes: encode_batch_into(batch, Vec::with_capacity(capacity)) }
    }

    /// Bytes that [`encode_batch`](crate::canonical::encode_batch) made of a batch
    /// of `entity` records, passed on as they are (e.g. read back from the
    /// plugin's own spill file). The host decodes and checks them like any batch.
    pub fn from_encoded(entity: Entity, bytes: Vec<u8>) -> Self {
        Self { entity, bytes }
    }

    /// The entity of the records.
    pub fn entity(&self) -> Entity {
        self.entity
    }

    /// The encoded bytes.
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }
}

/// The encoded batches of one extraction.
pub type EncodedBatches = Box<dyn Iterator<Item = Result<EncodedBatch, PluginError>> + Send>;

/// Encodes a stream of batches, as [`Plugin::extract_encoded`] does by default.
pub fn encoded(batches: Batches) -> EncodedBatches {
    // Each buffer starts a bit larger than the last batch's bytes, so encoding
    // rarely grows (and copies) it.
    let mut last_bytes = 0;
    Box::new(batches.map(move |batch| {
        let encoded = EncodedBatch::encode_with_capacity(&batch?, last_bytes + last_bytes / 8);
        last_bytes = encoded.bytes.len();
        Ok(encoded)
    }))
}

/// Decodes a stream of encoded batches (for a plugin whose [`Plugin::extract`]
/// serves an entity through its [`Plugin::extract_encoded`]).
pub fn decoded(batches: EncodedBatches) -> Batches {
    Box::new(batches.map(|batch| {
        decode_batch(&batch?.bytes).map_err(|e| {
            PluginError::new(
                ErrorKind::INTERNAL,
                format!("the plugin's own encoded batch does not decode: {e}"),
                "This is a bug in the plugin. Report it to the plugin's vendor.",
            )
        })
    }))
}

/// The trait a partner implements. Calls are synchronous; the host runs them on a
/// thread of its own, possibly several sources at once (hence `Send + Sync`).
pub trait Plugin: Send + Sync + Sized + 'static {
    /// The plugin's settings, deserialized from the JSON object the host passes.
    type Settings: DeserializeOwned;

    /// Describes the plugin. Called before any source is opened.
    fn manifest() -> Manifest;

    /// Opens a source. Keep it cheap: connect lazily or in [`Plugin::check`].
    fn open(settings: Self::Settings, host: Host) -> Result<Self, PluginError>;

    /// Tests the connection and returns a human description of what is on the other side.
    fn check(&self) -> Result<String, PluginError>;

    /// The companies this source can see.
    fn companies(&self) -> Result<Vec<Company>, PluginError>;

    /// A cheap fingerprint of a company's fiscal year that changes whenever its data does.
    fn change_token(&self, company: &str, fiscal_year: i32) -> Result<String, PluginError>;

    /// Extracts one entity as a stream of batches. Voucher lines of one voucher must
    /// be contiguous (they are checked to balance as they stream by).
    fn extract(&self, request: &ExtractRequest) -> Result<Batches, PluginError>;

    /// [`Plugin::extract`] with the batches already encoded: what the host calls.
    /// The default encodes `extract`'s batches; override it to pass on batches the
    /// plugin encoded itself (e.g. spilled to a temporary file) without decoding
    /// and encoding them again.
    fn extract_encoded(&self, request: &ExtractRequest) -> Result<EncodedBatches, PluginError> {
        Ok(encoded(self.extract(request)?))
    }
}

/// Splits records into batches of `batch_size`: a helper for plugins that hold
/// their records in memory.
pub fn batches_of<T: Send + 'static>(
    records: Vec<T>,
    batch_size: usize,
    wrap: fn(Vec<T>) -> RecordBatch,
) -> Batches {
    let batch_size = batch_size.max(1);
    let mut records = records.into_iter().peekable();
    Box::new(std::iter::from_fn(move || {
        records.peek()?;
        Some(Ok(wrap(records.by_ref().take(batch_size).collect())))
    }))
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic with a non-text payload".to_owned())
}

/// Runs one plugin entry point, turning a panic into an error.
fn guard<T>(entry_point: &str, f: impl FnOnce() -> Result<T, PluginError>) -> RResult<T, PluginError> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(value)) => ROk(value),
        Ok(Err(error)) => RErr(error),
        Err(payload) => RErr(PluginError::new(
            ErrorKind::PANIC,
            format!("the plugin panicked in {entry_point}: {}", panic_message(payload.as_ref())),
            "This is a bug in the plugin. Report it to the plugin's vendor together with the host log; \
             other sources keep running.",
        )),
    }
}

/// The SDK's implementation of the boundary trait for a partner's plugin.
struct SourceAdapter<P: Plugin> {
    plugin: P,
}

impl<P: Plugin> SourceFfi for SourceAdapter<P> {
    fn check(&self) -> RResult<RString, PluginError> {
        guard("check", || self.plugin.check().map(RString::from))
    }

    fn companies(&self) -> RResult<RVec<u8>, PluginError> {
        guard("companies", || self.plugin.companies().map(|c| RVec::from(encode_companies(&c))))
    }

    fn change_token(&self, company: RStr<'_>, fiscal_year: i32) -> RResult<RString, PluginError> {
        guard("change_token", || self.plugin.change_token(company.as_str(), fiscal_year).map(RString::from))
    }

    fn extract(
        &self,
        company: RStr<'_>,
        entity: RStr<'_>,
        fiscal_year: i32,
        cancel: CancelFlag,
    ) -> RResult<BatchStreamBox, PluginError> {
        guard("extract", || {
            let entity: Entity = entity.as_str().parse().map_err(|e: crate::canonical::UnknownEntity| {
                PluginError::new(
                    ErrorKind::UNSUPPORTED,
                    e.to_string(),
                    "Upgrade the plugin to one that knows this entity.",
                )
            })?;
            let request =
                ExtractRequest { company: company.as_str().to_owned(), entity, fiscal_year, cancel };
            let batches = self.plugin.extract_encoded(&request)?;
            let stream = BatchStreamAdapter { batches, request, failed: false };
            Ok(BatchStreamFfi_TO::from_value(stream, TD_Opaque))
        })
    }
}

/// Passes a plugin's encoded batches on, checks cancellation, and contains panics.
struct BatchStreamAdapter {
    batches: EncodedBatches,
    request: ExtractRequest,
    failed: bool,
}

impl BatchStreamFfi for BatchStreamAdapter {
    fn next_batch(&mut self) -> RResult<abi_stable::std_types::ROption<RVec<u8>>, PluginError> {
        use abi_stable::std_types::ROption::{RNone, RSome};
        if self.failed {
            return RErr(PluginError::new(
                ErrorKind::INTERNAL,
                "the extraction already failed; no further batches",
                "Start a new extraction.",
            ));
        }
        if self.request.cancel.is_cancelled() {
            self.failed = true;
            return RErr(PluginError::new(ErrorKind::CANCELLED, "extraction cancelled by the host", ""));
        }
        let expected = self.request.entity;
        let batches = &mut self.batches;
        let result = guard("extract (reading a batch)", || match batches.next() {
            None => Ok(RNone),
            Some(Err(e)) => Err(e),
            Some(Ok(batch)) if batch.entity() != expected => Err(PluginError::new(
                ErrorKind::INTERNAL,
                format!("the plugin returned {} while asked for {expected}", batch.entity()),
                "This is a bug in the plugin. Report it to the plugin's vendor.",
            )),
            Some(Ok(batch)) => Ok(RSome(RVec::from(batch.bytes))),
        });
        if result.is_err() {
            self.failed = true;
        }
        result
    }
}

/// The `manifest_json` entry point of the root module.
extern "C" fn manifest_json<P: Plugin>() -> RResult<RString, PluginError> {
    guard("manifest", || {
        let mut manifest = P::manifest();
        manifest.api_version = API_VERSION.to_owned();
        serde_json::to_string(&manifest).map(RString::from).map_err(|e| {
            PluginError::new(
                ErrorKind::INTERNAL,
                format!("manifest does not serialize: {e}"),
                "Fix the plugin's manifest.",
            )
        })
    })
}

/// The `open` entry point of the root module.
extern "C" fn open<P: Plugin>(settings_json: RStr<'_>, host: HostContext) -> RResult<SourceBox, PluginError> {
    guard("open", || {
        let settings: P::Settings = parse_settings(settings_json.as_str())?;
        let plugin = P::open(settings, Host { logger: host.logger })?;
        Ok(SourceFfi_TO::from_value(SourceAdapter { plugin }, TD_Opaque))
    })
}

/// The plugin's settings from the host's JSON. An error names the setting by
/// its path and never quotes a value: the value may be a password.
fn parse_settings<S: serde::de::DeserializeOwned>(json: &str) -> Result<S, PluginError> {
    serde_path_to_error::deserialize(&mut serde_json::Deserializer::from_str(json)).map_err(|e| {
        let setting = match e.path().to_string() {
            path if path == "." => String::new(),
            path => format!(" `{path}`"),
        };
        PluginError::new(
            ErrorKind::INVALID_SETTINGS,
            format!(
                "the setting{setting} is not valid for this plugin: {}",
                without_quoted_values(&e.inner().to_string())
            ),
            "Compare the source's settings (`[tenants.sources.settings]`) with the plugin's documentation \
             and its settings schema (`ledgerlink plugins check PATH --json`).",
        )
    })
}

/// A serde "invalid type" or "invalid value" message without the values it
/// quotes (`…` or "…"), and any message without serde_json's " at line …"
/// (a position in JSON the host made, not in the configuration file): for
/// settings whose values may be secrets.
pub fn without_quoted_values(message: &str) -> String {
    let message = message.rsplit_once(" at line ").map_or(message, |(text, _)| text);
    for prefix in ["invalid type: ", "invalid value: ", "invalid length "] {
        if let Some(rest) = message.strip_prefix(prefix) {
            // `invalid type: string "…", expected u16`: keep the kind, drop the value.
            let kind = rest.split([' ', ',']).next().unwrap_or_default();
            let expected = rest.rfind(", expected").map_or("", |at| &rest[at..]);
            return format!("{prefix}{kind}{expected}");
        }
    }
    if let Some(rest) = message.strip_prefix("unknown variant ") {
        let expected = rest.rfind(", expected").map_or("", |at| &rest[at..]);
        return format!("unknown variant{expected}");
    }
    message.to_owned()
}

/// Builds the root module for a plugin type; used by [`export_plugin!`](crate::export_plugin).
#[doc(hidden)]
pub fn root_module<P: Plugin>() -> PluginModuleRef {
    PluginModule { manifest_json: manifest_json::<P>, open: open::<P> }.leak_into_prefix()
}

/// Exports a [`Plugin`] implementation as the library's Ledgerlink root module.
///
/// ```text
/// ledgerlink_plugin_api::export_plugin!(MyErp);
/// ```
#[macro_export]
macro_rules! export_plugin {
    ($plugin:ty) => {
        // SAFETY: the header is built from the root module type the host checks, and
        // its constructor returns exactly that module (as abi_stable's own
        // `#[export_root_module]` expands to).
        #[doc(hidden)]
        #[allow(unsafe_code, non_upper_case_globals)]
        #[export_name = "_1as_0lib_1header_0root_bmodule_bloader"]
        pub static __LEDGERLINK_PLUGIN_ROOT_MODULE:
            $crate::__private::abi_stable::library::LibHeader = {
            extern "C" fn __ledgerlink_load_root_module(
            ) -> $crate::__private::abi_stable::library::RootModuleResult {
                $crate::__private::abi_stable::library::__call_root_module_loader(
                    $crate::sdk::root_module::<$plugin>,
                )
            }
            unsafe {
                $crate::__private::abi_stable::library::LibHeader::from_constructor::<
                    $crate::abi::PluginModuleRef,
                >(
                    __ledgerlink_load_root_module,
                    $crate::__private::abi_stable::library::CheckTypeLayout::Yes,
                )
            }
        };
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::canonical::{encode_batch, DimensionType};

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Connection {
        server: String,
        password: String,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Settings {
        connection: Connection,
        #[serde(default)]
        lanes: u8,
    }

    #[test]
    fn a_settings_error_names_the_setting_and_never_its_value() {
        let error =
            parse_settings::<Settings>(r#"{"connection":{"server":"db","password":98765432}}"#).unwrap_err();
        let message = error.message.to_string();
        assert!(message.contains("`connection.password`"), "{message}");
        assert!(message.contains("invalid type: integer, expected a string"), "{message}");
        assert!(!message.contains("98765432") && !message.contains("at line"), "{message}");
        let error =
            parse_settings::<Settings>(r#"{"connection":{"server":"db","password":"x"},"lanes":"four"}"#)
                .unwrap_err();
        assert!(!error.message.contains("four"), "{}", error.message);
        // A quote inside the value does not end the stripping early.
        let stripped =
            without_quoted_values(r#"invalid type: string "pa\"ss word", expected u16 at line 1 column 9"#);
        assert_eq!(stripped, "invalid type: string, expected u16");
        assert_eq!(
            without_quoted_values("unknown variant `hunter2`, expected `a` or `b`"),
            "unknown variant, expected `a` or `b`"
        );
        let error = parse_settings::<Settings>(r#"{"conection":{}}"#).unwrap_err();
        assert!(
            error.message.contains("unknown field `conection`"),
            "field names are kept: {}",
            error.message
        );
        assert!(parse_settings::<Settings>(r#"{"connection":{"server":"db","password":"x"}}"#).is_ok());
    }

    fn dimension_types(ids: &[&str]) -> RecordBatch {
        let types = ids.iter().map(|id| DimensionType {
            id: (*id).into(),
            name: format!("Dimensjon {id}"),
            source_key: (*id).into(),
        });
        RecordBatch::DimensionTypes(types.collect())
    }

    fn adapter(entity: Entity, batches: EncodedBatches) -> BatchStreamAdapter {
        let request =
            ExtractRequest { company: "1".into(), entity, fiscal_year: 2025, cancel: CancelFlag::new() };
        BatchStreamAdapter { batches, request, failed: false }
    }

    #[test]
    fn encoded_batches_are_the_codec_bytes_and_decode_to_the_records() {
        let batches = vec![dimension_types(&["R1", "R2"]), dimension_types(&["R3"])];
        let encoded: Vec<EncodedBatch> =
            encoded(Box::new(batches.clone().into_iter().map(Ok))).collect::<Result<_, _>>().unwrap();
        let bytes: Vec<Vec<u8>> = encoded.iter().map(|b| b.clone().into_bytes()).collect();
        assert_eq!(bytes, batches.iter().map(encode_batch).collect::<Vec<_>>());
        assert!(encoded.iter().all(|b| b.entity() == Entity::DimensionTypes));
        let decoded: Vec<RecordBatch> =
            decoded(Box::new(encoded.into_iter().map(Ok))).collect::<Result<_, _>>().unwrap();
        assert_eq!(decoded, batches);
    }

    #[test]
    fn batches_encoded_by_the_plugin_cross_the_boundary_unchanged() {
        let bytes = encode_batch(&dimension_types(&["R1"]));
        let batch = EncodedBatch::from_encoded(Entity::DimensionTypes, bytes.clone());
        let mut stream = adapter(Entity::DimensionTypes, Box::new(std::iter::once(Ok(batch))));
        let first = stream.next_batch().unwrap();
        assert_eq!(first.into_option().map(|b| b.into_vec()), Some(bytes));
        assert!(stream.next_batch().unwrap().is_none());
    }

    #[test]
    fn a_batch_of_another_entity_fails_the_stream() {
        let wrong = EncodedBatch::encode(&dimension_types(&["R1"]));
        let mut stream = adapter(Entity::Accounts, Box::new(std::iter::once(Ok(wrong))));
        let error = stream.next_batch().unwrap_err();
        assert_eq!(error.kind, ErrorKind::INTERNAL);
        assert!(error.to_string().contains("returned dimension_types while asked for accounts"), "{error}");
        let error = stream.next_batch().unwrap_err();
        assert!(error.to_string().contains("already failed"), "{error}");
    }
}
