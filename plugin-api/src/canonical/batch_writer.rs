//! Writing an encoded batch record by record, without a `Vec` of owned records.
//!
//! A plugin that streams millions of voucher lines spends much of its time
//! allocating the strings of owned [`VoucherLine`]s only to encode and free them.
//! A [`BatchWriter`] takes records one at a time, and any record type that
//! encodes exactly like the batch's own (its [`EncodesAs`]), such as a
//! [`BorrowedVoucherLine`] pointing into the fetch buffer. The bytes are those
//! [`encode_batch`](super::encode_batch) makes of the same records.

use super::{BorrowedVoucherLine, RecordBatch, VoucherLine};
use crate::sdk::EncodedBatch;
use serde::Serialize;
use std::marker::PhantomData;

/// A record type that encodes exactly like `T`, so it may be written into a batch of `T`.
pub trait EncodesAs<T>: Serialize {}

impl<T: Serialize> EncodesAs<T> for T {}

impl EncodesAs<VoucherLine> for BorrowedVoucherLine<'_> {}

/// An encoded batch of `T` records, written one record at a time.
pub struct BatchWriter<T> {
    wrap: fn(Vec<T>) -> RecordBatch,
    records: usize,
    body: Vec<u8>,
    _records: PhantomData<fn(T)>,
}

impl<T> BatchWriter<T> {
    /// An empty batch of the records `wrap` makes a batch of, with room for
    /// `capacity` bytes of records (room avoids regrowing the buffer).
    pub fn new(wrap: fn(Vec<T>) -> RecordBatch, capacity: usize) -> Self {
        Self { wrap, records: 0, body: Vec::with_capacity(capacity), _records: PhantomData }
    }

    /// Appends a record.
    pub fn push<R: EncodesAs<T>>(&mut self, record: &R) {
        self.body = postcard::to_extend(record, std::mem::take(&mut self.body))
            .expect("canonical records always serialize");
        self.records += 1;
    }

    /// Records written so far.
    pub fn len(&self) -> usize {
        self.records
    }

    /// True when no record was written.
    pub fn is_empty(&self) -> bool {
        self.records == 0
    }

    /// Bytes of records written so far.
    pub fn body_len(&self) -> usize {
        self.body.len()
    }

    /// The batch, encoded as [`encode_batch`](super::encode_batch) encodes it.
    pub fn finish(self) -> EncodedBatch {
        // An empty batch is the variant followed by a zero length (one byte); the
        // full one is the variant, the number of records, then the records.
        let empty = (self.wrap)(Vec::new());
        let mut bytes = super::encode_batch(&empty);
        debug_assert_eq!(bytes.last(), Some(&0), "`wrap` is a RecordBatch variant");
        bytes.pop();
        bytes.reserve_exact(10 + self.body.len());
        bytes = postcard::to_extend(&self.records, bytes).expect("a length always serializes");
        bytes.extend_from_slice(&self.body);
        EncodedBatch::from_encoded(empty.entity(), bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::super::*;
    use super::*;

    fn line(line_no: u32) -> VoucherLine {
        let source_key = format!("AcTr/JNo=7/EntNo={line_no}");
        VoucherLine { line_no, source_key, ..super::super::borrowed::tests::owned_line() }
    }

    #[test]
    fn owned_or_borrowed_records_make_the_bytes_of_encode_batch() {
        // 200 lines: the record count needs a two-byte length.
        let lines: Vec<VoucherLine> = (1..=200).map(line).collect();
        let expected = encode_batch(&RecordBatch::VoucherLines(lines.clone()));
        let borrowed = decode_borrowed_voucher_lines(&expected).unwrap().expect("voucher lines");

        let mut owned = BatchWriter::new(RecordBatch::VoucherLines, 0);
        let mut from_borrowed = BatchWriter::new(RecordBatch::VoucherLines, 0);
        for (line, borrowed) in lines.iter().zip(&borrowed) {
            owned.push(line);
            from_borrowed.push(borrowed);
        }
        assert_eq!(owned.len(), 200);
        for writer in [owned, from_borrowed] {
            let batch = writer.finish();
            assert_eq!(batch.entity(), Entity::VoucherLines);
            assert_eq!(batch.into_bytes(), expected);
        }
    }

    #[test]
    fn an_empty_batch_and_the_entity_come_from_the_wrapper() {
        let writer = BatchWriter::new(RecordBatch::Suppliers, 16);
        assert!(writer.is_empty());
        let batch = writer.finish();
        assert_eq!(batch.entity(), Entity::Suppliers, "not Customers: both hold parties");
        assert_eq!(batch.into_bytes(), encode_batch(&RecordBatch::Suppliers(Vec::new())));
    }
}
