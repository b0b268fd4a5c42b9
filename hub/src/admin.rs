//! The admin API (`/v1/admin/...`): what support sees and does, authenticated by
//! support tokens (roles `viewer` and `support`). Every change is audit-logged.

use crate::consent;
use crate::error::{ApiError, ApiResult};
use crate::now;
use crate::server::AppState;
use crate::storage::{
    AgentRow, AuditEntry, CommandRow, CompanyRow, Role, Scope, SupportPrincipal, SyncRow, Tenant, Toggle,
};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use ledgerlink_protocol::control::{Command, CommandKind, DesiredState, Disabled, HubMessage};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::HashMap;

/// Default lifetime of a queued command, in seconds (one day).
pub const DEFAULT_COMMAND_EXPIRY_SECS: u64 = 24 * 3600;

/// Longest lifetime of a queued command, in seconds (30 days).
pub const MAX_COMMAND_EXPIRY_SECS: u64 = 30 * 24 * 3600;

pub(crate) async fn blocking<T, F>(f: F) -> ApiResult<T>
where
    F: FnOnce() -> ApiResult<T> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(f).await.map_err(ApiError::internal)?
}

fn require_support_role(principal: &SupportPrincipal) -> ApiResult<()> {
    if principal.role == Role::Support {
        return Ok(());
    }
    Err(ApiError::new(
        StatusCode::FORBIDDEN,
        "forbidden",
        format!(
            "support token `{}` has the role viewer, which can look but not change anything; \
             Resolution: ask for a token with the role support",
            principal.name
        ),
    ))
}

/// One agent with everything the console shows about it.
#[derive(Debug, Serialize)]
pub struct AgentDetail {
    /// Registry row (`online` is the live connection state).
    #[serde(flatten)]
    pub agent: AgentRow,
    /// What the hub wants the agent to do.
    pub desired: DesiredState,
    /// Companies the agent's sources reported, with their selection.
    pub companies: Vec<CompanyRow>,
    /// Latest outcome per company and year.
    pub syncs: Vec<SyncRow>,
    /// The latest commands, newest first.
    pub commands: Vec<CommandRow>,
    /// The tenant's active grants of support access (what support may look at, until when).
    pub support_access: Vec<crate::storage::SupportGrant>,
    /// The identity key the hub knows the agent by; `None` until its first signed upload.
    pub identity_key: Option<crate::storage::AgentKeyRow>,
}

/// Leaves out a diagnostics result: it is read one command at a time, with the
/// customer's consent and logged ([`get_command`]).
fn withhold_diagnostics(row: &mut CommandRow, why: impl FnOnce() -> String) {
    if matches!(row.command.kind, CommandKind::Diagnostics) && row.result.take().is_some_and(|r| !r.is_null())
    {
        row.result_withheld = Some(why());
    }
}

fn detail(state: &AppState, tenant: &Tenant, mut agent: AgentRow) -> ApiResult<AgentDetail> {
    let store = &state.control_store;
    let live = state.control.online(tenant.id, &agent.agent_id);
    agent.online = live.is_some();
    if let Some(transport) = live {
        agent.transport = Some(transport.as_str().to_owned());
    }
    Ok(AgentDetail {
        desired: store.desired_state(tenant, &agent.agent_id)?,
        companies: store.companies(tenant, &agent.agent_id)?,
        syncs: store.syncs(tenant, &agent.agent_id)?,
        commands: store
            .recent_commands(tenant, &agent.agent_id, 20)?
            .into_iter()
            .map(|mut row| {
                let path = format!(
                    "/v1/admin/agents/{}/{}/commands/{}",
                    tenant.name, agent.agent_id, row.command.id
                );
                withhold_diagnostics(&mut row, || {
                    format!("diagnostics are read one at a time, with the customer's consent: GET {path}")
                });
                row
            })
            .collect(),
        support_access: state
            .consent
            .grants(Some(tenant), &now())?
            .into_iter()
            .filter(|g| g.active)
            .collect(),
        identity_key: state.agent_keys.agent_key(tenant, &agent.agent_id)?,
        agent,
    })
}

fn find_agent(state: &AppState, tenant_name: &str, agent_id: &str) -> ApiResult<(Tenant, AgentRow)> {
    let not_found = || {
        ApiError::not_found(
            "agent_not_found",
            format!("tenant `{tenant_name}` has no agent `{agent_id}`; `ledgerlink-hub admin agents list` shows them"),
        )
    };
    let tenant = state.control_store.tenant_by_name(tenant_name)?.ok_or_else(not_found)?;
    let agent = agent_of(state, &tenant, agent_id)?.ok_or_else(not_found)?;
    Ok((tenant, agent))
}

/// The tenant's agent `agent_id`, if it has reported.
fn agent_of(state: &AppState, tenant: &Tenant, agent_id: &str) -> ApiResult<Option<AgentRow>> {
    Ok(state.control_store.control_agents(Some(tenant))?.into_iter().find(|a| a.agent_id == agent_id))
}

/// [`find_agent`] for a change: refused when the tenant's key is revoked, as its
/// agents can no longer connect or be told anything.
fn find_agent_to_change(
    state: &AppState,
    tenant_name: &str,
    agent_id: &str,
) -> ApiResult<(Tenant, AgentRow)> {
    let (tenant, agent) = find_agent(state, tenant_name, agent_id)?;
    if state.control_store.tenant_revoked(&tenant)? {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "tenant_revoked",
            format!(
                "tenant `{tenant_name}`'s API key is revoked, so its agents are disconnected and get no \
                 commands. Resolution: none while it stays revoked; a customer who should stay connected \
                 needs a tenant with a valid key (`ledgerlink-hub tenant create`)"
            ),
        ));
    }
    Ok((tenant, agent))
}

/// `GET /v1/admin/whoami`: the caller's token name and role.
pub async fn whoami(Extension(principal): Extension<SupportPrincipal>) -> Json<SupportPrincipal> {
    Json(principal)
}

/// The body of `GET /v1/admin/agents`.
#[derive(Debug, Serialize)]
pub struct AgentDetails {
    /// Every agent of every tenant.
    pub agents: Vec<AgentDetail>,
    /// The hub's time (RFC 3339), for "last seen … ago".
    pub now: String,
}

/// `GET /v1/admin/agents`: every agent of every tenant, with details.
pub async fn agents(State(state): State<AppState>) -> ApiResult<Json<AgentDetails>> {
    blocking(move || {
        state.control_store.expire_commands(&now())?;
        let mut out = Vec::new();
        for agent in state.control_store.control_agents(None)? {
            let tenant = state
                .control_store
                .tenant_by_name(&agent.tenant)?
                .ok_or_else(|| ApiError::internal("agent of an unknown tenant"))?;
            out.push(detail(&state, &tenant, agent)?);
        }
        Ok(Json(AgentDetails { agents: out, now: now() }))
    })
    .await
}

/// `GET /v1/admin/agents/{tenant}/{agent_id}`: one agent.
pub async fn agent(
    State(state): State<AppState>,
    Path((tenant, agent_id)): Path<(String, String)>,
) -> ApiResult<Json<AgentDetail>> {
    blocking(move || {
        state.control_store.expire_commands(&now())?;
        let (tenant, agent) = find_agent(&state, &tenant, &agent_id)?;
        Ok(Json(detail(&state, &tenant, agent)?))
    })
    .await
}

/// The body of `POST …/commands`.
#[derive(Debug, Deserialize)]
pub struct CommandRequest {
    /// The command (`type` and its arguments).
    #[serde(flatten)]
    pub kind: CommandKind,
    /// Why (shown to whoever looks at the agent later).
    #[serde(default)]
    pub reason: Option<String>,
    /// Seconds the command waits for an offline agent before it expires.
    #[serde(default)]
    pub expires_secs: Option<u64>,
}

/// `POST /v1/admin/agents/{tenant}/{agent_id}/commands`: queues a command and sends it
/// at once when the agent is connected. Toggles also change the desired state.
pub async fn create_command(
    State(state): State<AppState>,
    Extension(principal): Extension<SupportPrincipal>,
    Path((tenant, agent_id)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> ApiResult<(StatusCode, Json<CommandRow>)> {
    require_support_role(&principal)?;
    let request: CommandRequest = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(
            "invalid_body",
            format!(
                "not a command: {e}. Commands: sync, plugin.disable, plugin.enable, source.disable, \
                 source.enable, config.reload, status, diagnostics"
            ),
        )
    })?;
    let expires_secs = request.expires_secs.unwrap_or(DEFAULT_COMMAND_EXPIRY_SECS);
    if expires_secs == 0 || expires_secs > MAX_COMMAND_EXPIRY_SECS {
        return Err(ApiError::bad_request(
            "invalid_expiry",
            format!("expires_secs must be 1 to {MAX_COMMAND_EXPIRY_SECS}"),
        ));
    }
    blocking(move || {
        let (tenant, agent) = find_agent_to_change(&state, &tenant, &agent_id)?;
        // Diagnostics are collected only while the customer grants it: the command
        // expires with the grant, and a withdrawal expires it at once.
        let grant_ends = match request.kind {
            CommandKind::Diagnostics => Some(
                consent::current_grant(&state, &tenant, Scope::Diagnostics)?
                    .ok_or_else(|| consent::consent_required(&tenant.name, Scope::Diagnostics))?
                    .expires_at,
            ),
            _ => None,
        };
        let at = chrono::Utc::now();
        let issued_at = crate::timestamp(at);
        let expires_at = crate::timestamp(at + chrono::Duration::seconds(expires_secs as i64));
        let expires_at = grant_ends.map_or(expires_at.clone(), |ends| ends.min(expires_at));
        let command = Command {
            id: crate::auth::random_id("cmd-", 12).map_err(ApiError::internal)?,
            kind: request.kind,
            issued_by: principal.name.clone(),
            issued_at: issued_at.clone(),
            reason: request.reason.filter(|r| !r.trim().is_empty()),
        };
        let store = &state.control_store;
        let disabled =
            Disabled { by: principal.name.clone(), at: issued_at.clone(), reason: command.reason.clone() };
        let toggle = match &command.kind {
            CommandKind::PluginDisable { plugin, .. } => Some((Toggle::Plugin, plugin, Some(&disabled))),
            CommandKind::PluginEnable { plugin } => Some((Toggle::Plugin, plugin, None)),
            CommandKind::SourceDisable { source, .. } => Some((Toggle::Source, source, Some(&disabled))),
            CommandKind::SourceEnable { source } => Some((Toggle::Source, source, None)),
            _ => None,
        };
        if let Some((toggle, target, disabled)) = &toggle {
            store.set_disabled(&tenant, &agent.agent_id, *toggle, target, *disabled)?;
        }
        store.insert_command(&tenant, &agent.agent_id, &command, &expires_at)?;
        store.audit(&AuditEntry {
            at: issued_at,
            actor: principal.name.clone(),
            role: principal.role.as_str().to_owned(),
            action: format!("command.{}", command.kind.name()),
            tenant: Some(tenant.name.clone()),
            agent_id: Some(agent.agent_id.clone()),
            details: serde_json::to_value(&command).map_err(ApiError::internal)?,
        })?;
        if toggle.is_some() {
            let desired = store.desired_state(&tenant, &agent.agent_id)?;
            state.control.send(&tenant, &agent.agent_id, HubMessage::DesiredState { state: desired });
        }
        state.control.send(&tenant, &agent.agent_id, HubMessage::Command { command: command.clone() });
        tracing::info!(
            tenant = %tenant.name, agent = %agent.agent_id, command = %command.id,
            kind = command.kind.name(), by = %principal.name, "Command queued."
        );
        let row = store
            .command(&tenant, &agent.agent_id, &command.id)?
            .ok_or_else(|| ApiError::internal("a command just stored is missing"))?;
        Ok((StatusCode::ACCEPTED, Json(row)))
    })
    .await
}

/// `GET /v1/admin/agents/{tenant}/{agent_id}/commands/{command_id}`: a command's
/// state and result; a diagnostics result only while the tenant grants it, as a logged look.
pub async fn get_command(
    State(state): State<AppState>,
    Extension(principal): Extension<SupportPrincipal>,
    Path((tenant, agent_id, command_id)): Path<(String, String, String)>,
) -> ApiResult<Json<CommandRow>> {
    blocking(move || {
        state.control_store.expire_commands(&now())?;
        let (tenant, agent) = find_agent(&state, &tenant, &agent_id)?;
        let mut row =
            state.control_store.command(&tenant, &agent.agent_id, &command_id)?.ok_or_else(|| {
                ApiError::not_found(
                    "command_not_found",
                    format!("agent `{agent_id}` has no command `{command_id}`"),
                )
            })?;
        if matches!(row.command.kind, CommandKind::Diagnostics)
            && row.result.as_ref().is_some_and(|r| !r.is_null())
        {
            let what = format!("diagnostics of agent {} ({command_id})", agent.agent_id);
            match consent::look(&state, &principal, &tenant, Scope::Diagnostics, what) {
                Ok(_) => {}
                Err(refusal) if refusal.code == "consent_required" => {
                    withhold_diagnostics(&mut row, || refusal.message)
                }
                Err(other) => return Err(other),
            }
        }
        Ok(Json(row))
    })
    .await
}

/// The body of `POST …/key/reset`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyReset {
    /// Why (for the audit log), e.g. "server reinstalled, ticket 4711".
    #[serde(default)]
    pub reason: Option<String>,
}

/// `POST /v1/admin/agents/{tenant}/{agent_id}/key/reset`: forgets the identity key
/// an agent is known by, so its next signed upload registers a new one (a
/// reinstalled agent). Audit-logged with the key it had.
pub async fn reset_agent_key(
    State(state): State<AppState>,
    Extension(principal): Extension<SupportPrincipal>,
    Path((tenant_name, agent_id)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> ApiResult<Json<serde_json::Value>> {
    require_support_role(&principal)?;
    let request: KeyReset = if body.is_empty() {
        KeyReset::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            ApiError::bad_request("invalid_body", format!("expected {{\"reason\": \"…\"}}: {e}"))
        })?
    };
    blocking(move || {
        let tenant = state.control_store.tenant_by_name(&tenant_name)?.ok_or_else(|| {
            ApiError::not_found("tenant_not_found", format!("there is no tenant `{tenant_name}`"))
        })?;
        // Audited before it happens: a reset is never without its record.
        let had = state.agent_keys.agent_key(&tenant, &agent_id)?.ok_or_else(|| {
            ApiError::not_found(
                "agent_key_not_found",
                format!("agent `{agent_id}` of tenant `{tenant_name}` has no identity key registered; nothing to reset"),
            )
        })?;
        state.control_store.audit(&AuditEntry {
            at: now(),
            actor: principal.name.clone(),
            role: principal.role.as_str().to_owned(),
            action: "agent_key.reset".to_owned(),
            tenant: Some(tenant.name.clone()),
            agent_id: Some(agent_id.clone()),
            details: json!({ "fingerprint": had.fingerprint, "registered_at": had.registered_at, "reason": request.reason }),
        })?;
        state.agent_keys.reset_agent_key(&tenant, &agent_id)?;
        tracing::info!(tenant = %tenant.name, agent = %agent_id, key = %had.fingerprint, by = %principal.name,
            "The agent's identity key was reset; its next signed upload registers a new one.");
        Ok(Json(json!({ "agent_id": agent_id, "reset": had })))
    })
    .await
}

/// The body of `PUT …/sources/{source_id}/companies`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompanySelection {
    /// The company ids to integrate; every other reported company is not synced.
    pub companies: Vec<String>,
    /// Why (for the audit log).
    #[serde(default)]
    pub reason: Option<String>,
}

/// `PUT /v1/admin/agents/{tenant}/{agent_id}/sources/{source_id}/companies`: selects
/// which reported companies of a source are integrated.
pub async fn select_companies(
    State(state): State<AppState>,
    Extension(principal): Extension<SupportPrincipal>,
    Path((tenant, agent_id, source_id)): Path<(String, String, String)>,
    body: axum::body::Bytes,
) -> ApiResult<Json<DesiredState>> {
    require_support_role(&principal)?;
    let selection: CompanySelection = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request("invalid_body", format!("expected {{\"companies\": [\"id\", …]}}: {e}"))
    })?;
    blocking(move || {
        let (tenant, agent) = find_agent_to_change(&state, &tenant, &agent_id)?;
        let actor = (principal.name.clone(), principal.role.as_str().to_owned());
        apply_selection(&state, &tenant, &agent.agent_id, &source_id, selection, actor).map(Json)
    })
    .await
}

/// Selects a source's companies for integration, audit-logged as `actor` (name,
/// role), and tells the agent; the new desired state.
fn apply_selection(
    state: &AppState,
    tenant: &Tenant,
    agent_id: &str,
    source_id: &str,
    selection: CompanySelection,
    (actor, role): (String, String),
) -> ApiResult<DesiredState> {
    let store = &state.control_store;
    let unknown = store.select_companies(tenant, agent_id, source_id, &selection.companies)?;
    if !unknown.is_empty() {
        return Err(ApiError::bad_request(
            "unknown_company",
            format!(
                "source `{source_id}` of agent `{agent_id}` has not reported these companies: {}; \
                 Resolution: select from the companies the agent reported (GET …/companies)",
                unknown.join(", ")
            ),
        )
        .with_details(json!({ "unknown": unknown })));
    }
    store.audit(&AuditEntry {
        at: now(),
        actor: actor.clone(),
        role,
        action: "companies.select".to_owned(),
        tenant: Some(tenant.name.clone()),
        agent_id: Some(agent_id.to_owned()),
        details: json!({ "source": source_id, "companies": selection.companies, "reason": selection.reason }),
    })?;
    let desired = store.desired_state(tenant, agent_id)?;
    state.control.send(tenant, agent_id, HubMessage::DesiredState { state: desired.clone() });
    tracing::info!(tenant = %tenant.name, agent = %agent_id, source = %source_id, by = %actor, "Company selection changed.");
    Ok(desired)
}

/// The tenant's own agent `agent_id` (for the tenant-key endpoints below).
fn own_agent(state: &AppState, tenant: &Tenant, agent_id: &str) -> ApiResult<AgentRow> {
    agent_of(state, tenant, agent_id)?.ok_or_else(|| {
        ApiError::not_found(
            "agent_not_found",
            format!("this tenant has no agent `{agent_id}`; GET /v1/agents lists the tenant's agents"),
        )
    })
}

/// `GET /v1/agents/{agent_id}/companies` (tenant key): the companies the agent's
/// sources reported, each with whether it is integrated — what the customer picks from.
pub async fn own_companies(
    State(state): State<AppState>,
    Extension(tenant): Extension<Tenant>,
    Path(agent_id): Path<String>,
) -> ApiResult<Json<serde_json::Value>> {
    blocking(move || {
        let agent = own_agent(&state, &tenant, &agent_id)?;
        let companies = state.control_store.companies(&tenant, &agent.agent_id)?;
        Ok(Json(json!({ "agent_id": agent.agent_id, "companies": companies })))
    })
    .await
}

/// `PUT /v1/agents/{agent_id}/sources/{source_id}/companies` (tenant key): the
/// customer picks which reported companies of a source are integrated.
pub async fn select_own_companies(
    State(state): State<AppState>,
    Extension(tenant): Extension<Tenant>,
    Path((agent_id, source_id)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> ApiResult<Json<DesiredState>> {
    let selection: CompanySelection = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request("invalid_body", format!("expected {{\"companies\": [\"id\", …]}}: {e}"))
    })?;
    blocking(move || {
        let agent = own_agent(&state, &tenant, &agent_id)?;
        let actor = (consent::customer(&tenant), "customer".to_owned());
        apply_selection(&state, &tenant, &agent.agent_id, &source_id, selection, actor).map(Json)
    })
    .await
}

/// `GET /v1/admin/audit`: the latest audit entries, newest first (`?limit=`, default 100).
pub async fn audit(
    State(state): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult<Json<serde_json::Value>> {
    let limit = query.get("limit").and_then(|l| l.parse::<usize>().ok()).unwrap_or(100).clamp(1, 10_000);
    blocking(move || Ok(Json(json!({ "entries": state.control_store.audit_log(limit)? })))).await
}

/// `GET /console`: the support console (one HTML page; its script talks to the admin API).
pub async fn console() -> axum::response::Html<&'static str> {
    axum::response::Html(crate::console::PAGE)
}
