//! Support access only with the customer's consent (decision 0027).
//!
//! A tenant grants support a look at its diagnostics, its data or both, for a
//! limited time, with its own API key (`/v1/support-access`). Support reads
//! diagnostics results and tenant data only while such a grant is active, and
//! every look is logged where the customer can read it.

use crate::admin::blocking;
use crate::auth::{authenticate_support, authenticate_tenant, carries_support_token, TenantName};
use crate::error::{ApiError, ApiResult};
use crate::now;
use crate::server::AppState;
use crate::storage::{AuditEntry, Scope, SupportAccess, SupportGrant, SupportPrincipal, Tenant};
use axum::extract::{Path, Query, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::json;
use std::collections::HashMap;

/// The header naming the tenant whose data a support token reads.
pub const TENANT_HEADER: &str = "ledgerlink-tenant";

/// Longest grant, in hours (7 days): access is for a limited time.
pub const MAX_GRANT_HOURS: u32 = 7 * 24;

/// How many looks `GET /v1/support-access` lists unless `?limit=` says otherwise.
const ACCESS_LOG_LIMIT: usize = 200;

/// The most looks one `GET /v1/support-access` lists.
const MAX_ACCESS_LOG_LIMIT: usize = 100_000;

/// The body of `POST /v1/support-access`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrantRequest {
    /// How long the grant lasts, 1 to [`MAX_GRANT_HOURS`].
    pub hours: u32,
    /// What support may look at (default: diagnostics only).
    #[serde(default)]
    pub scopes: Option<Vec<Scope>>,
    /// Why (a ticket number, say); shown to support and in the audit log.
    #[serde(default)]
    pub reason: Option<String>,
}

/// How the audit log names a tenant acting with its own API key.
pub(crate) fn customer(tenant: &Tenant) -> String {
    format!("tenant {} (its API key)", tenant.name)
}

fn audit(state: &AppState, tenant: &Tenant, action: &str, grant: &SupportGrant) -> ApiResult<()> {
    state.control_store.audit(&AuditEntry {
        at: now(),
        actor: customer(tenant),
        role: "customer".to_owned(),
        action: action.to_owned(),
        tenant: Some(tenant.name.clone()),
        agent_id: None,
        details: serde_json::to_value(grant).map_err(ApiError::internal)?,
    })?;
    Ok(())
}

/// `POST /v1/support-access` (tenant key): grants support a look at the tenant's
/// diagnostics and/or data until `hours` from now.
pub async fn grant(
    State(state): State<AppState>,
    Extension(tenant): Extension<Tenant>,
    body: axum::body::Bytes,
) -> ApiResult<(StatusCode, Json<SupportGrant>)> {
    let request: GrantRequest = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(
            "invalid_body",
            format!(
                "expected {{\"hours\": 1–{MAX_GRANT_HOURS}, \"scopes\": [\"diagnostics\", \"data\"], \
                 \"reason\": \"…\"}}: {e}"
            ),
        )
    })?;
    if request.hours == 0 || request.hours > MAX_GRANT_HOURS {
        return Err(ApiError::bad_request(
            "invalid_hours",
            format!(
                "hours must be 1 to {MAX_GRANT_HOURS} (7 days); support access is for a limited time. \
                 Resolution: grant again when it runs out"
            ),
        ));
    }
    let mut scopes = request.scopes.unwrap_or_else(|| vec![Scope::Diagnostics]);
    scopes.sort();
    scopes.dedup();
    if scopes.is_empty() {
        return Err(ApiError::bad_request(
            "invalid_scopes",
            "scopes must name at least one of diagnostics, data",
        ));
    }
    blocking(move || {
        let at = chrono::Utc::now();
        let created_at = crate::timestamp(at);
        let expires_at = crate::timestamp(at + chrono::Duration::hours(i64::from(request.hours)));
        let grant = SupportGrant {
            grant_id: crate::auth::random_id("grant-", 8).map_err(ApiError::internal)?,
            tenant: tenant.name.clone(),
            scopes,
            granted_by: customer(&tenant),
            reason: request.reason.filter(|r| !r.trim().is_empty()),
            created_at,
            expires_at,
            revoked_at: None,
            revoked_by: None,
            active: true,
        };
        state.consent.create_grant(&tenant, &grant)?;
        audit(&state, &tenant, "support_access.grant", &grant)?;
        tracing::info!(
            tenant = %tenant.name, grant = %grant.grant_id, until = %grant.expires_at,
            scopes = ?grant.scopes, "The customer granted support access."
        );
        Ok((StatusCode::CREATED, Json(grant)))
    })
    .await
}

/// `GET /v1/support-access` (tenant key): the tenant's grants and every look support took.
pub async fn list(
    State(state): State<AppState>,
    Extension(tenant): Extension<Tenant>,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult<Json<serde_json::Value>> {
    let limit = match query.get("limit") {
        None => ACCESS_LOG_LIMIT,
        Some(text) => text
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_ACCESS_LOG_LIMIT).contains(n))
            .ok_or_else(|| {
                ApiError::bad_request("invalid_limit", format!("limit must be 1 to {MAX_ACCESS_LOG_LIMIT}"))
            })?,
    };
    blocking(move || {
        let at = now();
        let grants = state.consent.grants(Some(&tenant), &at)?;
        let accesses = state.consent.access_log(&tenant, limit)?;
        let total = state.consent.access_count(&tenant)?;
        Ok(Json(json!({ "grants": grants, "accesses": accesses, "accesses_total": total, "now": at })))
    })
    .await
}

/// `DELETE /v1/support-access/{grant_id}` (tenant key): withdraws a grant at once.
pub async fn revoke(
    State(state): State<AppState>,
    Extension(tenant): Extension<Tenant>,
    Path(grant_id): Path<String>,
) -> ApiResult<Json<SupportGrant>> {
    blocking(move || {
        let at = now();
        let was_active = state.consent.grants(Some(&tenant), &at)?.iter().any(|g| g.grant_id == grant_id && g.active);
        let grant = state.consent.revoke_grant(&tenant, &grant_id, &customer(&tenant), &at)?.ok_or_else(|| {
            ApiError::not_found(
                "grant_not_found",
                format!("this tenant has no grant `{grant_id}`; GET /v1/support-access lists them"),
            )
        })?;
        if was_active {
            if active_grant(&state, &tenant, Scope::Diagnostics, &at)?.is_none() {
                let expired = state.consent.expire_pending_diagnostics(&tenant, &at)?;
                if expired > 0 {
                    tracing::info!(tenant = %tenant.name, expired, "Diagnostics not yet collected will not be.");
                }
            }
            audit(&state, &tenant, "support_access.revoke", &grant)?;
            tracing::info!(tenant = %tenant.name, grant = %grant.grant_id, "The customer withdrew support access.");
        }
        Ok(Json(grant))
    })
    .await
}

/// `GET /v1/admin/support-access` (support token): the grants of every tenant
/// (`?tenant=` for one), so support knows where it may look.
pub async fn admin_list(
    State(state): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult<Json<serde_json::Value>> {
    blocking(move || {
        let tenant = match query.get("tenant") {
            Some(name) => Some(state.control_store.tenant_by_name(name)?.ok_or_else(|| {
                ApiError::not_found("tenant_not_found", format!("there is no tenant `{name}`"))
            })?),
            None => None,
        };
        let at = now();
        let grants = state.consent.grants(tenant.as_ref(), &at)?;
        Ok(Json(json!({ "grants": grants, "now": at })))
    })
    .await
}

/// The refusal of a look the tenant has not granted.
pub fn consent_required(tenant: &str, scope: Scope) -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "consent_required",
        format!(
            "tenant `{tenant}` has not granted support access to its {} (or the grant ran out or was \
             withdrawn). Resolution: ask the customer to grant it for a limited time, on the agent's \
             server: `ledgerlink support-access grant --hours 4 --scope {}` (or POST /v1/support-access \
             with its API key); `ledgerlink-hub admin support-access` shows the grants",
            scope.as_str(),
            scope.as_str()
        ),
    )
    .with_details(json!({ "tenant": tenant, "scope": scope }))
}

/// Logs a look at `scope` of `tenant` by `principal` under the tenant's active grant;
/// refused with `consent_required` when there is none. Blocking.
pub fn look(
    state: &AppState,
    principal: &SupportPrincipal,
    tenant: &Tenant,
    scope: Scope,
    what: String,
) -> ApiResult<SupportGrant> {
    let at = now();
    let grant =
        active_grant(state, tenant, scope, &at)?.ok_or_else(|| consent_required(&tenant.name, scope))?;
    state.consent.log_access(
        tenant,
        &SupportAccess {
            at,
            tenant: tenant.name.clone(),
            grant_id: grant.grant_id.clone(),
            actor: principal.name.clone(),
            scope,
            what: what.clone(),
        },
    )?;
    tracing::info!(
        tenant = %tenant.name, grant = %grant.grant_id, by = %principal.name, scope = scope.as_str(), %what,
        "Support looked under the customer's grant."
    );
    Ok(grant)
}

/// The grant of `scope` the tenant gives now, if any. Blocking.
pub fn current_grant(state: &AppState, tenant: &Tenant, scope: Scope) -> ApiResult<Option<SupportGrant>> {
    active_grant(state, tenant, scope, &now())
}

/// The tenant's grant of `scope` at `at`. A tenant whose key is revoked grants
/// nothing: it could no longer withdraw a grant.
fn active_grant(
    state: &AppState,
    tenant: &Tenant,
    scope: Scope,
    at: &str,
) -> ApiResult<Option<SupportGrant>> {
    if state.control_store.tenant_revoked(tenant)? {
        return Ok(None);
    }
    Ok(state.consent.active_grant(tenant, scope, at)?)
}

/// Middleware of the read-only data endpoints: a tenant's own key, or a support
/// token with `Ledgerlink-Tenant: NAME` while that tenant grants access to its data
/// (each request is logged as a look).
pub async fn require_tenant_or_consented_support(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let named =
        request.headers().get(TENANT_HEADER).map(|v| v.to_str().unwrap_or_default().trim().to_owned());
    let (tenant, principal) = if carries_support_token(&request) {
        let uri = request.uri();
        let what =
            format!("{} {}", request.method(), uri.path_and_query().map_or(uri.path(), |p| p.as_str()));
        match consented_support(&state, request.headers(), named, what).await {
            Ok(found) => found,
            Err(e) => return e.into_response(),
        }
    } else {
        match authenticate_tenant(&state, request.headers()).await {
            Ok(tenant) if named.as_ref().is_some_and(|n| *n != tenant.name) => {
                return ApiError::bad_request(
                    "tenant_header_mismatch",
                    format!(
                        "this API key is tenant `{}`'s, but `Ledgerlink-Tenant` names another tenant; a tenant \
                         key reads only its own data. Resolution: leave the header out (it is for support tokens)",
                        tenant.name
                    ),
                )
                .into_response()
            }
            Ok(tenant) => (tenant, None),
            Err(e) => return e.into_response(),
        }
    };
    let name = match &principal {
        Some(p) => format!("support:{} for {}", p.name, tenant.name),
        None => tenant.name.clone(),
    };
    request.extensions_mut().insert::<Tenant>(tenant);
    if let Some(principal) = principal {
        request.extensions_mut().insert::<SupportPrincipal>(principal);
    }
    let mut response = next.run(request).await;
    response.extensions_mut().insert(TenantName(name));
    response
}

/// The tenant a support token reads under its grant of data, the read logged as a look.
async fn consented_support(
    state: &AppState,
    headers: &axum::http::HeaderMap,
    named: Option<String>,
    what: String,
) -> ApiResult<(Tenant, Option<SupportPrincipal>)> {
    let principal = authenticate_support(state, headers).await?;
    let tenant_name = named.filter(|n| !n.is_empty()).ok_or_else(|| {
        ApiError::bad_request(
            "tenant_header_required",
            "a support token reads a tenant's data only with the header `Ledgerlink-Tenant: NAME`, and only \
             while that tenant grants support access to its data (`ledgerlink-hub admin support-access`)",
        )
    })?;
    let state = state.clone();
    blocking(move || {
        let tenant = state.control_store.tenant_by_name(&tenant_name)?.ok_or_else(|| {
            ApiError::not_found("tenant_not_found", format!("there is no tenant `{tenant_name}`"))
        })?;
        look(&state, &principal, &tenant, Scope::Data, what)?;
        Ok((tenant, Some(principal)))
    })
    .await
}
