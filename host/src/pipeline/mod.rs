//! One sync of one source: change detection → extract → validate → spool → upload.
//!
//! The pipeline connects the plugin (extraction), the spool (durability) and the
//! hub client (upload); none of them knows the others. State is updated only
//! after the hub acknowledges a snapshot, so an interruption at any point leads
//! to a retry, never to a loss or a duplicate (the hub's ids are content-addressed).

mod progress;

pub use progress::Progress;

use crate::hub_client::{HubClient, HubError, Refusal};
use crate::plugins::{Extractor, SourceError};
use crate::spool::{EntryMeta, Spool, SpoolEntry, SpoolError};
use crate::state::{Acknowledged, SnapshotKey, StateError, StateStore};
use ledgerlink_plugin_api::abi::CancelFlag;
use ledgerlink_plugin_api::canonical::{
    Company, Entity, SnapshotValidator, ValidationReport, SCHEMA_VERSION,
};
use ledgerlink_plugin_api::ErrorKind;
use ledgerlink_protocol::{
    sha256_hex, Manifest, PartError, PartFormat, PartInfo, PartReader, PartWriter, PluginRef,
    PROTOCOL_VERSION,
};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;

/// Records per spooled part (about 1 MB compressed; a part is held in memory until written).
const PART_RECORDS: u64 = 100_000;

/// Which fiscal years of a company a source syncs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum YearSelection {
    /// The company's latest `n` fiscal years.
    Recent(usize),
    /// These years (those the company has).
    List(Vec<i32>),
}

/// What to sync: one source of one tenant, as configured.
#[derive(Debug, Clone)]
pub struct SourceSpec {
    /// Tenant id.
    pub tenant: String,
    /// Source id.
    pub id: String,
    /// Companies to sync by the configuration; all visible ones when `None`.
    pub companies: Option<Vec<String>>,
    /// Companies selected on the hub for this source; no selection when `None`.
    pub hub_selection: Option<Vec<String>>,
    /// Fiscal years to sync.
    pub years: YearSelection,
}

/// Narrowing and forcing of one sync (from the command line or the hub).
#[derive(Debug, Clone, Default)]
pub struct SyncRequest {
    /// Only this company.
    pub company: Option<String>,
    /// Only this fiscal year.
    pub year: Option<i32>,
    /// Upload even when nothing changed.
    pub force: bool,
}

/// What happened to one company's fiscal year.
#[derive(Debug, Clone)]
pub enum YearOutcome {
    /// The change token (or the content) equals what the hub acknowledged.
    Unchanged,
    /// Uploaded and acknowledged by the hub.
    Uploaded {
        /// The hub's snapshot id.
        snapshot_id: String,
        /// Records per entity.
        counts: BTreeMap<String, u64>,
    },
    /// Safely in the spool; the upload waits for the hub (or for spool room).
    Spooled {
        /// Why it was not delivered now.
        reason: String,
    },
    /// Not extracted now (the spool is full, or another run extracts it); a
    /// later run extracts it. Nothing of it is on disk.
    Deferred {
        /// Why it waits.
        reason: String,
    },
    /// Refused by the hub: it stays in the spool until the cause is fixed.
    Refused {
        /// What kind of refusal (decides the exit code).
        refusal: Refusal,
        /// The refusal with its resolution.
        error: String,
    },
    /// Not valid canonical data: not uploaded.
    Invalid {
        /// The first problems, with source keys.
        report: ValidationReport,
    },
    /// The plugin or the hub failed for this year.
    Failed {
        /// What went wrong.
        error: String,
    },
}

/// The outcome of a sync, per company and year.
#[derive(Debug, Default)]
pub struct SyncReport {
    /// Every company/year handled, in order.
    pub years: Vec<(SnapshotKey, YearOutcome)>,
    /// A failure that stopped the whole source (plugin or connection), if any.
    pub source_error: Option<String>,
    /// Every company the source can see (reported to the hub for company selection).
    pub companies: Vec<Company>,
    /// Spooled snapshots this run tried to deliver and could not, with their
    /// outcome: a year that finds one of them is not sent a second time.
    tried: BTreeMap<PathBuf, YearOutcome>,
}

/// Everything a sync needs besides the plugin.
pub struct SyncContext<'a> {
    /// This installation's id.
    pub agent_id: &'a str,
    /// Acknowledgements and counts.
    pub state: &'a StateStore,
    /// Durable storage of snapshots before upload.
    pub spool: &'a Spool,
    /// The tenant's hub client.
    pub hub: &'a HubClient,
    /// Set to stop between batches.
    pub cancel: CancelFlag,
    /// No progress output.
    pub quiet: bool,
}

/// A failure that stops a whole sync.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// The plugin failed outside one year (open, companies).
    #[error(transparent)]
    Source(#[from] SourceError),
    /// The state store failed.
    #[error(transparent)]
    State(#[from] StateError),
    /// The spool failed (disk full, permissions).
    #[error(transparent)]
    Spool(#[from] SpoolError),
    /// The request names a company or year the source does not have.
    #[error("{0}")]
    Selection(String),
}

/// Puts entities in extraction order, without duplicates: master data first, then
/// voucher lines, then vouchers — so a plugin whose ERP has no voucher table can
/// fold the headers out of its line pass instead of reading the lines twice.
pub fn extraction_order(entities: &mut Vec<Entity>) {
    entities.sort_by_key(|&entity| (entity == Entity::Vouchers, entity));
    entities.dedup();
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Why `company` of the source is left out, with what selects it; `None` when it is selected.
fn not_selected(spec: &SourceSpec, company: &str) -> Option<String> {
    let listed = |list: &Option<Vec<String>>| list.as_ref().is_none_or(|l| l.iter().any(|c| c == company));
    if !listed(&spec.companies) {
        return Some(format!(
            "company `{company}` is not in the `companies` of source `{}` in the configuration. \
             Resolution: add it there to sync it",
            spec.id
        ));
    }
    if !listed(&spec.hub_selection) {
        return Some(format!(
            "company `{company}` of source `{}` is not selected on the hub. Resolution: select it on the \
             hub first (the customer's choice; support: `ledgerlink-hub admin companies`), then sync",
            spec.id
        ));
    }
    None
}

/// The company/years a request covers, in order.
fn select(
    companies: Vec<Company>,
    spec: &SourceSpec,
    request: &SyncRequest,
) -> Result<Vec<(Company, i32)>, SyncError> {
    if let Some(wanted) = &request.company {
        if !companies.iter().any(|c| &c.id == wanted) {
            let known: Vec<&str> = companies.iter().map(|c| c.id.as_str()).collect();
            return Err(SyncError::Selection(format!(
                "source `{}` has no company `{wanted}` (it sees: {}). Resolution: use one of those ids",
                spec.id,
                known.join(", ")
            )));
        }
        if let Some(why) = not_selected(spec, wanted) {
            return Err(SyncError::Selection(why));
        }
    }
    let mut selected = Vec::new();
    for company in companies {
        let configured = not_selected(spec, &company.id).is_none();
        let requested = request.company.as_ref().is_none_or(|c| *c == company.id);
        if !(configured && requested) {
            continue;
        }
        let mut years: Vec<i32> = company.fiscal_years.iter().map(|y| y.year).collect();
        years.sort_unstable();
        let chosen: Vec<i32> = match (&request.year, &spec.years) {
            (Some(year), _) => {
                if !years.contains(year) {
                    return Err(SyncError::Selection(format!(
                        "company `{}` has no fiscal year {year} (it has: {years:?})",
                        company.id
                    )));
                }
                vec![*year]
            }
            (None, YearSelection::Recent(n)) => years[years.len().saturating_sub(*n)..].to_vec(),
            (None, YearSelection::List(list)) => years.iter().copied().filter(|y| list.contains(y)).collect(),
        };
        for year in chosen {
            selected.push((company.clone(), year));
        }
    }
    Ok(selected)
}

/// Syncs one source: first uploads whatever earlier runs left in the spool, then
/// every selected company and fiscal year.
///
/// Extraction and upload overlap: a thread of its own uploads each spooled
/// year while the next one is extracted (the hub verifies a snapshot while the
/// ERP is read), one waiting snapshot at most.
pub fn sync_source(
    ctx: &SyncContext<'_>,
    source: &dyn Extractor,
    plugin: &PluginRef,
    entities: &[Entity],
    spec: &SourceSpec,
    request: &SyncRequest,
) -> Result<SyncReport, SyncError> {
    let mut report = SyncReport::default();
    // Deliver what earlier runs left in the spool first.
    let mut blocked = upload_pending(ctx, &spec.tenant, &mut report).err();
    let tried = std::mem::take(&mut report.tried);
    let companies = source.companies()?;
    report.companies = companies.clone();
    let selected = select(companies, spec, request)?;
    let outcomes: Mutex<Vec<(usize, SnapshotKey, YearOutcome)>> = Mutex::default();
    let in_flight = InFlight::default();
    let record = |index: usize, key: SnapshotKey, outcome: YearOutcome| {
        log_outcome(&key, &outcome);
        outcomes.lock().unwrap_or_else(|e| e.into_inner()).push((index, key, outcome));
    };
    std::thread::scope(|scope| -> Result<(), SyncError> {
        let (to_upload, uploads) = std::sync::mpsc::sync_channel::<(usize, Box<SpoolEntry>)>(1);
        let upload_state = ctx.state.reopen()?;
        let (agent_id, spool, hub, cancel, quiet) =
            (ctx.agent_id, ctx.spool, ctx.hub, ctx.cancel.clone(), ctx.quiet);
        let (record, in_flight) = (&record, &in_flight);
        let uploader = scope.spawn(move || {
            let ctx = SyncContext { agent_id, state: &upload_state, spool, hub, cancel, quiet };
            for (index, entry) in uploads {
                let outcome = deliver_unless_blocked(&ctx, &entry, &mut blocked);
                record(index, entry.key(), outcome);
                in_flight.finished();
            }
        });
        let extracted = (|| {
            for (index, (company, year)) in selected.into_iter().enumerate() {
                let key = SnapshotKey {
                    tenant: spec.tenant.clone(),
                    source: spec.id.clone(),
                    company: company.id.clone(),
                    fiscal_year: year,
                };
                match sync_year(
                    ctx,
                    source,
                    plugin,
                    entities,
                    &company,
                    &key,
                    request.force,
                    in_flight,
                    &tried,
                )? {
                    Prepared::Done(outcome) => record(index, key, outcome),
                    Prepared::Spooled(entry) => {
                        in_flight.started();
                        if to_upload.send((index, entry)).is_err() {
                            // The uploader panicked; `join` re-raises it below.
                            in_flight.finished();
                            break;
                        }
                    }
                }
                if ctx.cancel.is_cancelled() {
                    break;
                }
            }
            Ok(())
        })();
        drop(to_upload);
        uploader.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        extracted
    })?;
    let mut outcomes = outcomes.into_inner().unwrap_or_else(|e| e.into_inner());
    outcomes.sort_by_key(|(index, _, _)| *index);
    for (_, key, outcome) in outcomes {
        // A year that upload_pending reported already is reported once: as this
        // run left it, or as delivered there when it is unchanged now.
        match report.years.iter_mut().find(|(known, _)| *known == key) {
            Some(_) if matches!(outcome, YearOutcome::Unchanged) => {}
            Some(known) => known.1 = outcome,
            None => report.years.push((key, outcome)),
        }
    }
    Ok(report)
}

/// Counts snapshots handed to the uploader and not yet delivered.
#[derive(Default)]
struct InFlight {
    count: Mutex<usize>,
    idle: std::sync::Condvar,
}

impl InFlight {
    fn started(&self) {
        *self.count.lock().unwrap_or_else(|e| e.into_inner()) += 1;
    }

    fn finished(&self) {
        let mut count = self.count.lock().unwrap_or_else(|e| e.into_inner());
        *count = count.saturating_sub(1);
        if *count == 0 {
            self.idle.notify_all();
        }
    }

    /// Waits until every handed-over snapshot is delivered (or left spooled): a
    /// full spool may have room again afterwards.
    fn wait_idle(&self) {
        let mut count = self.count.lock().unwrap_or_else(|e| e.into_inner());
        while *count > 0 {
            count = self.idle.wait(count).unwrap_or_else(|e| e.into_inner());
        }
    }
}

/// True when the spool has room, after waiting for running uploads if it has not.
fn spool_has_room(ctx: &SyncContext<'_>, in_flight: &InFlight) -> bool {
    if ctx.spool.has_room_for(0) {
        return true;
    }
    in_flight.wait_idle();
    ctx.spool.has_room_for(0)
}

/// Why a snapshot waits: the hub makes the snapshot committed last current, so
/// an older one of the same year, which another run is uploading, goes first.
const OLDER_FIRST: &str =
    "an older snapshot of this year is being uploaded by another run; this one goes after it";

/// Removes the spooled snapshots of `entry`'s year older than it, which it
/// supersedes (it was extracted later); true when one of them is claimed by
/// another run, which may commit it after this one: `entry` must wait then.
fn supersede_older(ctx: &SyncContext<'_>, entry: &SpoolEntry) -> Result<bool, SpoolError> {
    for older in ctx.spool.pending()? {
        if older.key() != entry.key() || older.dir.file_name() >= entry.dir.file_name() {
            continue;
        }
        match older.claim()? {
            Some(_claim) => {
                tracing::info!(entry = %older.dir.display(), "Removing a spooled snapshot superseded by a newer one of the same year.");
                older.remove()?;
            }
            None if older.dir.exists() => return Ok(true),
            None => {}
        }
    }
    Ok(false)
}

/// Delivers a freshly spooled year, or leaves it in the spool when an earlier
/// upload showed that none can succeed in this run (the hub is down or refuses
/// the tenant's key) or the sync was cancelled.
fn deliver_unless_blocked(
    ctx: &SyncContext<'_>,
    entry: &SpoolEntry,
    blocked: &mut Option<YearOutcome>,
) -> YearOutcome {
    if let Some(outcome) = blocked.as_ref() {
        return outcome.clone();
    }
    match supersede_older(ctx, entry) {
        Ok(false) => {}
        Ok(true) => return YearOutcome::Spooled { reason: OLDER_FIRST.into() },
        Err(e) => return YearOutcome::Failed { error: e.to_string() },
    }
    if ctx.cancel.is_cancelled() {
        return YearOutcome::Spooled { reason: "the sync was cancelled; the next run uploads it".into() };
    }
    match deliver(ctx, entry) {
        Ok(Some(outcome)) => outcome,
        Ok(None) => YearOutcome::Spooled { reason: "another run of this tenant is uploading it".into() },
        Err(e) => {
            let stops = e.stops_every_upload();
            let outcome = upload_failed(e);
            if stops {
                *blocked = Some(outcome.clone());
            }
            outcome
        }
    }
}

/// The outcome of an upload that did not go through (the entry is still spooled
/// unless it was damaged).
fn upload_failed(error: HubError) -> YearOutcome {
    match error.refusal() {
        Some(refusal) => YearOutcome::Refused { refusal, error: error.to_string() },
        None if error.is_transient() => YearOutcome::Spooled { reason: error.to_string() },
        None => YearOutcome::Failed { error: error.to_string() },
    }
}

fn log_outcome(key: &SnapshotKey, outcome: &YearOutcome) {
    let (company, year) = (&key.company, key.fiscal_year);
    match outcome {
        YearOutcome::Unchanged => {
            tracing::info!(source = %key.source, company, year, "Unchanged since the last upload; skipped.")
        }
        YearOutcome::Uploaded { snapshot_id, .. } => {
            tracing::info!(source = %key.source, company, year, snapshot = %snapshot_id, "Uploaded and acknowledged by the hub.")
        }
        YearOutcome::Spooled { reason } => {
            tracing::warn!(source = %key.source, company, year, %reason, "Spooled; it will be uploaded later.")
        }
        YearOutcome::Deferred { reason } => {
            tracing::warn!(source = %key.source, company, year, %reason, "Not extracted now; a later run extracts it.")
        }
        YearOutcome::Invalid { report } => tracing::error!(
            source = %key.source, company, year, problems = report.total_problems,
            first = %report.problems.first().map(|p| p.to_string()).unwrap_or_default(),
            "Not uploaded: the data is not valid."
        ),
        YearOutcome::Refused { error, .. } => {
            tracing::error!(source = %key.source, company, year, %error, "Refused by the hub; it stays in the spool.")
        }
        YearOutcome::Failed { error } => {
            tracing::error!(source = %key.source, company, year, %error, "Failed.")
        }
    }
}

enum Prepared {
    Done(YearOutcome),
    Spooled(Box<SpoolEntry>),
}

/// Change detection, extraction, validation and spooling of one company's year.
#[allow(clippy::too_many_arguments)]
fn sync_year(
    ctx: &SyncContext<'_>,
    source: &dyn Extractor,
    plugin: &PluginRef,
    entities: &[Entity],
    company: &Company,
    key: &SnapshotKey,
    force: bool,
    in_flight: &InFlight,
    tried: &BTreeMap<PathBuf, YearOutcome>,
) -> Result<Prepared, SyncError> {
    let Some(_extracting) = ctx.spool.lock_year(key)? else {
        let reason =
            "another run is extracting this year (a `ledgerlink sync` or the service); it uploads it";
        return Ok(Prepared::Done(YearOutcome::Deferred { reason: reason.into() }));
    };
    let token = match source.change_token(&company.id, key.fiscal_year) {
        Ok(token) => Some(token),
        Err(e) => return Ok(Prepared::Done(YearOutcome::Failed { error: e.to_string() })),
    };
    let acknowledged = ctx.state.acknowledged(key)?;
    let extracted_by = format!("{}@{}", plugin.id, plugin.version);
    if !force && acknowledged.as_ref().is_some_and(|a| a.change_token == token && a.plugin == extracted_by) {
        return Ok(Prepared::Done(YearOutcome::Unchanged));
    }
    // A snapshot of the same data may already wait in the spool (hub was down).
    if let Some(entry) = ctx
        .spool
        .pending()?
        .into_iter()
        .find(|e| e.key() == *key && e.manifest.change_token == token && e.manifest.plugin == *plugin)
    {
        // Tried already in this run (and refused, or failed): once is enough.
        if let Some(outcome) = tried.get(&entry.dir) {
            return Ok(Prepared::Done(outcome.clone()));
        }
        return Ok(Prepared::Spooled(Box::new(entry)));
    }
    if !spool_has_room(ctx, in_flight) {
        let reason = format!(
            "the spool is full ({} of {} bytes used); extraction waits until uploads free room",
            ctx.spool.usage(),
            ctx.spool.max_bytes()
        );
        return Ok(Prepared::Done(YearOutcome::Deferred { reason }));
    }
    let expected = ctx.state.counts(key)?;
    let format = part_format(ctx)?;
    let mut writer = ctx.spool.begin()?;
    let mut validator = SnapshotValidator::new(20);
    let mut parts: Vec<PartInfo> = Vec::new();
    let mut counts = BTreeMap::new();
    for &entity in entities {
        let label = format!("{} company {} {} {entity}", key.source, company.id, key.fiscal_year);
        let mut progress = Progress::start(label, expected.get(entity.as_str()).copied(), ctx.quiet);
        let failed = |e: SourceError| {
            Ok(Prepared::Done(if e.kind() == ErrorKind::CANCELLED && ctx.cancel.is_cancelled() {
                // Stopped on purpose (shutdown, or a cancel from the hub): not a failure.
                YearOutcome::Deferred {
                    reason: "the run was stopped before this year was extracted; the next run syncs it"
                        .into(),
                }
            } else {
                YearOutcome::Failed { error: e.to_string() }
            }))
        };
        let mut batches = match source.extract(&company.id, entity, key.fiscal_year, ctx.cancel.clone()) {
            Ok(batches) => batches,
            Err(e) => return failed(e),
        };
        let mut part = new_part(format, entity)?;
        while let Some(bytes) = batches.next_encoded() {
            let bytes = match bytes {
                Ok(bytes) => bytes,
                Err(e) => return failed(e),
            };
            // Voucher lines, the bulk of a year, stay borrowed from the batch's
            // bytes until they are in the part; other entities are decoded as records.
            let records = match batches.borrowed_lines(&bytes) {
                Ok(Some(lines)) => {
                    lines.iter().for_each(|line| validator.observe_borrowed_line(line));
                    part.write_borrowed_lines(&lines).map_err(part_error)?;
                    lines.len()
                }
                Ok(None) => match batches.decode(&bytes) {
                    Ok(batch) => {
                        validator.observe(&batch);
                        part.write_batch(&batch).map_err(part_error)?;
                        batch.len()
                    }
                    Err(e) => return failed(e),
                },
                Err(e) => return failed(e),
            };
            progress.add(records as u64);
            if part.records() >= PART_RECORDS {
                let full = std::mem::replace(&mut part, new_part(format, entity)?);
                add_part(&mut writer, &mut parts, full)?;
                if !spool_has_room(ctx, in_flight) {
                    let reason = format!(
                        "the spool filled up during extraction ({} bytes allowed)",
                        ctx.spool.max_bytes()
                    );
                    return Ok(Prepared::Done(YearOutcome::Deferred { reason }));
                }
            }
        }
        if part.records() > 0 || !parts.iter().any(|p| p.entity == entity) {
            add_part(&mut writer, &mut parts, part)?;
        }
        counts.insert(entity.as_str().to_owned(), progress.finish());
    }
    let validation = validator.finish();
    if !validation.is_valid() {
        return Ok(Prepared::Done(YearOutcome::Invalid { report: validation }));
    }
    let content_hash = content_hash(plugin, company, &parts);
    if !force {
        if let Some(ack) = acknowledged.filter(|a| a.content_hash == content_hash) {
            // Same content under a new token (e.g. a row touched and reverted): remember the token only.
            ctx.state.record_acknowledged(key, &Acknowledged { change_token: token, ..ack })?;
            return Ok(Prepared::Done(YearOutcome::Unchanged));
        }
    }
    let manifest = Manifest {
        protocol_version: PROTOCOL_VERSION,
        schema_version: SCHEMA_VERSION,
        agent_id: ctx.agent_id.to_owned(),
        source_id: key.source.clone(),
        plugin: plugin.clone(),
        company: company.clone(),
        fiscal_year: key.fiscal_year,
        change_token: token,
        parts,
        part_format: format,
    };
    let meta = EntryMeta { tenant: key.tenant.clone(), content_hash, counts, spooled_at: now() };
    let entry = writer.commit(&manifest, &meta)?;
    crate::crash_point::crash_point("spooled");
    Ok(Prepared::Spooled(Box::new(entry)))
}

/// The format to write parts in: the best one both sides read, as the hub says
/// this run, or — when it did not answer the question — as it said last time (kept
/// in the state store), so that the same data keeps the same content hash and is
/// not sent as a new version; NDJSON, which every hub reads, when it never said.
fn part_format(ctx: &SyncContext<'_>) -> Result<PartFormat, SyncError> {
    let key = format!("hub_part_formats {}", ctx.hub.url_base());
    let names = |formats: &[PartFormat]| formats.iter().map(PartFormat::as_str).collect::<Vec<_>>().join(",");
    match ctx.hub.known_part_formats() {
        Some(formats) => {
            let said = names(formats);
            if ctx.state.setting(&key)?.as_deref() != Some(said.as_str()) {
                ctx.state.set_setting(&key, &said)?;
            }
            Ok(PartFormat::best_shared(formats))
        }
        None => {
            let remembered = ctx.state.setting(&key)?.unwrap_or_default();
            let formats: Vec<PartFormat> = PartFormat::ALL
                .into_iter()
                .filter(|f| remembered.split(',').any(|n| n == f.as_str()))
                .collect();
            Ok(PartFormat::best_shared(&formats))
        }
    }
}

fn new_part(format: PartFormat, entity: Entity) -> Result<PartWriter, SyncError> {
    PartWriter::new(format, entity).map_err(part_error)
}

fn part_error(e: ledgerlink_protocol::PartError) -> SyncError {
    SyncError::Spool(SpoolError::Io {
        path: "part encoder".into(),
        source: std::io::Error::other(e.to_string()),
    })
}

fn add_part(
    writer: &mut crate::spool::SpoolWriter,
    parts: &mut Vec<PartInfo>,
    part: PartWriter,
) -> Result<(), SyncError> {
    let encoded = part.finish().map_err(part_error)?;
    let index = parts.len() as u32;
    writer.add_part(index, &encoded)?;
    parts.push(encoded.info(index));
    Ok(())
}

/// A hash of what the snapshot says and which plugin version said it, independent
/// of change token and agent: a plugin upgrade sends every company/year once more.
fn content_hash(plugin: &PluginRef, company: &Company, parts: &[PartInfo]) -> String {
    let mut text = format!("{}@{}|", plugin.id, plugin.version);
    text.push_str(&serde_json::to_string(company).unwrap_or_default());
    for part in parts {
        text.push_str(&format!("|{}:{}:{}", part.entity, part.records, part.sha256));
    }
    sha256_hex(text.as_bytes())
}

/// Uploads one spooled snapshot; on acknowledgement records it and removes it.
/// `None` when another run is delivering it, or already has.
fn deliver(ctx: &SyncContext<'_>, entry: &SpoolEntry) -> Result<Option<YearOutcome>, HubError> {
    let Some(_claim) = entry.claim()? else {
        tracing::debug!(entry = %entry.dir.display(), "Another run is delivering this spooled snapshot.");
        return Ok(None);
    };
    // An entry older than what the hub acknowledged for its year (kept while it
    // could not be read, say) is superseded: the hub makes the snapshot offered
    // last current, so delivering it now would bring older data back.
    if let Ok(Some(ack)) = ctx.state.acknowledged(&entry.key()) {
        if ack.snapshot_id != entry.snapshot_id() && ack.acknowledged_at > entry.meta.spooled_at {
            tracing::info!(entry = %entry.dir.display(), acknowledged = %ack.snapshot_id,
                "Removing a spooled snapshot older than the one the hub acknowledged for its year.");
            entry.remove()?;
            return Ok(Some(YearOutcome::Unchanged));
        }
    }
    let discard = |e: SpoolError| -> Result<Option<YearOutcome>, HubError> {
        tracing::error!(error = %e, "Removing a damaged spool entry; the data will be extracted again.");
        entry.remove()?;
        Err(e.into())
    };
    // Only parts that do not match their manifest are damaged; a part that cannot
    // be read now (permissions, an I/O error, a scanner holding it) stays for later.
    match entry.verify() {
        Ok(()) => {}
        Err(e @ SpoolError::Corrupt { .. }) => return discard(e),
        Err(e) => return Err(e.into()),
    }
    let rewritten = match readable_by_hub(ctx, entry) {
        Ok(rewritten) => rewritten,
        Err(e @ SpoolError::Corrupt { .. }) => return discard(e),
        Err(e) => return Err(e.into()),
    };
    let _rewritten_claim = match &rewritten {
        Some(rewritten) => match rewritten.claim()? {
            Some(claim) => Some(claim),
            None => return Ok(None),
        },
        None => None,
    };
    let entry = rewritten.as_ref().unwrap_or(entry);
    let status = ctx.hub.upload(entry)?;
    crate::crash_point::crash_point("hub_committed");
    let key = entry.key();
    let ack = Acknowledged {
        plugin: format!("{}@{}", entry.manifest.plugin.id, entry.manifest.plugin.version),
        change_token: entry.manifest.change_token.clone(),
        content_hash: entry.meta.content_hash.clone(),
        snapshot_id: status.snapshot_id.clone(),
        acknowledged_at: now(),
    };
    let record = ctx
        .state
        .record_acknowledged(&key, &ack)
        .and_then(|_| ctx.state.record_counts(&key, &entry.meta.counts));
    if let Err(e) = record {
        // The hub has it; the worst case is one idempotent re-upload later.
        tracing::error!(error = %e, "Could not record the hub's acknowledgement.");
    }
    crate::crash_point::crash_point("acknowledgement_recorded");
    entry.remove()?;
    Ok(Some(YearOutcome::Uploaded { snapshot_id: status.snapshot_id, counts: entry.meta.counts.clone() }))
}

/// A spooled snapshot in a part format the hub does not read (spooled for a hub
/// that read it, since rolled back or reconfigured) rewritten with NDJSON parts,
/// which every hub reads: a new entry (new snapshot id) replaces the old one.
/// Nothing is extracted again, so years outside this run's selection are not
/// lost. An entry stays as it is while the hub cannot be asked.
fn readable_by_hub(ctx: &SyncContext<'_>, entry: &SpoolEntry) -> Result<Option<SpoolEntry>, SpoolError> {
    let from = entry.manifest.part_format;
    if ctx.hub.reads(from) != Some(false) {
        return Ok(None);
    }
    let damaged = |e: PartError| SpoolError::Corrupt {
        entry: entry.dir.clone(),
        detail: format!("its {from} parts cannot be rewritten as NDJSON ({e})"),
    };
    let mut writer = ctx.spool.begin()?;
    let mut parts = Vec::with_capacity(entry.manifest.parts.len());
    for info in &entry.manifest.parts {
        let bytes = entry.read_part(info.index)?;
        let reader = PartReader::new(from, info.entity, info.index, &bytes[..]).map_err(damaged)?;
        let mut part = PartWriter::new(PartFormat::Ndjson, info.entity).map_err(damaged)?;
        for batch in reader {
            part.write_batch(&batch.map_err(damaged)?).map_err(damaged)?;
        }
        let part = part.finish().map_err(damaged)?;
        writer.add_part(info.index, &part)?;
        parts.push(part.info(info.index));
    }
    let manifest = Manifest { parts, part_format: PartFormat::Ndjson, ..entry.manifest.clone() };
    let content_hash = content_hash(&manifest.plugin, &manifest.company, &manifest.parts);
    let rewritten =
        writer.commit_replacing(entry, &manifest, &EntryMeta { content_hash, ..entry.meta.clone() })?;
    entry.remove()?;
    let key = entry.key();
    tracing::warn!(
        source = %key.source,
        company = %key.company,
        fiscal_year = key.fiscal_year,
        %from,
        "The hub no longer reads the part format of a spooled snapshot; its parts were rewritten as NDJSON."
    );
    Ok(Some(rewritten))
}

/// True when no later entry of `pending` (oldest first) is of `entry`'s year.
fn pending_is_newest(pending: &[SpoolEntry], entry: &SpoolEntry) -> bool {
    let key = entry.key();
    !pending.iter().any(|other| other.key() == key && other.dir.file_name() > entry.dir.file_name())
}

/// Uploads the newest spooled snapshot of each year of `tenant`, oldest first
/// (older ones of a year are superseded); stops at the first failure no upload
/// of this run can get past (the hub is down, or refuses the tenant's key) and
/// returns the outcome every year of the run then shares.
pub fn upload_pending(
    ctx: &SyncContext<'_>,
    tenant: &str,
    report: &mut SyncReport,
) -> Result<(), YearOutcome> {
    let pending = match ctx.spool.pending() {
        Ok(pending) => pending,
        Err(e) => return Err(YearOutcome::Spooled { reason: e.to_string() }),
    };
    let pending: Vec<SpoolEntry> = pending.into_iter().filter(|e| e.meta.tenant == tenant).collect();
    for (index, entry) in pending.iter().enumerate() {
        let key = entry.key();
        // Only a year's newest snapshot goes; it supersedes the older ones.
        if !pending_is_newest(&pending, entry) {
            continue;
        }
        let waits = match supersede_older(ctx, entry) {
            Ok(waits) => waits,
            Err(e) => return Err(YearOutcome::Spooled { reason: e.to_string() }),
        };
        if waits {
            let outcome = YearOutcome::Spooled { reason: OLDER_FIRST.into() };
            log_outcome(&key, &outcome);
            report.years.push((key, outcome));
            continue;
        }
        match deliver(ctx, entry) {
            Ok(Some(outcome)) => {
                log_outcome(&key, &outcome);
                report.years.push((key, outcome));
            }
            // Another run is delivering it (or has).
            Ok(None) => {}
            Err(e) => {
                let stops = e.stops_every_upload();
                let outcome = upload_failed(e);
                if stops {
                    // This year and every other one waiting in the spool share it,
                    // also those this run does not select: none goes unreported.
                    for waiting in pending[index..].iter().filter(|w| pending_is_newest(&pending, w)) {
                        log_outcome(&waiting.key(), &outcome);
                        report.years.push((waiting.key(), outcome.clone()));
                        report.tried.insert(waiting.dir.clone(), outcome.clone());
                    }
                    return Err(outcome);
                }
                log_outcome(&key, &outcome);
                report.tried.insert(entry.dir.clone(), outcome.clone());
                report.years.push((key, outcome));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn voucher_lines_are_extracted_before_vouchers_and_after_master_data() {
        let mut entities = vec![Entity::Vouchers, Entity::VoucherLines, Entity::Accounts, Entity::Vouchers];
        extraction_order(&mut entities);
        assert_eq!(entities, [Entity::Accounts, Entity::VoucherLines, Entity::Vouchers]);
    }

    fn company(id: &str) -> Company {
        let day = |m, d| ledgerlink_plugin_api::canonical::NaiveDate::from_ymd_opt(2025, m, d).unwrap();
        Company {
            id: id.into(),
            name: format!("Company {id}"),
            organisation_number: None,
            currency: "NOK".into(),
            fiscal_years: vec![ledgerlink_plugin_api::canonical::FiscalYear {
                year: 2025,
                start: day(1, 1),
                end: day(12, 31),
            }],
            source_key: id.into(),
        }
    }

    #[test]
    fn the_configuration_and_the_hub_both_select_and_a_request_for_another_company_is_refused() {
        let spec = SourceSpec {
            tenant: "t".into(),
            id: "erp".into(),
            companies: Some(vec!["1".into(), "2".into()]),
            hub_selection: Some(vec!["2".into(), "3".into()]),
            years: YearSelection::List(vec![2025]),
        };
        let all = || ["1", "2", "3", "4"].map(company).to_vec();
        let chosen = select(all(), &spec, &SyncRequest::default()).unwrap();
        let ids: Vec<&str> = chosen.iter().map(|(c, _)| c.id.as_str()).collect();
        assert_eq!(ids, ["2"]);
        let asked = |id: &str| SyncRequest { company: Some(id.into()), ..SyncRequest::default() };
        assert_eq!(select(all(), &spec, &asked("2")).unwrap().len(), 1);
        let refused = |id: &str| match select(all(), &spec, &asked(id)) {
            Err(SyncError::Selection(why)) => why,
            other => panic!("company {id}: {other:?}"),
        };
        assert!(
            refused("1").contains("company `1` of source `erp` is not selected on the hub"),
            "{}",
            refused("1")
        );
        assert!(refused("3").contains("not in the `companies` of source `erp` in the configuration"));
        assert!(refused("4").contains("not in the `companies`"), "the configuration is named first");
        assert!(refused("9").contains("has no company `9`"));
        let open = SourceSpec { companies: None, hub_selection: None, ..spec };
        assert_eq!(select(all(), &open, &SyncRequest::default()).unwrap().len(), 4);
    }
}
