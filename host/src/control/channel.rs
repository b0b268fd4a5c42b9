//! One outbound control connection per tenant: WebSocket, else Server-Sent
//! Events, else long-polling; heartbeats; reconnects with exponential backoff
//! and jitter. Everything goes through reqwest (rustls, the configured proxy):
//! the WebSocket is an HTTP/1.1 upgrade of a reqwest request, framed by
//! tokio-tungstenite, so a proxy that passes HTTPS passes the control channel.

use super::executor;
use super::{channel_key, logbuf, outbox_notify, DesiredState, JobBoard};
use crate::config::{ControlConfig, ControlTransport, Tenant};
use crate::jobs::Agent;
use crate::state::StateStore;
use futures_util::{SinkExt, StreamExt};
use ledgerlink_protocol::control::{
    AgentMessage, AgentStatus, HubMessage, PluginStatus, SourceStatus, Transport,
};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use tokio::sync::{mpsc, watch, Notify};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

/// The service's current agent; replaced when the configuration is reloaded.
pub type AgentCell = Arc<RwLock<Arc<Agent>>>;

/// Everything one tenant's channel and its commands share.
pub(crate) struct Ctx {
    pub(crate) cell: AgentCell,
    pub(crate) tenant: Tenant,
    pub(crate) settings: ControlConfig,
    pub(crate) board: &'static JobBoard,
    pub(crate) reload: Arc<Notify>,
    pub(crate) agent_id: String,
    http: reqwest::Client,
    base: String,
    request_timeout: Duration,
    transport: Mutex<Option<Transport>>,
    /// Command ids executing now (a re-delivered command must not start twice).
    pub(crate) executing: Mutex<HashSet<String>>,
    plugin_versions: Mutex<Option<HashMap<String, String>>>,
}

impl Ctx {
    pub(crate) fn agent(&self) -> Arc<Agent> {
        self.cell.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The tenant as currently configured (after a reload, its new sources).
    pub(crate) fn tenant(&self) -> Tenant {
        let agent = self.agent();
        agent
            .config
            .tenants
            .iter()
            .find(|t| t.id == self.tenant.id)
            .cloned()
            .unwrap_or_else(|| self.tenant.clone())
    }

    pub(crate) fn transport(&self) -> Option<Transport> {
        *self.transport.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Starts one control channel per tenant (when `[control]` is configured and enabled).
pub fn start(
    cell: AgentCell,
    reload: Arc<Notify>,
    agent_id: String,
    stop: watch::Receiver<bool>,
) -> Vec<JoinHandle<()>> {
    let agent = cell.read().unwrap_or_else(|p| p.into_inner()).clone();
    let Some(settings) = agent.config.control.clone().filter(|c| c.enabled) else {
        return Vec::new();
    };
    let mut tasks = Vec::new();
    for tenant in &agent.config.tenants {
        let mut builder = reqwest::Client::builder()
            .user_agent(crate::hub_client::user_agent("-", agent.config.agent.service_user.as_deref()))
            .connect_timeout(agent.config.hub.timeout().min(Duration::from_secs(30)))
            .use_rustls_tls()
            .http1_only();
        if let Some(proxy) = agent.config.hub.effective_proxy() {
            match reqwest::Proxy::all(&proxy) {
                Ok(proxy) => builder = builder.proxy(proxy),
                Err(e) => {
                    tracing::error!(tenant = %tenant.id, error = %e, "The proxy URL is not usable; no control channel.");
                    continue;
                }
            }
        }
        let http = match builder.build() {
            Ok(http) => http,
            Err(e) => {
                tracing::error!(tenant = %tenant.id, error = %e, "Cannot set up the control channel's HTTP client.");
                continue;
            }
        };
        let ctx = Arc::new(Ctx {
            cell: cell.clone(),
            tenant: tenant.clone(),
            settings: settings.clone(),
            board: super::board(),
            reload: reload.clone(),
            agent_id: agent_id.clone(),
            http,
            base: agent.config.hub.url.trim_end_matches('/').to_owned(),
            request_timeout: agent.config.hub.timeout(),
            transport: Mutex::new(None),
            executing: Mutex::new(HashSet::new()),
            plugin_versions: Mutex::new(None),
        });
        tasks.push(tokio::spawn(tenant_loop(ctx, stop.clone())));
    }
    tasks
}

/// How a session ended.
enum End {
    /// Shutdown.
    Stopped,
    /// The connection was up and broke (or went silent).
    Lost(String),
}

fn jitter(base: Duration) -> Duration {
    let mut byte = [0u8; 1];
    let _ = getrandom::fill(&mut byte);
    // 50 % to 150 % of the base.
    base.mul_f64(0.5 + f64::from(byte[0]) / 255.0)
}

async fn tenant_loop(ctx: Arc<Ctx>, mut stop: watch::Receiver<bool>) {
    let min = Duration::from_secs(ctx.settings.reconnect_min_secs.max(1));
    let max = Duration::from_secs(ctx.settings.reconnect_max_secs.max(1)).max(min);
    let mut backoff = min;
    // The last failure logged as a warning: a lasting one is logged once, not per retry.
    let mut warned = String::new();
    let order: &[Transport] = match ctx.settings.transport {
        ControlTransport::Auto => &[Transport::Websocket, Transport::Sse, Transport::LongPoll],
        ControlTransport::Websocket => &[Transport::Websocket],
        ControlTransport::Sse => &[Transport::Sse],
        ControlTransport::LongPoll => &[Transport::LongPoll],
    };
    loop {
        if *stop.borrow() {
            return;
        }
        let mut was_up = false;
        let mut last_error = String::new();
        for &transport in order {
            channel_state(&ctx, "connecting", Some(transport), None).await;
            let result = match transport {
                Transport::Websocket => websocket(&ctx, &mut stop).await,
                Transport::Sse => sse(&ctx, &mut stop).await,
                Transport::LongPoll => long_poll(&ctx, &mut stop).await,
            };
            *ctx.transport.lock().unwrap_or_else(|p| p.into_inner()) = None;
            match result {
                Ok(End::Stopped) => {
                    channel_state(&ctx, "stopped", None, None).await;
                    return;
                }
                Ok(End::Lost(reason)) => {
                    tracing::warn!(tenant = %ctx.tenant.id, %transport, %reason, "Control channel lost; reconnecting.");
                    was_up = true;
                    last_error = reason;
                    break;
                }
                Err(e) => {
                    tracing::info!(tenant = %ctx.tenant.id, %transport, error = %e, "Control channel could not connect with this transport.");
                    last_error = format!("{transport}: {e}");
                }
            }
        }
        if was_up {
            backoff = min;
            warned.clear();
        } else if last_error != warned {
            // Every transport failed: say so at a level people read, with the resolution it carries.
            tracing::warn!(tenant = %ctx.tenant.id, error = %last_error, "Control channel is down; the agent keeps retrying (syncs and uploads are not affected).");
            warned = last_error.clone();
        }
        channel_state(&ctx, "disconnected", None, Some(&last_error)).await;
        let wait = jitter(backoff);
        tracing::debug!(tenant = %ctx.tenant.id, wait_ms = wait.as_millis() as u64, "Waiting before reconnecting.");
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.changed() => return,
        }
        if !was_up {
            backoff = (backoff * 2).min(max);
        }
    }
}

/// Stores the channel's state for `ledgerlink status`.
async fn channel_state(ctx: &Arc<Ctx>, state: &str, transport: Option<Transport>, error: Option<&str>) {
    let value = serde_json::json!({
        "state": state,
        "transport": transport.map(|t| t.as_str()),
        "since": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "last_error": error,
    })
    .to_string();
    let (agent, tenant) = (ctx.agent(), ctx.tenant.id.clone());
    let _ = tokio::task::spawn_blocking(move || {
        if let Ok(store) = agent.state() {
            let _ = store.set_setting(&channel_key(&tenant), &value);
        }
    })
    .await;
}

fn connect_url(ctx: &Ctx, endpoint: &str) -> String {
    format!(
        "{}/v1/control/{endpoint}?agent_id={}&heartbeat_secs={}",
        ctx.base, ctx.agent_id, ctx.settings.heartbeat_secs
    )
}

async fn refused(response: reqwest::Response) -> String {
    let status = response.status();
    let body: serde_json::Value = response.json().await.unwrap_or_default();
    let message = body["error"]["message"].as_str().unwrap_or("no message");
    let hint = if status == reqwest::StatusCode::UNAUTHORIZED {
        ". Resolution: check the tenant's api_key in the configuration"
    } else {
        ""
    };
    format!("the hub answered HTTP {status}: {message}{hint}")
}

/// Called once a connection is up: reports the status and marks the channel connected.
async fn connected(ctx: &Arc<Ctx>, transport: Transport, out: &mpsc::UnboundedSender<AgentMessage>) {
    *ctx.transport.lock().unwrap_or_else(|p| p.into_inner()) = Some(transport);
    tracing::info!(tenant = %ctx.tenant.id, %transport, "Control channel connected.");
    channel_state(ctx, "connected", Some(transport), None).await;
    send_status(ctx, out).await;
    flush_outbox(ctx, out).await;
}

/// Sends the agent's current status.
pub(crate) async fn send_status(ctx: &Arc<Ctx>, out: &mpsc::UnboundedSender<AgentMessage>) {
    let ctx2 = ctx.clone();
    if let Ok(status) = tokio::task::spawn_blocking(move || status(&ctx2)).await {
        let _ = out.send(AgentMessage::Status { status });
    }
}

/// Moves queued sync reports of this tenant to the connection.
async fn flush_outbox(ctx: &Arc<Ctx>, out: &mpsc::UnboundedSender<AgentMessage>) {
    let (agent, tenant, out) = (ctx.agent(), ctx.tenant.id.clone(), out.clone());
    let _ = tokio::task::spawn_blocking(move || {
        let Ok(store) = agent.state() else { return };
        for (id, text) in store.outbox(&tenant).unwrap_or_default() {
            match serde_json::from_str::<AgentMessage>(&text) {
                Ok(message) => {
                    if out.send(message).is_err() {
                        return;
                    }
                }
                Err(e) => tracing::warn!(error = %e, "Dropping an unreadable queued report."),
            }
            let _ = store.remove_outbox(id);
        }
    })
    .await;
}

/// What the channel does with a message from the hub.
async fn handle(
    ctx: &Arc<Ctx>,
    message: HubMessage,
    out: &mpsc::UnboundedSender<AgentMessage>,
    transport: Transport,
) {
    match message {
        HubMessage::DesiredState { state } => {
            let (agent, tenant) = (ctx.agent(), ctx.tenant.id.clone());
            let changed = tokio::task::spawn_blocking(move || -> Result<bool, String> {
                let store = agent.state().map_err(|e| e.to_string())?;
                let old = DesiredState::for_tenant(&store, &tenant);
                let new = DesiredState::from_wire(state);
                if old == new {
                    return Ok(false);
                }
                new.save(&store, &tenant).map_err(|e| e.to_string())?;
                Ok(true)
            })
            .await;
            match changed {
                Ok(Ok(true)) => {
                    tracing::info!(tenant = %ctx.tenant.id, "Desired state from the hub applied.");
                    send_status(ctx, out).await;
                }
                Ok(Ok(false)) => {}
                Ok(Err(e)) => {
                    tracing::error!(tenant = %ctx.tenant.id, error = %e, "Cannot store the desired state.")
                }
                Err(e) => tracing::error!(error = %e, "Desired state task failed."),
            }
        }
        HubMessage::Command { command } => {
            tokio::spawn(executor::execute(ctx.clone(), command, out.clone()));
        }
        HubMessage::Ping => {
            // Over SSE the pong goes back as a POST: it tells the hub this agent
            // still listens (a hung agent's event stream may stay open for hours).
            if transport != Transport::LongPoll {
                let _ = out.send(AgentMessage::Pong);
            }
        }
    }
}

fn heartbeat(ctx: &Ctx) -> Duration {
    Duration::from_secs(ctx.settings.heartbeat_secs.max(1))
}

async fn websocket(ctx: &Arc<Ctx>, stop: &mut watch::Receiver<bool>) -> Result<End, String> {
    use reqwest::header::{CONNECTION, UPGRADE};
    let key = tokio_tungstenite::tungstenite::handshake::client::generate_key();
    let request = ctx
        .http
        .get(connect_url(ctx, "ws"))
        .bearer_auth(ctx.tenant.api_key.expose())
        .header(CONNECTION, "Upgrade")
        .header(UPGRADE, "websocket")
        .header("Sec-WebSocket-Version", "13")
        .header("Sec-WebSocket-Key", &key);
    let response = tokio::time::timeout(ctx.request_timeout, request.send())
        .await
        .map_err(|_| "the hub did not answer in time".to_owned())?
        .map_err(|e| format!("cannot reach the hub: {e}"))?;
    if response.status() != reqwest::StatusCode::SWITCHING_PROTOCOLS {
        return Err(refused(response).await);
    }
    let upgraded = response.upgrade().await.map_err(|e| format!("the WebSocket upgrade failed: {e}"))?;
    let socket = WebSocketStream::from_raw_socket(upgraded, Role::Client, None).await;
    let (mut sink, mut stream) = socket.split();
    let (out_tx, mut out_rx) = mpsc::unbounded_channel::<AgentMessage>();
    connected(ctx, Transport::Websocket, &out_tx).await;
    let silence = heartbeat(ctx) * 3;
    let mut beat = tokio::time::interval(heartbeat(ctx));
    let mut last_heard = tokio::time::Instant::now();
    loop {
        tokio::select! {
            _ = stop.changed() => {
                let _ = sink.send(Message::Close(None)).await;
                return Ok(End::Stopped);
            }
            Some(message) = out_rx.recv() => {
                let text = serde_json::to_string(&message).unwrap_or_default();
                if let Err(e) = sink.send(Message::Text(text.into())).await {
                    return Ok(End::Lost(format!("cannot write to the WebSocket: {e}")));
                }
            }
            frame = stream.next() => {
                last_heard = tokio::time::Instant::now();
                match frame {
                    Some(Ok(Message::Text(text))) => match serde_json::from_str::<HubMessage>(text.as_str()) {
                        Ok(message) => handle(ctx, message, &out_tx, Transport::Websocket).await,
                        Err(e) => tracing::warn!(error = %e, "The hub sent a control message this host does not understand."),
                    },
                    Some(Ok(Message::Close(_))) | None => return Ok(End::Lost("the hub closed the connection".into())),
                    Some(Err(e)) => return Ok(End::Lost(format!("WebSocket error: {e}"))),
                    Some(Ok(_)) => {}
                }
            }
            _ = beat.tick() => {
                if last_heard.elapsed() > silence {
                    return Ok(End::Lost(format!("no heartbeat from the hub for {} s", silence.as_secs())));
                }
            }
            _ = outbox_notify().notified() => flush_outbox(ctx, &out_tx).await,
        }
    }
}

/// Sends agent messages with `POST /v1/control/messages` (SSE and long-polling), in batches.
fn spawn_poster(ctx: &Arc<Ctx>, mut rx: mpsc::UnboundedReceiver<AgentMessage>) -> JoinHandle<()> {
    let ctx = ctx.clone();
    tokio::spawn(async move {
        while let Some(first) = rx.recv().await {
            let mut batch = vec![first];
            while let Ok(more) = rx.try_recv() {
                batch.push(more);
            }
            let url = format!("{}/v1/control/messages?agent_id={}", ctx.base, ctx.agent_id);
            for attempt in 1..=5u32 {
                let sent = ctx
                    .http
                    .post(&url)
                    .bearer_auth(ctx.tenant.api_key.expose())
                    .timeout(ctx.request_timeout)
                    .json(&batch)
                    .send()
                    .await;
                match sent {
                    Ok(r) if r.status().is_success() => break,
                    Ok(r) if r.status().is_client_error() => {
                        let error = refused(r).await;
                        tracing::warn!(%error, "The hub refused control messages.");
                        break;
                    }
                    other => {
                        let detail = match other {
                            Ok(r) => format!("HTTP {}", r.status()),
                            Err(e) => e.to_string(),
                        };
                        tracing::debug!(attempt, %detail, "Sending control messages failed; retrying.");
                        tokio::time::sleep(jitter(Duration::from_millis(500) * attempt)).await;
                    }
                }
            }
        }
    })
}

async fn sse(ctx: &Arc<Ctx>, stop: &mut watch::Receiver<bool>) -> Result<End, String> {
    let request = ctx
        .http
        .get(connect_url(ctx, "sse"))
        .bearer_auth(ctx.tenant.api_key.expose())
        .header(reqwest::header::ACCEPT, "text/event-stream");
    let mut response = tokio::time::timeout(ctx.request_timeout, request.send())
        .await
        .map_err(|_| "the hub did not answer in time".to_owned())?
        .map_err(|e| format!("cannot reach the hub: {e}"))?;
    let is_stream = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    if !response.status().is_success() || !is_stream {
        return Err(refused(response).await);
    }
    let (out_tx, out_rx) = mpsc::unbounded_channel::<AgentMessage>();
    let poster = spawn_poster(ctx, out_rx);
    connected(ctx, Transport::Sse, &out_tx).await;
    let silence = heartbeat(ctx) * 3;
    let mut buffer = String::new();
    let end = loop {
        tokio::select! {
            _ = stop.changed() => break End::Stopped,
            _ = outbox_notify().notified() => flush_outbox(ctx, &out_tx).await,
            chunk = tokio::time::timeout(silence, response.chunk()) => {
                let chunk = match chunk {
                    Err(_) => break End::Lost(format!("no heartbeat from the hub for {} s", silence.as_secs())),
                    Ok(Err(e)) => break End::Lost(format!("the event stream broke: {e}")),
                    Ok(Ok(None)) => break End::Lost("the hub ended the event stream".into()),
                    Ok(Ok(Some(chunk))) => chunk,
                };
                buffer.push_str(&String::from_utf8_lossy(&chunk).replace("\r\n", "\n"));
                while let Some(end) = buffer.find("\n\n") {
                    let event: String = buffer.drain(..end + 2).collect();
                    let data: Vec<&str> = event
                        .lines()
                        .filter_map(|l| l.strip_prefix("data:"))
                        .map(|d| d.strip_prefix(' ').unwrap_or(d))
                        .collect();
                    if data.is_empty() {
                        continue; // a comment (keep-alive)
                    }
                    match serde_json::from_str::<HubMessage>(&data.join("\n")) {
                        Ok(message) => handle(ctx, message, &out_tx, Transport::Sse).await,
                        Err(e) => tracing::warn!(error = %e, "The hub sent a control event this host does not understand."),
                    }
                }
            }
        }
    };
    drop(out_tx);
    let _ = tokio::time::timeout(Duration::from_secs(5), poster).await;
    Ok(end)
}

async fn long_poll(ctx: &Arc<Ctx>, stop: &mut watch::Receiver<bool>) -> Result<End, String> {
    let wait = ctx.settings.poll_wait_secs.max(1);
    let (out_tx, out_rx) = mpsc::unbounded_channel::<AgentMessage>();
    let mut poster: Option<JoinHandle<()>> = None;
    let mut first = true;
    let mut out_rx = Some(out_rx);
    let end = loop {
        let url = format!("{}&wait_secs={wait}&resume={first}", connect_url(ctx, "poll"));
        let request = ctx
            .http
            .get(url)
            .bearer_auth(ctx.tenant.api_key.expose())
            .timeout(Duration::from_secs(wait) + ctx.request_timeout)
            .send();
        let response = tokio::select! {
            _ = stop.changed() => break End::Stopped,
            response = request => response,
        };
        let messages: Result<Vec<HubMessage>, String> = match response {
            Err(e) => Err(format!("cannot reach the hub: {e}")),
            Ok(r) if !r.status().is_success() => Err(refused(r).await),
            Ok(r) => {
                r.json().await.map_err(|e| format!("the hub's answer is not a list of control messages: {e}"))
            }
        };
        let messages = match messages {
            Ok(messages) => messages,
            Err(e) if first => return Err(e),
            Err(e) => break End::Lost(e),
        };
        if first {
            first = false;
            if let Some(rx) = out_rx.take() {
                poster = Some(spawn_poster(ctx, rx));
            }
            connected(ctx, Transport::LongPoll, &out_tx).await;
        }
        for message in messages {
            handle(ctx, message, &out_tx, Transport::LongPoll).await;
        }
        flush_outbox(ctx, &out_tx).await;
    };
    drop(out_tx);
    if let Some(poster) = poster {
        let _ = tokio::time::timeout(Duration::from_secs(5), poster).await;
    }
    Ok(end)
}

/// The status of this agent for its tenant.
pub(crate) fn status(ctx: &Ctx) -> AgentStatus {
    let agent = ctx.agent();
    let tenant = ctx.tenant();
    let store = agent.state().ok();
    let desired = store.as_ref().map(|s| DesiredState::for_tenant(s, &tenant.id)).unwrap_or_default();
    let versions = plugin_versions(ctx, &agent);
    let mut plugins: Vec<PluginStatus> = Vec::new();
    for source in &tenant.sources {
        if plugins.iter().any(|p| p.id == source.plugin) {
            continue;
        }
        let disabled = desired.plugin_disabled(&source.plugin).cloned();
        plugins.push(PluginStatus {
            id: source.plugin.clone(),
            version: versions.get(&source.plugin).cloned(),
            enabled: disabled.is_none(),
            disabled,
        });
    }
    let sources = tenant
        .sources
        .iter()
        .map(|source| {
            let last = store.as_ref().and_then(|s| s.last_run(&source.id).ok().flatten());
            let disabled = desired.source_disabled(&source.id).cloned();
            SourceStatus {
                id: source.id.clone(),
                plugin: source.plugin.clone(),
                configured: source.enabled,
                enabled: disabled.is_none(),
                disabled,
                running: ctx.board.running(&source.id),
                last_run: last.as_ref().map(|l| l.started_at.clone()),
                last_outcome: last.and_then(|l| l.outcome),
                next_run: ctx.board.next_run(&source.id),
            }
        })
        .collect();
    let (spool_entries, spool_bytes) = agent
        .spool()
        .ok()
        .map(|s| (s.pending().map(|p| p.len() as u64).unwrap_or(0), s.usage()))
        .unwrap_or((0, 0));
    AgentStatus {
        agent_id: ctx.agent_id.clone(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        host: whoami::fallible::hostname().unwrap_or_else(|_| "unknown-host".into()),
        os: whoami::distro(),
        transport: ctx.transport().unwrap_or(Transport::Websocket),
        plugins,
        sources,
        spool_entries,
        spool_bytes,
    }
}

/// Plugin id → version of the installed plugin files (probed once, then cached).
pub(crate) fn plugin_versions(ctx: &Ctx, agent: &Agent) -> HashMap<String, String> {
    let mut cached = ctx.plugin_versions.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(versions) = cached.as_ref() {
        return versions.clone();
    }
    let exe = std::env::current_exe().unwrap_or_else(|_| "ledgerlink".into());
    let versions: HashMap<String, String> = crate::plugins::scan(&agent.plugin_dirs(), &exe)
        .into_iter()
        .filter_map(|entry| match entry.status {
            crate::plugins::PluginStatus::Ok { manifest } => Some((manifest.id, manifest.version)),
            _ => None,
        })
        .collect();
    *cached = Some(versions.clone());
    versions
}

/// Forgets cached plugin versions (after a reload).
pub(crate) fn forget_plugin_versions(ctx: &Ctx) {
    *ctx.plugin_versions.lock().unwrap_or_else(|p| p.into_inner()) = None;
}

/// Diagnostics: versions, plugins, sources (settings redacted), spool, channel, recent log lines.
pub(crate) fn diagnostics(ctx: &Ctx) -> serde_json::Value {
    let agent = ctx.agent();
    let tenant = ctx.tenant();
    let exe = std::env::current_exe().unwrap_or_else(|_| "ledgerlink".into());
    let plugins: Vec<serde_json::Value> = crate::plugins::scan(&agent.plugin_dirs(), &exe)
        .into_iter()
        .map(|entry| match entry.status {
            crate::plugins::PluginStatus::Ok { manifest } => serde_json::json!({
                "path": entry.path.display().to_string(), "status": "ok", "id": manifest.id,
                "version": manifest.version, "erp_system": manifest.erp_system,
            }),
            crate::plugins::PluginStatus::Error { error } => serde_json::json!({
                "path": entry.path.display().to_string(), "status": "error", "error": error.to_string(),
            }),
        })
        .collect();
    let sources: Vec<serde_json::Value> = tenant
        .sources
        .iter()
        .map(|s| {
            serde_json::json!({
                "id": s.id, "plugin": s.plugin, "enabled": s.enabled, "companies": s.companies,
                "settings": crate::config::redact_json(&s.plugin_settings_json()),
            })
        })
        .collect();
    let spool = agent.spool().ok().map(|s| {
        serde_json::json!({
            "directory": s.dir().display().to_string(),
            "entries": s.pending().map(|p| p.len()).unwrap_or(0),
            "bytes": s.usage(),
            "max_bytes": s.max_bytes(),
        })
    });
    serde_json::json!({
        "agent_id": ctx.agent_id,
        "host_version": env!("CARGO_PKG_VERSION"),
        "protocol_version": ledgerlink_protocol::PROTOCOL_VERSION,
        "plugin_api_version": ledgerlink_plugin_api::abi::API_VERSION,
        "os": whoami::distro(),
        "host": whoami::fallible::hostname().unwrap_or_else(|_| "unknown-host".into()),
        "hub": crate::config::redact_url(&agent.config.hub.url),
        "proxy": agent.config.hub.effective_proxy().map(|p| crate::config::redact_url(&p)),
        "control": { "transport": ctx.transport().map(|t| t.as_str()), "heartbeat_secs": ctx.settings.heartbeat_secs },
        "plugins": plugins,
        "sources": sources,
        "spool": spool,
        "status": status(ctx),
        "recent_log": logbuf::recent(100),
    })
}

/// Opens the state store of the current agent.
pub(crate) fn state_store(ctx: &Ctx) -> Result<StateStore, String> {
    ctx.agent().state().map_err(|e| e.to_string())
}
