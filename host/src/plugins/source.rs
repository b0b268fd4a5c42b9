//! Calling an opened plugin source: errors name the plugin, batches are decoded.

use super::host_logger::logger_for;
use super::SourceError;
use abi_stable::std_types::{ROption, RResult, RStr, RVec};
use ledgerlink_plugin_api::abi::{
    BatchStreamBox, CancelFlag, HostContext, PluginError, PluginModuleRef, SourceBox,
};
use ledgerlink_plugin_api::canonical::{decode_batch, decode_companies, Company, Entity, RecordBatch};
use std::sync::mpsc::sync_channel;

/// An opened source of a plugin loaded in this process.
pub struct PluginSource {
    plugin: String,
    inner: SourceBox,
}

impl PluginSource {
    pub(super) fn open(
        module: PluginModuleRef,
        plugin: &str,
        settings: &serde_json::Value,
    ) -> Result<Self, SourceError> {
        let settings = settings.to_string();
        let context = HostContext { logger: logger_for(plugin) };
        let inner = module.open()(RStr::from(settings.as_str()), context).into_result().map_err(|error| {
            SourceError::Plugin { plugin: plugin.to_owned(), operation: "open".into(), error }
        })?;
        Ok(Self { plugin: plugin.to_owned(), inner })
    }

    /// The plugin's id.
    pub fn plugin_id(&self) -> &str {
        &self.plugin
    }

    fn fail<T>(
        &self,
        operation: impl Into<String>,
        result: RResult<T, PluginError>,
    ) -> Result<T, SourceError> {
        result.into_result().map_err(|error| SourceError::Plugin {
            plugin: self.plugin.clone(),
            operation: operation.into(),
            error,
        })
    }

    /// Tests the connection; returns the plugin's description of the other side.
    pub fn check(&self) -> Result<String, SourceError> {
        self.fail("check", self.inner.check()).map(|s| s.into_string())
    }

    /// The companies the source can see.
    pub fn companies(&self) -> Result<Vec<Company>, SourceError> {
        let bytes = self.fail("companies", self.inner.companies())?;
        decode_companies(&bytes).map_err(|e| SourceError::Malformed {
            plugin: self.plugin.clone(),
            operation: "companies".into(),
            detail: e.to_string(),
        })
    }

    /// The change token of a company's fiscal year.
    pub fn change_token(&self, company: &str, fiscal_year: i32) -> Result<String, SourceError> {
        let op = format!("change_token (company {company}, {fiscal_year})");
        self.fail(op, self.inner.change_token(RStr::from(company), fiscal_year)).map(|s| s.into_string())
    }

    /// Starts extracting an entity; the iterator yields decoded batches.
    pub fn extract(
        &self,
        company: &str,
        entity: Entity,
        fiscal_year: i32,
        cancel: CancelFlag,
    ) -> Result<BatchIter, SourceError> {
        let operation = format!("extract {entity} (company {company}, {fiscal_year})");
        let raw = self.extract_raw(company, entity, fiscal_year, cancel)?;
        Ok(BatchIter::new(self.plugin.clone(), operation, entity, raw))
    }

    /// Starts extracting an entity; yields the encoded batches as the plugin made them.
    pub fn extract_raw(
        &self,
        company: &str,
        entity: Entity,
        fiscal_year: i32,
        cancel: CancelFlag,
    ) -> Result<RawBatches, SourceError> {
        let operation = format!("extract {entity} (company {company}, {fiscal_year})");
        let result =
            self.inner.extract(RStr::from(company), RStr::from(entity.as_str()), fiscal_year, cancel);
        let stream = self.fail(operation.clone(), result)?;
        Ok(prefetching(self.plugin.clone(), operation, entity, stream))
    }
}

/// How many encoded batches the reading thread may hold ahead of the decoder.
const PREFETCH_BATCHES: usize = 2;

/// Encoded batch bytes, owned by the plugin's allocator or by ours.
pub enum BatchBytes {
    /// Bytes handed over by an in-process plugin.
    Plugin(RVec<u8>),
    /// Bytes read from a worker process.
    Owned(Vec<u8>),
}

impl BatchBytes {
    /// The bytes.
    pub fn as_slice(&self) -> &[u8] {
        match self {
            BatchBytes::Plugin(bytes) => bytes.as_slice(),
            BatchBytes::Owned(bytes) => bytes.as_slice(),
        }
    }
}

/// Where a [`BatchIter`] gets its encoded batches from: `None` at the end.
pub type RawBatches = Box<dyn FnMut() -> Option<Result<BatchBytes, SourceError>> + Send>;

/// Pulls encoded batches from an in-process plugin on a thread of its own, at
/// most [`PREFETCH_BATCHES`] ahead of the consumer.
fn prefetching(plugin: String, operation: String, entity: Entity, mut stream: BatchStreamBox) -> RawBatches {
    let (sender, receiver) = sync_channel(PREFETCH_BATCHES);
    std::thread::Builder::new()
        .name(format!("extract-{entity}"))
        .spawn(move || loop {
            let next = match stream.next_batch().into_result() {
                Ok(ROption::RSome(bytes)) => Ok(bytes),
                Ok(ROption::RNone) => break,
                Err(error) => Err(error),
            };
            let failed = next.is_err();
            if sender.send(next).is_err() || failed {
                break;
            }
        })
        .expect("spawning the extraction reader thread");
    Box::new(move || match receiver.recv() {
        Err(_) => None,
        Ok(Ok(bytes)) => Some(Ok(BatchBytes::Plugin(bytes))),
        Ok(Err(error)) => {
            Some(Err(SourceError::Plugin { plugin: plugin.clone(), operation: operation.clone(), error }))
        }
    })
}

/// Decoded batches of one extraction; ends after the first error.
///
/// For an in-process plugin a reading thread pulls encoded batches while the
/// caller decodes and processes the previous ones, so plugin work and host work
/// overlap (at most [`PREFETCH_BATCHES`] wait in between; dropping the iterator
/// stops the thread after its current batch). A worker process overlaps by itself.
pub struct BatchIter {
    plugin: String,
    operation: String,
    entity: Entity,
    raw: Option<RawBatches>,
}

impl BatchIter {
    /// Batches from any raw source (used for worker processes).
    pub fn new(plugin: String, operation: String, entity: Entity, raw: RawBatches) -> Self {
        Self { plugin, operation, entity, raw: Some(raw) }
    }

    fn malformed(&self, detail: String) -> SourceError {
        SourceError::Malformed { plugin: self.plugin.clone(), operation: self.operation.clone(), detail }
    }
}

impl Iterator for BatchIter {
    type Item = Result<RecordBatch, SourceError>;

    fn next(&mut self) -> Option<Self::Item> {
        let result = match (self.raw.as_mut()?)() {
            None => {
                self.raw = None;
                return None;
            }
            Some(Err(error)) => Err(error),
            Some(Ok(bytes)) => match decode_batch(bytes.as_slice()) {
                Ok(batch) if batch.entity() == self.entity => Ok(batch),
                Ok(batch) => Err(self.malformed(format!(
                    "a batch of {} while {} was asked for",
                    batch.entity(),
                    self.entity
                ))),
                Err(e) => Err(self.malformed(e.to_string())),
            },
        };
        if result.is_err() {
            self.raw = None;
        }
        Some(result)
    }
}

/// What the pipeline needs of an opened source, wherever the plugin runs.
pub trait Extractor {
    /// The plugin's id.
    fn plugin_id(&self) -> &str;
    /// Tests the connection.
    fn check(&self) -> Result<String, SourceError>;
    /// The companies the source can see.
    fn companies(&self) -> Result<Vec<Company>, SourceError>;
    /// The change token of a company's fiscal year.
    fn change_token(&self, company: &str, fiscal_year: i32) -> Result<String, SourceError>;
    /// Starts extracting an entity.
    fn extract(
        &self,
        company: &str,
        entity: Entity,
        fiscal_year: i32,
        cancel: CancelFlag,
    ) -> Result<BatchIter, SourceError>;
}

impl Extractor for PluginSource {
    fn plugin_id(&self) -> &str {
        PluginSource::plugin_id(self)
    }
    fn check(&self) -> Result<String, SourceError> {
        PluginSource::check(self)
    }
    fn companies(&self) -> Result<Vec<Company>, SourceError> {
        PluginSource::companies(self)
    }
    fn change_token(&self, company: &str, fiscal_year: i32) -> Result<String, SourceError> {
        PluginSource::change_token(self, company, fiscal_year)
    }
    fn extract(
        &self,
        company: &str,
        entity: Entity,
        fiscal_year: i32,
        cancel: CancelFlag,
    ) -> Result<BatchIter, SourceError> {
        PluginSource::extract(self, company, entity, fiscal_year, cancel)
    }
}
