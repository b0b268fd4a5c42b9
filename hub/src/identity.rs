//! Agent identity keys on the hub (decision 0029): a hello (`POST /v1/agents/hello`)
//! or an offer (`POST /v1/snapshots`) signed by an agent's key registers that key
//! for the agent id the first time; afterwards only that key may offer as that agent. Unsigned offers are accepted
//! for agent ids with no key yet (agents older than identity keys), and refused
//! once the agent has one.

use crate::error::{ApiError, ApiResult};
use crate::now;
use crate::server::AppState;
use crate::storage::Tenant;
use axum::http::{HeaderMap, StatusCode};
use ledgerlink_protocol::identity::{
    fingerprint, normalize_key, verify_labelled, AGENT_KEY_HEADER, AGENT_SIGNATURE_HEADER,
    AGENT_SIGNED_AT_HEADER, SIGNATURE_LIFETIME_HOURS,
};
#[cfg(doc)]
use ledgerlink_protocol::identity::{HELLO_LABEL, SIGNED_LABEL};

/// The reset a support person runs when an agent was reinstalled without its key.
const RESET: &str = "ledgerlink-hub admin agent-key reset TENANT AGENT";

fn header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim).filter(|v| !v.is_empty())
}

/// Checks that `body`, signed after `label` ([`SIGNED_LABEL`] for an offer,
/// [`HELLO_LABEL`] for a hello), comes from `agent_id`'s key, and registers a
/// first key. Blocking.
pub fn check_signed(
    state: &AppState,
    tenant: &Tenant,
    agent_id: &str,
    headers: &HeaderMap,
    body: &[u8],
    label: &[u8],
) -> ApiResult<()> {
    let presented = match (
        header(headers, AGENT_KEY_HEADER),
        header(headers, AGENT_SIGNED_AT_HEADER),
        header(headers, AGENT_SIGNATURE_HEADER),
    ) {
        (None, None, None) => None,
        (Some(key), Some(signed_at), Some(signature)) => {
            let key = normalize_key(key).map_err(|e| signature_invalid(agent_id, &e.to_string()))?;
            verify_labelled(label, &key, signed_at, body, signature)
                .map_err(|e| signature_invalid(agent_id, &e.to_string()))?;
            check_fresh(agent_id, signed_at)?;
            Some(key)
        }
        _ => {
            return Err(signature_invalid(
                agent_id,
                &format!(
                    "{AGENT_KEY_HEADER}, {AGENT_SIGNED_AT_HEADER} and {AGENT_SIGNATURE_HEADER} go together"
                ),
            ))
        }
    };
    let known = state.agent_keys.agent_key(tenant, agent_id)?;
    match (known, presented) {
        (None, None) if state.limits.require_agent_signatures => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "agent_signature_required",
            format!(
                "this hub takes signed uploads only, and this upload from agent `{agent_id}` is not signed. \
                 Resolution: update the agent; every agent since identity keys signs its uploads"
            ),
        )),
        (None, None) => Ok(()),
        (None, Some(key)) => {
            let registered = state.agent_keys.register_agent_key(tenant, agent_id, &key, &now())?;
            if registered.public_key != key {
                return Err(mismatch(agent_id, &registered.fingerprint, &fingerprint(&key)));
            }
            tracing::info!(tenant = %tenant.name, agent = %agent_id, key = %registered.fingerprint,
                "The agent's identity key is registered.");
            Ok(())
        }
        (Some(known), None) => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "agent_signature_required",
            format!(
                "agent `{agent_id}` signs its uploads with identity key {}, but this upload is not signed. \
                 Resolution: upload with that agent (this agent software signs every manifest); if the agent was \
                 replaced by an older version, update it",
                known.fingerprint
            ),
        )),
        (Some(known), Some(key)) if known.public_key != key => {
            Err(mismatch(agent_id, &known.fingerprint, &fingerprint(&key)))
        }
        (Some(_), Some(_)) => Ok(()),
    }
}

/// Refuses a signature made more than [`SIGNATURE_LIFETIME_HOURS`] away from now:
/// an old request sent again, or an agent whose clock is far off.
fn check_fresh(agent_id: &str, signed_at: &str) -> ApiResult<()> {
    let at = chrono::DateTime::parse_from_rfc3339(signed_at).map_err(|e| {
        signature_invalid(agent_id, &format!("{AGENT_SIGNED_AT_HEADER} is not an RFC 3339 time: {e}"))
    })?;
    let off = (chrono::Utc::now() - at.with_timezone(&chrono::Utc)).num_seconds().abs();
    if off <= SIGNATURE_LIFETIME_HOURS * 3600 {
        return Ok(());
    }
    tracing::warn!(agent = %agent_id, signed_at, "A signature far from the hub's time was refused.");
    Err(ApiError::new(
        StatusCode::UNAUTHORIZED,
        "agent_signature_stale",
        format!(
            "agent `{agent_id}` signed this upload at {signed_at}, {} hours from the hub's time {}; a signature is \
             accepted for {SIGNATURE_LIFETIME_HOURS} hours around it, so an old request cannot be sent again. \
             Nothing was stored. Resolution: set the agent's server clock right (NTP); if it is right, \
             someone sent an old upload again",
            off / 3600,
            now()
        ),
    ))
}

fn signature_invalid(agent_id: &str, why: &str) -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "agent_signature_invalid",
        format!("the upload's agent signature for `{agent_id}` is not valid: {why}; nothing was stored"),
    )
}

fn mismatch(agent_id: &str, known: &str, presented: &str) -> ApiError {
    tracing::warn!(agent = %agent_id, known, presented, "An upload signed by another key than the agent's was refused.");
    ApiError::new(
        StatusCode::FORBIDDEN,
        "agent_key_mismatch",
        format!(
            "agent `{agent_id}` is known by identity key {known}, but this upload is signed by key {presented}; \
             nothing was stored. Resolution: if the agent was reinstalled or its data directory restored without \
             its `agent-key` file, put that file back, or have the central service run `{RESET}`; otherwise \
             someone else is uploading as this agent"
        ),
    )
}
