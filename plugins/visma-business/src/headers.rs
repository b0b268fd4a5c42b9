//! Voucher headers derived from the voucher-line pass.
//!
//! Visma Business has no voucher table: a header is the `GROUP BY VoNo` of the
//! year's transactions, a second full pass over `AcTr`. The host extracts voucher
//! lines before vouchers, so while the lines stream by (ordered by `VoNo`) the
//! plugin folds each voucher's lines into its header — the same `MIN`s the query
//! takes — and spills the headers to an unlinked temporary file (nothing to clean
//! up after a crash, memory stays flat). When the lines are read in lanes (key
//! ranges over parallel connections) each lane folds into a collector of its own,
//! and the lanes' headers are read back in lane order, which is `VoNo` order.
//! `extract(vouchers)` of the same company and year then reads those files; in
//! any other order it runs the query.

use ledgerlink_odbc_common::{convert, Row};
use ledgerlink_plugin_api::canonical::{NaiveDate, RecordBatch, Voucher};
use ledgerlink_plugin_api::sdk::{Batches, EncodedBatches};
use ledgerlink_plugin_api::{ErrorKind, PluginError};
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, Write};
use std::sync::{Arc, Mutex};

/// Headers per batch when they are read back.
const BATCH: usize = 8_192;

/// The columns of the voucher-line query a header is made of, besides the
/// voucher number and date (which the line writer reads anyway and passes in).
pub struct HeaderColumns {
    /// `AcYrPr`.
    pub period: usize,
    /// `VoTp`.
    pub voucher_type: usize,
    /// `Txt`.
    pub text: usize,
}

/// The header being folded: `MIN` of each column over the voucher's lines.
struct OpenHeader {
    number: i64,
    date: NaiveDate,
    /// (year, period) of `AcYrPr`; ordered as `AcYrPr` is.
    period: (i32, u8),
    voucher_type: Option<i64>,
    text: Option<String>,
}

/// Headers of one lane of a company's year, collected during its line pass.
pub struct Collector {
    file: BufWriter<File>,
    open: Option<OpenHeader>,
    written: u64,
    failed: Option<String>,
}

/// The collector of one lane, shared by its line writer and the plugin.
pub type LaneCollector = Arc<Mutex<Option<Collector>>>;

/// The collectors of one company's year, one per lane in lane order.
pub struct Collection {
    company: String,
    year: i32,
    lanes: Vec<LaneCollector>,
    /// Set when the line stream ended normally; only then are the headers whole.
    complete: bool,
}

/// The collection shared by the line stream and the plugin.
pub type SharedCollector = Arc<Mutex<Option<Collection>>>;

fn lock<T>(shared: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    shared.lock().unwrap_or_else(|e| e.into_inner())
}

impl Collector {
    /// A collector spilling to a new unlinked temporary file.
    pub fn new() -> std::io::Result<Self> {
        Ok(Self { file: BufWriter::new(tempfile::tempfile()?), open: None, written: 0, failed: None })
    }

    /// Folds one voucher-line row (of voucher `number`, dated `date`) into the current header.
    fn observe(
        &mut self,
        number: i64,
        date: NaiveDate,
        row: &Row<'_>,
        columns: &HeaderColumns,
    ) -> Result<(), PluginError> {
        let period = convert::year_period_of(row.int(columns.period, "AcTr.AcYrPr")?, "AcTr.AcYrPr")?;
        let voucher_type = row.opt_int(columns.voucher_type, "AcTr.VoTp")?;
        let text = row.trimmed(columns.text)?;
        match &mut self.open {
            Some(open) if open.number == number => {
                open.date = open.date.min(date);
                open.period = open.period.min(period);
                open.voucher_type = min_option(open.voucher_type, voucher_type);
                if let Some(text) = text {
                    if open.text.as_deref().is_none_or(|current| text < current) {
                        open.text = Some(text.to_owned());
                    }
                }
            }
            _ => {
                let next = OpenHeader { number, date, period, voucher_type, text: text.map(str::to_owned) };
                if let Some(done) = self.open.replace(next) {
                    self.write(done)?;
                }
            }
        }
        Ok(())
    }

    fn write(&mut self, header: OpenHeader) -> Result<(), PluginError> {
        let voucher = crate::queries::voucher_header(
            header.number,
            header.date,
            header.period,
            header.voucher_type.map(|t| t.to_string()),
            header.text,
        );
        let bytes = postcard::to_stdvec(&voucher).map_err(spill_error)?;
        let length = u32::try_from(bytes.len()).map_err(|_| spill_error("header too large"))?;
        self.file
            .write_all(&length.to_le_bytes())
            .and_then(|_| self.file.write_all(&bytes))
            .map_err(spill_error)?;
        self.written += 1;
        Ok(())
    }

    /// The lane's headers as batches, the last open one written first.
    fn into_batches(mut self) -> Result<HeaderBatches, PluginError> {
        if let Some(last) = self.open.take() {
            self.write(last)?;
        }
        let mut file = self.file.into_inner().map_err(spill_error)?;
        file.rewind().map_err(spill_error)?;
        Ok(HeaderBatches { reader: BufReader::new(file), left: self.written })
    }
}

fn min_option(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

fn spill_error(detail: impl std::fmt::Display) -> PluginError {
    PluginError::new(
        ErrorKind::INTERNAL,
        format!("could not spill voucher headers to a temporary file: {detail}"),
        "Check that the temporary folder (TMPDIR) is writable and has room.",
    )
}

/// Starts collecting for a line pass read in `lanes` lanes; replaces any earlier
/// collection. Returns each lane's collector, in lane order.
pub fn start(
    shared: &SharedCollector,
    company: &str,
    year: i32,
    lanes: usize,
) -> Result<Vec<LaneCollector>, PluginError> {
    let lanes = (0..lanes.max(1))
        .map(|_| Ok(Arc::new(Mutex::new(Some(Collector::new().map_err(spill_error)?)))))
        .collect::<Result<Vec<LaneCollector>, PluginError>>()?;
    let collection = Collection { company: company.to_owned(), year, lanes: lanes.clone(), complete: false };
    *lock(shared) = Some(collection);
    Ok(lanes)
}

/// Folds a row of voucher `number`, dated `date`, into its lane's collector; a
/// spill failure only disables it (the vouchers are then read with the query).
pub fn observe(
    lane: &LaneCollector,
    number: i64,
    date: NaiveDate,
    row: &Row<'_>,
    columns: &HeaderColumns,
) -> Result<(), PluginError> {
    if let Some(collector) = lock(lane).as_mut().filter(|c| c.failed.is_none()) {
        if let Err(e) = collector.observe(number, date, row, columns) {
            if e.kind == ErrorKind::DATA {
                return Err(e);
            }
            collector.failed = Some(e.message.to_string());
        }
    }
    Ok(())
}

/// The line stream, marking the collector complete when it ends normally.
pub fn completing(shared: SharedCollector, mut lines: EncodedBatches) -> EncodedBatches {
    let mut failed = false;
    Box::new(std::iter::from_fn(move || match lines.next() {
        Some(Err(e)) => {
            failed = true;
            *lock(&shared) = None;
            Some(Err(e))
        }
        Some(ok) => Some(ok),
        None => {
            if !failed {
                if let Some(collection) = lock(&shared).as_mut() {
                    collection.complete = true;
                }
            }
            None
        }
    }))
}

/// The collected headers of `company`'s `year`, if its line pass completed;
/// `warn` hears why a collection that failed to spill is not used.
pub fn take(
    shared: &SharedCollector,
    company: &str,
    year: i32,
    warn: impl FnOnce(&str),
) -> Option<Result<Batches, PluginError>> {
    let collection = lock(shared).take()?;
    if !collection.complete || collection.company != company || collection.year != year {
        return None;
    }
    let mut lanes = Vec::with_capacity(collection.lanes.len());
    for lane in &collection.lanes {
        let collector = lock(lane).take()?;
        if let Some(reason) = &collector.failed {
            warn(&format!("voucher headers are read with a second query: {reason}"));
            return None;
        }
        lanes.push(collector);
    }
    let batches = lanes.into_iter().map(Collector::into_batches).collect::<Result<Vec<_>, _>>();
    Some(batches.map(|lanes| -> Batches { Box::new(lanes.into_iter().flatten()) }))
}

/// Reads spilled headers back in batches.
struct HeaderBatches {
    reader: BufReader<File>,
    left: u64,
}

impl HeaderBatches {
    fn read_one(&mut self) -> Result<Voucher, PluginError> {
        let mut length = [0u8; 4];
        self.reader.read_exact(&mut length).map_err(spill_error)?;
        let mut bytes = vec![0u8; u32::from_le_bytes(length) as usize];
        self.reader.read_exact(&mut bytes).map_err(spill_error)?;
        postcard::from_bytes(&bytes).map_err(spill_error)
    }
}

impl Iterator for HeaderBatches {
    type Item = Result<RecordBatch, PluginError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        let n = self.left.min(BATCH as u64) as usize;
        let batch: Result<Vec<Voucher>, PluginError> = (0..n).map(|_| self.read_one()).collect();
        self.left -= n as u64;
        if batch.is_err() {
            self.left = 0;
        }
        Some(batch.map(RecordBatch::Vouchers))
    }
}
