//! Control-plane metadata: support tokens, the agent registry, desired state,
//! queued commands, company reports, sync outcomes and the audit log.
//!
//! The tables are created with `CREATE TABLE IF NOT EXISTS` when the store opens,
//! so a hub database from before the control plane gains them on its next start.

use super::sqlite::{corrupt, db, SqliteStore};
use super::{StoreResult, Tenant};
use ledgerlink_protocol::control::{
    Ack, Command, CompanySeen, DesiredState, Disabled, SourceReport, SyncResult,
};
use rusqlite::{params, OptionalExtension};
use serde::Serialize;

pub(super) const CONTROL_SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS support_tokens (
    name        TEXT PRIMARY KEY,
    role        TEXT NOT NULL CHECK (role IN ('viewer', 'support')),
    token_hash  BLOB NOT NULL UNIQUE,
    created_at  TEXT NOT NULL,
    revoked_at  TEXT
);
CREATE TABLE IF NOT EXISTS control_agents (
    tenant_id   INTEGER NOT NULL,
    agent_id    TEXT NOT NULL,
    status      TEXT,
    transport   TEXT,
    online      INTEGER NOT NULL DEFAULT 0,
    first_seen  TEXT NOT NULL,
    last_seen   TEXT NOT NULL,
    PRIMARY KEY (tenant_id, agent_id)
);
CREATE TABLE IF NOT EXISTS control_disabled (
    tenant_id   INTEGER NOT NULL,
    agent_id    TEXT NOT NULL,
    kind        TEXT NOT NULL CHECK (kind IN ('plugin', 'source')),
    target      TEXT NOT NULL,
    disabled_by TEXT NOT NULL,
    disabled_at TEXT NOT NULL,
    reason      TEXT,
    PRIMARY KEY (tenant_id, agent_id, kind, target)
);
CREATE TABLE IF NOT EXISTS control_companies (
    tenant_id   INTEGER NOT NULL,
    agent_id    TEXT NOT NULL,
    source_id   TEXT NOT NULL,
    company_id  TEXT NOT NULL,
    record      TEXT NOT NULL,
    selected    INTEGER NOT NULL,
    first_seen  TEXT NOT NULL,
    last_seen   TEXT NOT NULL,
    PRIMARY KEY (tenant_id, agent_id, source_id, company_id)
);
CREATE TABLE IF NOT EXISTS control_syncs (
    tenant_id   INTEGER NOT NULL,
    agent_id    TEXT NOT NULL,
    source_id   TEXT NOT NULL,
    company_id  TEXT NOT NULL,
    fiscal_year INTEGER NOT NULL,
    outcome     TEXT NOT NULL,
    error       TEXT,
    at          TEXT NOT NULL,
    last_error  TEXT,
    last_error_at TEXT,
    PRIMARY KEY (tenant_id, agent_id, source_id, company_id, fiscal_year)
);
CREATE TABLE IF NOT EXISTS control_commands (
    tenant_id   INTEGER NOT NULL,
    agent_id    TEXT NOT NULL,
    command_id  TEXT NOT NULL,
    command     TEXT NOT NULL,
    state       TEXT NOT NULL CHECK (state IN ('queued', 'sent', 'done', 'failed', 'expired')),
    created_at  TEXT NOT NULL,
    expires_at  TEXT NOT NULL,
    sent_at     TEXT,
    finished_at TEXT,
    result      TEXT,
    error       TEXT,
    PRIMARY KEY (tenant_id, command_id)
);
CREATE INDEX IF NOT EXISTS control_commands_by_agent ON control_commands (tenant_id, agent_id, state);
CREATE TABLE IF NOT EXISTS audit_log (
    id          INTEGER PRIMARY KEY,
    at          TEXT NOT NULL,
    actor       TEXT NOT NULL,
    role        TEXT NOT NULL,
    action      TEXT NOT NULL,
    tenant      TEXT,
    agent_id    TEXT,
    details     TEXT NOT NULL
);
"#;

/// What a support token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Sees everything, changes nothing.
    Viewer,
    /// Sees everything, sends commands, toggles plugins and sources, selects companies.
    Support,
}

impl Role {
    /// The stored and displayed name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Support => "support",
        }
    }

    /// Parses `viewer` or `support`.
    pub fn parse(text: &str) -> Option<Role> {
        match text {
            "viewer" => Some(Role::Viewer),
            "support" => Some(Role::Support),
            _ => None,
        }
    }
}

/// An authenticated support person (or program).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SupportPrincipal {
    /// The token's name.
    pub name: String,
    /// Its role.
    pub role: Role,
}

/// A support token as listed by the CLI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SupportTokenRow {
    /// Name.
    pub name: String,
    /// Role.
    pub role: Role,
    /// When it was created.
    pub created_at: String,
    /// When it was revoked, if it was.
    pub revoked_at: Option<String>,
}

/// What [`ControlStore::support_token_by_hash`] finds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SupportTokenMatch {
    /// Who it is.
    pub principal: SupportPrincipal,
    /// The stored hash, for a constant-time comparison.
    pub token_hash: Vec<u8>,
    /// True when revoked.
    pub revoked: bool,
}

/// One agent in the registry.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AgentRow {
    /// The tenant's name.
    pub tenant: String,
    /// The agent's id.
    pub agent_id: String,
    /// The last status the agent reported (JSON of `AgentStatus`).
    pub status: Option<serde_json::Value>,
    /// The transport of its (last) control connection.
    pub transport: Option<String>,
    /// True while connected.
    pub online: bool,
    /// First contact.
    pub first_seen: String,
    /// Last contact.
    pub last_seen: String,
}

/// A company a source reported, with whether it is selected for integration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CompanyRow {
    /// Source id.
    pub source: String,
    /// The company as reported.
    pub company: CompanySeen,
    /// True when selected for integration.
    pub selected: bool,
    /// First reported.
    pub first_seen: String,
    /// Last reported.
    pub last_seen: String,
}

/// The latest sync outcome of one company's year.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SyncRow {
    /// Source id.
    pub source: String,
    /// The latest outcome.
    #[serde(flatten)]
    pub result: SyncResult,
    /// The last error (kept after later successes).
    pub last_error: Option<String>,
    /// When the last error happened.
    pub last_error_at: Option<String>,
}

/// A command with its delivery state and outcome.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CommandRow {
    /// The tenant's name.
    pub tenant: String,
    /// The agent it is for.
    pub agent_id: String,
    /// The command.
    pub command: Command,
    /// `queued`, `sent`, `done`, `failed` or `expired`.
    pub state: String,
    /// When it was created.
    pub created_at: String,
    /// When it expires unless delivered.
    pub expires_at: String,
    /// When it was last sent to the agent.
    pub sent_at: Option<String>,
    /// When the agent acknowledged it.
    pub finished_at: Option<String>,
    /// The agent's result.
    pub result: Option<serde_json::Value>,
    /// Why `result` is left out: diagnostics are shown only with the customer's consent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result_withheld: Option<String>,
    /// The agent's error.
    pub error: Option<String>,
}

/// One audit log entry.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditEntry {
    /// When (RFC 3339).
    pub at: String,
    /// Support token name.
    pub actor: String,
    /// Its role.
    pub role: String,
    /// What was done (`command.plugin.disable`, `companies.select`, …).
    pub action: String,
    /// Tenant name, when the action concerns one.
    pub tenant: Option<String>,
    /// Agent id, when the action concerns one.
    pub agent_id: Option<String>,
    /// The facts (JSON).
    pub details: serde_json::Value,
}

/// What is switched off: a plugin or a source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Toggle {
    /// A plugin id.
    Plugin,
    /// A source id.
    Source,
}

impl Toggle {
    fn as_str(self) -> &'static str {
        match self {
            Toggle::Plugin => "plugin",
            Toggle::Source => "source",
        }
    }
}

/// Storage of the control plane.
pub trait ControlStore: Send + Sync + 'static {
    /// Creates a support token; false when the name is taken.
    fn create_support_token(&self, name: &str, role: Role, hash: &[u8], now: &str) -> StoreResult<bool>;
    /// Lists support tokens.
    fn list_support_tokens(&self) -> StoreResult<Vec<SupportTokenRow>>;
    /// Revokes a support token; false when there is none of that name.
    fn revoke_support_token(&self, name: &str, now: &str) -> StoreResult<bool>;
    /// Finds the support token whose hash is `hash`.
    fn support_token_by_hash(&self, hash: &[u8]) -> StoreResult<Option<SupportTokenMatch>>;
    /// A tenant by name.
    fn tenant_by_name(&self, name: &str) -> StoreResult<Option<Tenant>>;
    /// True when the tenant's key was revoked (or the tenant is gone).
    fn tenant_revoked(&self, tenant: &Tenant) -> StoreResult<bool>;

    /// Notes a connection or disconnection of an agent.
    fn agent_seen(
        &self,
        tenant: &Tenant,
        agent_id: &str,
        transport: Option<&str>,
        online: bool,
        now: &str,
    ) -> StoreResult<()>;
    /// Stores an agent's reported status.
    fn agent_status(
        &self,
        tenant: &Tenant,
        agent_id: &str,
        status: &serde_json::Value,
        now: &str,
    ) -> StoreResult<()>;
    /// Marks every agent offline (at start: no connection survives a restart).
    fn all_agents_offline(&self) -> StoreResult<()>;
    /// Agents of one tenant, or of all.
    fn control_agents(&self, tenant: Option<&Tenant>) -> StoreResult<Vec<AgentRow>>;

    /// The desired state of an agent.
    fn desired_state(&self, tenant: &Tenant, agent_id: &str) -> StoreResult<DesiredState>;
    /// Switches a plugin or source off (`Some`) or on (`None`).
    fn set_disabled(
        &self,
        tenant: &Tenant,
        agent_id: &str,
        toggle: Toggle,
        target: &str,
        disabled: Option<&Disabled>,
    ) -> StoreResult<()>;
    /// Records a source report: companies seen (the first report of a source selects
    /// all of them; later new companies start unselected) and sync outcomes.
    /// Returns true when the set of companies changed.
    fn record_report(
        &self,
        tenant: &Tenant,
        agent_id: &str,
        report: &SourceReport,
        now: &str,
    ) -> StoreResult<bool>;
    /// Sets the selected companies of a source; returns the ids that are not reported companies.
    fn select_companies(
        &self,
        tenant: &Tenant,
        agent_id: &str,
        source: &str,
        companies: &[String],
    ) -> StoreResult<Vec<String>>;
    /// Companies reported by an agent's sources.
    fn companies(&self, tenant: &Tenant, agent_id: &str) -> StoreResult<Vec<CompanyRow>>;
    /// Latest sync outcome per company and year.
    fn syncs(&self, tenant: &Tenant, agent_id: &str) -> StoreResult<Vec<SyncRow>>;

    /// Queues a command.
    fn insert_command(
        &self,
        tenant: &Tenant,
        agent_id: &str,
        command: &Command,
        expires_at: &str,
    ) -> StoreResult<()>;
    /// Commands not acknowledged and not expired, oldest first.
    fn pending_commands(&self, tenant: &Tenant, agent_id: &str, now: &str) -> StoreResult<Vec<Command>>;
    /// Notes that a command was sent.
    fn command_sent(&self, tenant: &Tenant, command_id: &str, now: &str) -> StoreResult<()>;
    /// Stores a command's outcome; false when the command is unknown for this agent.
    fn finish_command(&self, tenant: &Tenant, agent_id: &str, ack: &Ack, now: &str) -> StoreResult<bool>;
    /// Marks undelivered commands past their expiry as expired; returns how many.
    fn expire_commands(&self, now: &str) -> StoreResult<usize>;
    /// One command of an agent.
    fn command(&self, tenant: &Tenant, agent_id: &str, command_id: &str) -> StoreResult<Option<CommandRow>>;
    /// The latest commands of an agent, newest first.
    fn recent_commands(&self, tenant: &Tenant, agent_id: &str, limit: usize) -> StoreResult<Vec<CommandRow>>;

    /// Appends to the audit log.
    fn audit(&self, entry: &AuditEntry) -> StoreResult<()>;
    /// The latest audit entries, newest first.
    fn audit_log(&self, limit: usize) -> StoreResult<Vec<AuditEntry>>;
}

fn json<T: Serialize>(value: &T) -> StoreResult<String> {
    serde_json::to_string(value).map_err(corrupt)
}

type RawCommand = (
    String,
    String,
    String,
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
);

const COMMAND_COLUMNS: &str =
    "t.name, c.agent_id, c.command, c.state, c.created_at, c.expires_at, c.sent_at, \
     c.finished_at, c.result, c.error";

fn command_row(raw: RawCommand) -> StoreResult<CommandRow> {
    let (tenant, agent_id, command, state, created_at, expires_at, sent_at, finished_at, result, error) = raw;
    Ok(CommandRow {
        tenant,
        agent_id,
        command: serde_json::from_str(&command).map_err(corrupt)?,
        state,
        created_at,
        expires_at,
        sent_at,
        finished_at,
        result: result.map(|r| serde_json::from_str(&r)).transpose().map_err(corrupt)?,
        result_withheld: None,
        error,
    })
}

fn read_command(r: &rusqlite::Row<'_>) -> rusqlite::Result<RawCommand> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
        r.get(7)?,
        r.get(8)?,
        r.get(9)?,
    ))
}

impl ControlStore for SqliteStore {
    fn create_support_token(&self, name: &str, role: Role, hash: &[u8], now: &str) -> StoreResult<bool> {
        let n = self
            .conn()
            .execute(
                "INSERT INTO support_tokens (name, role, token_hash, created_at) VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT (name) DO NOTHING",
                params![name, role.as_str(), hash, now],
            )
            .map_err(db)?;
        Ok(n == 1)
    }

    fn list_support_tokens(&self) -> StoreResult<Vec<SupportTokenRow>> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare("SELECT name, role, created_at, revoked_at FROM support_tokens ORDER BY name")
            .map_err(db)?;
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get(2)?, r.get(3)?)))
            .map_err(db)?;
        let mut out = Vec::new();
        for row in rows {
            let (name, role, created_at, revoked_at) = row.map_err(db)?;
            let role =
                Role::parse(&role).ok_or_else(|| super::StoreError::Corrupt(format!("role {role}")))?;
            out.push(SupportTokenRow { name, role, created_at, revoked_at });
        }
        Ok(out)
    }

    fn revoke_support_token(&self, name: &str, now: &str) -> StoreResult<bool> {
        let conn = self.conn();
        let exists: bool = conn
            .query_row("SELECT EXISTS (SELECT 1 FROM support_tokens WHERE name = ?1)", [name], |r| r.get(0))
            .map_err(db)?;
        conn.execute(
            "UPDATE support_tokens SET revoked_at = ?2 WHERE name = ?1 AND revoked_at IS NULL",
            params![name, now],
        )
        .map_err(db)?;
        Ok(exists)
    }

    fn support_token_by_hash(&self, hash: &[u8]) -> StoreResult<Option<SupportTokenMatch>> {
        let found = self
            .conn()
            .query_row(
                "SELECT name, role, token_hash, revoked_at IS NOT NULL FROM support_tokens WHERE token_hash = ?1",
                [hash],
                |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get(2)?, r.get(3)?)),
            )
            .optional()
            .map_err(db)?;
        Ok(found.and_then(|(name, role, token_hash, revoked)| {
            Some(SupportTokenMatch {
                principal: SupportPrincipal { name, role: Role::parse(&role)? },
                token_hash,
                revoked,
            })
        }))
    }

    fn tenant_revoked(&self, tenant: &Tenant) -> StoreResult<bool> {
        let revoked = self
            .conn()
            .query_row("SELECT revoked_at IS NOT NULL FROM tenants WHERE id = ?1", [tenant.id], |r| r.get(0))
            .optional()
            .map_err(db)?;
        Ok(revoked.unwrap_or(true))
    }

    fn tenant_by_name(&self, name: &str) -> StoreResult<Option<Tenant>> {
        self.conn()
            .query_row("SELECT id, name FROM tenants WHERE name = ?1", [name], |r| {
                Ok(Tenant { id: r.get(0)?, name: r.get(1)? })
            })
            .optional()
            .map_err(db)
    }

    fn agent_seen(
        &self,
        tenant: &Tenant,
        agent_id: &str,
        transport: Option<&str>,
        online: bool,
        now: &str,
    ) -> StoreResult<()> {
        self.conn()
            .execute(
                "INSERT INTO control_agents (tenant_id, agent_id, transport, online, first_seen, last_seen) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?5) \
                 ON CONFLICT (tenant_id, agent_id) DO UPDATE SET \
                   transport = COALESCE(excluded.transport, transport), online = excluded.online, last_seen = excluded.last_seen",
                params![tenant.id, agent_id, transport, online, now],
            )
            .map_err(db)?;
        Ok(())
    }

    fn agent_status(
        &self,
        tenant: &Tenant,
        agent_id: &str,
        status: &serde_json::Value,
        now: &str,
    ) -> StoreResult<()> {
        self.conn()
            .execute(
                "INSERT INTO control_agents (tenant_id, agent_id, status, online, first_seen, last_seen) \
                 VALUES (?1, ?2, ?3, 1, ?4, ?4) \
                 ON CONFLICT (tenant_id, agent_id) DO UPDATE SET status = excluded.status, last_seen = excluded.last_seen",
                params![tenant.id, agent_id, json(status)?, now],
            )
            .map_err(db)?;
        Ok(())
    }

    fn all_agents_offline(&self) -> StoreResult<()> {
        self.conn().execute("UPDATE control_agents SET online = 0", []).map_err(db)?;
        Ok(())
    }

    fn control_agents(&self, tenant: Option<&Tenant>) -> StoreResult<Vec<AgentRow>> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare(
                "SELECT t.name, a.agent_id, a.status, a.transport, a.online, a.first_seen, a.last_seen \
                 FROM control_agents a JOIN tenants t ON t.id = a.tenant_id \
                 WHERE ?1 IS NULL OR a.tenant_id = ?1 ORDER BY t.name, a.agent_id",
            )
            .map_err(db)?;
        let rows = stmt
            .query_map([tenant.map(|t| t.id)], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, Option<String>>(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                ))
            })
            .map_err(db)?;
        let mut out = Vec::new();
        for row in rows {
            let (tenant, agent_id, status, transport, online, first_seen, last_seen) = row.map_err(db)?;
            let status = status.map(|s| serde_json::from_str(&s)).transpose().map_err(corrupt)?;
            out.push(AgentRow { tenant, agent_id, status, transport, online, first_seen, last_seen });
        }
        Ok(out)
    }

    fn desired_state(&self, tenant: &Tenant, agent_id: &str) -> StoreResult<DesiredState> {
        let conn = self.conn();
        let mut state = DesiredState::default();
        let mut stmt = conn
            .prepare(
                "SELECT kind, target, disabled_by, disabled_at, reason FROM control_disabled \
                 WHERE tenant_id = ?1 AND agent_id = ?2",
            )
            .map_err(db)?;
        let rows = stmt
            .query_map(params![tenant.id, agent_id], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    Disabled { by: r.get(2)?, at: r.get(3)?, reason: r.get(4)? },
                ))
            })
            .map_err(db)?;
        for row in rows {
            let (kind, target, disabled) = row.map_err(db)?;
            if kind == "plugin" {
                state.disabled_plugins.insert(target, disabled);
            } else {
                state.disabled_sources.insert(target, disabled);
            }
        }
        let mut stmt = conn
            .prepare(
                "SELECT source_id, company_id, selected FROM control_companies \
                 WHERE tenant_id = ?1 AND agent_id = ?2 ORDER BY source_id, company_id",
            )
            .map_err(db)?;
        let rows = stmt
            .query_map(params![tenant.id, agent_id], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, bool>(2)?))
            })
            .map_err(db)?;
        for row in rows {
            let (source, company, selected) = row.map_err(db)?;
            let entry = state.company_selection.entry(source).or_default();
            if selected {
                entry.push(company);
            }
        }
        Ok(state)
    }

    fn set_disabled(
        &self,
        tenant: &Tenant,
        agent_id: &str,
        toggle: Toggle,
        target: &str,
        disabled: Option<&Disabled>,
    ) -> StoreResult<()> {
        let conn = self.conn();
        match disabled {
            Some(d) => conn.execute(
                "INSERT INTO control_disabled (tenant_id, agent_id, kind, target, disabled_by, disabled_at, reason) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) \
                 ON CONFLICT (tenant_id, agent_id, kind, target) DO UPDATE SET \
                   disabled_by = excluded.disabled_by, disabled_at = excluded.disabled_at, reason = excluded.reason",
                params![tenant.id, agent_id, toggle.as_str(), target, d.by, d.at, d.reason],
            ),
            None => conn.execute(
                "DELETE FROM control_disabled WHERE tenant_id = ?1 AND agent_id = ?2 AND kind = ?3 AND target = ?4",
                params![tenant.id, agent_id, toggle.as_str(), target],
            ),
        }
        .map_err(db)?;
        Ok(())
    }

    fn record_report(
        &self,
        tenant: &Tenant,
        agent_id: &str,
        report: &SourceReport,
        now: &str,
    ) -> StoreResult<bool> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(db)?;
        let known: i64 = tx
            .query_row(
                "SELECT COUNT(*) FROM control_companies WHERE tenant_id = ?1 AND agent_id = ?2 AND source_id = ?3",
                params![tenant.id, agent_id, report.source],
                |r| r.get(0),
            )
            .map_err(db)?;
        // The first report of a source integrates what it has; later arrivals wait for a selection.
        let first = known == 0;
        for company in &report.companies {
            tx.execute(
                    "INSERT INTO control_companies (tenant_id, agent_id, source_id, company_id, record, selected, first_seen, last_seen) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7) \
                     ON CONFLICT (tenant_id, agent_id, source_id, company_id) DO UPDATE SET \
                       record = excluded.record, last_seen = excluded.last_seen",
                params![tenant.id, agent_id, report.source, company.id, json(company)?, first, now],
            )
            .map_err(db)?;
        }
        let now_known: i64 = tx
            .query_row(
                "SELECT COUNT(*) FROM control_companies WHERE tenant_id = ?1 AND agent_id = ?2 AND source_id = ?3",
                params![tenant.id, agent_id, report.source],
                |r| r.get(0),
            )
            .map_err(db)?;
        let changed = now_known != known;
        for sync in &report.syncs {
            let failed = matches!(sync.outcome.as_str(), "failed" | "invalid");
            tx.execute(
                "INSERT INTO control_syncs (tenant_id, agent_id, source_id, company_id, fiscal_year, outcome, error, at, last_error, last_error_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, CASE WHEN ?9 THEN ?7 END, CASE WHEN ?9 THEN ?8 END) \
                 ON CONFLICT (tenant_id, agent_id, source_id, company_id, fiscal_year) DO UPDATE SET \
                   outcome = excluded.outcome, error = excluded.error, at = excluded.at, \
                   last_error = CASE WHEN ?9 THEN excluded.error ELSE last_error END, \
                   last_error_at = CASE WHEN ?9 THEN excluded.at ELSE last_error_at END",
                params![tenant.id, agent_id, report.source, sync.company, sync.year, sync.outcome, sync.error, sync.at, failed],
            )
            .map_err(db)?;
        }
        tx.commit().map_err(db)?;
        Ok(changed)
    }

    fn select_companies(
        &self,
        tenant: &Tenant,
        agent_id: &str,
        source: &str,
        companies: &[String],
    ) -> StoreResult<Vec<String>> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(db)?;
        let mut unknown = Vec::new();
        for company in companies {
            let exists: bool = tx
                .query_row(
                    "SELECT EXISTS (SELECT 1 FROM control_companies WHERE tenant_id = ?1 AND agent_id = ?2 \
                     AND source_id = ?3 AND company_id = ?4)",
                    params![tenant.id, agent_id, source, company],
                    |r| r.get(0),
                )
                .map_err(db)?;
            if !exists {
                unknown.push(company.clone());
            }
        }
        if !unknown.is_empty() {
            return Ok(unknown);
        }
        tx.execute(
            "UPDATE control_companies SET selected = 0 WHERE tenant_id = ?1 AND agent_id = ?2 AND source_id = ?3",
            params![tenant.id, agent_id, source],
        )
        .map_err(db)?;
        for company in companies {
            tx.execute(
                "UPDATE control_companies SET selected = 1 WHERE tenant_id = ?1 AND agent_id = ?2 \
                 AND source_id = ?3 AND company_id = ?4",
                params![tenant.id, agent_id, source, company],
            )
            .map_err(db)?;
        }
        tx.commit().map_err(db)?;
        Ok(Vec::new())
    }

    fn companies(&self, tenant: &Tenant, agent_id: &str) -> StoreResult<Vec<CompanyRow>> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare(
                "SELECT source_id, record, selected, first_seen, last_seen FROM control_companies \
                 WHERE tenant_id = ?1 AND agent_id = ?2 ORDER BY source_id, company_id",
            )
            .map_err(db)?;
        let rows = stmt
            .query_map(params![tenant.id, agent_id], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })
            .map_err(db)?;
        let mut out = Vec::new();
        for row in rows {
            let (source, record, selected, first_seen, last_seen) = row.map_err(db)?;
            let company = serde_json::from_str(&record).map_err(corrupt)?;
            out.push(CompanyRow { source, company, selected, first_seen, last_seen });
        }
        Ok(out)
    }

    fn syncs(&self, tenant: &Tenant, agent_id: &str) -> StoreResult<Vec<SyncRow>> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare(
                "SELECT source_id, company_id, fiscal_year, outcome, error, at, last_error, last_error_at \
                 FROM control_syncs WHERE tenant_id = ?1 AND agent_id = ?2 \
                 ORDER BY source_id, company_id, fiscal_year",
            )
            .map_err(db)?;
        let rows = stmt
            .query_map(params![tenant.id, agent_id], |r| {
                Ok(SyncRow {
                    source: r.get(0)?,
                    result: SyncResult {
                        company: r.get(1)?,
                        year: r.get(2)?,
                        outcome: r.get(3)?,
                        error: r.get(4)?,
                        at: r.get(5)?,
                    },
                    last_error: r.get(6)?,
                    last_error_at: r.get(7)?,
                })
            })
            .map_err(db)?;
        rows.collect::<Result<_, _>>().map_err(db)
    }

    fn insert_command(
        &self,
        tenant: &Tenant,
        agent_id: &str,
        command: &Command,
        expires_at: &str,
    ) -> StoreResult<()> {
        self.conn()
            .execute(
                "INSERT INTO control_commands (tenant_id, agent_id, command_id, command, state, created_at, expires_at) \
                 VALUES (?1, ?2, ?3, ?4, 'queued', ?5, ?6)",
                params![tenant.id, agent_id, command.id, json(command)?, command.issued_at, expires_at],
            )
            .map_err(db)?;
        Ok(())
    }

    fn pending_commands(&self, tenant: &Tenant, agent_id: &str, now: &str) -> StoreResult<Vec<Command>> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare(
                "SELECT command FROM control_commands WHERE tenant_id = ?1 AND agent_id = ?2 \
                 AND state IN ('queued', 'sent') AND expires_at > ?3 ORDER BY created_at, rowid",
            )
            .map_err(db)?;
        let rows =
            stmt.query_map(params![tenant.id, agent_id, now], |r| r.get::<_, String>(0)).map_err(db)?;
        let mut out = Vec::new();
        for row in rows {
            out.push(serde_json::from_str(&row.map_err(db)?).map_err(corrupt)?);
        }
        Ok(out)
    }

    fn command_sent(&self, tenant: &Tenant, command_id: &str, now: &str) -> StoreResult<()> {
        self.conn()
            .execute(
                "UPDATE control_commands SET state = 'sent', sent_at = ?3 \
                 WHERE tenant_id = ?1 AND command_id = ?2 AND state IN ('queued', 'sent')",
                params![tenant.id, command_id, now],
            )
            .map_err(db)?;
        Ok(())
    }

    fn finish_command(&self, tenant: &Tenant, agent_id: &str, ack: &Ack, now: &str) -> StoreResult<bool> {
        let n = self
            .conn()
            .execute(
                "UPDATE control_commands SET state = ?4, finished_at = ?5, result = ?6, error = ?7 \
                 WHERE tenant_id = ?1 AND agent_id = ?2 AND command_id = ?3 AND state IN ('queued', 'sent', 'expired')",
                params![
                    tenant.id,
                    agent_id,
                    ack.command_id,
                    if ack.ok { "done" } else { "failed" },
                    now,
                    json(&ack.result)?,
                    ack.error
                ],
            )
            .map_err(db)?;
        Ok(n == 1)
    }

    fn expire_commands(&self, now: &str) -> StoreResult<usize> {
        self.conn()
            .execute(
                "UPDATE control_commands SET state = 'expired', finished_at = ?1 \
                 WHERE state = 'queued' AND expires_at <= ?1",
                [now],
            )
            .map_err(db)
    }

    fn command(&self, tenant: &Tenant, agent_id: &str, command_id: &str) -> StoreResult<Option<CommandRow>> {
        let raw = self
            .conn()
            .query_row(
                &format!(
                    "SELECT {COMMAND_COLUMNS} FROM control_commands c JOIN tenants t ON t.id = c.tenant_id \
                     WHERE c.tenant_id = ?1 AND c.agent_id = ?2 AND c.command_id = ?3"
                ),
                params![tenant.id, agent_id, command_id],
                read_command,
            )
            .optional()
            .map_err(db)?;
        raw.map(command_row).transpose()
    }

    fn recent_commands(&self, tenant: &Tenant, agent_id: &str, limit: usize) -> StoreResult<Vec<CommandRow>> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare(&format!(
                "SELECT {COMMAND_COLUMNS} FROM control_commands c JOIN tenants t ON t.id = c.tenant_id \
                 WHERE c.tenant_id = ?1 AND c.agent_id = ?2 ORDER BY c.created_at DESC, c.rowid DESC LIMIT ?3"
            ))
            .map_err(db)?;
        let rows = stmt.query_map(params![tenant.id, agent_id, limit as i64], read_command).map_err(db)?;
        let mut out = Vec::new();
        for row in rows {
            out.push(command_row(row.map_err(db)?)?);
        }
        Ok(out)
    }

    fn audit(&self, entry: &AuditEntry) -> StoreResult<()> {
        self.conn()
            .execute(
                "INSERT INTO audit_log (at, actor, role, action, tenant, agent_id, details) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    entry.at,
                    entry.actor,
                    entry.role,
                    entry.action,
                    entry.tenant,
                    entry.agent_id,
                    json(&entry.details)?
                ],
            )
            .map_err(db)?;
        Ok(())
    }

    fn audit_log(&self, limit: usize) -> StoreResult<Vec<AuditEntry>> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare(
                "SELECT at, actor, role, action, tenant, agent_id, details FROM audit_log ORDER BY id DESC LIMIT ?1",
            )
            .map_err(db)?;
        let rows = stmt
            .query_map([limit as i64], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, Option<String>>(4)?,
                    r.get::<_, Option<String>>(5)?,
                    r.get::<_, String>(6)?,
                ))
            })
            .map_err(db)?;
        let mut out = Vec::new();
        for row in rows {
            let (at, actor, role, action, tenant, agent_id, details) = row.map_err(db)?;
            let details = serde_json::from_str(&details).map_err(corrupt)?;
            out.push(AuditEntry { at, actor, role, action, tenant, agent_id, details });
        }
        Ok(out)
    }
}
