//! The part codec: canonical records of one entity in one zstd frame, as NDJSON
//! or as blocks of postcard records ([`PartFormat`], decision 0021).

use crate::line_json::write_voucher_line;
use crate::manifest::{hex, PartInfo};
use ledgerlink_plugin_api::canonical::{BorrowedVoucherLine, Entity, RecordBatch};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::io::{BufRead, BufReader, Read, Write};

/// Longest NDJSON line a [`PartReader`] accepts unless told otherwise (1 MiB).
pub const DEFAULT_MAX_LINE_BYTES: usize = 1024 * 1024;

/// Largest postcard block a [`PartReader`] accepts (16 MiB; writers make blocks
/// of about [`BLOCK_BYTES`]).
pub const MAX_BLOCK_BYTES: usize = 16 << 20;

/// Bytes of NDJSON gathered before they go to the compressor.
const LINE_CHUNK_BYTES: usize = 64 << 10;

/// Bytes of postcard records a writer gathers into one block.
const BLOCK_BYTES: usize = 256 << 10;

/// Default number of records per batch a [`PartReader`] yields.
const DEFAULT_BATCH_RECORDS: usize = 1000;

/// How the records inside a part's zstd frame are encoded; the manifest's `part_format`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PartFormat {
    /// One compact JSON object per line: readable with `zstd -d`, what every hub reads.
    #[default]
    Ndjson,
    /// Blocks of records in the plugin boundary's encoding (postcard): each block is
    /// `[record count][byte length]` as unsigned LEB128, then the records. About half
    /// the bytes of NDJSON, and several times cheaper to write and to read.
    Postcard,
}

impl PartFormat {
    /// Every format, in order of preference (the best first).
    pub const ALL: [PartFormat; 2] = [PartFormat::Postcard, PartFormat::Ndjson];

    /// True for NDJSON, the format a manifest without `part_format` has.
    pub fn is_ndjson(&self) -> bool {
        *self == PartFormat::Ndjson
    }

    /// The name used in manifests and capabilities.
    pub fn as_str(&self) -> &'static str {
        match self {
            PartFormat::Ndjson => "ndjson",
            PartFormat::Postcard => "postcard",
        }
    }

    /// The best format both this code and a peer that reads `supported` know.
    pub fn best_shared(supported: &[PartFormat]) -> PartFormat {
        PartFormat::ALL.into_iter().find(|f| supported.contains(f)).unwrap_or_default()
    }
}

impl std::fmt::Display for PartFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A part that cannot be written or read.
#[derive(Debug, thiserror::Error)]
pub enum PartError {
    /// A batch of another entity was given to a [`PartWriter`].
    #[error("a batch of {found} was written to a part of {expected}")]
    WrongEntity {
        /// The writer's entity.
        expected: Entity,
        /// The batch's entity.
        found: Entity,
    },
    /// A line of an NDJSON part is not a valid canonical record.
    #[error("part {part} ({entity}), line {line}: {message}")]
    Line {
        /// The part index.
        part: u32,
        /// The entity of the part.
        entity: Entity,
        /// 1-based line number within the decompressed part.
        line: u64,
        /// What is wrong with it.
        message: String,
    },
    /// A record of a postcard part is not a valid canonical record.
    #[error("part {part} ({entity}), record {record}: {message}")]
    Record {
        /// The part index.
        part: u32,
        /// The entity of the part.
        entity: Entity,
        /// 1-based record number within the part.
        record: u64,
        /// What is wrong with it.
        message: String,
    },
    /// The compressed stream itself is broken.
    #[error("part {part} ({entity}): {message}")]
    Stream {
        /// The part index.
        part: u32,
        /// The entity of the part.
        entity: Entity,
        /// What went wrong.
        message: String,
    },
    /// Compressing failed (out of memory or a bad level).
    #[error("cannot compress part: {0}")]
    Compress(String),
}

/// Lowercase hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// Something that takes the records of a batch one at a time, whatever their type.
trait RowSink {
    fn row<T: Serialize>(&mut self, row: &T) -> std::io::Result<()>;
}

/// Gives every record of `batch` to `sink`, in order.
fn each_row(batch: &RecordBatch, sink: &mut impl RowSink) -> std::io::Result<()> {
    fn all<T: Serialize>(rows: &[T], sink: &mut impl RowSink) -> std::io::Result<()> {
        rows.iter().try_for_each(|row| sink.row(row))
    }
    match batch {
        RecordBatch::Accounts(r) => all(r, sink),
        RecordBatch::Customers(r) | RecordBatch::Suppliers(r) => all(r, sink),
        RecordBatch::DimensionTypes(r) => all(r, sink),
        RecordBatch::DimensionValues(r) => all(r, sink),
        RecordBatch::TaxCodes(r) => all(r, sink),
        RecordBatch::Vouchers(r) => all(r, sink),
        RecordBatch::VoucherLines(r) => all(r, sink),
    }
}

/// Writes each record as one compact JSON object and a newline.
struct NdjsonSink<'w, W: Write>(&'w mut W);

impl<W: Write> RowSink for NdjsonSink<'_, W> {
    fn row<T: Serialize>(&mut self, row: &T) -> std::io::Result<()> {
        serde_json::to_writer(&mut *self.0, row)?;
        self.0.write_all(b"\n")
    }
}

/// Serializes a batch as NDJSON (one compact JSON object per line) into `out`.
pub fn write_batch_ndjson<W: Write>(batch: &RecordBatch, out: &mut W) -> std::io::Result<()> {
    each_row(batch, &mut NdjsonSink(out))
}

/// A finished part: the compressed bytes and what the manifest says about them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedPart {
    /// Entity of the records.
    pub entity: Entity,
    /// Number of records.
    pub records: u64,
    /// The zstd frame holding the records in the writer's [`PartFormat`].
    pub bytes: Vec<u8>,
    /// Lowercase hex SHA-256 of `bytes`.
    pub sha256: String,
}

impl EncodedPart {
    /// The manifest entry for this part at position `index`.
    pub fn info(&self, index: u32) -> PartInfo {
        PartInfo {
            entity: self.entity,
            index,
            records: self.records,
            bytes: self.bytes.len() as u64,
            sha256: self.sha256.clone(),
        }
    }
}

type Compressor = zstd::stream::write::Encoder<'static, Vec<u8>>;

/// Encodes batches of one entity into one part, streaming through zstd.
pub struct PartWriter {
    entity: Entity,
    format: PartFormat,
    records: u64,
    encoder: Compressor,
    /// Postcard: the records of the block not yet written, and how many.
    block: Vec<u8>,
    block_records: u32,
}

impl std::fmt::Debug for PartWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PartWriter")
            .field("entity", &self.entity)
            .field("format", &self.format)
            .field("records", &self.records)
            .finish()
    }
}

/// Appends records to the writer's open postcard block.
struct BlockSink<'w>(&'w mut PartWriter);

impl RowSink for BlockSink<'_> {
    fn row<T: Serialize>(&mut self, row: &T) -> std::io::Result<()> {
        self.0.push_postcard(row)
    }
}

impl PartWriter {
    /// A writer of `format` for records of `entity` at the default compression level (1).
    pub fn new(format: PartFormat, entity: Entity) -> Result<Self, PartError> {
        Self::with_level(format, entity, 1)
    }

    /// A writer at a given zstd level (1–22).
    pub fn with_level(format: PartFormat, entity: Entity, level: i32) -> Result<Self, PartError> {
        let mut encoder =
            Compressor::new(Vec::new(), level).map_err(|e| PartError::Compress(e.to_string()))?;
        encoder.include_checksum(true).map_err(|e| PartError::Compress(e.to_string()))?;
        Ok(Self { entity, format, records: 0, encoder, block: Vec::new(), block_records: 0 })
    }

    fn check_entity(&self, entity: Entity) -> Result<(), PartError> {
        if entity == self.entity {
            Ok(())
        } else {
            Err(PartError::WrongEntity { expected: self.entity, found: entity })
        }
    }

    /// Appends a batch; it must be of the writer's entity.
    pub fn write_batch(&mut self, batch: &RecordBatch) -> Result<(), PartError> {
        self.check_entity(batch.entity())?;
        match self.format {
            PartFormat::Ndjson => self.ndjson(|out| write_batch_ndjson(batch, out)),
            PartFormat::Postcard => each_row(batch, &mut BlockSink(self)).map_err(compress_error),
        }?;
        self.records += batch.len() as u64;
        Ok(())
    }

    /// Appends voucher lines borrowed from their encoded batch (the same part as
    /// [`Self::write_batch`] makes of the owned lines, written without them).
    pub fn write_borrowed_lines(&mut self, lines: &[BorrowedVoucherLine<'_>]) -> Result<(), PartError> {
        self.check_entity(Entity::VoucherLines)?;
        match self.format {
            PartFormat::Ndjson => self.ndjson(|out| {
                let mut chunk = Vec::with_capacity(LINE_CHUNK_BYTES + 4096);
                for line in lines {
                    write_voucher_line(line, &mut chunk);
                    if chunk.len() >= LINE_CHUNK_BYTES {
                        out.write_all(&chunk)?;
                        chunk.clear();
                    }
                }
                out.write_all(&chunk)
            }),
            PartFormat::Postcard => {
                lines.iter().try_for_each(|line| self.push_postcard(line)).map_err(compress_error)
            }
        }?;
        self.records += lines.len() as u64;
        Ok(())
    }

    fn ndjson(
        &mut self,
        write: impl FnOnce(&mut std::io::BufWriter<&mut Compressor>) -> std::io::Result<()>,
    ) -> Result<(), PartError> {
        // serde_json writes every field separately; feeding those small writes to
        // zstd one by one cost more than the compression itself (issue 9), so they
        // are gathered into 64 KiB chunks first.
        let mut out = std::io::BufWriter::with_capacity(64 << 10, &mut self.encoder);
        write(&mut out).and_then(|()| out.flush()).map_err(compress_error)
    }

    /// Adds one record to the open block; writes the block once it is full.
    fn push_postcard<T: Serialize>(&mut self, record: &T) -> std::io::Result<()> {
        self.block = postcard::to_extend(record, std::mem::take(&mut self.block))
            .map_err(|e| std::io::Error::other(format!("cannot encode a record: {e}")))?;
        self.block_records += 1;
        if self.block.len() >= BLOCK_BYTES {
            self.write_block()?;
        }
        Ok(())
    }

    /// Writes the open block (`[count][length][records]`) to the compressor.
    fn write_block(&mut self) -> std::io::Result<()> {
        if self.block_records == 0 {
            return Ok(());
        }
        let mut header = Vec::with_capacity(10);
        write_leb128(&mut header, self.block_records);
        write_leb128(&mut header, u32::try_from(self.block.len()).expect("blocks are far below 4 GiB"));
        self.encoder.write_all(&header)?;
        self.encoder.write_all(&self.block)?;
        self.block.clear();
        self.block_records = 0;
        Ok(())
    }

    /// Records written so far.
    pub fn records(&self) -> u64 {
        self.records
    }

    /// Ends the zstd frame and returns the part.
    pub fn finish(mut self) -> Result<EncodedPart, PartError> {
        self.write_block().map_err(compress_error)?;
        let bytes = self.encoder.finish().map_err(compress_error)?;
        let sha256 = sha256_hex(&bytes);
        Ok(EncodedPart { entity: self.entity, records: self.records, bytes, sha256 })
    }
}

fn compress_error(e: std::io::Error) -> PartError {
    PartError::Compress(e.to_string())
}

/// Appends `value` as unsigned LEB128 (postcard's varint).
fn write_leb128(out: &mut Vec<u8>, mut value: u32) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Encodes one batch as a whole part.
pub fn encode_part(format: PartFormat, batch: &RecordBatch) -> Result<EncodedPart, PartError> {
    let mut writer = PartWriter::new(format, batch.entity())?;
    writer.write_batch(batch)?;
    writer.finish()
}

/// Decodes a part back into batches of canonical records, streaming.
///
/// Yields batches of at most `batch_records` records; an error names the part
/// and the 1-based line (NDJSON) or record (postcard). Iteration ends after the
/// first error.
pub struct PartReader<R: Read> {
    entity: Entity,
    part: u32,
    format: PartFormat,
    input: BufReader<zstd::stream::read::Decoder<'static, BufReader<R>>>,
    /// Lines (NDJSON) or records (postcard) read so far.
    position: u64,
    batch_records: usize,
    max_line_bytes: usize,
    done: bool,
    /// NDJSON: the current line. Postcard: the current block.
    buf: Vec<u8>,
    /// Postcard: where the next record of the block starts, and how many are left.
    block_at: usize,
    block_left: u32,
}

impl<R: Read> std::fmt::Debug for PartReader<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PartReader")
            .field("entity", &self.entity)
            .field("part", &self.part)
            .field("format", &self.format)
            .field("position", &self.position)
            .finish()
    }
}

impl<R: Read> PartReader<R> {
    /// A reader of part `part` of `format` holding records of `entity`, over the compressed bytes in `reader`.
    pub fn new(format: PartFormat, entity: Entity, part: u32, reader: R) -> Result<Self, PartError> {
        let decoder = zstd::stream::read::Decoder::new(reader).map_err(|e| PartError::Stream {
            part,
            entity,
            message: e.to_string(),
        })?;
        Ok(Self {
            entity,
            part,
            format,
            input: BufReader::new(decoder),
            position: 0,
            batch_records: DEFAULT_BATCH_RECORDS,
            max_line_bytes: DEFAULT_MAX_LINE_BYTES,
            done: false,
            buf: Vec::new(),
            block_at: 0,
            block_left: 0,
        })
    }

    /// Sets how many records each yielded batch holds at most.
    pub fn batch_records(mut self, records: usize) -> Self {
        self.batch_records = records.max(1);
        self
    }

    /// Sets the longest NDJSON line accepted, in bytes (guards against one giant line).
    pub fn max_line_bytes(mut self, bytes: usize) -> Self {
        self.max_line_bytes = bytes;
        self
    }

    /// Records read so far.
    pub fn records_read(&self) -> u64 {
        self.position
    }

    fn line_error(&self, message: String) -> PartError {
        PartError::Line { part: self.part, entity: self.entity, line: self.position, message }
    }

    fn record_error(&self, message: String) -> PartError {
        PartError::Record { part: self.part, entity: self.entity, record: self.position, message }
    }

    fn stream_error(&self, message: String) -> PartError {
        PartError::Stream { part: self.part, entity: self.entity, message }
    }

    /// Reads the next line into `self.buf` (without the newline); false at the end.
    fn next_line(&mut self) -> Result<bool, PartError> {
        self.buf.clear();
        let limit = self.max_line_bytes as u64 + 1;
        let read = (&mut self.input)
            .take(limit)
            .read_until(b'\n', &mut self.buf)
            .map_err(|e| self.stream_error(format!("cannot decompress after line {}: {e}", self.position)))?;
        if read == 0 {
            return Ok(false);
        }
        self.position += 1;
        if self.buf.last() == Some(&b'\n') {
            self.buf.pop();
        } else if read as u64 == limit {
            return Err(self.line_error(format!("line is longer than {} bytes", self.max_line_bytes)));
        }
        if self.buf.iter().all(u8::is_ascii_whitespace) {
            return Err(self.line_error("empty line (every line must hold one record)".into()));
        }
        Ok(true)
    }

    /// Reads one unsigned LEB128 number; `None` at a clean end of the part (only
    /// allowed where `at_end_ok`).
    fn read_leb128(&mut self, at_end_ok: bool) -> Result<Option<u32>, PartError> {
        let mut value: u64 = 0;
        for shift in (0..35).step_by(7) {
            let mut byte = [0u8];
            let read = self.input.read(&mut byte).map_err(|e| {
                self.stream_error(format!("cannot decompress after record {}: {e}", self.position))
            })?;
            if read == 0 {
                if shift == 0 && at_end_ok {
                    return Ok(None);
                }
                return Err(self.stream_error(format!(
                    "the part ends inside a block header after record {}",
                    self.position
                )));
            }
            value |= u64::from(byte[0] & 0x7f) << shift;
            if byte[0] & 0x80 == 0 {
                return u32::try_from(value).map(Some).map_err(|_| {
                    self.stream_error(format!(
                        "a block header after record {} is out of range",
                        self.position
                    ))
                });
            }
        }
        Err(self.stream_error(format!("a block header after record {} is not a valid number", self.position)))
    }

    /// Reads the next postcard block into `self.buf`; false at the end of the part.
    fn next_block(&mut self) -> Result<bool, PartError> {
        let Some(count) = self.read_leb128(true)? else { return Ok(false) };
        let len = self.read_leb128(false)?.expect("a length, or an error") as usize;
        if count == 0 {
            return Err(
                self.stream_error(format!("the block after record {} holds no records", self.position))
            );
        }
        if len > MAX_BLOCK_BYTES {
            return Err(self.stream_error(format!(
                "the block after record {} is {len} bytes; at most {MAX_BLOCK_BYTES} are allowed",
                self.position
            )));
        }
        self.buf.clear();
        self.buf.resize(len, 0);
        if let Err(e) = self.input.read_exact(&mut self.buf) {
            return Err(
                self.stream_error(format!("the block after record {} is cut short: {e}", self.position))
            );
        }
        self.block_at = 0;
        self.block_left = count;
        Ok(true)
    }

    /// The next record, which may borrow from the part's decompressed bytes (e.g.
    /// [`BorrowedVoucherLine`](ledgerlink_plugin_api::canonical::BorrowedVoucherLine));
    /// `None` at the end of the part. For reading one record at a time without
    /// the batches the iterator yields.
    pub fn next_record<'s, T: Deserialize<'s>>(&'s mut self) -> Result<Option<T>, PartError> {
        match self.format {
            PartFormat::Ndjson => self.next_json_record(),
            PartFormat::Postcard => self.next_postcard_record(),
        }
    }

    fn next_json_record<'s, T: Deserialize<'s>>(&'s mut self) -> Result<Option<T>, PartError> {
        if self.done {
            return Ok(None);
        }
        // Reading stops at the first error, as the iterator's does.
        self.done = true;
        if !self.next_line()? {
            return Ok(None);
        }
        // One UTF-8 check of the whole line: parsing from `&str` skips the check
        // of every string inside (a tenth of the hub's commit time).
        let text = match std::str::from_utf8(&self.buf) {
            Ok(text) => text,
            Err(e) => {
                return Err(self.line_error(format!("not valid UTF-8 ({e}); NDJSON parts are UTF-8 text")))
            }
        };
        match serde_json::from_str(text) {
            Ok(record) => {
                self.done = false;
                Ok(Some(record))
            }
            Err(e) => Err(PartError::Line {
                part: self.part,
                entity: self.entity,
                line: self.position,
                message: format!("not a valid {} record: {e}", self.entity),
            }),
        }
    }

    fn next_postcard_record<'s, T: Deserialize<'s>>(&'s mut self) -> Result<Option<T>, PartError> {
        if self.done {
            return Ok(None);
        }
        self.done = true;
        if self.block_left == 0 && !self.next_block()? {
            return Ok(None);
        }
        self.position += 1;
        match postcard::take_from_bytes::<T>(&self.buf[self.block_at..]) {
            Ok((record, rest)) => {
                self.block_at = self.buf.len() - rest.len();
                self.block_left -= 1;
                if self.block_left == 0 && !rest.is_empty() {
                    let extra = rest.len();
                    return Err(
                        self.record_error(format!("{extra} bytes follow the last record of its block"))
                    );
                }
                self.done = false;
                Ok(Some(record))
            }
            Err(e) => Err(self.record_error(format!("not a valid {} record: {e}", self.entity))),
        }
    }

    fn read_rows<T: DeserializeOwned>(&mut self) -> Result<Vec<T>, PartError> {
        let mut rows = Vec::new();
        while rows.len() < self.batch_records {
            match self.next_record()? {
                Some(row) => rows.push(row),
                None => break,
            }
        }
        Ok(rows)
    }

    fn read_batch(&mut self) -> Result<RecordBatch, PartError> {
        Ok(match self.entity {
            Entity::Accounts => RecordBatch::Accounts(self.read_rows()?),
            Entity::Customers => RecordBatch::Customers(self.read_rows()?),
            Entity::Suppliers => RecordBatch::Suppliers(self.read_rows()?),
            Entity::DimensionTypes => RecordBatch::DimensionTypes(self.read_rows()?),
            Entity::DimensionValues => RecordBatch::DimensionValues(self.read_rows()?),
            Entity::TaxCodes => RecordBatch::TaxCodes(self.read_rows()?),
            Entity::Vouchers => RecordBatch::Vouchers(self.read_rows()?),
            Entity::VoucherLines => RecordBatch::VoucherLines(self.read_rows()?),
        })
    }
}

impl<R: Read> Iterator for PartReader<R> {
    type Item = Result<RecordBatch, PartError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.read_batch() {
            Ok(batch) if batch.is_empty() => {
                self.done = true;
                None
            }
            Ok(batch) => Some(Ok(batch)),
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ledgerlink_plugin_api::canonical::{Account, Decimal, NaiveDate, VoucherLine};
    use std::str::FromStr;

    fn account(id: &str) -> Account {
        Account {
            id: id.into(),
            name: format!("Konto {id}"),
            grouping_category: None,
            grouping_code: None,
            standard_account: Some("19".into()),
            default_tax_code: None,
            source_key: format!("Ac:{id}"),
        }
    }

    fn line(voucher: &str, account: &str, amount: &str) -> VoucherLine {
        VoucherLine {
            voucher_id: voucher.into(),
            line_no: 1,
            account_id: account.into(),
            date: NaiveDate::from_ymd_opt(2025, 3, 1).unwrap(),
            description: Some("Bæreposer".into()),
            amount: Decimal::from_str(amount).unwrap(),
            currency: None,
            amount_currency: None,
            tax_code: None,
            tax_amount: None,
            dimensions: vec![],
            customer_id: None,
            supplier_id: None,
            source_key: format!("AcTr:{voucher}"),
        }
    }

    fn compress(text: &str) -> Vec<u8> {
        zstd::encode_all(text.as_bytes(), 3).unwrap()
    }

    #[test]
    fn round_trip_keeps_every_digit_and_batches() {
        let lines: Vec<VoucherLine> = (0..2500)
            .map(|i| line(&i.to_string(), "1920", if i % 2 == 0 { "1.10" } else { "-1.100" }))
            .collect();
        let mut writer = PartWriter::new(PartFormat::Ndjson, Entity::VoucherLines).unwrap();
        writer.write_batch(&RecordBatch::VoucherLines(lines[..1000].to_vec())).unwrap();
        writer.write_batch(&RecordBatch::VoucherLines(lines[1000..].to_vec())).unwrap();
        let part = writer.finish().unwrap();
        assert_eq!(part.records, 2500);
        assert_eq!(part.sha256, sha256_hex(&part.bytes));
        let info = part.info(3);
        assert_eq!((info.index, info.bytes), (3, part.bytes.len() as u64));

        let batches: Vec<RecordBatch> =
            PartReader::new(PartFormat::Ndjson, Entity::VoucherLines, 3, &part.bytes[..])
                .unwrap()
                .map(Result::unwrap)
                .collect();
        assert_eq!(batches.iter().map(RecordBatch::len).collect::<Vec<_>>(), [1000, 1000, 500]);
        let decoded: Vec<VoucherLine> = batches
            .into_iter()
            .flat_map(|b| match b {
                RecordBatch::VoucherLines(v) => v,
                other => panic!("unexpected {:?}", other.entity()),
            })
            .collect();
        assert_eq!(decoded, lines);
        assert_eq!(decoded[1].amount.to_string(), "-1.100");
    }

    #[test]
    fn borrowed_lines_make_the_same_part_as_owned_lines() {
        let lines: Vec<VoucherLine> =
            (0..300).map(|i| line(&(i / 2).to_string(), "1920", "-12.30")).collect();
        let mut owned = PartWriter::new(PartFormat::Ndjson, Entity::VoucherLines).unwrap();
        owned.write_batch(&RecordBatch::VoucherLines(lines[..100].to_vec())).unwrap();
        owned.write_batch(&RecordBatch::VoucherLines(lines[100..].to_vec())).unwrap();
        let owned = owned.finish().unwrap();
        let encoded = ledgerlink_plugin_api::canonical::encode_batch(&RecordBatch::VoucherLines(lines));
        let borrowed =
            ledgerlink_plugin_api::canonical::decode_borrowed_voucher_lines(&encoded).unwrap().unwrap();
        let mut writer = PartWriter::new(PartFormat::Ndjson, Entity::VoucherLines).unwrap();
        writer.write_borrowed_lines(&borrowed[..100]).unwrap();
        writer.write_borrowed_lines(&borrowed[100..]).unwrap();
        let part = writer.finish().unwrap();
        assert_eq!((part.records, &part.sha256), (owned.records, &owned.sha256));
        let mut accounts = PartWriter::new(PartFormat::Ndjson, Entity::Accounts).unwrap();
        assert!(matches!(accounts.write_borrowed_lines(&borrowed), Err(PartError::WrongEntity { .. })));
    }

    #[test]
    fn lines_are_compact_json_with_exact_strings() {
        let part =
            encode_part(PartFormat::Ndjson, &RecordBatch::VoucherLines(vec![line("1", "1920", "-1234.50")]))
                .unwrap();
        let text = String::from_utf8(zstd::decode_all(&part.bytes[..]).unwrap()).unwrap();
        assert!(text.ends_with("}\n") && text.lines().count() == 1, "{text}");
        assert!(text.contains(r#""amount":"-1234.50""#) && text.contains(r#""date":"2025-03-01""#), "{text}");
    }

    #[test]
    fn writer_refuses_another_entity() {
        let mut writer = PartWriter::new(PartFormat::Ndjson, Entity::Accounts).unwrap();
        let err = writer.write_batch(&RecordBatch::VoucherLines(vec![])).unwrap_err();
        assert!(err.to_string().contains("voucher_lines"), "{err}");
    }

    #[test]
    fn bad_line_is_named_with_part_and_line_number() {
        let good = serde_json::to_string(&account("1920")).unwrap();
        let text = format!("{good}\n{good}\n{{\"id\":\"3000\"}}\n");
        let err = PartReader::new(PartFormat::Ndjson, Entity::Accounts, 4, &compress(&text)[..])
            .unwrap()
            .find_map(Result::err)
            .expect("an error");
        let message = err.to_string();
        assert!(message.contains("part 4 (accounts), line 3"), "{message}");
        assert!(message.contains("missing field"), "{message}");
    }

    #[test]
    fn empty_lines_and_garbage_are_errors() {
        let good = serde_json::to_string(&account("1920")).unwrap();
        let err = PartReader::new(
            PartFormat::Ndjson,
            Entity::Accounts,
            0,
            &compress(&format!("{good}\n\n{good}\n"))[..],
        )
        .unwrap()
        .find_map(Result::err)
        .unwrap();
        assert!(err.to_string().contains("line 2: empty line"), "{err}");

        let err = PartReader::new(PartFormat::Ndjson, Entity::Accounts, 0, &b"not zstd at all"[..])
            .unwrap()
            .find_map(Result::err)
            .unwrap();
        assert!(err.to_string().contains("part 0 (accounts)"), "{err}");
    }

    #[test]
    fn a_line_that_is_not_utf8_is_named() {
        let good = serde_json::to_string(&account("1920")).unwrap();
        let mut text = format!("{good}\n").into_bytes();
        text.extend_from_slice(b"{\"id\":\"19\xff20\",\"name\":\"Bank\"}\n");
        let err = PartReader::new(
            PartFormat::Ndjson,
            Entity::Accounts,
            2,
            &zstd::encode_all(&text[..], 3).unwrap()[..],
        )
        .unwrap()
        .find_map(Result::err)
        .unwrap();
        let message = err.to_string();
        assert!(
            message.contains("part 2 (accounts), line 2") && message.contains("not valid UTF-8"),
            "{message}"
        );
    }

    #[test]
    fn reading_record_by_record_stops_at_the_first_error() {
        let good = serde_json::to_string(&account("1920")).unwrap();
        let text = format!("{good}\n{{\"id\":\"3000\"}}\n{good}\n");
        let bytes = compress(&text);
        let mut reader = PartReader::new(PartFormat::Ndjson, Entity::Accounts, 1, &bytes[..]).unwrap();
        assert!(reader.next_record::<Account>().unwrap().is_some());
        let err = reader.next_record::<Account>().unwrap_err();
        assert!(err.to_string().contains("part 1 (accounts), line 2"), "{err}");
        assert!(reader.next_record::<Account>().unwrap().is_none(), "nothing after the bad line");
        assert_eq!(reader.records_read(), 2);
    }

    #[test]
    fn missing_final_newline_is_tolerated_and_long_lines_refused() {
        let good = serde_json::to_string(&account("1920")).unwrap();
        let n: usize = PartReader::new(
            PartFormat::Ndjson,
            Entity::Accounts,
            0,
            &compress(&format!("{good}\n{good}"))[..],
        )
        .unwrap()
        .map(|b| b.unwrap().len())
        .sum();
        assert_eq!(n, 2);
        let err =
            PartReader::new(PartFormat::Ndjson, Entity::Accounts, 0, &compress(&format!("{good}\n"))[..])
                .unwrap()
                .max_line_bytes(10)
                .find_map(Result::err)
                .unwrap();
        assert!(err.to_string().contains("longer than 10 bytes"), "{err}");
    }

    /// A postcard part made by hand: each block's header and records as given.
    fn postcard_part(blocks: &[(u32, u32, &[u8])]) -> Vec<u8> {
        let mut raw = Vec::new();
        for &(count, len, records) in blocks {
            write_leb128(&mut raw, count);
            write_leb128(&mut raw, len);
            raw.extend_from_slice(records);
        }
        zstd::encode_all(&raw[..], 1).unwrap()
    }

    fn account_bytes(id: &str) -> Vec<u8> {
        postcard::to_stdvec(&account(id)).unwrap()
    }

    fn read_accounts(bytes: &[u8]) -> Result<Vec<Account>, PartError> {
        let batches: Result<Vec<RecordBatch>, PartError> =
            PartReader::new(PartFormat::Postcard, Entity::Accounts, 5, bytes).unwrap().collect();
        Ok(batches?
            .into_iter()
            .flat_map(|b| match b {
                RecordBatch::Accounts(a) => a,
                other => panic!("unexpected {:?}", other.entity()),
            })
            .collect())
    }

    #[test]
    fn postcard_parts_round_trip_across_blocks_and_batches() {
        // Enough lines for several 256 KiB blocks, so records are read across block ends.
        let lines: Vec<VoucherLine> = (0..12_000)
            .map(|i| line(&(i / 2).to_string(), "1920", if i % 2 == 0 { "1.10" } else { "-1.100" }))
            .collect();
        let mut writer = PartWriter::new(PartFormat::Postcard, Entity::VoucherLines).unwrap();
        writer.write_batch(&RecordBatch::VoucherLines(lines[..5000].to_vec())).unwrap();
        writer.write_batch(&RecordBatch::VoucherLines(lines[5000..].to_vec())).unwrap();
        let part = writer.finish().unwrap();
        assert_eq!((part.records, part.sha256.clone()), (12_000, sha256_hex(&part.bytes)));
        let raw = zstd::decode_all(&part.bytes[..]).unwrap();
        assert!(raw.len() > 2 * BLOCK_BYTES, "{} bytes make more than two blocks", raw.len());

        let mut reader =
            PartReader::new(PartFormat::Postcard, Entity::VoucherLines, 3, &part.bytes[..]).unwrap();
        let mut decoded = Vec::new();
        for batch in &mut reader {
            match batch.unwrap() {
                RecordBatch::VoucherLines(v) => decoded.extend(v),
                other => panic!("unexpected {:?}", other.entity()),
            }
        }
        assert_eq!(reader.records_read(), 12_000);
        assert_eq!(decoded, lines);
        assert_eq!(decoded[1].amount.to_string(), "-1.100", "the scale is kept");

        let ndjson = encode_part(PartFormat::Ndjson, &RecordBatch::VoucherLines(lines)).unwrap();
        let ndjson_raw = zstd::decode_all(&ndjson.bytes[..]).unwrap();
        assert!(
            raw.len() * 2 < ndjson_raw.len(),
            "postcard {} vs NDJSON {} bytes",
            raw.len(),
            ndjson_raw.len()
        );
    }

    #[test]
    fn borrowed_lines_make_the_same_postcard_part_and_read_back_borrowed() {
        let mut lines: Vec<VoucherLine> =
            (0..300).map(|i| line(&(i / 2).to_string(), "1920", "-12.30")).collect();
        lines[7].description = Some("\"quoted\" \\ and \u{1} control".into());
        let owned = encode_part(PartFormat::Postcard, &RecordBatch::VoucherLines(lines.clone())).unwrap();
        let encoded =
            ledgerlink_plugin_api::canonical::encode_batch(&RecordBatch::VoucherLines(lines.clone()));
        let borrowed =
            ledgerlink_plugin_api::canonical::decode_borrowed_voucher_lines(&encoded).unwrap().unwrap();
        let mut writer = PartWriter::new(PartFormat::Postcard, Entity::VoucherLines).unwrap();
        writer.write_borrowed_lines(&borrowed[..100]).unwrap();
        writer.write_borrowed_lines(&borrowed[100..]).unwrap();
        let part = writer.finish().unwrap();
        assert_eq!((part.records, &part.sha256), (owned.records, &owned.sha256));

        let mut reader =
            PartReader::new(PartFormat::Postcard, Entity::VoucherLines, 0, &part.bytes[..]).unwrap();
        let mut n = 0;
        while let Some(read) = reader.next_record::<BorrowedVoucherLine<'_>>().unwrap() {
            assert_eq!(read, borrowed[n]);
            assert!(matches!(read.source_key.0, std::borrow::Cow::Borrowed(_)), "no copy of the text");
            n += 1;
        }
        assert_eq!(n, 300);
    }

    #[test]
    fn other_entities_round_trip_as_postcard() {
        let accounts = vec![account("1920"), account("3000")];
        let part = encode_part(PartFormat::Postcard, &RecordBatch::Accounts(accounts.clone())).unwrap();
        assert_eq!(read_accounts(&part.bytes).unwrap(), accounts);
        let empty = PartWriter::new(PartFormat::Postcard, Entity::Accounts).unwrap().finish().unwrap();
        assert_eq!(read_accounts(&empty.bytes).unwrap(), vec![]);
    }

    #[test]
    fn broken_postcard_parts_are_named_with_part_and_record() {
        let (a, b) = (account_bytes("1920"), account_bytes("3000"));
        let two = [a.clone(), b.clone()].concat();
        let len = |bytes: &[u8]| bytes.len() as u32;

        let message = |bytes: Vec<u8>| read_accounts(&bytes).unwrap_err().to_string();
        // The block says three records but holds two.
        let err = message(postcard_part(&[(3, len(&two), &two)]));
        assert!(err.contains("part 5 (accounts), record 3: not a valid accounts record"), "{err}");
        // Bytes left after the last record of a block.
        let err = message(postcard_part(&[(1, len(&two), &two)]));
        assert!(err.contains("record 1") && err.contains(&format!("{} bytes follow", b.len())), "{err}");
        // A record that is not an account (a string that is not UTF-8).
        let mut bad = a.clone();
        let at = bad.iter().position(|&c| c == b'1').unwrap();
        bad[at] = 0xff;
        let err = message(postcard_part(&[(1, len(&a), &a), (1, len(&bad), &bad)]));
        assert!(err.contains("record 2: not a valid accounts record"), "{err}");
        // The part ends inside a block.
        let mut cut = postcard_part(&[(2, len(&two), &two)]);
        cut = zstd::encode_all(&zstd::decode_all(&cut[..]).unwrap()[..two.len()], 1).unwrap();
        assert!(message(cut).contains("cut short"));
        // …or inside a header.
        let err = message(zstd::encode_all(&[2u8, 0x80][..], 1).unwrap());
        assert!(err.contains("ends inside a block header"), "{err}");
        // Empty and oversized blocks.
        assert!(message(postcard_part(&[(0, 0, &[])])).contains("holds no records"));
        let err = message(postcard_part(&[(1, MAX_BLOCK_BYTES as u32 + 1, &a)]));
        assert!(err.contains("at most 16777216"), "{err}");
        // NDJSON read as postcard fails instead of yielding garbage.
        let ndjson = encode_part(PartFormat::Ndjson, &RecordBatch::Accounts(vec![account("1920")])).unwrap();
        assert!(read_accounts(&ndjson.bytes).is_err());
    }

    #[test]
    fn formats_are_named_and_the_best_shared_one_is_chosen() {
        assert_eq!(serde_json::to_string(&PartFormat::Postcard).unwrap(), r#""postcard""#);
        assert_eq!(
            PartFormat::best_shared(&[PartFormat::Ndjson, PartFormat::Postcard]),
            PartFormat::Postcard
        );
        assert_eq!(PartFormat::best_shared(&[PartFormat::Ndjson]), PartFormat::Ndjson);
        assert_eq!(PartFormat::best_shared(&[]), PartFormat::Ndjson);
    }
}
