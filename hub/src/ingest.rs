//! Verification of a snapshot before it becomes visible: checksums, records, validation.

use crate::error::ApiError;
use crate::storage::{BlobKey, BlobStore, CommitData, MetadataStore, SnapshotRecord, Tenant};
use axum::http::StatusCode;
use ledgerlink_plugin_api::canonical::{
    BorrowedVoucherLine, Entity, NaiveDate, Problem, RecordBatch, SnapshotValidator, TrialBalance,
    SCHEMA_VERSION,
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
    let mut dates =
        DateCheck { start: year.start, end: year.end, year: year.year, problems: Vec::new(), total: 0 };

    // Entities in canonical order (master data before vouchers), parts of one entity by index.
    let mut parts: Vec<&PartInfo> = manifest.parts.iter().collect();
    parts.sort_by_key(|p| (p.entity, p.index));

    let mut validator = SnapshotValidator::new(MAX_PROBLEMS);
    let mut trial_balance = TrialBalance::default();
    let mut records = 0u64;
    for part in parts {
        let bytes = read_part(meta, blobs, tenant, &snapshot.snapshot_id, part)?;
        let mut reader = PartReader::new(manifest.part_format, part.entity, part.index, &bytes[..])
            .map_err(|e| ApiError::bad_request("invalid_part", e.to_string()))?;
        let invalid = |e: PartError| ApiError::bad_request("invalid_record", e.to_string());
        if part.entity == Entity::VoucherLines {
            // The bulk of every snapshot: read line by line without allocating.
            while let Some(line) = reader.next_record::<BorrowedVoucherLine<'_>>().map_err(invalid)? {
                validator.observe_borrowed_line(&line);
                dates.check("voucher_lines", &line.source_key, line.date);
                trial_balance.add_amount(&line.account_id, line.amount);
            }
        } else {
            for batch in &mut reader {
                let batch = batch.map_err(invalid)?;
                validator.observe(&batch);
                dates.observe(&batch);
            }
        }
        let found = reader.records_read();
        if found != part.records {
            return Err(ApiError::bad_request(
                "record_count_mismatch",
                format!(
                    "part {} ({}) holds {found} records but the manifest says {}",
                    part.index, part.entity, part.records
                ),
            )
            .with_details(json!({ "part": part.index, "entity": part.entity, "declared": part.records, "found": found })));
        }
        records += found;
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

/// Reads a stored part and checks its size and checksum against the manifest.
fn read_part(
    meta: &dyn MetadataStore,
    blobs: &dyn BlobStore,
    tenant: &Tenant,
    snapshot_id: &str,
    part: &PartInfo,
) -> Result<Vec<u8>, ApiError> {
    let key = BlobKey { tenant_id: tenant.id, snapshot_id: snapshot_id.to_owned(), index: part.index };
    let mut bytes = Vec::with_capacity(part.bytes as usize);
    let found = match blobs.open(&key)? {
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
    meta.unmark_part(tenant, snapshot_id, part.index)?;
    blobs.delete(&key)?;
    Err(ApiError::new(
        StatusCode::CONFLICT,
        "parts_missing",
        format!("stored part {} is damaged or missing on the hub; upload it again, then commit", part.index),
    )
    .with_details(json!({ "missing_parts": [part.index] })))
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
