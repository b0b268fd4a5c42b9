//! The HTTP server: route table, router, request log, TLS and the serve loop.

use crate::auth::{self, TenantName};
use crate::control::ControlHub;
use crate::error::ApiError;
use crate::ingest::Verifiers;
use crate::storage::{
    AgentKeyStore, BlobStore, ConsentStore, ControlStore, FsBlobStore, MetadataStore, SqliteStore,
};
use crate::{admin, api, consent, control};
use anyhow::{bail, Context};
use axum::extract::Request;
use axum::handler::Handler;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{on, MethodFilter, MethodRouter};
use axum::Router;
use ledgerlink_protocol::PartFormat;
use std::collections::BTreeMap;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Request size and count limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest part body, in bytes.
    pub max_part_bytes: u64,
    /// Largest manifest (and other JSON) body, in bytes.
    pub max_manifest_bytes: u64,
    /// Most parts per snapshot.
    pub max_parts: usize,
    /// Whether postcard parts are accepted (without them, only NDJSON, as before decision 0021).
    pub postcard_parts: bool,
    /// Threads a commit may verify voucher lines on: its own plus spares, of
    /// which all commits together share this − 1 (decision 0022).
    pub verify_threads: usize,
    /// Refuse unsigned offers from every agent, not only from those with a key (decision 0029).
    pub require_agent_signatures: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_part_bytes: 64 * 1024 * 1024,
            max_manifest_bytes: 1024 * 1024,
            max_parts: 10_000,
            postcard_parts: true,
            verify_threads: default_verify_threads(),
            require_agent_signatures: false,
        }
    }
}

/// Threads to verify on when not configured: one per core, at most 8.
pub fn default_verify_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get()).min(8)
}

impl Limits {
    /// The part formats this hub accepts, the preferred first.
    pub fn part_formats(&self) -> Vec<PartFormat> {
        PartFormat::ALL.into_iter().filter(|f| self.postcard_parts || f.is_ndjson()).collect()
    }
}

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    /// Metadata store.
    pub meta: Arc<dyn MetadataStore>,
    /// Part bytes.
    pub blobs: Arc<dyn BlobStore>,
    /// Limits.
    pub limits: Limits,
    /// Control-plane metadata (support tokens, agents, commands, audit log).
    pub control_store: Arc<dyn ControlStore>,
    /// Support-access grants and the log of support's looks.
    pub consent: Arc<dyn ConsentStore>,
    /// The identity key each agent is known by.
    pub agent_keys: Arc<dyn AgentKeyStore>,
    /// Connected agents.
    pub control: Arc<ControlHub>,
    /// The threads commits may verify voucher lines on besides their own.
    pub verifiers: Arc<Verifiers>,
}

impl AppState {
    /// The embedded storage under a data directory: `hub.sqlite3` and `parts/`.
    pub fn open(data: &Path, limits: Limits) -> anyhow::Result<Self> {
        let (meta, blobs) = open_storage(data)?;
        let meta = Arc::new(meta);
        // No connection survives a restart: every agent is offline until it connects again.
        meta.all_agents_offline().context("cannot reset the agent registry")?;
        let verifiers = Arc::new(Verifiers::new(limits.verify_threads));
        Ok(Self {
            meta: meta.clone(),
            blobs: Arc::new(blobs),
            limits,
            control_store: meta.clone(),
            consent: meta.clone(),
            agent_keys: meta,
            control: Arc::new(ControlHub::default()),
            verifiers,
        })
    }
}

/// Opens (creating) the embedded storage under `data`.
pub fn open_storage(data: &Path) -> anyhow::Result<(SqliteStore, FsBlobStore)> {
    std::fs::create_dir_all(data)
        .with_context(|| format!("cannot create data directory {}", data.display()))?;
    let meta = SqliteStore::open(&data.join("hub.sqlite3"))
        .with_context(|| format!("cannot open the hub database in {}", data.display()))?;
    let blobs = FsBlobStore::open(&data.join("parts"))
        .with_context(|| format!("cannot open the part store in {}", data.display()))?;
    Ok((meta, blobs))
}

/// One route of the API: the single list the router and the OpenAPI check are built from.
pub struct Route {
    /// HTTP method (upper case).
    pub method: &'static str,
    /// Path in OpenAPI/axum syntax (`{param}`).
    pub path: &'static str,
    /// True when the route requires a tenant API key (or, with `admin`, a support token).
    pub auth: bool,
    /// True for the admin API: authenticated by a support token instead of a tenant key.
    pub admin: bool,
    /// True for a read of tenant data that support may also make, with the tenant's
    /// consent (`Ledgerlink-Tenant` header; [`consent::require_tenant_or_consented_support`]).
    pub support_reads: bool,
    handler: MethodRouter<AppState>,
}

fn route<H, T>(method: &'static str, path: &'static str, auth: bool, handler: H) -> Route
where
    H: Handler<T, AppState>,
    T: 'static,
{
    let filter = match method {
        "GET" => MethodFilter::GET,
        "POST" => MethodFilter::POST,
        "PUT" => MethodFilter::PUT,
        "DELETE" => MethodFilter::DELETE,
        other => panic!("method {other} is not used by this API"),
    };
    Route { method, path, auth, admin: false, support_reads: false, handler: on(filter, handler) }
}

/// A route of the admin API: authenticated by a support token.
fn admin_route<H, T>(method: &'static str, path: &'static str, handler: H) -> Route
where
    H: Handler<T, AppState>,
    T: 'static,
{
    Route { admin: true, ..route(method, path, true, handler) }
}

/// A read of tenant data: by the tenant's key, or by support with the tenant's consent.
fn data_route<H, T>(path: &'static str, handler: H) -> Route
where
    H: Handler<T, AppState>,
    T: 'static,
{
    Route { support_reads: true, ..route("GET", path, true, handler) }
}

/// Every route the hub serves.
pub fn routes() -> Vec<Route> {
    vec![
        route("GET", "/healthz", false, api::healthz),
        route("GET", "/v1/openapi.json", false, api::openapi),
        route("GET", "/v1/capabilities", true, api::capabilities),
        route("POST", "/v1/agents/hello", true, api::agent_hello),
        route("GET", "/v1/agents", true, api::agents),
        route("GET", "/v1/agents/{agent_id}/companies", true, admin::own_companies),
        route(
            "PUT",
            "/v1/agents/{agent_id}/sources/{source_id}/companies",
            true,
            admin::select_own_companies,
        ),
        route("POST", "/v1/snapshots", true, api::create_snapshot),
        data_route("/v1/snapshots/{snapshot_id}", api::get_snapshot),
        route("PUT", "/v1/snapshots/{snapshot_id}/parts/{index}", true, api::put_part),
        route("POST", "/v1/snapshots/{snapshot_id}/commit", true, api::commit_snapshot),
        data_route("/v1/snapshots/{snapshot_id}/entities/{entity}", api::entity_records),
        data_route("/v1/companies", api::companies),
        data_route("/v1/companies/{company_id}/snapshots", api::company_snapshots),
        data_route("/v1/companies/{company_id}/current", api::company_current),
        data_route("/v1/companies/{company_id}/trial-balance", api::trial_balance),
        route("GET", "/v1/control/ws", true, control::websocket),
        route("GET", "/v1/control/sse", true, control::sse),
        route("GET", "/v1/control/poll", true, control::poll),
        route("POST", "/v1/control/messages", true, control::messages),
        route("POST", "/v1/support-access", true, consent::grant),
        route("GET", "/v1/support-access", true, consent::list),
        route("DELETE", "/v1/support-access/{grant_id}", true, consent::revoke),
        route("GET", "/console", false, admin::console),
        admin_route("GET", "/v1/admin/whoami", admin::whoami),
        admin_route("GET", "/v1/admin/agents", admin::agents),
        admin_route("GET", "/v1/admin/agents/{tenant}/{agent_id}", admin::agent),
        admin_route("POST", "/v1/admin/agents/{tenant}/{agent_id}/commands", admin::create_command),
        admin_route("GET", "/v1/admin/agents/{tenant}/{agent_id}/commands/{command_id}", admin::get_command),
        admin_route(
            "PUT",
            "/v1/admin/agents/{tenant}/{agent_id}/sources/{source_id}/companies",
            admin::select_companies,
        ),
        admin_route("POST", "/v1/admin/agents/{tenant}/{agent_id}/key/reset", admin::reset_agent_key),
        admin_route("GET", "/v1/admin/audit", admin::audit),
        admin_route("GET", "/v1/admin/support-access", consent::admin_list),
        data_route("/v1/companies/{company_id}/saf-t", crate::saft::http::export),
    ]
}

/// The (method, path, auth) of every route, for checks against the OpenAPI description.
pub fn route_list() -> Vec<(&'static str, &'static str, bool)> {
    routes().into_iter().map(|r| (r.method, r.path, r.auth)).collect()
}

/// The whole application: routes, authentication, JSON fallbacks and the request log.
pub fn router(state: AppState) -> Router {
    let mut by_path: BTreeMap<(bool, bool, bool, &'static str), MethodRouter<AppState>> = BTreeMap::new();
    for r in routes() {
        let key = (r.auth, r.admin, r.support_reads, r.path);
        let merged = match by_path.remove(&key) {
            Some(existing) => existing.merge(r.handler),
            None => r.handler,
        };
        by_path.insert(key, merged);
    }
    let (mut public, mut private, mut admin, mut data) =
        (Router::new(), Router::new(), Router::new(), Router::new());
    for ((auth, is_admin, support_reads, path), handler) in by_path {
        if is_admin {
            admin = admin.route(path, handler);
        } else if support_reads {
            data = data.route(path, handler);
        } else if auth {
            private = private.route(path, handler);
        } else {
            public = public.route(path, handler);
        }
    }
    let private = private.route_layer(middleware::from_fn_with_state(state.clone(), auth::require_tenant));
    let admin = admin.route_layer(middleware::from_fn_with_state(state.clone(), auth::require_support));
    let data = data.route_layer(middleware::from_fn_with_state(
        state.clone(),
        consent::require_tenant_or_consented_support,
    ));
    public
        .merge(private)
        .merge(admin)
        .merge(data)
        .fallback(|| async { ApiError::not_found("not_found", "no such endpoint; see /v1/openapi.json") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                axum::http::StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "method not allowed here",
            )
        })
        .layer(middleware::from_fn(log_request))
        .with_state(state)
}

/// Logs one line per request: method, path, status, latency and tenant — never the key.
async fn log_request(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let response = next.run(request).await;
    let tenant = response.extensions().get::<TenantName>().map_or("-", |t| t.0.as_str());
    tracing::info!(
        method = %method,
        path = %path,
        status = response.status().as_u16(),
        latency_ms = %format_args!("{:.3}", started.elapsed().as_secs_f64() * 1000.0),
        tenant = %tenant,
        "Request handled."
    );
    response
}

/// How to run the server.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Data directory.
    pub data: PathBuf,
    /// Address to listen on.
    pub listen: SocketAddr,
    /// PEM certificate chain and private key; plain HTTP when absent (loopback only).
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Limits.
    pub limits: Limits,
}

/// Loads a rustls server config (ring provider) from PEM files.
fn tls_config(cert: &Path, key: &Path) -> anyhow::Result<rustls::ServerConfig> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_file_iter(cert)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .with_context(|| format!("cannot read certificates from {}", cert.display()))?;
    if certs.is_empty() {
        bail!("{} holds no PEM certificate", cert.display());
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .with_context(|| format!("cannot read a private key from {}", key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("cannot set up TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("the certificate and private key do not form a usable pair")?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// Runs the server until Ctrl-C or SIGTERM; prints `listening on <url>` once bound.
pub async fn serve(config: ServeConfig) -> anyhow::Result<()> {
    if config.tls.is_none() && !config.listen.ip().is_loopback() {
        bail!(
            "refusing to serve plain HTTP on {}, which is not a loopback address: API keys would travel in clear text. \
             Resolution: pass --tls-cert FILE --tls-key FILE, or listen on 127.0.0.1 behind a TLS-terminating proxy",
            config.listen
        );
    }
    let tls = match &config.tls {
        Some((cert, key)) => Some(tls_config(cert, key)?),
        None => None,
    };
    let state = AppState::open(&config.data, config.limits)?;
    let app = router(state);

    let listener = std::net::TcpListener::bind(config.listen)
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let scheme = if tls.is_some() { "https" } else { "http" };

    let handle = axum_server::Handle::new();
    tokio::spawn({
        let handle = handle.clone();
        async move {
            shutdown_signal().await;
            tracing::info!("Shutting down; draining connections.");
            handle.graceful_shutdown(Some(Duration::from_secs(10)));
        }
    });

    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "listening on {scheme}://{addr}")?;
    stdout.flush()?;
    drop(stdout);
    tracing::info!(%addr, tls = tls.is_some(), data = %config.data.display(), "Hub started.");

    let service = app.into_make_service();
    match tls {
        Some(tls) => {
            let tls = axum_server::tls_rustls::RustlsConfig::from_config(Arc::new(tls));
            axum_server::from_tcp_rustls(listener, tls).handle(handle).serve(service).await?
        }
        None => axum_server::from_tcp(listener).handle(handle).serve(service).await?,
    }
    tracing::info!("Hub stopped.");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn openapi_operations() -> BTreeSet<(String, String, bool)> {
        let doc: serde_json::Value = serde_json::from_str(api::OPENAPI_JSON).expect("openapi.json is JSON");
        assert!(doc["openapi"].as_str().unwrap().starts_with("3."), "OpenAPI 3");
        let mut ops = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for (method, op) in item.as_object().unwrap() {
                if !["get", "put", "post", "delete", "patch", "head", "options"].contains(&method.as_str()) {
                    continue;
                }
                // `security: []` on an operation means no authentication.
                let public = op.get("security").and_then(|s| s.as_array()).is_some_and(|s| s.is_empty());
                ops.insert((method.to_uppercase(), path.clone(), !public));
            }
        }
        ops
    }

    #[test]
    fn openapi_describes_exactly_the_served_routes() {
        let served: BTreeSet<(String, String, bool)> =
            route_list().into_iter().map(|(m, p, a)| (m.to_owned(), p.to_owned(), a)).collect();
        let documented = openapi_operations();
        let undocumented: Vec<_> = served.difference(&documented).collect();
        let unserved: Vec<_> = documented.difference(&served).collect();
        assert!(
            undocumented.is_empty(),
            "served but not in openapi.json (or auth differs): {undocumented:?}"
        );
        assert!(unserved.is_empty(), "in openapi.json but not served (or auth differs): {unserved:?}");
    }

    #[test]
    fn router_builds() {
        let dir = tempfile::tempdir().unwrap();
        let _ = router(AppState::open(dir.path(), Limits::default()).unwrap());
    }
}
