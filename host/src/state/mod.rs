//! The host's embedded state store (SQLite under the data directory).
//!
//! It remembers what the hub acknowledged per company and fiscal year (change
//! token, content hash, snapshot id), record counts of the last snapshot (for
//! progress estimates), the last run of every source, and the agent's id. It is
//! written only after the hub acknowledges, so a crash never marks data as sent.

use rusqlite::{params, Connection, OptionalExtension};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The file beside the store that keeps the agent id.
const AGENT_ID_FILE: &str = "agent-id";

/// True for what [`StateStore::agent_id`] makes: `agent-` and 32 hex digits.
fn is_agent_id(text: &str) -> bool {
    text.strip_prefix("agent-")
        .is_some_and(|hex| hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Writes `text` to `path` through a synced temporary file of its own (threads and
/// processes may write at once), a rename, and a synced directory.
fn write_durably(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    let tmp = path.with_extension(format!("tmp-{}-{}", std::process::id(), random_hex(8)));
    let written = (|| {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(format!("{text}\n").as_bytes())?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&tmp, path)?;
        #[cfg(unix)]
        if let Some(dir) = path.parent() {
            std::fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// A failure of the state store; names the file.
#[derive(Debug, thiserror::Error)]
#[error(
    "state store {path}: {source}. Resolution: check that the data directory is writable and not full; \
         if the file is damaged, move it away (the next sync reads and sends everything once more; the hub \
         keeps no second version of unchanged data)"
)]
pub struct StateError {
    path: PathBuf,
    #[source]
    source: rusqlite::Error,
}

/// Identifies the data of one company's fiscal year from one source of one tenant.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SnapshotKey {
    /// Tenant id from the configuration.
    pub tenant: String,
    /// Source id from the configuration.
    pub source: String,
    /// Company id as the plugin reports it.
    pub company: String,
    /// Fiscal year.
    pub fiscal_year: i32,
}

impl std::fmt::Display for SnapshotKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{} company {} {}", self.tenant, self.source, self.company, self.fiscal_year)
    }
}

/// What the hub acknowledged last for a [`SnapshotKey`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acknowledged {
    /// The plugin (`id@version`) that extracted it: a new plugin version extracts again.
    pub plugin: String,
    /// The plugin's change token at extraction.
    pub change_token: Option<String>,
    /// Hash of the snapshot's content (its parts), independent of the token.
    pub content_hash: String,
    /// The hub's snapshot id.
    pub snapshot_id: String,
    /// When the hub acknowledged it (RFC 3339).
    pub acknowledged_at: String,
}

/// The last run of a source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastRun {
    /// When it started (RFC 3339).
    pub started_at: String,
    /// When it ended, unless it is still running (or the host died).
    pub finished_at: Option<String>,
    /// How it ended ("success", "spooled", …).
    pub outcome: Option<String>,
}

/// The state store.
pub struct StateStore {
    path: PathBuf,
    db: Connection,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS agent (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS acknowledged (
  tenant TEXT NOT NULL, source TEXT NOT NULL, company TEXT NOT NULL, fiscal_year INTEGER NOT NULL,
  change_token TEXT, content_hash TEXT NOT NULL, snapshot_id TEXT NOT NULL, acknowledged_at TEXT NOT NULL,
  plugin TEXT NOT NULL DEFAULT '',
  PRIMARY KEY (tenant, source, company, fiscal_year));
CREATE TABLE IF NOT EXISTS entity_counts (
  tenant TEXT NOT NULL, source TEXT NOT NULL, company TEXT NOT NULL, fiscal_year INTEGER NOT NULL,
  entity TEXT NOT NULL, records INTEGER NOT NULL,
  PRIMARY KEY (tenant, source, company, fiscal_year, entity));
CREATE TABLE IF NOT EXISTS runs (
  source TEXT PRIMARY KEY, started_at TEXT NOT NULL, finished_at TEXT, outcome TEXT);
CREATE TABLE IF NOT EXISTS control_executed (
  command_id TEXT PRIMARY KEY, executed_at TEXT NOT NULL, ack TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS control_outbox (
  id INTEGER PRIMARY KEY, tenant TEXT NOT NULL, message TEXT NOT NULL);
";

impl StateStore {
    /// Opens (creating if needed) `state.sqlite` in `data_dir`.
    pub fn open(data_dir: &Path) -> Result<Self, StateError> {
        let path = data_dir.join("state.sqlite");
        let fail = |source| StateError { path: path.clone(), source };
        if let Err(e) = create_private_dir_all(data_dir) {
            return Err(fail(rusqlite::Error::ToSqlConversionFailure(Box::new(e))));
        }
        let db = Connection::open(&path).map_err(fail)?;
        // Two processes preparing a new store at once (the service and `ledgerlink
        // status`) can deadlock on the switch to WAL; SQLite then answers "busy" at
        // once instead of waiting, so wait and try again.
        let deadline = std::time::Instant::now() + BUSY_TIMEOUT;
        loop {
            match prepare(&db) {
                Err(e) if is_busy(&e) && std::time::Instant::now() < deadline => {
                    let _ = db.execute_batch("ROLLBACK");
                    std::thread::sleep(std::time::Duration::from_millis(5 + u64::from(random_byte() % 20)));
                }
                result => break result.map_err(fail)?,
            }
        }
        Ok(Self { path, db })
    }

    /// A second connection to the same store, for another thread.
    pub fn reopen(&self) -> Result<Self, StateError> {
        Self::open(self.path.parent().unwrap_or(Path::new(".")))
    }

    fn fail(&self, source: rusqlite::Error) -> StateError {
        StateError { path: self.path.clone(), source }
    }

    /// This installation's agent id, created (random) on first use and kept forever.
    ///
    /// It is also kept in `<data_dir>/agent-id`, so that a new store (the old one
    /// damaged and moved away) keeps the id: the same data then makes the same
    /// snapshot, which the hub has, instead of a second version of every year.
    pub fn agent_id(&self) -> Result<String, StateError> {
        let stored: Option<String> = self
            .db
            .query_row("SELECT value FROM agent WHERE key = 'agent_id'", [], |r| r.get(0))
            .optional()
            .map_err(|e| self.fail(e))?;
        let file = self.path.with_file_name(AGENT_ID_FILE);
        let kept =
            std::fs::read_to_string(&file).ok().map(|t| t.trim().to_owned()).filter(|t| is_agent_id(t));
        let id = match stored {
            Some(id) => id,
            None => {
                let id = kept.clone().unwrap_or_else(|| format!("agent-{}", random_hex(16)));
                self.db
                    .execute("INSERT OR IGNORE INTO agent (key, value) VALUES ('agent_id', ?1)", params![id])
                    .map_err(|e| self.fail(e))?;
                // Another process may have been first: its id is the one.
                self.db
                    .query_row("SELECT value FROM agent WHERE key = 'agent_id'", [], |r| r.get(0))
                    .map_err(|e| self.fail(e))?
            }
        };
        if kept.as_deref() != Some(id.as_str()) {
            // The store holds the id; the file only keeps it for a store that replaces this one.
            if let Err(e) = write_durably(&file, &id) {
                tracing::warn!(path = %file.display(), error = %e, "Cannot keep the agent id beside the state \
                    store. Resolution: check that the data directory is writable and not full; until then a \
                    state store moved away would give this agent a new id.");
            }
        }
        Ok(id)
    }

    /// What the hub acknowledged last for `key`.
    pub fn acknowledged(&self, key: &SnapshotKey) -> Result<Option<Acknowledged>, StateError> {
        self.db
            .query_row(
                "SELECT change_token, content_hash, snapshot_id, acknowledged_at, plugin FROM acknowledged
                 WHERE tenant = ?1 AND source = ?2 AND company = ?3 AND fiscal_year = ?4",
                params![key.tenant, key.source, key.company, key.fiscal_year],
                |r| {
                    Ok(Acknowledged {
                        change_token: r.get(0)?,
                        content_hash: r.get(1)?,
                        snapshot_id: r.get(2)?,
                        acknowledged_at: r.get(3)?,
                        plugin: r.get(4)?,
                    })
                },
            )
            .optional()
            .map_err(|e| self.fail(e))
    }

    /// Records the hub's acknowledgement of a snapshot (replacing the previous one).
    pub fn record_acknowledged(&self, key: &SnapshotKey, ack: &Acknowledged) -> Result<(), StateError> {
        self.db
            .execute(
                "INSERT OR REPLACE INTO acknowledged
                 (tenant, source, company, fiscal_year, change_token, content_hash, snapshot_id, acknowledged_at, plugin)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                params![
                    key.tenant,
                    key.source,
                    key.company,
                    key.fiscal_year,
                    ack.change_token,
                    ack.content_hash,
                    ack.snapshot_id,
                    ack.acknowledged_at,
                    ack.plugin
                ],
            )
            .map(|_| ())
            .map_err(|e| self.fail(e))
    }

    /// Remembers the record counts of a snapshot, for progress estimates next time.
    pub fn record_counts(&self, key: &SnapshotKey, counts: &BTreeMap<String, u64>) -> Result<(), StateError> {
        for (entity, records) in counts {
            self.db
                .execute(
                    "INSERT OR REPLACE INTO entity_counts (tenant, source, company, fiscal_year, entity, records)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    params![key.tenant, key.source, key.company, key.fiscal_year, entity, *records as i64],
                )
                .map_err(|e| self.fail(e))?;
        }
        Ok(())
    }

    /// The record counts of the last snapshot of `key`, by entity name.
    pub fn counts(&self, key: &SnapshotKey) -> Result<BTreeMap<String, u64>, StateError> {
        let mut statement = self
            .db
            .prepare(
                "SELECT entity, records FROM entity_counts
                 WHERE tenant = ?1 AND source = ?2 AND company = ?3 AND fiscal_year = ?4",
            )
            .map_err(|e| self.fail(e))?;
        let rows = statement
            .query_map(params![key.tenant, key.source, key.company, key.fiscal_year], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64))
            })
            .map_err(|e| self.fail(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.fail(e))
    }

    /// Records that a run of `source` started.
    pub fn run_started(&self, source: &str, at: &str) -> Result<(), StateError> {
        self.db
            .execute(
                "INSERT OR REPLACE INTO runs (source, started_at, finished_at, outcome) VALUES (?1, ?2, NULL, NULL)",
                params![source, at],
            )
            .map(|_| ())
            .map_err(|e| self.fail(e))
    }

    /// Records how a run of `source` ended.
    pub fn run_finished(&self, source: &str, at: &str, outcome: &str) -> Result<(), StateError> {
        self.db
            .execute(
                "UPDATE runs SET finished_at = ?2, outcome = ?3 WHERE source = ?1",
                params![source, at, outcome],
            )
            .map(|_| ())
            .map_err(|e| self.fail(e))
    }

    /// The last run of `source`.
    pub fn last_run(&self, source: &str) -> Result<Option<LastRun>, StateError> {
        self.db
            .query_row(
                "SELECT started_at, finished_at, outcome FROM runs WHERE source = ?1",
                params![source],
                |r| Ok(LastRun { started_at: r.get(0)?, finished_at: r.get(1)?, outcome: r.get(2)? }),
            )
            .optional()
            .map_err(|e| self.fail(e))
    }
}

impl StateStore {
    /// A value of the agent's key-value table (control-plane state, JSON).
    pub fn setting(&self, key: &str) -> Result<Option<String>, StateError> {
        self.db
            .query_row("SELECT value FROM agent WHERE key = ?1", params![key], |r| r.get(0))
            .optional()
            .map_err(|e| self.fail(e))
    }

    /// Stores a value in the agent's key-value table.
    pub fn set_setting(&self, key: &str, value: &str) -> Result<(), StateError> {
        self.db
            .execute("INSERT OR REPLACE INTO agent (key, value) VALUES (?1, ?2)", params![key, value])
            .map(|_| ())
            .map_err(|e| self.fail(e))
    }

    /// The stored acknowledgement (JSON) of a remote command already executed, if it was.
    pub fn executed_command(&self, command_id: &str) -> Result<Option<String>, StateError> {
        self.db
            .query_row("SELECT ack FROM control_executed WHERE command_id = ?1", params![command_id], |r| {
                r.get(0)
            })
            .optional()
            .map_err(|e| self.fail(e))
    }

    /// Remembers that a remote command was executed, with its acknowledgement (JSON).
    /// Returns false when the id was already recorded (it must not run twice).
    pub fn record_executed_command(&self, command_id: &str, at: &str, ack: &str) -> Result<bool, StateError> {
        self.db
            .execute(
                "INSERT OR IGNORE INTO control_executed (command_id, executed_at, ack) VALUES (?1, ?2, ?3)",
                params![command_id, at, ack],
            )
            .map(|n| n == 1)
            .map_err(|e| self.fail(e))
    }

    /// Replaces the acknowledgement (JSON) of an executed remote command.
    pub fn update_executed_command(&self, command_id: &str, ack: &str) -> Result<(), StateError> {
        self.db
            .execute("UPDATE control_executed SET ack = ?2 WHERE command_id = ?1", params![command_id, ack])
            .map(|_| ())
            .map_err(|e| self.fail(e))
    }

    /// Queues a message (JSON) for the hub's control channel of `tenant`.
    pub fn push_outbox(&self, tenant: &str, message: &str) -> Result<(), StateError> {
        self.db
            .execute("INSERT INTO control_outbox (tenant, message) VALUES (?1, ?2)", params![tenant, message])
            .map(|_| ())
            .map_err(|e| self.fail(e))
    }

    /// The queued control messages of `tenant`, oldest first, with their ids.
    pub fn outbox(&self, tenant: &str) -> Result<Vec<(i64, String)>, StateError> {
        let mut statement = self
            .db
            .prepare("SELECT id, message FROM control_outbox WHERE tenant = ?1 ORDER BY id LIMIT 100")
            .map_err(|e| self.fail(e))?;
        let rows =
            statement.query_map(params![tenant], |r| Ok((r.get(0)?, r.get(1)?))).map_err(|e| self.fail(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.fail(e))
    }

    /// Removes a sent control message.
    pub fn remove_outbox(&self, id: i64) -> Result<(), StateError> {
        self.db
            .execute("DELETE FROM control_outbox WHERE id = ?1", params![id])
            .map(|_| ())
            .map_err(|e| self.fail(e))
    }
}

/// How long a store operation waits for another process holding the store.
const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Sets the connection up and creates or migrates the tables, in one write transaction.
fn prepare(db: &Connection) -> rusqlite::Result<()> {
    db.busy_timeout(BUSY_TIMEOUT)?;
    db.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;")?;
    db.execute_batch("BEGIN IMMEDIATE")?;
    db.execute_batch(SCHEMA)?;
    migrate(db)?;
    db.execute_batch("COMMIT")
}

fn is_busy(error: &rusqlite::Error) -> bool {
    matches!(
        error.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}

fn random_byte() -> u8 {
    let mut byte = [0u8];
    getrandom::fill(&mut byte).expect("the operating system provides random numbers");
    byte[0]
}

/// Brings a state store written by an older host up to date (columns added later).
fn migrate(db: &Connection) -> rusqlite::Result<()> {
    let has_plugin =
        db.prepare("SELECT 1 FROM pragma_table_info('acknowledged') WHERE name = 'plugin'")?.exists([])?;
    if !has_plugin {
        db.execute_batch("ALTER TABLE acknowledged ADD COLUMN plugin TEXT NOT NULL DEFAULT ''")?;
    }
    Ok(())
}

/// Held by `ledgerlink run` for its lifetime (`<data_dir>/service.lock`): a
/// second service on the same data is refused, and `status` can tell whether
/// the service runs.
pub struct ServiceLock {
    _file: std::fs::File,
}

impl ServiceLock {
    fn path(data_dir: &Path) -> std::path::PathBuf {
        data_dir.join("service.lock")
    }

    /// Takes the lock; `Ok(None)` while another service holds it.
    pub fn acquire(data_dir: &Path) -> std::io::Result<Option<ServiceLock>> {
        create_private_dir_all(data_dir)?;
        Ok(try_lock_file(&Self::path(data_dir))?.map(|file| ServiceLock { _file: file }))
    }

    /// Takes the lock for a starting service, waiting up to 2 s: `status` takes
    /// it for a moment to see whether a service runs.
    pub fn acquire_for_service(data_dir: &Path) -> std::io::Result<Option<ServiceLock>> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        loop {
            match Self::acquire(data_dir)? {
                None if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(50))
                }
                outcome => return Ok(outcome),
            }
        }
    }

    /// True while a service holds the lock on `data_dir`.
    pub fn held(data_dir: &Path) -> bool {
        Self::path(data_dir).exists() && matches!(Self::acquire(data_dir), Ok(None))
    }
}

/// Creates (or opens) `path` and takes its advisory lock without waiting:
/// `None` while another process (or open file) holds it.
pub fn try_lock_file(path: &Path) -> std::io::Result<Option<std::fs::File>> {
    let file = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(path)?;
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(std::fs::TryLockError::WouldBlock) => Ok(None),
        Err(std::fs::TryLockError::Error(e)) => Err(e),
    }
}

/// Creates `path` and its missing parents readable by this user only (0700 on
/// Unix): the data directory and the spool hold the customer's books. An
/// existing directory keeps its permissions.
pub fn create_private_dir_all(path: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(path)
}

/// Creates `path` with `bytes`, readable by its owner only (0600), given the owner
/// of its directory (created 0700 when missing) when this account may: root
/// creating a key in the service account's data directory. The file is written
/// whole before it appears, so two processes at once or a crash never leave a
/// partial one. False when it existed already (it is left as it is).
pub fn create_private_file(path: &Path, bytes: &[u8]) -> std::io::Result<bool> {
    use std::io::Write;
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    create_private_dir_all(dir)?;
    let (tmp, file) = private_temp_beside(path)?;
    let written = (|| {
        let mut file = file;
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            let owner = std::fs::metadata(dir)?;
            // Best effort: a key the service cannot read is reported where it is read.
            let _ = std::os::unix::fs::fchown(&file, Some(owner.uid()), Some(owner.gid()));
        }
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::hard_link(&tmp, path)
    })();
    let _ = std::fs::remove_file(&tmp);
    match written {
        Ok(()) => {
            if let Ok(dir) = std::fs::File::open(dir) {
                let _ = dir.sync_all();
            }
            Ok(true)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e),
    }
}

/// A new temporary file beside `path` (same directory, a name of its own), readable
/// by its owner only from the moment it exists: the place to write a file that
/// then replaces or becomes `path`.
pub fn private_temp_beside(path: &Path) -> std::io::Result<(PathBuf, std::fs::File)> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.{}", std::process::id(), random_hex(4)));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let file = options.open(&tmp)?;
    Ok((tmp, file))
}

/// `bytes` random bytes from the OS, as lower-case hex.
pub fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).expect("the operating system provides random numbers");
    hex(&buf)
}

/// `bytes` as lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(year: i32) -> SnapshotKey {
        SnapshotKey { tenant: "t".into(), source: "s".into(), company: "1".into(), fiscal_year: year }
    }

    #[test]
    fn acknowledgements_survive_reopening_and_are_per_year() {
        let dir = tempfile::tempdir().unwrap();
        let ack = Acknowledged {
            plugin: "hello-erp@0.3.0".into(),
            change_token: Some("v1|lines=3".into()),
            content_hash: "abc".into(),
            snapshot_id: "s1".into(),
            acknowledged_at: "2025-01-01T00:00:00Z".into(),
        };
        {
            let store = StateStore::open(dir.path()).unwrap();
            assert_eq!(store.acknowledged(&key(2025)).unwrap(), None);
            store.record_acknowledged(&key(2025), &ack).unwrap();
        }
        let store = StateStore::open(dir.path()).unwrap();
        assert_eq!(store.acknowledged(&key(2025)).unwrap(), Some(ack));
        assert_eq!(store.acknowledged(&key(2024)).unwrap(), None);
    }

    #[test]
    fn a_store_of_an_older_host_gains_the_plugin_column() {
        let dir = tempfile::tempdir().unwrap();
        let old = Connection::open(dir.path().join("state.sqlite")).unwrap();
        old.execute_batch(
            "CREATE TABLE acknowledged (tenant TEXT NOT NULL, source TEXT NOT NULL, company TEXT NOT NULL,
               fiscal_year INTEGER NOT NULL, change_token TEXT, content_hash TEXT NOT NULL,
               snapshot_id TEXT NOT NULL, acknowledged_at TEXT NOT NULL,
               PRIMARY KEY (tenant, source, company, fiscal_year));
             INSERT INTO acknowledged VALUES ('t', 's', '1', 2025, 'tok', 'h', 'id', 'at');",
        )
        .unwrap();
        drop(old);
        let store = StateStore::open(dir.path()).unwrap();
        let ack = store.acknowledged(&key(2025)).unwrap().expect("kept");
        assert_eq!(
            (ack.plugin.as_str(), ack.snapshot_id.as_str()),
            ("", "id"),
            "unknown plugin: extracted again once"
        );
    }

    #[test]
    fn opening_waits_for_another_process_that_holds_the_store() {
        // `ledgerlink status` runs while the service writes: it must wait, not fail
        // with "database is locked".
        let dir = tempfile::tempdir().unwrap();
        let holder = Connection::open(dir.path().join("state.sqlite")).unwrap();
        holder.execute_batch("BEGIN EXCLUSIVE; CREATE TABLE first_writer (x)").unwrap();
        std::thread::scope(|scope| {
            let opener = scope.spawn(|| StateStore::open(dir.path()).and_then(|s| s.agent_id()));
            std::thread::sleep(std::time::Duration::from_millis(300));
            holder.execute_batch("COMMIT").unwrap();
            opener.join().unwrap().expect("waits for the holder");
        });
    }

    #[test]
    fn processes_creating_the_store_at_once_wait_for_each_other() {
        for _ in 0..50 {
            let dir = tempfile::tempdir().unwrap();
            let start = std::sync::Barrier::new(8);
            let ids: Vec<String> = std::thread::scope(|scope| {
                let openers: Vec<_> = (0..8)
                    .map(|_| {
                        scope.spawn(|| {
                            start.wait();
                            StateStore::open(dir.path()).and_then(|s| s.agent_id())
                        })
                    })
                    .collect();
                openers.into_iter().map(|o| o.join().unwrap().expect("opens despite the others")).collect()
            });
            assert!(ids.iter().all(|id| id == &ids[0]), "one agent id: {ids:?}");
        }
    }

    #[test]
    fn agent_id_is_created_once() {
        let dir = tempfile::tempdir().unwrap();
        let first = StateStore::open(dir.path()).unwrap().agent_id().unwrap();
        let second = StateStore::open(dir.path()).unwrap().agent_id().unwrap();
        assert_eq!(first, second);
        assert!(first.starts_with("agent-") && first.len() == 38 && is_agent_id(&first), "{first}");
    }

    #[test]
    fn a_new_store_keeps_the_agent_id_and_the_store_wins_over_a_stray_file() {
        let dir = tempfile::tempdir().unwrap();
        let first = StateStore::open(dir.path()).unwrap().agent_id().unwrap();
        assert_eq!(std::fs::read_to_string(dir.path().join(AGENT_ID_FILE)).unwrap().trim(), first);
        // The store damaged and moved away: a new one keeps the id.
        for name in ["state.sqlite", "state.sqlite-wal", "state.sqlite-shm"] {
            let _ = std::fs::rename(dir.path().join(name), dir.path().join(format!("{name}.damaged")));
        }
        assert_eq!(StateStore::open(dir.path()).unwrap().agent_id().unwrap(), first);
        // A file that does not hold an id is rewritten with the store's.
        std::fs::write(dir.path().join(AGENT_ID_FILE), "garbage").unwrap();
        assert_eq!(StateStore::open(dir.path()).unwrap().agent_id().unwrap(), first);
        assert_eq!(std::fs::read_to_string(dir.path().join(AGENT_ID_FILE)).unwrap().trim(), first);
        assert!(!is_agent_id("agent-xyz") && !is_agent_id("agent-") && !is_agent_id(""));
    }

    #[test]
    fn counts_and_runs_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(dir.path()).unwrap();
        let counts = BTreeMap::from([("voucher_lines".to_string(), 12u64), ("accounts".to_string(), 3)]);
        store.record_counts(&key(2025), &counts).unwrap();
        assert_eq!(store.counts(&key(2025)).unwrap(), counts);
        store.run_started("s", "a").unwrap();
        store.run_finished("s", "b", "success").unwrap();
        let last = store.last_run("s").unwrap().unwrap();
        assert_eq!(
            (last.started_at.as_str(), last.finished_at.as_deref(), last.outcome.as_deref()),
            ("a", Some("b"), Some("success"))
        );
    }
}
