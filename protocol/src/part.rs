//! The part codec: canonical records as zstd-compressed NDJSON.

use crate::line_json::write_voucher_line;
use crate::manifest::{hex, PartInfo};
use ledgerlink_plugin_api::canonical::{BorrowedVoucherLine, Entity, RecordBatch};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::io::{BufRead, BufReader, Read, Write};

/// Longest NDJSON line a [`PartReader`] accepts unless told otherwise (1 MiB).
pub const DEFAULT_MAX_LINE_BYTES: usize = 1024 * 1024;

/// Bytes of NDJSON gathered before they go to the compressor.
const LINE_CHUNK_BYTES: usize = 64 << 10;

/// Default number of records per batch a [`PartReader`] yields.
const DEFAULT_BATCH_RECORDS: usize = 1000;

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
    /// A line of the part is not a valid canonical record.
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

/// Serializes a batch as NDJSON (one compact JSON object per line) into `out`.
pub fn write_batch_ndjson<W: Write>(batch: &RecordBatch, out: &mut W) -> std::io::Result<()> {
    match batch {
        RecordBatch::Accounts(r) => ndjson_lines(r, out),
        RecordBatch::Customers(r) | RecordBatch::Suppliers(r) => ndjson_lines(r, out),
        RecordBatch::DimensionTypes(r) => ndjson_lines(r, out),
        RecordBatch::DimensionValues(r) => ndjson_lines(r, out),
        RecordBatch::TaxCodes(r) => ndjson_lines(r, out),
        RecordBatch::Vouchers(r) => ndjson_lines(r, out),
        RecordBatch::VoucherLines(r) => ndjson_lines(r, out),
    }
}

/// Writes one compact JSON object per row, each ending in a newline.
fn ndjson_lines<T: Serialize, W: Write>(rows: &[T], out: &mut W) -> std::io::Result<()> {
    for row in rows {
        serde_json::to_writer(&mut *out, row)?;
        out.write_all(b"\n")?;
    }
    Ok(())
}

/// A finished part: the compressed bytes and what the manifest says about them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedPart {
    /// Entity of the records.
    pub entity: Entity,
    /// Number of records.
    pub records: u64,
    /// The zstd-compressed NDJSON.
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

/// Encodes batches of one entity into one part, streaming through zstd.
pub struct PartWriter {
    entity: Entity,
    records: u64,
    encoder: zstd::stream::write::Encoder<'static, Vec<u8>>,
}

impl std::fmt::Debug for PartWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PartWriter").field("entity", &self.entity).field("records", &self.records).finish()
    }
}

impl PartWriter {
    /// A writer for records of `entity` at the default compression level (1).
    pub fn new(entity: Entity) -> Result<Self, PartError> {
        Self::with_level(entity, 1)
    }

    /// A writer at a given zstd level (1–22).
    pub fn with_level(entity: Entity, level: i32) -> Result<Self, PartError> {
        let mut encoder = zstd::stream::write::Encoder::new(Vec::new(), level)
            .map_err(|e| PartError::Compress(e.to_string()))?;
        encoder.include_checksum(true).map_err(|e| PartError::Compress(e.to_string()))?;
        Ok(Self { entity, records: 0, encoder })
    }

    /// Appends a batch; it must be of the writer's entity.
    pub fn write_batch(&mut self, batch: &RecordBatch) -> Result<(), PartError> {
        self.append(batch.entity(), batch.len(), |out| write_batch_ndjson(batch, out))
    }

    /// Appends voucher lines borrowed from their encoded batch (the same NDJSON
    /// as [`Self::write_batch`] writes for the owned lines, written directly).
    pub fn write_borrowed_lines(&mut self, lines: &[BorrowedVoucherLine<'_>]) -> Result<(), PartError> {
        self.append(Entity::VoucherLines, lines.len(), |out| {
            let mut chunk = Vec::with_capacity(LINE_CHUNK_BYTES + 4096);
            for line in lines {
                write_voucher_line(line, &mut chunk);
                if chunk.len() >= LINE_CHUNK_BYTES {
                    out.write_all(&chunk)?;
                    chunk.clear();
                }
            }
            out.write_all(&chunk)
        })
    }

    fn append(
        &mut self,
        entity: Entity,
        records: usize,
        write: impl FnOnce(
            &mut std::io::BufWriter<&mut zstd::stream::write::Encoder<'static, Vec<u8>>>,
        ) -> std::io::Result<()>,
    ) -> Result<(), PartError> {
        if entity != self.entity {
            return Err(PartError::WrongEntity { expected: self.entity, found: entity });
        }
        // serde_json writes every field separately; feeding those small writes to
        // zstd one by one cost more than the compression itself (issue 9), so they
        // are gathered into 64 KiB chunks first.
        let mut out = std::io::BufWriter::with_capacity(64 << 10, &mut self.encoder);
        write(&mut out).and_then(|()| out.flush()).map_err(|e| PartError::Compress(e.to_string()))?;
        drop(out);
        self.records += records as u64;
        Ok(())
    }

    /// Records written so far.
    pub fn records(&self) -> u64 {
        self.records
    }

    /// Ends the zstd frame and returns the part.
    pub fn finish(self) -> Result<EncodedPart, PartError> {
        let bytes = self.encoder.finish().map_err(|e| PartError::Compress(e.to_string()))?;
        let sha256 = sha256_hex(&bytes);
        Ok(EncodedPart { entity: self.entity, records: self.records, bytes, sha256 })
    }
}

/// Encodes one batch as a whole part.
pub fn encode_part(batch: &RecordBatch) -> Result<EncodedPart, PartError> {
    let mut writer = PartWriter::new(batch.entity())?;
    writer.write_batch(batch)?;
    writer.finish()
}

/// Decodes a part back into batches of canonical records, streaming.
///
/// Yields batches of at most `batch_records` records; an error names the part
/// and the 1-based line. Iteration ends after the first error.
pub struct PartReader<R: Read> {
    entity: Entity,
    part: u32,
    lines: BufReader<zstd::stream::read::Decoder<'static, BufReader<R>>>,
    line_no: u64,
    batch_records: usize,
    max_line_bytes: usize,
    done: bool,
    buf: Vec<u8>,
}

impl<R: Read> std::fmt::Debug for PartReader<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PartReader")
            .field("entity", &self.entity)
            .field("part", &self.part)
            .field("line_no", &self.line_no)
            .finish()
    }
}

impl<R: Read> PartReader<R> {
    /// A reader of part `part` holding records of `entity`, over the compressed bytes in `reader`.
    pub fn new(entity: Entity, part: u32, reader: R) -> Result<Self, PartError> {
        let decoder = zstd::stream::read::Decoder::new(reader).map_err(|e| PartError::Stream {
            part,
            entity,
            message: e.to_string(),
        })?;
        Ok(Self {
            entity,
            part,
            lines: BufReader::new(decoder),
            line_no: 0,
            batch_records: DEFAULT_BATCH_RECORDS,
            max_line_bytes: DEFAULT_MAX_LINE_BYTES,
            done: false,
            buf: Vec::new(),
        })
    }

    /// Sets how many records each yielded batch holds at most.
    pub fn batch_records(mut self, records: usize) -> Self {
        self.batch_records = records.max(1);
        self
    }

    /// Sets the longest line accepted, in bytes (guards against one giant line).
    pub fn max_line_bytes(mut self, bytes: usize) -> Self {
        self.max_line_bytes = bytes;
        self
    }

    /// Records (lines) read so far.
    pub fn records_read(&self) -> u64 {
        self.line_no
    }

    fn line_error(&self, message: String) -> PartError {
        PartError::Line { part: self.part, entity: self.entity, line: self.line_no, message }
    }

    /// Reads the next line into `self.buf` (without the newline); false at the end.
    fn next_line(&mut self) -> Result<bool, PartError> {
        self.buf.clear();
        let limit = self.max_line_bytes as u64 + 1;
        let read = (&mut self.lines).take(limit).read_until(b'\n', &mut self.buf).map_err(|e| {
            PartError::Stream {
                part: self.part,
                entity: self.entity,
                message: format!("cannot decompress after line {}: {e}", self.line_no),
            }
        })?;
        if read == 0 {
            return Ok(false);
        }
        self.line_no += 1;
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

    /// The next line parsed as a `T`, which may borrow from the line (e.g.
    /// [`BorrowedVoucherLine`](ledgerlink_plugin_api::canonical::BorrowedVoucherLine));
    /// `None` at the end of the part. For reading one record at a time without
    /// the batches the iterator yields.
    pub fn next_record<'s, T: Deserialize<'s>>(&'s mut self) -> Result<Option<T>, PartError> {
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
                line: self.line_no,
                message: format!("not a valid {} record: {e}", self.entity),
            }),
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
        let mut writer = PartWriter::new(Entity::VoucherLines).unwrap();
        writer.write_batch(&RecordBatch::VoucherLines(lines[..1000].to_vec())).unwrap();
        writer.write_batch(&RecordBatch::VoucherLines(lines[1000..].to_vec())).unwrap();
        let part = writer.finish().unwrap();
        assert_eq!(part.records, 2500);
        assert_eq!(part.sha256, sha256_hex(&part.bytes));
        let info = part.info(3);
        assert_eq!((info.index, info.bytes), (3, part.bytes.len() as u64));

        let batches: Vec<RecordBatch> =
            PartReader::new(Entity::VoucherLines, 3, &part.bytes[..]).unwrap().map(Result::unwrap).collect();
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
        let mut owned = PartWriter::new(Entity::VoucherLines).unwrap();
        owned.write_batch(&RecordBatch::VoucherLines(lines[..100].to_vec())).unwrap();
        owned.write_batch(&RecordBatch::VoucherLines(lines[100..].to_vec())).unwrap();
        let owned = owned.finish().unwrap();
        let encoded = ledgerlink_plugin_api::canonical::encode_batch(&RecordBatch::VoucherLines(lines));
        let borrowed =
            ledgerlink_plugin_api::canonical::decode_borrowed_voucher_lines(&encoded).unwrap().unwrap();
        let mut writer = PartWriter::new(Entity::VoucherLines).unwrap();
        writer.write_borrowed_lines(&borrowed[..100]).unwrap();
        writer.write_borrowed_lines(&borrowed[100..]).unwrap();
        let part = writer.finish().unwrap();
        assert_eq!((part.records, &part.sha256), (owned.records, &owned.sha256));
        let mut accounts = PartWriter::new(Entity::Accounts).unwrap();
        assert!(matches!(accounts.write_borrowed_lines(&borrowed), Err(PartError::WrongEntity { .. })));
    }

    #[test]
    fn lines_are_compact_json_with_exact_strings() {
        let part = encode_part(&RecordBatch::VoucherLines(vec![line("1", "1920", "-1234.50")])).unwrap();
        let text = String::from_utf8(zstd::decode_all(&part.bytes[..]).unwrap()).unwrap();
        assert!(text.ends_with("}\n") && text.lines().count() == 1, "{text}");
        assert!(text.contains(r#""amount":"-1234.50""#) && text.contains(r#""date":"2025-03-01""#), "{text}");
    }

    #[test]
    fn writer_refuses_another_entity() {
        let mut writer = PartWriter::new(Entity::Accounts).unwrap();
        let err = writer.write_batch(&RecordBatch::VoucherLines(vec![])).unwrap_err();
        assert!(err.to_string().contains("voucher_lines"), "{err}");
    }

    #[test]
    fn bad_line_is_named_with_part_and_line_number() {
        let good = serde_json::to_string(&account("1920")).unwrap();
        let text = format!("{good}\n{good}\n{{\"id\":\"3000\"}}\n");
        let err = PartReader::new(Entity::Accounts, 4, &compress(&text)[..])
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
        let err = PartReader::new(Entity::Accounts, 0, &compress(&format!("{good}\n\n{good}\n"))[..])
            .unwrap()
            .find_map(Result::err)
            .unwrap();
        assert!(err.to_string().contains("line 2: empty line"), "{err}");

        let err = PartReader::new(Entity::Accounts, 0, &b"not zstd at all"[..])
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
        let err = PartReader::new(Entity::Accounts, 2, &zstd::encode_all(&text[..], 3).unwrap()[..])
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
        let mut reader = PartReader::new(Entity::Accounts, 1, &bytes[..]).unwrap();
        assert!(reader.next_record::<Account>().unwrap().is_some());
        let err = reader.next_record::<Account>().unwrap_err();
        assert!(err.to_string().contains("part 1 (accounts), line 2"), "{err}");
        assert!(reader.next_record::<Account>().unwrap().is_none(), "nothing after the bad line");
        assert_eq!(reader.records_read(), 2);
    }

    #[test]
    fn missing_final_newline_is_tolerated_and_long_lines_refused() {
        let good = serde_json::to_string(&account("1920")).unwrap();
        let n: usize = PartReader::new(Entity::Accounts, 0, &compress(&format!("{good}\n{good}"))[..])
            .unwrap()
            .map(|b| b.unwrap().len())
            .sum();
        assert_eq!(n, 2);
        let err = PartReader::new(Entity::Accounts, 0, &compress(&format!("{good}\n"))[..])
            .unwrap()
            .max_line_bytes(10)
            .find_map(Result::err)
            .unwrap();
        assert!(err.to_string().contains("longer than 10 bytes"), "{err}");
    }
}
