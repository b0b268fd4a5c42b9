//! The spool: snapshots written to disk (fsync'd) before upload, so nothing is
//! lost while the hub is unreachable or the host is killed.
//!
//! Layout under the spool directory:
//! - `tmp/<random>/` — a snapshot being written, locked by its writer through
//!   `tmp/<random>.lock`; one nobody holds at start was torn and is removed,
//!   and so is a lock file nobody holds;
//! - `ready/<sequence>-<snapshot id>/` — complete snapshots: `part-NNNNN.zst`,
//!   `manifest.json` (the upload manifest) and `entry.json` (what the host needs
//!   to remember); a directory only appears here by an atomic rename after every
//!   file in it was fsync'd;
//! - `claims/<entry name>.lock` — locked (advisory, `File::try_lock`) by the run
//!   that delivers that entry, so two runs (jobs of one tenant's sources, or the
//!   service and a `ledgerlink sync`) never upload or remove the same entry at once;
//! - `extracting/<hash of tenant, source, company, year>.lock` — locked by the run
//!   that extracts that year, so two runs never read the same year from the ERP
//!   at once (one lock file per company and year, kept).
//!
//! Before upload every part is checked against the manifest's size and SHA-256;
//! a damaged entry is removed and its data re-extracted by the next sync.

use crate::state::{create_private_dir_all, random_hex, SnapshotKey};
use ledgerlink_protocol::{sha256_hex, snapshot_id, EncodedPart, Manifest};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

/// A spool failure; names the path and what to do.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    /// Reading or writing the spool failed (disk full, permissions, …).
    #[error(
        "spool {path}: {source}. Resolution: free disk space or fix the permissions of the spool directory"
    )]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// A spooled part does not match its manifest.
    #[error("spooled snapshot {entry} is damaged: {detail}; it is removed and will be extracted again")]
    Corrupt {
        /// The entry directory.
        entry: PathBuf,
        /// What did not match.
        detail: String,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SpoolError + '_ {
    move |source| SpoolError::Io { path: path.to_owned(), source }
}

/// What the host remembers about a spooled snapshot besides its manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryMeta {
    /// Tenant the snapshot is uploaded for.
    pub tenant: String,
    /// Hash of the content, independent of the change token.
    pub content_hash: String,
    /// Records per entity.
    pub counts: BTreeMap<String, u64>,
    /// When it was spooled (RFC 3339).
    pub spooled_at: String,
}

/// A complete snapshot waiting in the spool.
#[derive(Debug, Clone)]
pub struct SpoolEntry {
    /// Its directory.
    pub dir: PathBuf,
    /// The upload manifest.
    pub manifest: Manifest,
    /// Host-side information.
    pub meta: EntryMeta,
}

impl SpoolEntry {
    /// The snapshot id (content-addressed).
    pub fn snapshot_id(&self) -> String {
        snapshot_id(&self.manifest)
    }

    /// The key of the company's fiscal year this snapshot holds.
    pub fn key(&self) -> SnapshotKey {
        SnapshotKey {
            tenant: self.meta.tenant.clone(),
            source: self.manifest.source_id.clone(),
            company: self.manifest.company.id.clone(),
            fiscal_year: self.manifest.fiscal_year,
        }
    }

    fn part_path(&self, index: u32) -> PathBuf {
        self.dir.join(part_file(index))
    }

    /// Reads one part's bytes, checking size and checksum.
    pub fn read_part(&self, index: u32) -> Result<Vec<u8>, SpoolError> {
        let corrupt = |detail: String| SpoolError::Corrupt { entry: self.dir.clone(), detail };
        let info = self
            .manifest
            .parts
            .iter()
            .find(|p| p.index == index)
            .ok_or_else(|| corrupt(format!("the manifest has no part {index}")))?;
        let path = self.part_path(index);
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(corrupt(format!("part {index} is missing")))
            }
            Err(e) => return Err(io(&path)(e)),
        };
        if bytes.len() as u64 != info.bytes || sha256_hex(&bytes) != info.sha256 {
            return Err(corrupt(format!("part {index} does not match its size or SHA-256 in the manifest")));
        }
        Ok(bytes)
    }

    /// Checks every part against the manifest.
    pub fn verify(&self) -> Result<(), SpoolError> {
        self.manifest.parts.iter().try_for_each(|p| self.read_part(p.index).map(|_| ()))
    }

    /// Claims the entry for delivery: `None` while another run holds it, or once
    /// it is gone (delivered by another run since it was listed).
    pub fn claim(&self) -> Result<Option<EntryClaim>, SpoolError> {
        let Some((spool, name)) = self.dir.parent().and_then(Path::parent).zip(self.dir.file_name()) else {
            return Ok(None);
        };
        let path = spool.join(CLAIMS).join(name).with_extension("lock");
        let Some(file) = try_lock_file(&path)? else { return Ok(None) };
        let claim = EntryClaim { path, entry: self.dir.clone(), _file: file };
        // The run that held it may have delivered and removed it meanwhile. Lock
        // files go only once their entry is gone, and an entry never comes back
        // under its name, so a run that locked a removed lock file ends here too.
        Ok(self.dir.join("manifest.json").exists().then_some(claim))
    }

    /// Removes the entry (after the hub acknowledged it, or when it is damaged).
    pub fn remove(&self) -> Result<(), SpoolError> {
        match fs::remove_dir_all(&self.dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io(&self.dir)(e)),
            _ => Ok(()),
        }
    }
}

fn now_nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default()
}

/// The sub-directory of the lock files of years being extracted.
const EXTRACTING: &str = "extracting";

/// The sub-directory of the claims' lock files.
const CLAIMS: &str = "claims";

/// A run's claim on a spooled entry (see [`SpoolEntry::claim`]); released when dropped.
#[derive(Debug)]
pub struct EntryClaim {
    path: PathBuf,
    entry: PathBuf,
    _file: File,
}

impl Drop for EntryClaim {
    fn drop(&mut self) {
        // An entry still spooled keeps its lock file (removing it could let two
        // runs lock two different files of one name).
        if !self.entry.exists() {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// [`crate::state::try_lock_file`], failing as a spool error naming the path.
fn try_lock_file(path: &Path) -> Result<Option<File>, SpoolError> {
    crate::state::try_lock_file(path).map_err(io(path))
}

/// True when the locked `file` is still the one at `path` (not removed, nor
/// removed and created again, by another run's sweep since it was opened).
#[cfg(unix)]
fn locked_in_place(file: &File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (file.metadata(), fs::metadata(path)) {
        (Ok(held), Ok(there)) => (held.dev(), held.ino()) == (there.dev(), there.ino()),
        _ => false,
    }
}

/// Elsewhere the check is not made, and lock files without a directory are
/// not swept either (see [`Spool::open`]), so nothing removes a lock in use.
#[cfg(not(unix))]
fn locked_in_place(_file: &File, _path: &Path) -> bool {
    true
}

fn part_file(index: u32) -> String {
    format!("part-{index:05}.zst")
}

/// The spool directory, bounded in bytes.
#[derive(Debug, Clone)]
pub struct Spool {
    dir: PathBuf,
    max_bytes: u64,
}

/// A snapshot being written; removed unless committed.
#[derive(Debug)]
pub struct SpoolWriter {
    spool: Spool,
    tmp: PathBuf,
    committed: bool,
    /// When writing began, which orders the spool: of two runs extracting one
    /// year, the one that read the ERP later comes later.
    started: u128,
    /// Held on `tmp/<name>.lock` while writing, so no sweep removes the snapshot.
    _lock: File,
}

fn fsync_dir(dir: &Path) -> Result<(), SpoolError> {
    // Directories can be fsync'd on Unix only; elsewhere the rename is what we have.
    #[cfg(unix)]
    File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))?;
    Ok(())
}

fn to_json<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec_pretty(value).expect("spool files serialize")
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), SpoolError> {
    let mut file = File::create(path).map_err(io(path))?;
    file.write_all(bytes).and_then(|_| file.sync_all()).map_err(io(path))
}

impl Spool {
    /// Opens the spool, creating it, and removes snapshots torn by a crash.
    pub fn open(dir: &Path, max_bytes: u64) -> Result<Self, SpoolError> {
        for sub in ["tmp", "ready", CLAIMS, EXTRACTING] {
            create_private_dir_all(&dir.join(sub)).map_err(io(dir))?;
        }
        // A snapshot being written is locked by its writer (another job, or
        // another process); what nobody holds was torn by an interrupted write.
        let tmp = dir.join("tmp");
        for entry in fs::read_dir(&tmp).map_err(io(&tmp))?.flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "lock") {
                // Left by a writer killed before it removed it. One a writer
                // holds is kept; a writer that opened it before this removal
                // finds its lock no longer in place and takes another name.
                if cfg!(unix) && !path.with_extension("").exists() {
                    if let Some(_lock) = try_lock_file(&path)? {
                        let _ = fs::remove_file(&path);
                    }
                }
                continue;
            }
            if let Some(_lock) = try_lock_file(&path.with_extension("lock"))? {
                tracing::warn!(path = %path.display(), "Removing a snapshot torn by an interrupted write.");
                let _ = fs::remove_dir_all(&path);
                let _ = fs::remove_file(path.with_extension("lock"));
            }
        }
        // Lock files of entries that are gone (claims end without removing
        // them when the process is killed).
        let (claims, ready) = (dir.join(CLAIMS), dir.join("ready"));
        for lock in fs::read_dir(&claims).map_err(io(&claims))?.flatten() {
            let entry = ready.join(lock.path().file_stem().unwrap_or_default());
            if !entry.exists() {
                let _ = fs::remove_file(lock.path());
            }
        }
        Ok(Self { dir: dir.to_owned(), max_bytes })
    }

    /// The spool directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The configured upper bound in bytes.
    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    /// Bytes held by complete and in-progress snapshots.
    pub fn usage(&self) -> u64 {
        fn size(path: &Path) -> u64 {
            match fs::read_dir(path) {
                Ok(entries) => entries
                    .flatten()
                    .map(|e| match e.file_type() {
                        Ok(t) if t.is_dir() => size(&e.path()),
                        _ => e.metadata().map(|m| m.len()).unwrap_or(0),
                    })
                    .sum(),
                Err(_) => 0,
            }
        }
        size(&self.dir)
    }

    /// True when `more` bytes fit under the bound.
    pub fn has_room_for(&self, more: u64) -> bool {
        self.usage().saturating_add(more) <= self.max_bytes
    }

    /// Locks a company's year for extraction: `None` while another run extracts it.
    pub fn lock_year(&self, key: &SnapshotKey) -> Result<Option<File>, SpoolError> {
        let name = sha256_hex(
            format!("{}\0{}\0{}\0{}", key.tenant, key.source, key.company, key.fiscal_year).as_bytes(),
        );
        try_lock_file(&self.dir.join(EXTRACTING).join(&name[..32]).with_extension("lock"))
    }

    /// Starts writing a snapshot (locked against other runs' sweeps of `tmp/`).
    pub fn begin(&self) -> Result<SpoolWriter, SpoolError> {
        let mut tmp = self.dir.join("tmp").join(random_hex(8));
        // A sweep may remove the lock file between its creation and its lock.
        for _ in 0..3 {
            let lock_path = tmp.with_extension("lock");
            if let Some(lock) = try_lock_file(&lock_path)? {
                if locked_in_place(&lock, &lock_path) {
                    fs::create_dir_all(&tmp).map_err(io(&tmp))?;
                    let started = now_nanos();
                    return Ok(SpoolWriter {
                        spool: self.clone(),
                        tmp,
                        committed: false,
                        started,
                        _lock: lock,
                    });
                }
            }
            tmp = self.dir.join("tmp").join(random_hex(8));
        }
        Err(SpoolError::Io {
            path: tmp,
            source: std::io::Error::other(
                "no fresh snapshot name could be locked; is another process sweeping the spool?",
            ),
        })
    }

    /// The complete snapshots, oldest first. An entry whose files cannot be read or
    /// parsed is left where it is, unreturned, with a warning (once per process):
    /// a newer agent may have written it (rolled back since), or its permissions
    /// may be wrong; its company and year are extracted again meanwhile.
    pub fn pending(&self) -> Result<Vec<SpoolEntry>, SpoolError> {
        let ready = self.dir.join("ready");
        let mut dirs: Vec<PathBuf> =
            fs::read_dir(&ready).map_err(io(&ready))?.flatten().map(|e| e.path()).collect();
        dirs.sort();
        let mut entries = Vec::new();
        for dir in dirs {
            let load = || -> Result<SpoolEntry, String> {
                let read = |name: &str| fs::read(dir.join(name)).map_err(|e| format!("{name}: {e}"));
                let manifest = serde_json::from_slice(&read("manifest.json")?).map_err(|e| e.to_string())?;
                let meta = serde_json::from_slice(&read("entry.json")?).map_err(|e| e.to_string())?;
                Ok(SpoolEntry { dir: dir.clone(), manifest, meta })
            };
            match load() {
                Ok(entry) => entries.push(entry),
                // Delivered and removed meanwhile (by the uploading thread).
                Err(_) if !dir.exists() => {}
                Err(detail) => warn_unreadable_once(&dir, &detail),
            }
        }
        Ok(entries)
    }
}

/// Warns about a spool entry that cannot be read, once per entry and process (the
/// spool is listed several times per run).
fn warn_unreadable_once(dir: &Path, detail: &str) {
    static WARNED: std::sync::Mutex<BTreeSet<PathBuf>> = std::sync::Mutex::new(BTreeSet::new());
    let first = WARNED.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).insert(dir.to_owned());
    if first {
        tracing::warn!(
            path = %dir.display(),
            detail,
            "A spooled snapshot cannot be read; it is kept, and its company and year are extracted again. \
             Resolution: if a newer Ledgerlink wrote it, update this agent and it is delivered; otherwise \
             fix the permissions of its files, or remove the directory."
        );
    }
}

impl SpoolWriter {
    /// Writes one part durably.
    pub fn add_part(&mut self, index: u32, part: &EncodedPart) -> Result<(), SpoolError> {
        write_synced(&self.tmp.join(part_file(index)), &part.bytes)
    }

    /// Makes the snapshot complete: manifest and entry files, fsync, atomic
    /// rename to a name that orders it by when its writing began.
    pub fn commit(self, manifest: &Manifest, meta: &EntryMeta) -> Result<SpoolEntry, SpoolError> {
        let sequence = format!("{:024}", self.started);
        self.commit_at(sequence, manifest, meta)
    }

    /// Commits a snapshot that replaces `replaced` (the same data rewritten) at
    /// its place in the spool's order, so it is not delivered after newer ones.
    pub fn commit_replacing(
        self,
        replaced: &SpoolEntry,
        manifest: &Manifest,
        meta: &EntryMeta,
    ) -> Result<SpoolEntry, SpoolError> {
        let name = replaced.dir.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        let sequence = name.split('-').next().unwrap_or_default().to_owned();
        self.commit_at(sequence, manifest, meta)
    }

    fn commit_at(
        mut self,
        sequence: String,
        manifest: &Manifest,
        meta: &EntryMeta,
    ) -> Result<SpoolEntry, SpoolError> {
        write_synced(&self.tmp.join("manifest.json"), &to_json(manifest))?;
        write_synced(&self.tmp.join("entry.json"), &to_json(meta))?;
        fsync_dir(&self.tmp)?;
        let name = format!("{sequence}-{}", &snapshot_id(manifest)[..16]);
        let ready = self.spool.dir.join("ready");
        let target = ready.join(name);
        fs::rename(&self.tmp, &target).map_err(io(&target))?;
        fsync_dir(&ready)?;
        self.committed = true;
        Ok(SpoolEntry { dir: target, manifest: manifest.clone(), meta: meta.clone() })
    }
}

impl Drop for SpoolWriter {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_dir_all(&self.tmp);
        }
        // Still locked: a sweep that opened it before finds nothing to remove.
        let _ = fs::remove_file(self.tmp.with_extension("lock"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ledgerlink_plugin_api::canonical::{Company, RecordBatch};
    use ledgerlink_protocol::{encode_part, PartFormat, PluginRef};

    fn spooled(spool: &Spool, change_token: &str) -> SpoolEntry {
        let part = encode_part(PartFormat::Ndjson, &RecordBatch::Accounts(Vec::new())).unwrap();
        let manifest = Manifest {
            protocol_version: 1,
            schema_version: 1,
            agent_id: "agent-test".into(),
            source_id: "src".into(),
            plugin: PluginRef { id: "p".into(), version: "1.0.0".into() },
            company: Company {
                id: "1".into(),
                name: "Firma".into(),
                organisation_number: None,
                currency: "NOK".into(),
                fiscal_years: Vec::new(),
                source_key: "Frm:1".into(),
            },
            fiscal_year: 2025,
            change_token: Some(change_token.into()),
            parts: vec![part.info(0)],
            part_format: PartFormat::Ndjson,
        };
        let meta = EntryMeta {
            tenant: "acme".into(),
            content_hash: change_token.into(),
            counts: BTreeMap::new(),
            spooled_at: "2026-12-07T00:00:00Z".into(),
        };
        let mut writer = spool.begin().unwrap();
        writer.add_part(0, &part).unwrap();
        writer.commit(&manifest, &meta).unwrap()
    }

    fn lock_files(spool: &Spool) -> usize {
        fs::read_dir(spool.dir().join(CLAIMS)).unwrap().count()
    }

    #[test]
    fn one_run_at_a_time_claims_an_entry_and_none_claims_a_delivered_one() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path(), u64::MAX).unwrap();
        let entry = spooled(&spool, "a");
        let first = entry.claim().unwrap().expect("a free entry is claimed");
        assert!(entry.claim().unwrap().is_none(), "held by the first claim");
        drop(first);
        assert_eq!(lock_files(&spool), 1, "a spooled entry keeps its lock file");
        let again = entry.claim().unwrap().expect("free again");
        entry.remove().unwrap();
        drop(again);
        assert_eq!(lock_files(&spool), 0, "the lock file goes with its entry");
        assert!(entry.claim().unwrap().is_none(), "a delivered entry is no one's to claim");
        assert_eq!(lock_files(&spool), 0);
        // A run killed while it held a claim leaves its lock file behind.
        fs::write(dir.path().join(CLAIMS).join("000-gone.lock"), b"").unwrap();
        let reopened = Spool::open(dir.path(), u64::MAX).unwrap();
        assert_eq!(lock_files(&reopened), 0, "orphaned lock files are cleared at open");
    }

    #[test]
    fn opening_the_spool_leaves_a_snapshot_another_run_is_writing() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path(), u64::MAX).unwrap();
        let writing = spool.begin().unwrap();
        let torn = dir.path().join("tmp").join("0000torn");
        fs::create_dir_all(&torn).unwrap();
        // Another job (or process) starts meanwhile.
        Spool::open(dir.path(), u64::MAX).unwrap();
        assert!(writing.tmp.exists(), "the writer's snapshot is left alone");
        assert!(!torn.exists(), "a snapshot nobody writes was torn and is removed");
        drop(writing);
        assert_eq!(fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0, "nothing left behind");
    }

    #[test]
    fn one_run_at_a_time_extracts_a_year() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path(), u64::MAX).unwrap();
        let key = |year| SnapshotKey {
            tenant: "t".into(),
            source: "s".into(),
            company: "1/a".into(),
            fiscal_year: year,
        };
        let first = spool.lock_year(&key(2025)).unwrap().expect("free");
        assert!(spool.lock_year(&key(2025)).unwrap().is_none(), "held by the first run");
        assert!(spool.lock_year(&key(2024)).unwrap().is_some(), "another year is free");
        drop(first);
        assert!(spool.lock_year(&key(2025)).unwrap().is_some(), "free again");
    }

    #[cfg(unix)]
    #[test]
    fn a_new_spool_is_readable_by_its_user_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let spool_dir = dir.path().join("data/spool");
        Spool::open(&spool_dir, u64::MAX).unwrap();
        for created in [dir.path().join("data"), spool_dir.clone(), spool_dir.join("ready")] {
            let mode = fs::metadata(&created).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o700, "{}", created.display());
        }
    }

    #[cfg(unix)]
    #[test]
    fn a_lock_file_left_by_a_killed_writer_goes_and_a_held_one_stays() {
        let dir = tempfile::tempdir().unwrap();
        Spool::open(dir.path(), u64::MAX).unwrap();
        let tmp = dir.path().join("tmp");
        // Killed between its lock file and its directory, or before removing the lock file.
        fs::write(tmp.join("00dead.lock"), b"").unwrap();
        // Another process between taking its lock and creating its directory.
        let held = try_lock_file(&tmp.join("00busy.lock")).unwrap().expect("free");
        Spool::open(dir.path(), u64::MAX).unwrap();
        assert!(!tmp.join("00dead.lock").exists(), "nobody held it: removed");
        assert!(tmp.join("00busy.lock").exists(), "a held lock file stays");
        drop(held);
    }

    #[cfg(unix)]
    #[test]
    fn a_lock_removed_or_replaced_after_it_was_opened_is_not_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.lock");
        let lock = try_lock_file(&path).unwrap().expect("free");
        assert!(locked_in_place(&lock, &path));
        fs::remove_file(&path).unwrap();
        assert!(!locked_in_place(&lock, &path), "removed by a sweep");
        fs::write(&path, b"").unwrap();
        assert!(!locked_in_place(&lock, &path), "another file under the same name");
    }

    #[test]
    fn an_entry_that_cannot_be_read_is_kept_and_not_listed() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path(), u64::MAX).unwrap();
        let newer_agent = spooled(&spool, "newer");
        let unreadable = spooled(&spool, "unreadable");
        let fine = spooled(&spool, "fine");
        // A manifest with a field this agent does not know, as a newer agent would write it.
        let path = newer_agent.dir.join("manifest.json");
        let mut manifest: serde_json::Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
        manifest["field_of_a_later_version"] = serde_json::json!(1);
        fs::write(&path, manifest.to_string()).unwrap();
        // An entry file that cannot be read (a directory in its place: an I/O error even for root).
        fs::remove_file(unreadable.dir.join("entry.json")).unwrap();
        fs::create_dir(unreadable.dir.join("entry.json")).unwrap();

        for _ in 0..2 {
            let listed: Vec<PathBuf> = spool.pending().unwrap().into_iter().map(|e| e.dir).collect();
            assert_eq!(listed, std::slice::from_ref(&fine.dir));
        }
        assert!(path.exists(), "kept for the newer agent");
        assert!(unreadable.dir.join("manifest.json").exists(), "kept until its permissions are fixed");
    }

    #[test]
    fn a_replacing_entry_keeps_the_place_of_the_one_it_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path(), u64::MAX).unwrap();
        let old = spooled(&spool, "old");
        let newer = spooled(&spool, "newer");
        let manifest = Manifest { change_token: Some("rewritten".into()), ..old.manifest.clone() };
        let replacing = spool.begin().unwrap().commit_replacing(&old, &manifest, &old.meta).unwrap();
        old.remove().unwrap();
        let order: Vec<Option<String>> =
            spool.pending().unwrap().into_iter().map(|e| e.manifest.change_token).collect();
        assert_eq!(order, [Some("rewritten".into()), Some("newer".into())], "still before the newer one");
        assert_ne!(replacing.dir, newer.dir);
    }
}
