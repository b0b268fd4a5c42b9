//! The spool: snapshots written to disk (fsync'd) before upload, so nothing is
//! lost while the hub is unreachable or the host is killed.
//!
//! Layout under the spool directory:
//! - `tmp/<random>/` — a snapshot being written; anything here at start is torn
//!   and removed;
//! - `ready/<sequence>-<snapshot id>/` — complete snapshots: `part-NNNNN.zst`,
//!   `manifest.json` (the upload manifest) and `entry.json` (what the host needs
//!   to remember); a directory only appears here by an atomic rename after every
//!   file in it was fsync'd;
//! - `claims/<entry name>.lock` — locked (advisory, `File::try_lock`) by the run
//!   that delivers that entry, so two runs (jobs of one tenant's sources, or the
//!   service and a `ledgerlink sync`) never upload or remove the same entry at once.
//!
//! Before upload every part is checked against the manifest's size and SHA-256;
//! a damaged entry is removed and its data re-extracted by the next sync.

use crate::state::{random_hex, SnapshotKey};
use ledgerlink_protocol::{sha256_hex, snapshot_id, EncodedPart, Manifest};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
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
        let file =
            fs::OpenOptions::new().create(true).truncate(false).write(true).open(&path).map_err(io(&path))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => return Ok(None),
            Err(std::fs::TryLockError::Error(e)) => return Err(io(&path)(e)),
        }
        // A lock file its last holder removed after this run opened it is no claim
        // (whoever opens the path now gets another file).
        if !is_at(&file, &path) {
            return Ok(None);
        }
        let claim = EntryClaim { path, _file: file };
        // The run that held it may have delivered and removed it meanwhile.
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

/// True when `path` still names the open `file`.
#[cfg(unix)]
fn is_at(file: &File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (file.metadata(), fs::metadata(path)) {
        (Ok(open), Ok(named)) => (open.dev(), open.ino()) == (named.dev(), named.ino()),
        _ => false,
    }
}

/// True when `path` still names the open `file` (not checked where the
/// standard library cannot tell; a claim then has a tiny window of doubt).
#[cfg(not(unix))]
fn is_at(_file: &File, path: &Path) -> bool {
    path.exists()
}

/// The sub-directory of the claims' lock files.
const CLAIMS: &str = "claims";

/// A run's claim on a spooled entry (see [`SpoolEntry::claim`]); released when dropped.
#[derive(Debug)]
pub struct EntryClaim {
    path: PathBuf,
    _file: File,
}

impl Drop for EntryClaim {
    fn drop(&mut self) {
        // Still locked here, so no other run is between its open and its lock
        // of this file; one that opens it after this sees the entry gone.
        let _ = fs::remove_file(&self.path);
    }
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
        for sub in ["tmp", "ready", CLAIMS] {
            fs::create_dir_all(dir.join(sub)).map_err(io(dir))?;
        }
        let tmp = dir.join("tmp");
        for entry in fs::read_dir(&tmp).map_err(io(&tmp))?.flatten() {
            tracing::warn!(path = %entry.path().display(), "Removing a snapshot torn by an interrupted write.");
            let _ = fs::remove_dir_all(entry.path());
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

    /// Starts writing a snapshot.
    pub fn begin(&self) -> Result<SpoolWriter, SpoolError> {
        let tmp = self.dir.join("tmp").join(random_hex(8));
        fs::create_dir_all(&tmp).map_err(io(&tmp))?;
        Ok(SpoolWriter { spool: self.clone(), tmp, committed: false })
    }

    /// The complete snapshots, oldest first. Entries whose files cannot be read
    /// are removed (with a warning) and not returned.
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
                Err(detail) => {
                    tracing::warn!(path = %dir.display(), %detail, "Removing an unreadable spool entry; its data will be extracted again.");
                    let _ = fs::remove_dir_all(&dir);
                }
            }
        }
        Ok(entries)
    }
}

impl SpoolWriter {
    /// Writes one part durably.
    pub fn add_part(&mut self, index: u32, part: &EncodedPart) -> Result<(), SpoolError> {
        write_synced(&self.tmp.join(part_file(index)), &part.bytes)
    }

    /// Makes the snapshot complete: manifest and entry files, fsync, atomic rename.
    pub fn commit(mut self, manifest: &Manifest, meta: &EntryMeta) -> Result<SpoolEntry, SpoolError> {
        write_synced(&self.tmp.join("manifest.json"), &to_json(manifest))?;
        write_synced(&self.tmp.join("entry.json"), &to_json(meta))?;
        fsync_dir(&self.tmp)?;
        let sequence = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let name = format!("{sequence:024}-{}", &snapshot_id(manifest)[..16]);
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
    }
}
