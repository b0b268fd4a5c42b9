//! Calling an opened plugin source: errors name the plugin, batches are decoded.

use super::host_logger::logger_for;
use super::SourceError;
use abi_stable::std_types::{ROption, RResult, RStr, RVec};
use ledgerlink_plugin_api::abi::{
    BatchStreamBox, CancelFlag, HostContext, PluginError, PluginModuleRef, SourceBox,
};
use ledgerlink_plugin_api::canonical::{decode_batch, decode_companies, Company, Entity, RecordBatch};
use std::sync::mpsc::{sync_channel, Receiver};

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
        let result =
            self.inner.extract(RStr::from(company), RStr::from(entity.as_str()), fiscal_year, cancel);
        let stream = self.fail(operation.clone(), result)?;
        Ok(BatchIter::start(self.plugin.clone(), operation, entity, stream))
    }
}

/// How many encoded batches the reading thread may hold ahead of the decoder.
const PREFETCH_BATCHES: usize = 2;

/// Decoded batches of one extraction; ends after the first error.
///
/// A reading thread pulls encoded batches from the plugin while the caller
/// decodes and processes the previous ones, so plugin work and host work overlap.
/// At most [`PREFETCH_BATCHES`] batches wait in between; dropping the iterator
/// stops the reading thread after its current batch.
pub struct BatchIter {
    plugin: String,
    operation: String,
    entity: Entity,
    batches: Option<Receiver<Result<RVec<u8>, PluginError>>>,
}

impl BatchIter {
    fn start(plugin: String, operation: String, entity: Entity, mut stream: BatchStreamBox) -> Self {
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
        Self { plugin, operation, entity, batches: Some(receiver) }
    }

    fn malformed(&self, detail: String) -> SourceError {
        SourceError::Malformed { plugin: self.plugin.clone(), operation: self.operation.clone(), detail }
    }
}

impl Iterator for BatchIter {
    type Item = Result<RecordBatch, SourceError>;

    fn next(&mut self) -> Option<Self::Item> {
        let result = match self.batches.as_ref()?.recv() {
            Err(_) => {
                self.batches = None;
                return None;
            }
            Ok(Err(error)) => Err(SourceError::Plugin {
                plugin: self.plugin.clone(),
                operation: self.operation.clone(),
                error,
            }),
            Ok(Ok(bytes)) => match decode_batch(&bytes) {
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
            self.batches = None;
        }
        Some(result)
    }
}
