//! Verification of a snapshot before it becomes visible: checksums, records, validation.

use crate::error::ApiError;
use crate::storage::{BlobKey, BlobStore, CommitData, MetadataStore, SnapshotRecord, Tenant};
use axum::http::StatusCode;
use ledgerlink_plugin_api::canonical::{
    BorrowedVoucherLine, CheckedLines, Entity, LineChecker, NaiveDate, Problem, RecordBatch, RunOrder,
    SnapshotValidator, StretchRuns, TrialBalance, ValidationReport, SCHEMA_VERSION,
};
use ledgerlink_protocol::{sha256_hex, PartError, PartInfo, PartReader};
use serde_json::json;
use std::io::Read;
use std::sync::atomic::{AtomicUsize, Ordering};

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
    verifiers: &Verifiers,
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
    let mut runs = RunOrder::default();
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

    // Voucher lines, the bulk of every snapshot: contiguous stretches of parts,
    // each read and checked on its own thread (this one and those the hub can
    // spare), their findings added in order — the report of one pass, sooner
    // (an agent waits for the commit of its last year with nothing else to do).
    let mut helpers = verifiers.borrow(line_parts.len().saturating_sub(1));
    let stretches = stretches(&line_parts, 1 + helpers.count());
    helpers.keep(stretches.len().saturating_sub(1));
    let first_failed = AtomicUsize::new(usize::MAX);
    let check = |number: usize, stretch: &[&PartInfo]| {
        let (checker, dates) = (validator.line_checker(), dates.empty());
        let checked =
            stored.check_lines(stretch, checker, dates, || first_failed.load(Ordering::Relaxed) < number);
        if matches!(checked, Err(Some(_))) {
            first_failed.fetch_min(number, Ordering::Relaxed);
        }
        checked
    };
    let checked: Vec<Result<CheckedStretch, Option<ApiError>>> = std::thread::scope(|scope| {
        let check = &check;
        let others: Vec<_> = stretches
            .iter()
            .enumerate()
            .skip(1)
            .map(|(number, stretch)| scope.spawn(move || check(number, stretch)))
            .collect();
        let first = stretches.first().map(|stretch| check(0, stretch));
        first
            .into_iter()
            .chain(others.into_iter().map(|thread| {
                thread
                    .join()
                    .unwrap_or_else(|_| Err(Some(ApiError::internal("a verification thread panicked"))))
            }))
            .collect()
    });
    drop(helpers);
    for stretch in checked {
        // The first failure in part order is the one a single pass would have met;
        // a stretch stops early only after one before it failed.
        let stretch = stretch.map_err(|failure| {
            failure
                .unwrap_or_else(|| ApiError::internal("a verification stopped without a failure before it"))
        })?;
        validator.absorb(stretch.lines);
        dates.absorb(stretch.dates);
        runs.absorb(stretch.runs);
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
    if runs.may_repeat() {
        report.append(stored.name_repeated_runs(&line_parts, &runs)?, MAX_PROBLEMS);
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

/// The spare threads commits may verify voucher lines on besides their own, one
/// pool for all commits: each holds one part in memory while it reads it.
#[derive(Debug)]
pub struct Verifiers {
    spare: AtomicUsize,
}

impl Verifiers {
    /// `threads − 1` spares: a lone commit verifies on up to `threads` threads.
    pub fn new(threads: usize) -> Self {
        Self { spare: AtomicUsize::new(threads.saturating_sub(1)) }
    }

    /// Takes up to `wanted` spare threads (none when other commits hold them all).
    fn borrow(&self, wanted: usize) -> Borrowed<'_> {
        let mut count = 0;
        let _ = self.spare.fetch_update(Ordering::AcqRel, Ordering::Acquire, |spare| {
            count = spare.min(wanted);
            Some(spare - count)
        });
        Borrowed { verifiers: self, count }
    }
}

/// Spare threads taken from [`Verifiers`], given back when dropped.
struct Borrowed<'a> {
    verifiers: &'a Verifiers,
    count: usize,
}

impl Borrowed<'_> {
    fn count(&self) -> usize {
        self.count
    }

    /// Gives back all but `needed` of the threads at once.
    fn keep(&mut self, needed: usize) {
        let extra = self.count.saturating_sub(needed);
        self.verifiers.spare.fetch_add(extra, Ordering::AcqRel);
        self.count -= extra;
    }
}

impl Drop for Borrowed<'_> {
    fn drop(&mut self) {
        self.verifiers.spare.fetch_add(self.count, Ordering::AcqRel);
    }
}

/// Cuts the parts into at most `count` contiguous stretches of about equal
/// records: the stretch a part goes to is the one its middle record falls in
/// (by the records the manifest declares; each is checked when read).
fn stretches<'p>(parts: &[&'p PartInfo], count: usize) -> Vec<Vec<&'p PartInfo>> {
    let total: u128 = parts.iter().map(|p| u128::from(p.records)).sum();
    let count = count.clamp(1, parts.len().max(1)) as u128;
    let mut stretches: Vec<Vec<&PartInfo>> = Vec::new();
    let (mut done, mut last) = (0u128, None);
    for part in parts {
        let middle = done + u128::from(part.records) / 2;
        let stretch = (middle * count / total.max(1)).min(count - 1);
        if last != Some(stretch) {
            stretches.push(Vec::new());
            last = Some(stretch);
        }
        stretches.last_mut().expect("a stretch").push(part);
        done += u128::from(part.records);
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
    runs: StretchRuns,
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

    /// Reads a stretch of voucher-line parts line by line, without allocating;
    /// fails with `None` when `stop` says so before a part.
    fn check_lines(
        &self,
        parts: &[&PartInfo],
        mut checker: LineChecker<'_>,
        mut dates: DateCheck,
        stop: impl Fn() -> bool,
    ) -> Result<CheckedStretch, Option<ApiError>> {
        let (mut trial_balance, mut records) = (TrialBalance::default(), 0);
        let mut runs = StretchRuns::default();
        for part in parts {
            if stop() {
                return Err(None);
            }
            let bytes = self.read(part)?;
            let mut reader = self.reader(part, &bytes)?;
            while let Some(line) = reader.next_record::<BorrowedVoucherLine<'_>>().map_err(invalid_record)? {
                checker.observe_borrowed_line(&line);
                dates.check("voucher_lines", &line.source_key, line.date);
                trial_balance.add_amount(&line.account_id, line.amount);
                runs.observe(&line.voucher_id);
            }
            records += check_count(part, reader.records_read())?;
        }
        Ok(CheckedStretch { lines: checker.finish(), dates, runs, trial_balance, records })
    }

    /// Reads every voucher-line part once more to name the vouchers whose lines come
    /// back after other vouchers' lines (only when [`RunOrder`] found some may).
    fn name_repeated_runs(&self, parts: &[&PartInfo], runs: &RunOrder) -> Result<ValidationReport, ApiError> {
        let mut names = runs.names(MAX_PROBLEMS);
        for part in parts {
            let bytes = self.read(part)?;
            let mut reader = self.reader(part, &bytes)?;
            while let Some(line) = reader.next_record::<BorrowedVoucherLine<'_>>().map_err(invalid_record)? {
                names.observe(&line.voucher_id, &line.source_key);
            }
        }
        Ok(names.finish())
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

        let (big, small) = (part(0, 1000), part(1, 1));
        let lopsided: Vec<usize> =
            stretches(&[&big, &small, &small, &small], 4).iter().map(Vec::len).collect();
        assert_eq!(lopsided, [1, 3], "parts whose middles fall in one stretch stay together");
        let huge = part(0, u64::MAX);
        assert_eq!(stretches(&[&huge, &huge, &huge], 3).len(), 3, "declared counts cannot overflow");
    }

    #[test]
    fn spare_threads_are_shared_by_all_commits_and_given_back() {
        let verifiers = Verifiers::new(4);
        let first = verifiers.borrow(2);
        assert_eq!(first.count(), 2);
        let second = verifiers.borrow(5);
        assert_eq!(second.count(), 1, "only what is left");
        assert_eq!(verifiers.borrow(1).count(), 0, "none left: the commit verifies on its own thread");
        drop(first);
        let mut third = verifiers.borrow(9);
        assert_eq!(third.count(), 2, "given back when done");
        third.keep(1);
        assert_eq!(third.count(), 1);
        assert_eq!(verifiers.borrow(9).count(), 1, "what a commit does not need is given back at once");
        drop((second, third));
        assert_eq!(verifiers.borrow(9).count(), 3, "all back");
        assert_eq!(Verifiers::new(1).borrow(3).count(), 0);
    }
}
