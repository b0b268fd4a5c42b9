//! Verification of a snapshot before it becomes visible: checksums, records, validation.

use crate::error::ApiError;
use crate::storage::{BlobKey, BlobStore, CommitData, MetadataStore, SnapshotRecord, Tenant};
use axum::http::StatusCode;
use ledgerlink_plugin_api::canonical::{
    BorrowedVoucherLine, CheckedLines, Entity, LineChecker, NaiveDate, Problem, RecordBatch,
    SnapshotValidator, TrialBalance, SCHEMA_VERSION,
};
use ledgerlink_protocol::{sha256_hex, PartError, PartInfo, PartReader};
use serde_json::json;
use std::io::Read;

/// Canonical schema versions this hub accepts.
pub const SCHEMA_VERSIONS: &[u32] = &[SCHEMA_VERSION];

/// How many problems an error response lists at most.
const MAX_PROBLEMS: usize = 100;

/// Reads, checks and decodes every part of an open snapshot; computes what commit stores.
///
/// A part whose stored bytes no longer match the manifest is forgotten (so the
/// agent uploads it again) and reported as a conflict.
pub fn verify_snapshot(
    meta: &dyn MetadataStore,
    blobs: &dyn BlobStore,
    tenant: &Tenant,
    snapshot: &SnapshotRecord,
) -> Result<CommitData, ApiError> {
    let manifest = &snapshot.manifest;
    if !SCHEMA_VERSIONS.contains(&manifest.schema_version) {
        return Err(ApiError::bad_request(
            "unsupported_schema_version",
            format!(
                "schema_version {} is not supported (supported: {SCHEMA_VERSIONS:?})",
                manifest.schema_version
            ),
        ));
    }
    let year =
        manifest.company.fiscal_years.iter().find(|y| y.year == manifest.fiscal_year).ok_or_else(|| {
            ApiError::bad_request(
                "unknown_fiscal_year",
                format!("fiscal_year {} is not one of the company's fiscal years", manifest.fiscal_year),
            )
        })?;
    let mut dates = DateCheck::new(year.start, year.end, year.year);

    // Entities in canonical order (master data before vouchers), parts of one entity by index.
    let mut parts: Vec<&PartInfo> = manifest.parts.iter().collect();
    parts.sort_by_key(|p| (p.entity, p.index));
    let (line_parts, other_parts): (Vec<&PartInfo>, Vec<&PartInfo>) =
        parts.into_iter().partition(|p| p.entity == Entity::VoucherLines);
    let stored = StoredParts { meta, blobs, tenant, snapshot };

    let mut validator = SnapshotValidator::new(MAX_PROBLEMS);
    let mut trial_balance = TrialBalance::default();
    let mut records = 0u64;
    for part in other_parts {
        let bytes = stored.read(part)?;
        let mut reader = stored.reader(part, &bytes)?;
        for batch in &mut reader {
            let batch = batch.map_err(invalid_record)?;
            validator.observe(&batch);
            dates.observe(&batch);
        }
        records += check_count(part, reader.records_read())?;
    }

    // Voucher lines, the bulk of every snapshot: contiguous stretches of parts
    // checked side by side and their findings added in order, which gives the
    // report of one pass in a fraction of the time (an agent waits for the
    // commit of its last year with nothing else to do).
    let stretches = stretches(&line_parts, verify_threads());
    let checked: Vec<Result<CheckedStretch, ApiError>> = std::thread::scope(|scope| {
        let running: Vec<_> = stretches
            .iter()
            .map(|stretch| {
                let (checker, stored, dates) = (validator.line_checker(), &stored, dates.empty());
                scope.spawn(move || stored.check_lines(stretch, checker, dates))
            })
            .collect();
        running
            .into_iter()
            .map(|thread| {
                thread.join().unwrap_or_else(|_| Err(ApiError::internal("a verification thread panicked")))
            })
            .collect()
    });
    for stretch in checked {
        let stretch = stretch?;
        validator.absorb(stretch.lines);
        dates.absorb(stretch.dates);
        trial_balance.merge(stretch.trial_balance);
        records += stretch.records;
    }

    let mut report = validator.finish();
    report.total_problems += dates.total;
    for p in dates.problems {
        if report.problems.len() < MAX_PROBLEMS {
            report.problems.push(p);
        }
    }
    if !report.is_valid() {
        let first = report.problems.first().map(ToString::to_string).unwrap_or_default();
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            format!("the snapshot does not validate ({} problem(s)); first: {first}", report.total_problems),
        )
        .with_details(json!({ "total_problems": report.total_problems, "problems": report.problems })));
    }
    Ok(CommitData { records, trial_balance })
}

/// Most threads one commit verifies voucher lines on.
const MAX_VERIFY_THREADS: usize = 8;

fn verify_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get()).min(MAX_VERIFY_THREADS)
}

/// Cuts the parts into at most `count` contiguous stretches of about equal records.
fn stretches<'p>(parts: &[&'p PartInfo], count: usize) -> Vec<Vec<&'p PartInfo>> {
    let total: u64 = parts.iter().map(|p| p.records).sum();
    let count = count.clamp(1, parts.len().max(1)) as u64;
    let mut stretches: Vec<Vec<&PartInfo>> = Vec::new();
    let mut done = 0u64;
    for part in parts {
        // A part goes to the stretch its middle record falls in.
        let k = ((done + part.records / 2) * count / total.max(1)).min(count - 1) as usize;
        if stretches.len() <= k {
            stretches.push(Vec::new());
        }
        stretches.last_mut().expect("a stretch").push(part);
        done += part.records;
    }
    stretches
}

fn invalid_record(e: PartError) -> ApiError {
    ApiError::bad_request("invalid_record", e.to_string())
}

/// A part holds as many records as the manifest says, or the snapshot is refused.
fn check_count(part: &PartInfo, found: u64) -> Result<u64, ApiError> {
    if found != part.records {
        return Err(ApiError::bad_request(
            "record_count_mismatch",
            format!(
                "part {} ({}) holds {found} records but the manifest says {}",
                part.index, part.entity, part.records
            ),
        )
        .with_details(
            json!({ "part": part.index, "entity": part.entity, "declared": part.records, "found": found }),
        ));
    }
    Ok(found)
}

/// What one stretch of voucher-line parts holds.
struct CheckedStretch {
    lines: CheckedLines,
    dates: DateCheck,
    trial_balance: TrialBalance,
    records: u64,
}

/// The stored parts of one open snapshot.
struct StoredParts<'a> {
    meta: &'a dyn MetadataStore,
    blobs: &'a dyn BlobStore,
    tenant: &'a Tenant,
    snapshot: &'a SnapshotRecord,
}

impl StoredParts<'_> {
    /// Reads a stored part and checks its size and checksum against the manifest.
    ///
    /// A damaged part is forgotten (so the agent uploads it again) and reported as a conflict.
    fn read(&self, part: &PartInfo) -> Result<Vec<u8>, ApiError> {
        let (tenant, snapshot_id) = (self.tenant, &self.snapshot.snapshot_id);
        let key = BlobKey { tenant_id: tenant.id, snapshot_id: snapshot_id.clone(), index: part.index };
        let mut bytes = Vec::with_capacity(part.bytes as usize);
        let found = match self.blobs.open(&key)? {
            Some(reader) => {
                reader.take(part.bytes + 1).read_to_end(&mut bytes).map_err(ApiError::internal)?;
                true
            }
            None => false,
        };
        if found && bytes.len() as u64 == part.bytes && sha256_hex(&bytes) == part.sha256 {
            return Ok(bytes);
        }
        tracing::warn!(tenant = %tenant.name, snapshot = %snapshot_id, part = part.index, found, "Stored part is damaged; it must be uploaded again.");
        self.meta.unmark_part(tenant, snapshot_id, part.index)?;
        self.blobs.delete(&key)?;
        Err(ApiError::new(
            StatusCode::CONFLICT,
            "parts_missing",
            format!(
                "stored part {} is damaged or missing on the hub; upload it again, then commit",
                part.index
            ),
        )
        .with_details(json!({ "missing_parts": [part.index] })))
    }

    fn reader<'b>(&self, part: &PartInfo, bytes: &'b [u8]) -> Result<PartReader<&'b [u8]>, ApiError> {
        PartReader::new(self.snapshot.manifest.part_format, part.entity, part.index, bytes)
            .map_err(|e| ApiError::bad_request("invalid_part", e.to_string()))
    }

    /// Reads a stretch of voucher-line parts line by line, without allocating.
    fn check_lines(
        &self,
        parts: &[&PartInfo],
        mut checker: LineChecker<'_>,
        mut dates: DateCheck,
    ) -> Result<CheckedStretch, ApiError> {
        let (mut trial_balance, mut records) = (TrialBalance::default(), 0);
        for part in parts {
            let bytes = self.read(part)?;
            let mut reader = self.reader(part, &bytes)?;
            while let Some(line) = reader.next_record::<BorrowedVoucherLine<'_>>().map_err(invalid_record)? {
                checker.observe_borrowed_line(&line);
                dates.check("voucher_lines", &line.source_key, line.date);
                trial_balance.add_amount(&line.account_id, line.amount);
            }
            records += check_count(part, reader.records_read())?;
        }
        Ok(CheckedStretch { lines: checker.finish(), dates, trial_balance, records })
    }
}

/// Checks that vouchers and lines are dated within the snapshot's fiscal year.
struct DateCheck {
    start: NaiveDate,
    end: NaiveDate,
    year: i32,
    problems: Vec<Problem>,
    total: u64,
}

impl DateCheck {
    fn new(start: NaiveDate, end: NaiveDate, year: i32) -> Self {
        Self { start, end, year, problems: Vec::new(), total: 0 }
    }

    /// A check of the same year with nothing found yet.
    fn empty(&self) -> Self {
        Self::new(self.start, self.end, self.year)
    }

    /// Adds what a check of later records found.
    fn absorb(&mut self, later: DateCheck) {
        self.total += later.total;
        let room = MAX_PROBLEMS.saturating_sub(self.problems.len());
        self.problems.extend(later.problems.into_iter().take(room));
    }

    fn check(&mut self, entity: &str, source_key: &str, date: NaiveDate) {
        if date < self.start || date > self.end {
            self.total += 1;
            if self.problems.len() < MAX_PROBLEMS {
                self.problems.push(Problem {
                    entity: entity.into(),
                    source_key: source_key.into(),
                    field: "date".into(),
                    message: format!(
                        "{date} is outside fiscal year {} ({} to {})",
                        self.year, self.start, self.end
                    ),
                });
            }
        }
    }

    /// Checks the dates of a batch (voucher lines are checked one by one, as read).
    fn observe(&mut self, batch: &RecordBatch) {
        if let RecordBatch::Vouchers(rows) = batch {
            rows.iter().for_each(|r| self.check("vouchers", &r.source_key, r.date));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ledgerlink_plugin_api::canonical::Entity;

    fn part(index: u32, records: u64) -> PartInfo {
        PartInfo { entity: Entity::VoucherLines, index, records, bytes: 1, sha256: String::new() }
    }

    #[test]
    fn stretches_keep_the_order_and_share_the_records() {
        let parts: Vec<PartInfo> =
            [100, 100, 100, 100, 50, 7, 0].iter().enumerate().map(|(i, &r)| part(i as u32, r)).collect();
        let refs: Vec<&PartInfo> = parts.iter().collect();
        for count in 1..=8 {
            let cut = stretches(&refs, count);
            assert!(!cut.is_empty() && cut.len() <= count.min(parts.len()), "{count}: {}", cut.len());
            let order: Vec<u32> = cut.iter().flatten().map(|p| p.index).collect();
            assert_eq!(order, [0, 1, 2, 3, 4, 5, 6], "every part once, in order");
            assert!(cut.iter().all(|s| !s.is_empty()));
        }
        let halves: Vec<u64> =
            stretches(&refs, 2).iter().map(|s| s.iter().map(|p| p.records).sum()).collect();
        assert_eq!(halves, [200, 257]);
        assert!(stretches(&[], 4).is_empty());
        let empty = part(0, 0);
        assert_eq!(stretches(&[&empty, &empty], 2).len(), 1, "no records: one stretch");
    }
}
