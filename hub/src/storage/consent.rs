//! Support access with the customer's consent: the grants a tenant gives support
//! (what, until when) and the log of every look support took under one.
//!
//! Timestamps are RFC 3339 UTC with milliseconds (`2026-12-07T19:00:00.000Z`), all
//! written by the hub in that one form, so comparing them as text compares times.

use super::sqlite::{db, SqliteStore};
use super::{StoreResult, Tenant};
use rusqlite::{params, OptionalExtension};
use serde::{Deserialize, Serialize};

pub(super) const CONSENT_SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS support_grants (
    grant_id    TEXT PRIMARY KEY,
    tenant_id   INTEGER NOT NULL,
    scopes      TEXT NOT NULL,
    granted_by  TEXT NOT NULL,
    reason      TEXT,
    created_at  TEXT NOT NULL,
    expires_at  TEXT NOT NULL,
    revoked_at  TEXT,
    revoked_by  TEXT
);
CREATE INDEX IF NOT EXISTS support_grants_by_tenant ON support_grants (tenant_id, expires_at);
CREATE TABLE IF NOT EXISTS support_access_log (
    id          INTEGER PRIMARY KEY,
    at          TEXT NOT NULL,
    tenant_id   INTEGER NOT NULL,
    grant_id    TEXT NOT NULL,
    actor       TEXT NOT NULL,
    scope       TEXT NOT NULL,
    what        TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS support_access_by_tenant ON support_access_log (tenant_id, id);
"#;

/// What a grant lets support look at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Diagnostics of the tenant's agents: versions, plugins, redacted settings, paths, log lines.
    Diagnostics,
    /// The tenant's accounting data: companies, snapshots, records, trial balances, SAF-T.
    Data,
}

impl Scope {
    /// The scope's name in the API and the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Diagnostics => "diagnostics",
            Scope::Data => "data",
        }
    }

    /// Parses `diagnostics` or `data`.
    pub fn parse(text: &str) -> Option<Scope> {
        match text {
            "diagnostics" => Some(Scope::Diagnostics),
            "data" => Some(Scope::Data),
            _ => None,
        }
    }
}

/// One grant of support access by a tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SupportGrant {
    /// Its id (`grant-…`).
    pub grant_id: String,
    /// The tenant's name.
    pub tenant: String,
    /// What support may look at.
    pub scopes: Vec<Scope>,
    /// Who granted it (`tenant acme (its API key)`).
    pub granted_by: String,
    /// Why, as the customer wrote it.
    pub reason: Option<String>,
    /// When it was granted.
    pub created_at: String,
    /// When it ends by itself.
    pub expires_at: String,
    /// When it was withdrawn, if it was.
    pub revoked_at: Option<String>,
    /// Who withdrew it.
    pub revoked_by: Option<String>,
    /// True while it lets support look (not withdrawn, not expired), as of the read.
    pub active: bool,
}

/// One look support took at a tenant's diagnostics or data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SupportAccess {
    /// When.
    pub at: String,
    /// The tenant's name.
    pub tenant: String,
    /// The grant that allowed it.
    pub grant_id: String,
    /// The support token's name.
    pub actor: String,
    /// Which scope it used.
    pub scope: Scope,
    /// What was looked at (`GET /v1/companies/…/trial-balance?year=2025`, `diagnostics of agent …`).
    pub what: String,
}

/// Storage of grants and of the access log.
pub trait ConsentStore: Send + Sync + 'static {
    /// Stores a new grant (`grant.active` is ignored).
    fn create_grant(&self, tenant: &Tenant, grant: &SupportGrant) -> StoreResult<()>;
    /// The grants of one tenant, or of all, newest first; `active` as of `now`.
    fn grants(&self, tenant: Option<&Tenant>, now: &str) -> StoreResult<Vec<SupportGrant>>;
    /// Withdraws a grant; `None` when the tenant has no grant of that id. A grant
    /// withdrawn already keeps its first withdrawal, and one expired stays expired.
    fn revoke_grant(
        &self,
        tenant: &Tenant,
        grant_id: &str,
        by: &str,
        now: &str,
    ) -> StoreResult<Option<SupportGrant>>;
    /// The grant that lets support look at `scope` of the tenant at `now`, the one
    /// lasting longest when several do.
    fn active_grant(&self, tenant: &Tenant, scope: Scope, now: &str) -> StoreResult<Option<SupportGrant>>;
    /// Logs one look.
    fn log_access(&self, tenant: &Tenant, access: &SupportAccess) -> StoreResult<()>;
    /// How many looks the tenant's log holds.
    fn access_count(&self, tenant: &Tenant) -> StoreResult<u64>;
    /// Expires the tenant's diagnostics commands not yet answered; how many.
    fn expire_pending_diagnostics(&self, tenant: &Tenant, now: &str) -> StoreResult<usize>;
    /// The tenant's latest looks, newest first.
    fn access_log(&self, tenant: &Tenant, limit: usize) -> StoreResult<Vec<SupportAccess>>;
}

const GRANT_COLUMNS: &str = "g.grant_id, t.name, g.scopes, g.granted_by, g.reason, g.created_at, \
                             g.expires_at, g.revoked_at, g.revoked_by";

fn grant_from_row(row: &rusqlite::Row<'_>, now: &str) -> rusqlite::Result<SupportGrant> {
    let scopes: String = row.get(2)?;
    let expires_at: String = row.get(6)?;
    let revoked_at: Option<String> = row.get(7)?;
    Ok(SupportGrant {
        grant_id: row.get(0)?,
        tenant: row.get(1)?,
        scopes: scopes.split(',').filter_map(Scope::parse).collect(),
        granted_by: row.get(3)?,
        reason: row.get(4)?,
        created_at: row.get(5)?,
        active: revoked_at.is_none() && expires_at.as_str() > now,
        expires_at,
        revoked_at,
        revoked_by: row.get(8)?,
    })
}

fn scopes_text(scopes: &[Scope]) -> String {
    scopes.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(",")
}

impl SqliteStore {
    fn grant(&self, tenant: &Tenant, grant_id: &str, now: &str) -> StoreResult<Option<SupportGrant>> {
        self.conn()
            .query_row(
                &format!(
                    "SELECT {GRANT_COLUMNS} FROM support_grants g JOIN tenants t ON t.id = g.tenant_id \
                     WHERE g.tenant_id = ?1 AND g.grant_id = ?2"
                ),
                params![tenant.id, grant_id],
                |row| grant_from_row(row, now),
            )
            .optional()
            .map_err(db)
    }
}

impl ConsentStore for SqliteStore {
    fn create_grant(&self, tenant: &Tenant, grant: &SupportGrant) -> StoreResult<()> {
        self.conn()
            .execute(
                "INSERT INTO support_grants (grant_id, tenant_id, scopes, granted_by, reason, created_at, expires_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    grant.grant_id,
                    tenant.id,
                    scopes_text(&grant.scopes),
                    grant.granted_by,
                    grant.reason,
                    grant.created_at,
                    grant.expires_at
                ],
            )
            .map_err(db)?;
        Ok(())
    }

    fn grants(&self, tenant: Option<&Tenant>, now: &str) -> StoreResult<Vec<SupportGrant>> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare(&format!(
                "SELECT {GRANT_COLUMNS} FROM support_grants g JOIN tenants t ON t.id = g.tenant_id \
                 WHERE ?1 IS NULL OR g.tenant_id = ?1 ORDER BY g.created_at DESC, g.grant_id"
            ))
            .map_err(db)?;
        let rows = stmt.query_map([tenant.map(|t| t.id)], |row| grant_from_row(row, now)).map_err(db)?;
        rows.collect::<Result<_, _>>().map_err(db)
    }

    fn revoke_grant(
        &self,
        tenant: &Tenant,
        grant_id: &str,
        by: &str,
        now: &str,
    ) -> StoreResult<Option<SupportGrant>> {
        self.conn()
            .execute(
                "UPDATE support_grants SET revoked_at = ?3, revoked_by = ?4 \
                 WHERE tenant_id = ?1 AND grant_id = ?2 AND revoked_at IS NULL AND expires_at > ?3",
                params![tenant.id, grant_id, now, by],
            )
            .map_err(db)?;
        self.grant(tenant, grant_id, now)
    }

    fn active_grant(&self, tenant: &Tenant, scope: Scope, now: &str) -> StoreResult<Option<SupportGrant>> {
        Ok(self
            .grants(Some(tenant), now)?
            .into_iter()
            .filter(|g| g.active && g.scopes.contains(&scope))
            .max_by(|a, b| a.expires_at.cmp(&b.expires_at)))
    }

    fn log_access(&self, tenant: &Tenant, access: &SupportAccess) -> StoreResult<()> {
        self.conn()
            .execute(
                "INSERT INTO support_access_log (at, tenant_id, grant_id, actor, scope, what) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    access.at,
                    tenant.id,
                    access.grant_id,
                    access.actor,
                    access.scope.as_str(),
                    access.what
                ],
            )
            .map_err(db)?;
        Ok(())
    }

    fn access_count(&self, tenant: &Tenant) -> StoreResult<u64> {
        self.conn()
            .query_row("SELECT COUNT(*) FROM support_access_log WHERE tenant_id = ?1", [tenant.id], |r| {
                r.get::<_, i64>(0)
            })
            .map(|n| n as u64)
            .map_err(db)
    }

    fn expire_pending_diagnostics(&self, tenant: &Tenant, now: &str) -> StoreResult<usize> {
        self.conn()
            .execute(
                "UPDATE control_commands SET state = 'expired', finished_at = ?2 \
                 WHERE tenant_id = ?1 AND state IN ('queued', 'sent') \
                 AND json_extract(command, '$.type') = 'diagnostics'",
                params![tenant.id, now],
            )
            .map_err(db)
    }

    fn access_log(&self, tenant: &Tenant, limit: usize) -> StoreResult<Vec<SupportAccess>> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare(
                "SELECT at, grant_id, actor, scope, what FROM support_access_log \
                 WHERE tenant_id = ?1 ORDER BY id DESC LIMIT ?2",
            )
            .map_err(db)?;
        let rows = stmt
            .query_map(params![tenant.id, limit as i64], |row| {
                let scope: String = row.get(3)?;
                Ok(SupportAccess {
                    at: row.get(0)?,
                    tenant: tenant.name.clone(),
                    grant_id: row.get(1)?,
                    actor: row.get(2)?,
                    scope: Scope::parse(&scope).unwrap_or(Scope::Data),
                    what: row.get(4)?,
                })
            })
            .map_err(db)?;
        rows.collect::<Result<_, _>>().map_err(db)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::{ControlStore, MetadataStore};

    fn grant(id: &str, scopes: &[Scope], created: &str, expires: &str) -> SupportGrant {
        SupportGrant {
            grant_id: id.into(),
            tenant: "acme".into(),
            scopes: scopes.to_vec(),
            granted_by: "tenant acme (its API key)".into(),
            reason: Some("ticket 4711".into()),
            created_at: created.into(),
            expires_at: expires.into(),
            revoked_at: None,
            revoked_by: None,
            active: true,
        }
    }

    fn store_with_tenants() -> (tempfile::TempDir, SqliteStore, Tenant, Tenant) {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("hub.sqlite3")).unwrap();
        let at = "2026-12-07T10:00:00.000Z";
        store.create_tenant("acme", b"acme-hash", at).unwrap();
        store.create_tenant("globex", b"globex-hash", at).unwrap();
        let acme = store.tenant_by_name("acme").unwrap().unwrap();
        let globex = store.tenant_by_name("globex").unwrap().unwrap();
        (dir, store, acme, globex)
    }

    #[test]
    fn a_grant_opens_its_scopes_of_its_tenant_until_it_expires() {
        let (_dir, store, acme, globex) = store_with_tenants();
        let diagnostics =
            grant("grant-1", &[Scope::Diagnostics], "2026-12-07T10:00:00.000Z", "2026-12-07T12:00:00.000Z");
        store.create_grant(&acme, &diagnostics).unwrap();

        let during = "2026-12-07T11:59:59.999Z";
        let found = store.active_grant(&acme, Scope::Diagnostics, during).unwrap();
        assert_eq!(found.map(|g| g.grant_id), Some("grant-1".to_owned()));
        assert_eq!(store.active_grant(&acme, Scope::Data, during).unwrap(), None, "data was not granted");
        assert_eq!(store.active_grant(&globex, Scope::Diagnostics, during).unwrap(), None);

        let after = "2026-12-07T12:00:00.000Z";
        assert_eq!(store.active_grant(&acme, Scope::Diagnostics, after).unwrap(), None, "expired");
        let listed = store.grants(Some(&acme), after).unwrap();
        assert_eq!(listed.len(), 1);
        assert!(!listed[0].active);
        assert_eq!(listed[0].scopes, vec![Scope::Diagnostics]);
    }

    #[test]
    fn a_withdrawn_grant_opens_nothing_and_the_longest_of_several_is_used() {
        let (_dir, store, acme, globex) = store_with_tenants();
        let now = "2026-12-07T10:30:00.000Z";
        let both = [Scope::Diagnostics, Scope::Data];
        store
            .create_grant(
                &acme,
                &grant("short", &both, "2026-12-07T10:00:00.000Z", "2026-12-07T11:00:00.000Z"),
            )
            .unwrap();
        store
            .create_grant(
                &acme,
                &grant("long", &both, "2026-12-07T10:01:00.000Z", "2026-12-07T18:00:00.000Z"),
            )
            .unwrap();
        assert_eq!(store.active_grant(&acme, Scope::Data, now).unwrap().unwrap().grant_id, "long");

        assert!(store.revoke_grant(&globex, "long", "tenant globex", now).unwrap().is_none(), "not globex's");
        let revoked = store.revoke_grant(&acme, "long", "tenant acme (its API key)", now).unwrap().unwrap();
        assert!(!revoked.active);
        assert_eq!(revoked.revoked_at.as_deref(), Some(now));
        let again =
            store.revoke_grant(&acme, "long", "someone else", "2026-12-07T10:40:00.000Z").unwrap().unwrap();
        assert_eq!(
            again.revoked_by.as_deref(),
            Some("tenant acme (its API key)"),
            "the first withdrawal stays"
        );
        assert_eq!(store.active_grant(&acme, Scope::Data, now).unwrap().unwrap().grant_id, "short");
        store.revoke_grant(&acme, "short", "tenant acme (its API key)", now).unwrap();
        assert_eq!(store.active_grant(&acme, Scope::Data, now).unwrap(), None);

        let expired = grant("expired", &both, "2026-12-07T08:00:00.000Z", "2026-12-07T09:00:00.000Z");
        store.create_grant(&acme, &expired).unwrap();
        let after = store.revoke_grant(&acme, "expired", "tenant acme (its API key)", now).unwrap().unwrap();
        assert_eq!((after.revoked_at, after.active), (None, false), "an expired grant is not withdrawn too");
    }

    #[test]
    fn looks_are_logged_per_tenant_newest_first() {
        let (_dir, store, acme, globex) = store_with_tenants();
        for (i, what) in ["first", "second"].iter().enumerate() {
            let access = SupportAccess {
                at: format!("2026-12-07T10:0{i}:00.000Z"),
                tenant: "acme".into(),
                grant_id: "grant-1".into(),
                actor: "alice".into(),
                scope: Scope::Data,
                what: (*what).into(),
            };
            store.log_access(&acme, &access).unwrap();
        }
        let log = store.access_log(&acme, 10).unwrap();
        assert_eq!(log.iter().map(|a| a.what.as_str()).collect::<Vec<_>>(), ["second", "first"]);
        assert!(store.access_log(&globex, 10).unwrap().is_empty());
        assert_eq!(store.access_log(&acme, 1).unwrap().len(), 1);
        assert_eq!((store.access_count(&acme).unwrap(), store.access_count(&globex).unwrap()), (2, 0));
    }
}
