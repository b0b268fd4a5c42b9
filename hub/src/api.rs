//! HTTP handlers of the hub API. Every handler behind auth is scoped to the caller's tenant.

use crate::error::{ApiError, ApiResult};
use crate::ingest::{verify_snapshot, SCHEMA_VERSIONS};
use crate::now;
use crate::server::AppState;
use crate::storage::{AgentReport, BlobKey, CompanyKey, MetadataStore, SnapshotRecord, Tenant};
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE, USER_AGENT};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use ledgerlink_plugin_api::canonical::Entity;
use ledgerlink_protocol::api::{
    AgentHello, AgentInfo, AgentList, Capabilities, CompanyList, HelloResponse, SnapshotInfo, SnapshotList,
    SnapshotState, SnapshotStatus, SnapshotSummary, TrialBalanceResponse,
};
use ledgerlink_protocol::identity::{HELLO_LABEL, SIGNED_LABEL};
use ledgerlink_protocol::{
    sha256_hex, snapshot_id, validate_manifest, write_batch_ndjson, Manifest, ManifestLimits, PartFormat,
    PartInfo, PartReader, NDJSON_CONTENT_TYPE, PROTOCOL_VERSION,
};
use serde::de::DeserializeOwned;
use serde_json::json;
use std::collections::HashMap;
use std::io::BufReader;
use std::sync::Arc;

/// The OpenAPI description of this API, as kept in the repository.
pub const OPENAPI_JSON: &str = include_str!("../openapi.json");

/// Runs storage work on a blocking thread.
async fn blocking<T, F>(f: F) -> ApiResult<T>
where
    F: FnOnce() -> ApiResult<T> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(f).await.map_err(ApiError::internal)?
}

/// How much of an oversized body is read and discarded before the 413 answer, so
/// a client still sending it can read the answer instead of a reset connection.
const DRAIN_OVERSIZED_BYTES: u64 = 8 * 1024 * 1024;

/// Reads a request body of at most `limit` bytes; larger bodies are refused with 413.
async fn read_body(headers: &HeaderMap, body: Body, limit: u64, what: &str) -> ApiResult<Bytes> {
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("the {what} is larger than the limit of {limit} bytes"),
        )
    };
    let declared =
        headers.get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    let mut oversized = declared.is_some_and(|n| n > limit);
    let mut body = body;
    let mut data = Vec::new();
    let mut seen: u64 = 0;
    while let Some(frame) = http_body_util::BodyExt::frame(&mut body).await {
        let frame = frame.map_err(|e| {
            ApiError::bad_request("body_unreadable", format!("cannot read the request body: {e}"))
        })?;
        let Ok(chunk) = frame.into_data() else { continue };
        seen += chunk.len() as u64;
        if seen > limit && !oversized {
            oversized = true;
            data = Vec::new();
        }
        if !oversized {
            data.extend_from_slice(&chunk);
        } else if seen > limit.saturating_add(DRAIN_OVERSIZED_BYTES) {
            break;
        }
    }
    if oversized {
        return Err(too_large());
    }
    Ok(Bytes::from(data))
}

/// Parses JSON, telling malformed JSON apart from JSON of the wrong shape.
fn parse_json<T: DeserializeOwned>(bytes: &[u8], what: &str) -> ApiResult<T> {
    serde_json::from_slice(bytes).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => {
            ApiError::bad_request("invalid_body", format!("the {what} is not valid: {e}"))
        }
        _ => ApiError::bad_request("malformed_json", format!("the {what} is not well-formed JSON: {e}")),
    })
}

fn check_snapshot_id(id: &str) -> ApiResult<()> {
    if id.len() == 64 && id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        Ok(())
    } else {
        Err(ApiError::snapshot_not_found(id))
    }
}

fn load_snapshot(meta: &dyn MetadataStore, tenant: &Tenant, id: &str) -> ApiResult<SnapshotRecord> {
    meta.snapshot(tenant, id)?.ok_or_else(|| ApiError::snapshot_not_found(id))
}

/// `GET /healthz`: liveness, no authentication.
pub async fn healthz() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

/// `GET /v1/openapi.json`: this API's description, no authentication.
pub async fn openapi() -> Response {
    ([(CONTENT_TYPE, HeaderValue::from_static("application/json"))], OPENAPI_JSON).into_response()
}

/// `POST /v1/snapshots`: accepts a manifest; 201 when new, 200 when known.
pub async fn create_snapshot(
    State(state): State<AppState>,
    Extension(tenant): Extension<Tenant>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<(StatusCode, Json<SnapshotStatus>)> {
    let bytes = read_body(&headers, body, state.limits.max_manifest_bytes, "manifest").await?;
    let manifest: Manifest = parse_json(&bytes, "manifest")?;
    let limits =
        ManifestLimits { max_part_bytes: state.limits.max_part_bytes, max_parts: state.limits.max_parts };
    validate_manifest(&manifest, SCHEMA_VERSIONS, &limits)?;
    let formats = state.limits.part_formats();
    if !formats.contains(&manifest.part_format) {
        return Err(ApiError::bad_request(
            "unsupported_part_format",
            format!(
                "part_format `{}` is not accepted by this hub (it accepts: {}). Resolution: ask GET /v1/capabilities and write parts in one of those formats",
                manifest.part_format,
                formats.iter().map(PartFormat::as_str).collect::<Vec<_>>().join(", ")
            ),
        ));
    }
    let id = snapshot_id(&manifest);
    let meta = state.meta.clone();
    let (created, record) = blocking(move || {
        crate::identity::check_signed(&state, &tenant, &manifest.agent_id, &headers, &bytes, SIGNED_LABEL)?;
        let created = meta.insert_snapshot(&tenant, &id, &manifest, &now())?;
        Ok((created, load_snapshot(&*meta, &tenant, &id)?))
    })
    .await?;
    if created {
        tracing::info!(snapshot = %record.snapshot_id, company = %record.manifest.company.id,
            year = record.manifest.fiscal_year, parts = record.manifest.parts.len(), "Snapshot opened.");
    }
    let status = if created { StatusCode::CREATED } else { StatusCode::OK };
    let missing_parts =
        if record.state == SnapshotState::Committed { Vec::new() } else { record.missing_parts() };
    Ok((status, Json(SnapshotStatus { snapshot_id: record.snapshot_id, state: record.state, missing_parts })))
}

/// `GET /v1/snapshots/{snapshot_id}`: state, missing parts and manifest of one snapshot.
pub async fn get_snapshot(
    State(state): State<AppState>,
    Extension(tenant): Extension<Tenant>,
    Path(id): Path<String>,
) -> ApiResult<Json<SnapshotInfo>> {
    check_snapshot_id(&id)?;
    let record = blocking(move || load_snapshot(&*state.meta, &tenant, &id)).await?;
    Ok(Json(SnapshotInfo {
        summary: record.summary(),
        missing_parts: record.missing_parts(),
        manifest: record.manifest,
    }))
}

/// `PUT /v1/snapshots/{snapshot_id}/parts/{index}`: one part's compressed bytes, verified at once.
pub async fn put_part(
    State(state): State<AppState>,
    Extension(tenant): Extension<Tenant>,
    Path((id, index)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<StatusCode> {
    check_snapshot_id(&id)?;
    let meta = state.meta.clone();
    let record = {
        let (tenant, id) = (tenant.clone(), id.clone());
        blocking(move || load_snapshot(&*meta, &tenant, &id)).await?
    };
    let part = part_of(&record, &index)?;
    let bytes = read_body(&headers, body, state.limits.max_part_bytes, "part").await?;
    if bytes.len() as u64 != part.bytes {
        return Err(ApiError::bad_request(
            "part_size_mismatch",
            format!("part {} has {} bytes but the manifest says {}", part.index, bytes.len(), part.bytes),
        )
        .with_details(json!({ "part": part.index, "declared": part.bytes, "received": bytes.len() })));
    }
    let actual = sha256_hex(&bytes);
    if actual != part.sha256 {
        return Err(ApiError::bad_request(
            "part_checksum_mismatch",
            format!("part {} has sha256 {actual} but the manifest says {}", part.index, part.sha256),
        )
        .with_details(json!({ "part": part.index, "declared": part.sha256, "received": actual })));
    }
    if record.stored_parts.contains(&part.index) {
        return Ok(StatusCode::NO_CONTENT);
    }
    let index = part.index;
    blocking(move || {
        let key = BlobKey { tenant_id: tenant.id, snapshot_id: id.clone(), index };
        state.blobs.put(&key, &bytes)?;
        state.meta.mark_part_stored(&tenant, &id, index, &now())?;
        Ok(())
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

fn part_of(record: &SnapshotRecord, index: &str) -> ApiResult<PartInfo> {
    let count = record.manifest.parts.len();
    let not_found = || {
        ApiError::not_found(
            "part_not_found",
            format!("snapshot `{}` has parts 0..{}; there is no part `{index}`", record.snapshot_id, count),
        )
    };
    let index: u32 = index.parse().map_err(|_| not_found())?;
    record.manifest.parts.iter().find(|p| p.index == index).cloned().ok_or_else(not_found)
}

/// `POST /v1/snapshots/{snapshot_id}/commit`: verifies everything, then makes the snapshot current.
pub async fn commit_snapshot(
    State(state): State<AppState>,
    Extension(tenant): Extension<Tenant>,
    Path(id): Path<String>,
) -> ApiResult<Json<SnapshotSummary>> {
    check_snapshot_id(&id)?;
    let summary = blocking(move || {
        let (meta, blobs) = (&*state.meta, &*state.blobs);
        let record = load_snapshot(meta, &tenant, &id)?;
        if record.state == SnapshotState::Committed {
            return Ok(record.summary());
        }
        let missing = record.missing_parts();
        if !missing.is_empty() {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "parts_missing",
                format!("cannot commit: parts {missing:?} have not been uploaded"),
            )
            .with_details(json!({ "missing_parts": missing })));
        }
        let data = match verify_snapshot(meta, blobs, &tenant, &record, &state.verifiers) {
            Ok(data) => data,
            Err(e) => {
                tracing::warn!(snapshot = %id, code = e.code, reason = %e.message, "Snapshot refused at commit.");
                return Err(e);
            }
        };
        if meta.commit_snapshot(&tenant, &id, &data, &now())? {
            tracing::info!(snapshot = %id, company = %record.manifest.company.id, year = record.manifest.fiscal_year,
                records = data.records, "Snapshot committed.");
        }
        Ok(load_snapshot(meta, &tenant, &id)?.summary())
    })
    .await?;
    Ok(Json(summary))
}

/// `GET /v1/snapshots/{snapshot_id}/entities/{entity}`: the records of one entity as NDJSON, streamed.
pub async fn entity_records(
    State(state): State<AppState>,
    Extension(tenant): Extension<Tenant>,
    Path((id, entity)): Path<(String, String)>,
) -> ApiResult<Response> {
    check_snapshot_id(&id)?;
    let entity: Entity = entity.parse().map_err(|e: ledgerlink_plugin_api::canonical::UnknownEntity| {
        ApiError::not_found("unknown_entity", e.to_string())
    })?;
    let meta = state.meta.clone();
    let record = {
        let (tenant, id) = (tenant.clone(), id.clone());
        blocking(move || load_snapshot(&*meta, &tenant, &id)).await?
    };
    if record.state != SnapshotState::Committed {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "snapshot_not_committed",
            format!("snapshot `{id}` is not committed yet; only committed snapshots can be read"),
        ));
    }
    let format = record.manifest.part_format;
    let mut parts: Vec<PartInfo> = record.manifest.parts.into_iter().filter(|p| p.entity == entity).collect();
    parts.sort_by_key(|p| p.index);
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    let blobs = Arc::clone(&state.blobs);
    tokio::task::spawn_blocking(move || {
        for part in parts {
            let key = BlobKey { tenant_id: tenant.id, snapshot_id: id.clone(), index: part.index };
            let reader = match blobs.open(&key) {
                Ok(Some(reader)) => reader,
                Ok(None) => {
                    tracing::error!(snapshot = %id, part = part.index, "Part of a committed snapshot is missing.");
                    let _ = tx.blocking_send(Err(std::io::Error::other("part missing")));
                    return;
                }
                Err(e) => {
                    tracing::error!(snapshot = %id, part = part.index, error = %e, "Cannot open part.");
                    let _ = tx.blocking_send(Err(std::io::Error::other(e.to_string())));
                    return;
                }
            };
            let batches = match PartReader::new(format, part.entity, part.index, BufReader::new(reader)) {
                Ok(batches) => batches,
                Err(e) => {
                    let _ = tx.blocking_send(Err(std::io::Error::other(e.to_string())));
                    return;
                }
            };
            for batch in batches {
                let chunk = batch.map_err(|e| std::io::Error::other(e.to_string())).and_then(|batch| {
                    let mut buf = Vec::new();
                    write_batch_ndjson(&batch, &mut buf)?;
                    Ok(Bytes::from(buf))
                });
                let failed = chunk.is_err();
                if tx.blocking_send(chunk).is_err() || failed {
                    return;
                }
            }
        }
    });
    let stream = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx));
    Ok(([(CONTENT_TYPE, HeaderValue::from_static(NDJSON_CONTENT_TYPE))], Body::from_stream(stream))
        .into_response())
}

/// `GET /v1/companies`: the tenant's companies with committed data.
pub async fn companies(
    State(state): State<AppState>,
    Extension(tenant): Extension<Tenant>,
) -> ApiResult<Json<CompanyList>> {
    let companies = blocking(move || Ok(state.meta.companies(&tenant)?)).await?;
    Ok(Json(CompanyList { companies }))
}

/// Finds which source's company `company_id` means; `source` picks one when several deliver it.
pub(crate) fn resolve_company(
    meta: &dyn MetadataStore,
    tenant: &Tenant,
    company_id: &str,
    query: &HashMap<String, String>,
) -> ApiResult<CompanyKey> {
    let sources = meta.company_sources(tenant, company_id)?;
    let not_found =
        || ApiError::not_found("company_not_found", format!("company `{company_id}` has no committed data"));
    let source_id = match query.get("source") {
        Some(source) if sources.contains(source) => source.clone(),
        Some(source) => {
            return Err(ApiError::not_found(
                "company_not_found",
                format!("company `{company_id}` has no committed data from source `{source}`"),
            ))
        }
        None => match sources.as_slice() {
            [] => return Err(not_found()),
            [only] => only.clone(),
            _ => {
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    "ambiguous_company",
                    format!(
                        "company `{company_id}` comes from several sources ({}); pass `source=`",
                        sources.join(", ")
                    ),
                )
                .with_details(json!({ "sources": sources })))
            }
        },
    };
    Ok(CompanyKey { source_id, company_id: company_id.to_owned() })
}

pub(crate) fn year_param(query: &HashMap<String, String>, required: bool) -> ApiResult<Option<i32>> {
    match query.get("year") {
        None if required => Err(ApiError::bad_request("missing_year", "query parameter `year` is required")),
        None => Ok(None),
        Some(text) => text.parse().map(Some).map_err(|_| {
            ApiError::bad_request(
                "invalid_year",
                format!("query parameter `year` must be a number, not `{text}`"),
            )
        }),
    }
}

/// `GET /v1/companies/{company_id}/snapshots`: committed snapshots, newest first.
pub async fn company_snapshots(
    State(state): State<AppState>,
    Extension(tenant): Extension<Tenant>,
    Path(company_id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult<Json<SnapshotList>> {
    let year = year_param(&query, false)?;
    let snapshots = blocking(move || {
        let key = resolve_company(&*state.meta, &tenant, &company_id, &query)?;
        Ok(state.meta.history(&tenant, &key, year)?)
    })
    .await?;
    Ok(Json(SnapshotList { snapshots }))
}

/// `GET /v1/companies/{company_id}/current?year=Y`: the current snapshot of a company and year.
pub async fn company_current(
    State(state): State<AppState>,
    Extension(tenant): Extension<Tenant>,
    Path(company_id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult<Json<SnapshotSummary>> {
    let year = year_param(&query, true)?.unwrap_or_default();
    let record = blocking(move || {
        let key = resolve_company(&*state.meta, &tenant, &company_id, &query)?;
        state.meta.current(&tenant, &key, year)?.ok_or_else(|| no_current(&company_id, year))
    })
    .await?;
    Ok(Json(record.summary()))
}

fn no_current(company_id: &str, year: i32) -> ApiError {
    ApiError::not_found(
        "no_current_snapshot",
        format!("company `{company_id}` has no committed snapshot for fiscal year {year}"),
    )
}

/// `GET /v1/companies/{company_id}/trial-balance?year=Y`: stored trial balance of the current snapshot.
pub async fn trial_balance(
    State(state): State<AppState>,
    Extension(tenant): Extension<Tenant>,
    Path(company_id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult<Json<TrialBalanceResponse>> {
    let year = year_param(&query, true)?.unwrap_or_default();
    let response = blocking(move || {
        let key = resolve_company(&*state.meta, &tenant, &company_id, &query)?;
        let stored =
            state.meta.trial_balance(&tenant, &key, year)?.ok_or_else(|| no_current(&company_id, year))?;
        Ok(TrialBalanceResponse {
            snapshot_id: stored.snapshot_id,
            source_id: key.source_id,
            company_id: key.company_id,
            fiscal_year: year,
            currency: stored.company.currency,
            accounts: stored.trial_balance,
        })
    })
    .await?;
    Ok(Json(response))
}

/// The parts of `Ledgerlink/<version> (<host>; <OS>; <service user>; <ERP>)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserAgent {
    /// Agent version.
    pub version: String,
    /// Host name.
    pub host: String,
    /// Operating system.
    pub os: String,
    /// Service user the agent runs as.
    pub service_user: String,
    /// ERP systems served.
    pub erp: String,
}

/// Parses the agent's `User-Agent` header.
pub fn parse_user_agent(text: &str) -> Option<UserAgent> {
    let rest = text.strip_prefix("Ledgerlink/")?;
    let (version, rest) = rest.split_once(" (")?;
    let inner = rest.strip_suffix(')')?;
    let mut fields = inner.splitn(4, "; ").map(str::trim);
    let mut next = || fields.next().filter(|f| !f.is_empty()).map(str::to_owned);
    let ua = UserAgent {
        version: version.trim().to_owned(),
        host: next()?,
        os: next()?,
        service_user: next()?,
        erp: next()?,
    };
    (!ua.version.is_empty()).then_some(ua)
}

/// `POST /v1/agents/hello`: records an agent's version report.
pub async fn agent_hello(
    State(state): State<AppState>,
    Extension(tenant): Extension<Tenant>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<HelloResponse>> {
    let user_agent = headers.get(USER_AGENT).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let parsed = parse_user_agent(&user_agent).ok_or_else(|| {
        ApiError::bad_request(
            "invalid_user_agent",
            format!(
                "User-Agent `{user_agent}` is not of the form `Ledgerlink/<version> (<host>; <OS>; <service user>; <ERP>)`"
            ),
        )
    })?;
    let bytes = read_body(&headers, body, state.limits.max_manifest_bytes, "hello body").await?;
    let hello: AgentHello = parse_json(&bytes, "hello body")?;
    if hello.agent_id.trim().is_empty() || hello.version.trim().is_empty() {
        return Err(ApiError::bad_request("empty_field", "`agent_id` and `version` must not be empty"));
    }
    {
        let (state, tenant, agent_id) = (state.clone(), tenant.clone(), hello.agent_id.clone());
        let (headers, bytes) = (headers.clone(), bytes.clone());
        blocking(move || {
            crate::identity::check_signed(&state, &tenant, &agent_id, &headers, &bytes, HELLO_LABEL)
        })
        .await?;
    }
    let report = AgentReport {
        info: AgentInfo {
            agent_id: hello.agent_id.clone(),
            version: hello.version.clone(),
            user_agent,
            host: Some(parsed.host),
            os: Some(parsed.os),
            service_user: Some(parsed.service_user),
            erp: Some(parsed.erp),
            plugins: hello.plugins,
            last_seen: now(),
        },
        body: String::from_utf8_lossy(&bytes).into_owned(),
    };
    blocking(move || Ok(state.meta.record_agent(&tenant, &report)?)).await?;
    Ok(Json(HelloResponse {
        agent_id: hello.agent_id,
        protocol_versions: vec![PROTOCOL_VERSION],
        schema_versions: SCHEMA_VERSIONS.to_vec(),
        hub_version: env!("CARGO_PKG_VERSION").to_owned(),
    }))
}

/// `GET /v1/capabilities`: the protocol and schema versions and part formats this hub accepts.
pub async fn capabilities(State(state): State<AppState>) -> Json<Capabilities> {
    Json(Capabilities {
        protocol_versions: vec![PROTOCOL_VERSION],
        schema_versions: SCHEMA_VERSIONS.to_vec(),
        part_formats: state.limits.part_formats().iter().map(|f| f.as_str().to_owned()).collect(),
        hub_version: env!("CARGO_PKG_VERSION").to_owned(),
    })
}

/// `GET /v1/agents`: the agents that reported, with their latest report.
pub async fn agents(
    State(state): State<AppState>,
    Extension(tenant): Extension<Tenant>,
) -> ApiResult<Json<AgentList>> {
    let agents = blocking(move || Ok(state.meta.agents(&tenant)?)).await?;
    Ok(Json(AgentList { agents }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_agent_is_parsed_and_bad_forms_refused() {
        let ua = parse_user_agent("Ledgerlink/1.4.0 (srv-erp01; Windows Server 2022; NT SERVICE\\ledgerlink; Visma Business; SAP B1)")
            .unwrap();
        assert_eq!(ua.version, "1.4.0");
        assert_eq!(ua.host, "srv-erp01");
        assert_eq!(ua.service_user, "NT SERVICE\\ledgerlink");
        assert_eq!(ua.erp, "Visma Business; SAP B1");
        assert!(parse_user_agent("curl/8.0").is_none());
        assert!(parse_user_agent("Ledgerlink/1.0 (a; b; c)").is_none());
        assert!(parse_user_agent("Ledgerlink/ (a; b; c; d)").is_none());
    }
}
