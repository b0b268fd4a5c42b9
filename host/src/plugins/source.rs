//! Calling an opened plugin source: errors name the plugin, batches are decoded.

use super::host_logger::logger_for;
use super::SourceError;
use abi_stable::std_types::{ROption, RResult, RStr, RVec};
use ledgerlink_plugin_api::abi::{
    BatchStreamBox, CancelFlag, HostContext, PluginError, PluginModuleRef, SourceBox,
};
use ledgerlink_plugin_api::canonical::{
    decode_batch, decode_borrowed_voucher_lines, decode_companies, BorrowedVoucherLine, Company, Entity,
    RecordBatch,
};
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

impl BatchIter {
    /// The next batch's bytes, undecoded (decode them with [`Self::decode`] or
    /// [`Self::borrowed_lines`]); `None` at the end or after an error.
    pub fn next_encoded(&mut self) -> Option<Result<BatchBytes, SourceError>> {
        let next = (self.raw.as_mut()?)();
        if !matches!(next, Some(Ok(_))) {
            self.raw = None;
        }
        next
    }

    /// Decodes a batch of this extraction; a batch of another entity is malformed.
    pub fn decode(&mut self, bytes: &BatchBytes) -> Result<RecordBatch, SourceError> {
        let result = match decode_batch(bytes.as_slice()) {
            Ok(batch) if batch.entity() == self.entity => Ok(batch),
            Ok(batch) => Err(self.malformed(format!(
                "a batch of {} while {} was asked for",
                batch.entity(),
                self.entity
            ))),
            Err(e) => Err(self.malformed(e.to_string())),
        };
        if result.is_err() {
            self.raw = None;
        }
        result
    }

    /// The voucher lines of a batch, borrowed from its bytes (no allocation per
    /// line); `None` unless this extraction is of voucher lines and the batch
    /// holds them (then [`Self::decode`] says what is wrong).
    pub fn borrowed_lines<'b>(
        &mut self,
        bytes: &'b BatchBytes,
    ) -> Result<Option<Vec<BorrowedVoucherLine<'b>>>, SourceError> {
        if self.entity != Entity::VoucherLines {
            return Ok(None);
        }
        decode_borrowed_voucher_lines(bytes.as_slice()).map_err(|e| {
            self.raw = None;
            self.malformed(e.to_string())
        })
    }
}

impl Iterator for BatchIter {
    type Item = Result<RecordBatch, SourceError>;

    fn next(&mut self) -> Option<Self::Item> {
        Some(match self.next_encoded()? {
            Ok(bytes) => self.decode(&bytes),
            Err(error) => Err(error),
        })
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

#[cfg(test)]
mod tests {
    use super::*;
    use ledgerlink_plugin_api::canonical::{encode_batch, Account, NaiveDate, VoucherLine};

    fn line(voucher: &str) -> VoucherLine {
        VoucherLine {
            voucher_id: voucher.into(),
            line_no: 1,
            account_id: "1920".into(),
            date: NaiveDate::from_ymd_opt(2025, 1, 31).unwrap(),
            description: Some("Kaffe".into()),
            amount: "12.50".parse().unwrap(),
            currency: None,
            amount_currency: None,
            tax_code: None,
            tax_amount: None,
            dimensions: vec![],
            customer_id: None,
            supplier_id: None,
            source_key: format!("AcTr/{voucher}"),
        }
    }

    /// An extraction of voucher lines whose plugin hands over `batches`.
    fn lines_extraction(batches: Vec<Vec<u8>>) -> BatchIter {
        let mut batches = batches.into_iter();
        let raw: RawBatches = Box::new(move || batches.next().map(|b| Ok(BatchBytes::Owned(b))));
        BatchIter::new("fixture".into(), "extract voucher_lines".into(), Entity::VoucherLines, raw)
    }

    #[test]
    fn voucher_lines_are_read_borrowed_and_anything_else_is_malformed() {
        let lines = vec![line("1"), line("2")];
        let account = Account {
            id: "1920".into(),
            name: "Bank".into(),
            grouping_category: None,
            grouping_code: None,
            standard_account: None,
            default_tax_code: None,
            source_key: "Ac/1920".into(),
        };
        let mut extraction = lines_extraction(vec![
            encode_batch(&RecordBatch::VoucherLines(lines.clone())),
            encode_batch(&RecordBatch::Accounts(vec![account])),
        ]);
        let bytes = extraction.next_encoded().unwrap().unwrap();
        let borrowed = extraction.borrowed_lines(&bytes).unwrap().unwrap();
        assert_eq!(borrowed.iter().map(|l| &*l.voucher_id).collect::<Vec<_>>(), ["1", "2"]);
        assert_eq!(borrowed[1].amount, lines[1].amount);

        let bytes = extraction.next_encoded().unwrap().unwrap();
        assert!(extraction.borrowed_lines(&bytes).unwrap().is_none(), "not lines: left to decode");
        let error = extraction.decode(&bytes).unwrap_err().to_string();
        assert!(error.contains("a batch of accounts while voucher_lines was asked for"), "{error}");
        assert!(extraction.next_encoded().is_none(), "the extraction ends at its first error");

        let mut garbage =
            lines_extraction(vec![vec![7, 0xff, 0xff], encode_batch(&RecordBatch::VoucherLines(lines))]);
        let bytes = garbage.next_encoded().unwrap().unwrap();
        let error = garbage.borrowed_lines(&bytes).unwrap_err().to_string();
        assert!(error.contains("fixture") && error.contains("extract voucher_lines"), "{error}");
        assert!(garbage.next_encoded().is_none(), "the extraction ends at its first error");
    }
}
