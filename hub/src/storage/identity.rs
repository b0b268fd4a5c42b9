//! Agent identity keys (decision 0029): the public key the hub knows each agent by.

use super::sqlite::{db, SqliteStore};
use super::{StoreResult, Tenant};
use rusqlite::{params, OptionalExtension};
use serde::Serialize;

pub(super) const IDENTITY_SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS agent_keys (
    tenant_id     INTEGER NOT NULL,
    agent_id      TEXT NOT NULL,
    public_key    TEXT NOT NULL,
    registered_at TEXT NOT NULL,
    PRIMARY KEY (tenant_id, agent_id)
);
"#;

/// The key an agent is known by.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AgentKeyRow {
    /// `ed25519:<base64url>`.
    pub public_key: String,
    /// A short name of it.
    pub fingerprint: String,
    /// When the hub first saw it.
    pub registered_at: String,
}

/// Storage of agent identity keys.
pub trait AgentKeyStore: Send + Sync + 'static {
    /// The key `agent_id` of `tenant` is known by.
    fn agent_key(&self, tenant: &Tenant, agent_id: &str) -> StoreResult<Option<AgentKeyRow>>;
    /// Registers `public_key` for the agent unless it has a key; the key it has afterwards.
    fn register_agent_key(
        &self,
        tenant: &Tenant,
        agent_id: &str,
        public_key: &str,
        now: &str,
    ) -> StoreResult<AgentKeyRow>;
    /// Forgets the agent's key, so its next signed offer registers a new one; the key it had.
    fn reset_agent_key(&self, tenant: &Tenant, agent_id: &str) -> StoreResult<Option<AgentKeyRow>>;
}

fn row(public_key: String, registered_at: String) -> AgentKeyRow {
    let fingerprint = ledgerlink_protocol::identity::fingerprint(&public_key);
    AgentKeyRow { public_key, fingerprint, registered_at }
}

impl AgentKeyStore for SqliteStore {
    fn agent_key(&self, tenant: &Tenant, agent_id: &str) -> StoreResult<Option<AgentKeyRow>> {
        self.conn()
            .query_row(
                "SELECT public_key, registered_at FROM agent_keys WHERE tenant_id = ?1 AND agent_id = ?2",
                params![tenant.id, agent_id],
                |r| Ok(row(r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(db)
    }

    fn register_agent_key(
        &self,
        tenant: &Tenant,
        agent_id: &str,
        public_key: &str,
        now: &str,
    ) -> StoreResult<AgentKeyRow> {
        self.conn()
            .execute(
                "INSERT OR IGNORE INTO agent_keys (tenant_id, agent_id, public_key, registered_at) \
                 VALUES (?1, ?2, ?3, ?4)",
                params![tenant.id, agent_id, public_key, now],
            )
            .map_err(db)?;
        // Another offer may have registered first: its key is the one.
        self.agent_key(tenant, agent_id)?
            .ok_or_else(|| super::StoreError::Database("an agent key just stored is missing".into()))
    }

    fn reset_agent_key(&self, tenant: &Tenant, agent_id: &str) -> StoreResult<Option<AgentKeyRow>> {
        let had = self.agent_key(tenant, agent_id)?;
        self.conn()
            .execute(
                "DELETE FROM agent_keys WHERE tenant_id = ?1 AND agent_id = ?2",
                params![tenant.id, agent_id],
            )
            .map_err(db)?;
        Ok(had)
    }
}
