//! Tenant API keys: generation, hashing, and the bearer-token middleware.

use crate::error::ApiError;
use crate::server::AppState;
use crate::storage::{SupportPrincipal, Tenant};
use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

/// Prefix of every API key, so a leaked key is recognisable (e.g. by secret scanners).
pub const KEY_PREFIX: &str = "llk_";

/// Prefix of every support token (admin API and console), distinct from tenant keys.
pub const SUPPORT_TOKEN_PREFIX: &str = "lls_";

/// A new random API key: `llk_` and 64 hex digits (32 bytes from the OS CSPRNG).
pub fn generate_key() -> anyhow::Result<String> {
    generate_with_prefix(KEY_PREFIX)
}

/// A new random support token: `lls_` and 64 hex digits.
pub fn generate_support_token() -> anyhow::Result<String> {
    generate_with_prefix(SUPPORT_TOKEN_PREFIX)
}

fn generate_with_prefix(prefix: &str) -> anyhow::Result<String> {
    random_id(prefix, 32).map_err(|e| anyhow::anyhow!("the OS random number generator failed: {e}"))
}

/// `prefix` and `bytes` random bytes from the OS in hex: keys, tokens, command and grant ids.
pub fn random_id(prefix: &str, bytes: usize) -> Result<String, getrandom::Error> {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf)?;
    Ok(format!("{prefix}{}", buf.iter().map(|b| format!("{b:02x}")).collect::<String>()))
}

/// The stored form of a key. SHA-256 suffices: keys are 256-bit random, so there is nothing to brute-force.
pub fn hash_key(key: &str) -> Vec<u8> {
    Sha256::digest(key.as_bytes()).to_vec()
}

/// Compares two byte strings in time independent of where they differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The tenant's name, put on responses so the request log can show it.
#[derive(Debug, Clone)]
pub struct TenantName(pub String);

/// Middleware: authenticates `Authorization: Bearer <key>` and puts the [`Tenant`] into the request.
pub async fn require_tenant(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let tenant = match authenticate_tenant(&state, request.headers()).await {
        Ok(tenant) => tenant,
        Err(e) => return e.into_response(),
    };
    let name = tenant.name.clone();
    request.extensions_mut().insert::<Tenant>(tenant);
    let mut response = next.run(request).await;
    response.extensions_mut().insert(TenantName(name));
    response
}

/// The tenant whose API key the request carries.
pub async fn authenticate_tenant(state: &AppState, headers: &HeaderMap) -> Result<Tenant, ApiError> {
    let key = bearer(headers)?.to_owned();
    let meta = state.meta.clone();
    let hash = hash_key(&key);
    let found = tokio::task::spawn_blocking(move || meta.tenant_by_key_hash(&hash).map(|m| (m, hash)))
        .await
        .map_err(ApiError::internal)??;
    match found {
        (Some(m), hash) if constant_time_eq(&m.key_hash, &hash) => {
            if m.revoked {
                return Err(ApiError::unauthorized("the API key was revoked"));
            }
            Ok(m.tenant)
        }
        _ => Err(ApiError::unauthorized("the API key is not valid")),
    }
}

/// Middleware of the admin API: authenticates a support token (`Authorization: Bearer lls_…`)
/// and puts the [`SupportPrincipal`] into the request. Tenant API keys are refused.
pub async fn require_support(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let principal = match authenticate_support(&state, request.headers()).await {
        Ok(principal) => principal,
        Err(e) => return e.into_response(),
    };
    let name = format!("support:{}", principal.name);
    request.extensions_mut().insert::<SupportPrincipal>(principal);
    let mut response = next.run(request).await;
    response.extensions_mut().insert(TenantName(name));
    response
}

/// True when the request's bearer token is a support token (`lls_…`), valid or not.
pub fn carries_support_token(request: &Request) -> bool {
    bearer(request.headers()).is_ok_and(|token| token.starts_with(SUPPORT_TOKEN_PREFIX))
}

/// The support person whose token the request carries.
pub async fn authenticate_support(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<SupportPrincipal, ApiError> {
    let token = bearer(headers)
        .map_err(|_| ApiError::unauthorized("missing `Authorization: Bearer <support token>` header"))?
        .to_owned();
    if !token.starts_with(SUPPORT_TOKEN_PREFIX) {
        return Err(ApiError::unauthorized(
            "the admin API takes a support token (lls_…), not a tenant API key; \
             create one with `ledgerlink-hub support-token create NAME --role viewer|support`",
        ));
    }
    let store = state.control_store.clone();
    let hash = hash_key(&token);
    let found = tokio::task::spawn_blocking(move || store.support_token_by_hash(&hash).map(|m| (m, hash)))
        .await
        .map_err(ApiError::internal)??;
    match found {
        (Some(m), hash) if constant_time_eq(&m.token_hash, &hash) => {
            if m.revoked {
                return Err(ApiError::unauthorized("the support token was revoked"));
            }
            Ok(m.principal)
        }
        _ => Err(ApiError::unauthorized("the support token is not valid")),
    }
}

fn bearer(headers: &HeaderMap) -> Result<&str, ApiError> {
    let missing = || ApiError::unauthorized("missing `Authorization: Bearer <api key>` header");
    let value = headers.get(AUTHORIZATION).ok_or_else(missing)?;
    let value = value.to_str().map_err(|_| missing())?;
    let (scheme, key) = value.split_once(' ').ok_or_else(missing)?;
    if !scheme.eq_ignore_ascii_case("bearer") || key.trim().is_empty() {
        return Err(missing());
    }
    Ok(key.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_random_prefixed_and_hash_stably() {
        let a = generate_key().unwrap();
        let b = generate_key().unwrap();
        assert_ne!(a, b);
        assert!(a.starts_with(KEY_PREFIX) && a.len() == KEY_PREFIX.len() + 64, "{a}");
        assert_eq!(hash_key(&a), hash_key(&a));
        assert_ne!(hash_key(&a), hash_key(&b));
    }

    #[test]
    fn constant_time_eq_compares_fully() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
