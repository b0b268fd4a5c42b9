//! Metadata in one SQLite database (WAL, `synchronous=FULL`).

use super::{
    AgentReport, CommitData, CompanyKey, KeyMatch, MetadataStore, SnapshotRecord, StoreError, StoreResult,
    StoredTrialBalance, Tenant, TenantRow,
};
use ledgerlink_plugin_api::canonical::Company;
use ledgerlink_protocol::api::{AgentInfo, CompanySummary, CompanyYear, SnapshotState, SnapshotSummary};
use ledgerlink_protocol::{Manifest, PluginRef};
use rusqlite::{params, Connection, OptionalExtension, Row, TransactionBehavior};
use std::path::Path;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

/// The schema version this code writes (`PRAGMA user_version`).
const SCHEMA_VERSION: i64 = 2;

const SCHEMA: &str = r#"
CREATE TABLE tenants (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    key_hash    BLOB NOT NULL UNIQUE,
    created_at  TEXT NOT NULL,
    revoked_at  TEXT
);
CREATE TABLE snapshots (
    tenant_id     INTEGER NOT NULL REFERENCES tenants(id),
    snapshot_id   TEXT NOT NULL,
    source_id     TEXT NOT NULL,
    company_id    TEXT NOT NULL,
    fiscal_year   INTEGER NOT NULL,
    manifest      TEXT NOT NULL,
    state         TEXT NOT NULL CHECK (state IN ('open', 'committed')),
    created_at    TEXT NOT NULL,
    committed_at  TEXT,
    commit_seq    INTEGER,
    offer_seq     INTEGER,
    records       INTEGER NOT NULL DEFAULT 0,
    trial_balance TEXT,
    PRIMARY KEY (tenant_id, snapshot_id)
);
CREATE INDEX snapshots_by_company ON snapshots (tenant_id, source_id, company_id, fiscal_year, state);
CREATE TABLE parts (
    tenant_id   INTEGER NOT NULL,
    snapshot_id TEXT NOT NULL,
    idx         INTEGER NOT NULL,
    stored_at   TEXT NOT NULL,
    PRIMARY KEY (tenant_id, snapshot_id, idx)
);
CREATE TABLE current (
    tenant_id   INTEGER NOT NULL,
    source_id   TEXT NOT NULL,
    company_id  TEXT NOT NULL,
    fiscal_year INTEGER NOT NULL,
    snapshot_id TEXT NOT NULL,
    PRIMARY KEY (tenant_id, source_id, company_id, fiscal_year)
);
CREATE TABLE companies (
    tenant_id   INTEGER NOT NULL,
    source_id   TEXT NOT NULL,
    company_id  TEXT NOT NULL,
    record      TEXT NOT NULL,
    PRIMARY KEY (tenant_id, source_id, company_id)
);
CREATE TABLE agents (
    tenant_id    INTEGER NOT NULL,
    agent_id     TEXT NOT NULL,
    version      TEXT NOT NULL,
    user_agent   TEXT NOT NULL,
    host         TEXT,
    os           TEXT,
    service_user TEXT,
    erp          TEXT,
    plugins      TEXT NOT NULL,
    body         TEXT NOT NULL,
    last_seen    TEXT NOT NULL,
    PRIMARY KEY (tenant_id, agent_id)
);
"#;

/// Indexes of schema version 2, made on every open when missing.
const INDEXES: &str = "
CREATE INDEX IF NOT EXISTS snapshots_by_offer ON snapshots (offer_seq);
CREATE INDEX IF NOT EXISTS snapshots_by_commit ON snapshots (commit_seq);
CREATE INDEX IF NOT EXISTS snapshots_current_order
    ON snapshots (tenant_id, source_id, company_id, fiscal_year, state, offer_seq, commit_seq);
";

/// Metadata store in a SQLite file.
#[derive(Debug)]
pub struct SqliteStore {
    conn: Mutex<Connection>,
}

pub(super) fn db(e: rusqlite::Error) -> StoreError {
    StoreError::Database(e.to_string())
}

pub(super) fn corrupt(e: serde_json::Error) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

impl SqliteStore {
    /// Opens (creating or migrating) the database at `path`.
    pub fn open(path: &Path) -> StoreResult<Self> {
        let conn = Connection::open(path).map_err(db)?;
        conn.busy_timeout(Duration::from_secs(10)).map_err(db)?;
        conn.pragma_update(None, "journal_mode", "WAL").map_err(db)?;
        conn.pragma_update(None, "synchronous", "FULL").map_err(db)?;
        conn.pragma_update(None, "foreign_keys", "ON").map_err(db)?;
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0)).map_err(db)?;
        match version {
            0 => {
                let tx = conn.unchecked_transaction().map_err(db)?;
                tx.execute_batch(SCHEMA).map_err(db)?;
                tx.pragma_update(None, "user_version", SCHEMA_VERSION).map_err(db)?;
                tx.commit().map_err(db)?;
            }
            1 => {
                // Offers before version 2 are ordered as they were committed: the
                // current snapshots stay what they are.
                let tx = conn.unchecked_transaction().map_err(db)?;
                tx.execute_batch(
                    "ALTER TABLE snapshots ADD COLUMN offer_seq INTEGER; \
                     UPDATE snapshots SET offer_seq = commit_seq;",
                )
                .map_err(db)?;
                tx.pragma_update(None, "user_version", SCHEMA_VERSION).map_err(db)?;
                tx.commit().map_err(db)?;
            }
            SCHEMA_VERSION => {}
            newer => {
                return Err(StoreError::Database(format!(
                    "the database has schema version {newer} but this hub knows only {SCHEMA_VERSION}; \
                     Resolution: run a hub at least as new as the one that wrote it"
                )))
            }
        }
        conn.execute_batch(INDEXES).map_err(db)?;
        conn.execute_batch(super::control::CONTROL_SCHEMA).map_err(db)?;
        conn.execute_batch(super::consent::CONSENT_SCHEMA).map_err(db)?;
        conn.execute_batch(super::identity::IDENTITY_SCHEMA).map_err(db)?;
        Ok(Self { conn: Mutex::new(conn) })
    }

    pub(super) fn conn(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave SQLite half-written (transactions roll back).
        self.conn.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Makes the committed snapshot of `snapshot_id`'s company and year that was offered
/// last the current one. A commit that finishes late (its verification outlived the
/// agent's patience, and the agent has offered newer data since) does not displace
/// the newer data; a snapshot offered again is current again.
fn refresh_current(tx: &rusqlite::Transaction<'_>, tenant: &Tenant, snapshot_id: &str) -> StoreResult<()> {
    tx.execute(
        "INSERT INTO current (tenant_id, source_id, company_id, fiscal_year, snapshot_id) \
         SELECT o.tenant_id, o.source_id, o.company_id, o.fiscal_year, o.snapshot_id FROM snapshots s \
           JOIN snapshots o ON o.tenant_id = s.tenant_id AND o.source_id = s.source_id \
             AND o.company_id = s.company_id AND o.fiscal_year = s.fiscal_year AND o.state = 'committed' \
         WHERE s.tenant_id = ?1 AND s.snapshot_id = ?2 \
         ORDER BY o.offer_seq DESC NULLS LAST, o.commit_seq DESC LIMIT 1 \
         ON CONFLICT (tenant_id, source_id, company_id, fiscal_year) DO UPDATE SET snapshot_id = excluded.snapshot_id",
        params![tenant.id, snapshot_id],
    )
    .map_err(db)?;
    // The company's record (name, currency, fiscal years) is the current snapshot's:
    // not a late commit's that stayed behind, and again an older one's made current.
    let is_current: bool = tx
        .query_row(
            "SELECT EXISTS (SELECT 1 FROM current WHERE tenant_id = ?1 AND snapshot_id = ?2)",
            params![tenant.id, snapshot_id],
            |r| r.get(0),
        )
        .map_err(db)?;
    if is_current {
        let manifest: String = tx
            .query_row(
                "SELECT manifest FROM snapshots WHERE tenant_id = ?1 AND snapshot_id = ?2",
                params![tenant.id, snapshot_id],
                |r| r.get(0),
            )
            .map_err(db)?;
        let manifest: Manifest = serde_json::from_str(&manifest).map_err(corrupt)?;
        let company = serde_json::to_string(&manifest.company).map_err(corrupt)?;
        tx.execute(
            "INSERT INTO companies (tenant_id, source_id, company_id, record) VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT (tenant_id, source_id, company_id) DO UPDATE SET record = excluded.record",
            params![tenant.id, manifest.source_id, manifest.company.id, company],
        )
        .map_err(db)?;
    }
    Ok(())
}

const SNAPSHOT_COLUMNS: &str =
    "s.snapshot_id, s.manifest, s.state, s.created_at, s.committed_at, s.records, \
     EXISTS (SELECT 1 FROM current c WHERE c.tenant_id = s.tenant_id AND c.snapshot_id = s.snapshot_id)";

struct RawSnapshot {
    snapshot_id: String,
    manifest: String,
    state: String,
    created_at: String,
    committed_at: Option<String>,
    records: i64,
    current: bool,
}

impl RawSnapshot {
    fn from_row(row: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            snapshot_id: row.get(0)?,
            manifest: row.get(1)?,
            state: row.get(2)?,
            created_at: row.get(3)?,
            committed_at: row.get(4)?,
            records: row.get(5)?,
            current: row.get(6)?,
        })
    }

    fn into_record(self) -> StoreResult<SnapshotRecord> {
        let manifest: Manifest = serde_json::from_str(&self.manifest).map_err(corrupt)?;
        let state = match self.state.as_str() {
            "committed" => SnapshotState::Committed,
            _ => SnapshotState::Open,
        };
        Ok(SnapshotRecord {
            snapshot_id: self.snapshot_id,
            manifest,
            state,
            created_at: self.created_at,
            committed_at: self.committed_at,
            records: self.records.max(0) as u64,
            current: self.current,
            stored_parts: Default::default(),
        })
    }
}

impl MetadataStore for SqliteStore {
    fn create_tenant(&self, name: &str, key_hash: &[u8], now: &str) -> StoreResult<()> {
        let conn = self.conn();
        let exists: bool = conn
            .query_row("SELECT EXISTS (SELECT 1 FROM tenants WHERE name = ?1)", [name], |r| r.get(0))
            .map_err(db)?;
        if exists {
            return Err(StoreError::TenantExists(name.to_owned()));
        }
        conn.execute(
            "INSERT INTO tenants (name, key_hash, created_at) VALUES (?1, ?2, ?3)",
            params![name, key_hash, now],
        )
        .map_err(db)?;
        Ok(())
    }

    fn list_tenants(&self) -> StoreResult<Vec<TenantRow>> {
        let conn = self.conn();
        let mut stmt =
            conn.prepare("SELECT name, created_at, revoked_at FROM tenants ORDER BY name").map_err(db)?;
        let rows = stmt
            .query_map([], |r| {
                Ok(TenantRow { name: r.get(0)?, created_at: r.get(1)?, revoked_at: r.get(2)? })
            })
            .map_err(db)?;
        rows.collect::<Result<_, _>>().map_err(db)
    }

    fn revoke_tenant(&self, name: &str, now: &str) -> StoreResult<bool> {
        let conn = self.conn();
        let exists: bool = conn
            .query_row("SELECT EXISTS (SELECT 1 FROM tenants WHERE name = ?1)", [name], |r| r.get(0))
            .map_err(db)?;
        conn.execute(
            "UPDATE tenants SET revoked_at = ?2 WHERE name = ?1 AND revoked_at IS NULL",
            params![name, now],
        )
        .map_err(db)?;
        Ok(exists)
    }

    fn tenant_by_key_hash(&self, key_hash: &[u8]) -> StoreResult<Option<KeyMatch>> {
        self.conn()
            .query_row(
                "SELECT id, name, key_hash, revoked_at IS NOT NULL FROM tenants WHERE key_hash = ?1",
                [key_hash],
                |r| {
                    Ok(KeyMatch {
                        tenant: Tenant { id: r.get(0)?, name: r.get(1)? },
                        key_hash: r.get(2)?,
                        revoked: r.get(3)?,
                    })
                },
            )
            .optional()
            .map_err(db)
    }

    fn insert_snapshot(
        &self,
        tenant: &Tenant,
        snapshot_id: &str,
        manifest: &Manifest,
        now: &str,
    ) -> StoreResult<bool> {
        let json = serde_json::to_string(manifest).map_err(corrupt)?;
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(db)?;
        let inserted = tx
            .execute(
                "INSERT OR IGNORE INTO snapshots (tenant_id, snapshot_id, source_id, company_id, fiscal_year, manifest, state, created_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'open', ?7)",
                params![tenant.id, snapshot_id, manifest.source_id, manifest.company.id, manifest.fiscal_year, json, now],
            )
            .map_err(db)?;
        // Offered now, whether new or known: the newest offer of a year is the data
        // the agent read last (an ERP back to an earlier state offers that snapshot again).
        tx.execute(
            "UPDATE snapshots SET offer_seq = (SELECT COALESCE(MAX(offer_seq), 0) + 1 FROM snapshots) \
             WHERE tenant_id = ?1 AND snapshot_id = ?2",
            params![tenant.id, snapshot_id],
        )
        .map_err(db)?;
        refresh_current(&tx, tenant, snapshot_id)?;
        tx.commit().map_err(db)?;
        Ok(inserted == 1)
    }

    fn snapshot(&self, tenant: &Tenant, snapshot_id: &str) -> StoreResult<Option<SnapshotRecord>> {
        let conn = self.conn();
        let sql = format!(
            "SELECT {SNAPSHOT_COLUMNS} FROM snapshots s WHERE s.tenant_id = ?1 AND s.snapshot_id = ?2"
        );
        let Some(raw) = conn
            .query_row(&sql, params![tenant.id, snapshot_id], RawSnapshot::from_row)
            .optional()
            .map_err(db)?
        else {
            return Ok(None);
        };
        let mut record = raw.into_record()?;
        let mut stmt =
            conn.prepare("SELECT idx FROM parts WHERE tenant_id = ?1 AND snapshot_id = ?2").map_err(db)?;
        let indexes = stmt.query_map(params![tenant.id, snapshot_id], |r| r.get::<_, u32>(0)).map_err(db)?;
        record.stored_parts = indexes.collect::<Result<_, _>>().map_err(db)?;
        Ok(Some(record))
    }

    fn mark_part_stored(&self, tenant: &Tenant, snapshot_id: &str, index: u32, now: &str) -> StoreResult<()> {
        self.conn()
            .execute(
                "INSERT OR IGNORE INTO parts (tenant_id, snapshot_id, idx, stored_at) VALUES (?1, ?2, ?3, ?4)",
                params![tenant.id, snapshot_id, index, now],
            )
            .map_err(db)?;
        Ok(())
    }

    fn unmark_part(&self, tenant: &Tenant, snapshot_id: &str, index: u32) -> StoreResult<()> {
        self.conn()
            .execute(
                "DELETE FROM parts WHERE tenant_id = ?1 AND snapshot_id = ?2 AND idx = ?3",
                params![tenant.id, snapshot_id, index],
            )
            .map_err(db)?;
        Ok(())
    }

    fn commit_snapshot(
        &self,
        tenant: &Tenant,
        snapshot_id: &str,
        data: &CommitData,
        now: &str,
    ) -> StoreResult<bool> {
        let tb = serde_json::to_string(&data.trial_balance).map_err(corrupt)?;
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(db)?;
        let changed = tx
            .execute(
                "UPDATE snapshots SET state = 'committed', committed_at = ?3, records = ?4, trial_balance = ?5, \
                 commit_seq = (SELECT COALESCE(MAX(commit_seq), 0) + 1 FROM snapshots), \
                 offer_seq = COALESCE(offer_seq, (SELECT COALESCE(MAX(offer_seq), 0) + 1 FROM snapshots)) \
                 WHERE tenant_id = ?1 AND snapshot_id = ?2 AND state = 'open'",
                params![tenant.id, snapshot_id, now, data.records as i64, tb],
            )
            .map_err(db)?;
        if changed == 0 {
            return Ok(false);
        }
        refresh_current(&tx, tenant, snapshot_id)?;
        tx.commit().map_err(db)?;
        Ok(true)
    }

    fn companies(&self, tenant: &Tenant) -> StoreResult<Vec<CompanySummary>> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare(
                "SELECT co.source_id, co.company_id, co.record, cur.fiscal_year, cur.snapshot_id, \
                   (SELECT COUNT(*) FROM snapshots s WHERE s.tenant_id = cur.tenant_id AND s.source_id = cur.source_id \
                      AND s.company_id = cur.company_id AND s.fiscal_year = cur.fiscal_year AND s.state = 'committed') \
                 FROM companies co JOIN current cur ON cur.tenant_id = co.tenant_id AND cur.source_id = co.source_id \
                   AND cur.company_id = co.company_id \
                 WHERE co.tenant_id = ?1 ORDER BY co.company_id, co.source_id, cur.fiscal_year",
            )
            .map_err(db)?;
        let rows = stmt
            .query_map([tenant.id], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, i32>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, i64>(5)?,
                ))
            })
            .map_err(db)?;
        let mut out: Vec<CompanySummary> = Vec::new();
        for row in rows {
            let (source_id, company_id, record, year, snapshot_id, count) = row.map_err(db)?;
            let year = CompanyYear {
                fiscal_year: year,
                current_snapshot_id: snapshot_id,
                snapshots: count.max(0) as u64,
            };
            match out.last_mut() {
                Some(last) if last.source_id == source_id && last.company_id == company_id => {
                    last.years.push(year)
                }
                _ => {
                    let company: Company = serde_json::from_str(&record).map_err(corrupt)?;
                    out.push(CompanySummary {
                        source_id,
                        company_id,
                        name: company.name,
                        organisation_number: company.organisation_number,
                        currency: company.currency,
                        years: vec![year],
                    });
                }
            }
        }
        Ok(out)
    }

    fn company_sources(&self, tenant: &Tenant, company_id: &str) -> StoreResult<Vec<String>> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare(
                "SELECT source_id FROM companies WHERE tenant_id = ?1 AND company_id = ?2 ORDER BY source_id",
            )
            .map_err(db)?;
        let rows = stmt.query_map(params![tenant.id, company_id], |r| r.get(0)).map_err(db)?;
        rows.collect::<Result<_, _>>().map_err(db)
    }

    fn history(
        &self,
        tenant: &Tenant,
        company: &CompanyKey,
        year: Option<i32>,
    ) -> StoreResult<Vec<SnapshotSummary>> {
        let conn = self.conn();
        let sql = format!(
            "SELECT {SNAPSHOT_COLUMNS} FROM snapshots s WHERE s.tenant_id = ?1 AND s.source_id = ?2 AND s.company_id = ?3 \
             AND (?4 IS NULL OR s.fiscal_year = ?4) AND s.state = 'committed' ORDER BY s.commit_seq DESC"
        );
        let mut stmt = conn.prepare(&sql).map_err(db)?;
        let rows = stmt
            .query_map(params![tenant.id, company.source_id, company.company_id, year], RawSnapshot::from_row)
            .map_err(db)?;
        let mut out = Vec::new();
        for raw in rows {
            out.push(raw.map_err(db)?.into_record()?.summary());
        }
        Ok(out)
    }

    fn current(
        &self,
        tenant: &Tenant,
        company: &CompanyKey,
        year: i32,
    ) -> StoreResult<Option<SnapshotRecord>> {
        let snapshot_id: Option<String> = self
            .conn()
            .query_row(
                "SELECT snapshot_id FROM current WHERE tenant_id = ?1 AND source_id = ?2 AND company_id = ?3 AND fiscal_year = ?4",
                params![tenant.id, company.source_id, company.company_id, year],
                |r| r.get(0),
            )
            .optional()
            .map_err(db)?;
        match snapshot_id {
            Some(id) => self.snapshot(tenant, &id),
            None => Ok(None),
        }
    }

    fn trial_balance(
        &self,
        tenant: &Tenant,
        company: &CompanyKey,
        year: i32,
    ) -> StoreResult<Option<StoredTrialBalance>> {
        let row: Option<(String, String, Option<String>)> = self
            .conn()
            .query_row(
                "SELECT s.snapshot_id, s.manifest, s.trial_balance FROM current c JOIN snapshots s \
                   ON s.tenant_id = c.tenant_id AND s.snapshot_id = c.snapshot_id \
                 WHERE c.tenant_id = ?1 AND c.source_id = ?2 AND c.company_id = ?3 AND c.fiscal_year = ?4",
                params![tenant.id, company.source_id, company.company_id, year],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()
            .map_err(db)?;
        let Some((snapshot_id, manifest, tb)) = row else { return Ok(None) };
        let manifest: Manifest = serde_json::from_str(&manifest).map_err(corrupt)?;
        let tb =
            tb.ok_or_else(|| StoreError::Corrupt(format!("snapshot {snapshot_id} has no trial balance")))?;
        Ok(Some(StoredTrialBalance {
            snapshot_id,
            company: manifest.company,
            trial_balance: serde_json::from_str(&tb).map_err(corrupt)?,
        }))
    }

    fn record_agent(&self, tenant: &Tenant, report: &AgentReport) -> StoreResult<()> {
        let info = &report.info;
        let plugins = serde_json::to_string(&info.plugins).map_err(corrupt)?;
        self.conn()
            .execute(
                "INSERT INTO agents (tenant_id, agent_id, version, user_agent, host, os, service_user, erp, plugins, body, last_seen) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11) \
                 ON CONFLICT (tenant_id, agent_id) DO UPDATE SET version = excluded.version, user_agent = excluded.user_agent, \
                   host = excluded.host, os = excluded.os, service_user = excluded.service_user, erp = excluded.erp, \
                   plugins = excluded.plugins, body = excluded.body, last_seen = excluded.last_seen",
                params![
                    tenant.id,
                    info.agent_id,
                    info.version,
                    info.user_agent,
                    info.host,
                    info.os,
                    info.service_user,
                    info.erp,
                    plugins,
                    report.body,
                    info.last_seen
                ],
            )
            .map_err(db)?;
        Ok(())
    }

    fn agents(&self, tenant: &Tenant) -> StoreResult<Vec<AgentInfo>> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare(
                "SELECT agent_id, version, user_agent, host, os, service_user, erp, plugins, last_seen \
                 FROM agents WHERE tenant_id = ?1 ORDER BY agent_id",
            )
            .map_err(db)?;
        let rows = stmt
            .query_map([tenant.id], |r| {
                Ok((
                    AgentInfo {
                        agent_id: r.get(0)?,
                        version: r.get(1)?,
                        user_agent: r.get(2)?,
                        host: r.get(3)?,
                        os: r.get(4)?,
                        service_user: r.get(5)?,
                        erp: r.get(6)?,
                        plugins: Vec::new(),
                        last_seen: r.get(8)?,
                    },
                    r.get::<_, String>(7)?,
                ))
            })
            .map_err(db)?;
        let mut out = Vec::new();
        for row in rows {
            let (mut info, plugins) = row.map_err(db)?;
            info.plugins = serde_json::from_str::<Vec<PluginRef>>(&plugins).map_err(corrupt)?;
            out.push(info);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_version_1_database_is_migrated_and_its_current_snapshots_stay() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hub.sqlite3");
        {
            let version_1 = SCHEMA.replace("    offer_seq     INTEGER,\n", "");
            assert_ne!(version_1, SCHEMA);
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(&version_1).unwrap();
            let manifest = serde_json::json!({
                "protocol_version": 1, "schema_version": 1, "agent_id": "agent-1", "source_id": "s",
                "plugin": {"id": "p", "version": "1.0.0"}, "fiscal_year": 2025, "change_token": null,
                "company": {"id": "1", "name": "Firma", "organisation_number": null, "currency": "NOK",
                            "fiscal_years": [], "source_key": "1"},
                "parts": [],
            });
            let manifest = serde_json::from_value::<Manifest>(manifest).unwrap();
            let manifest = serde_json::to_string(&manifest).unwrap();
            conn.execute_batch("INSERT INTO tenants VALUES (1, 'acme', x'01', 't', NULL);").unwrap();
            for (id, state, seq) in
                [("older", "committed", Some(1)), ("newer", "committed", Some(2)), ("open", "open", None)]
            {
                conn.execute(
                    "INSERT INTO snapshots (tenant_id, snapshot_id, source_id, company_id, fiscal_year, manifest, \
                       state, created_at, commit_seq) VALUES (1, ?1, 's', '1', 2025, ?2, ?3, 't', ?4)",
                    params![id, manifest, state, seq],
                )
                .unwrap();
            }
            conn.execute_batch(
                "INSERT INTO current VALUES (1, 's', '1', 2025, 'newer'); PRAGMA user_version = 1;",
            )
            .unwrap();
        }
        let store = SqliteStore::open(&path).unwrap();
        let conn = store.conn();
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0)).unwrap();
        assert_eq!(version, SCHEMA_VERSION);
        let offers: Vec<(String, Option<i64>)> = conn
            .prepare("SELECT snapshot_id, offer_seq FROM snapshots ORDER BY snapshot_id")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(offers, [("newer".into(), Some(2)), ("older".into(), Some(1)), ("open".into(), None)]);
        let tx = conn.unchecked_transaction().unwrap();
        let tenant = Tenant { id: 1, name: "acme".into() };
        refresh_current(&tx, &tenant, "older").unwrap();
        let current: String = tx.query_row("SELECT snapshot_id FROM current", [], |r| r.get(0)).unwrap();
        assert_eq!(current, "newer", "the order of the commits before the migration is kept");
        tx.commit().unwrap();
        drop(conn);
        // Open before the migration, committed after it without being offered again
        // (the agent retried only its commit): the newest data, so current.
        let data = CommitData { records: 0, trial_balance: Default::default() };
        assert!(store.commit_snapshot(&tenant, "open", &data, "t2").unwrap());
        let current: String =
            store.conn().query_row("SELECT snapshot_id FROM current", [], |r| r.get(0)).unwrap();
        assert_eq!(current, "open");
    }
}
