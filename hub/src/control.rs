//! The hub's side of the control channel: which agents are connected, how
//! messages reach them (WebSocket, Server-Sent Events, long-polling), and what
//! the hub does with what agents send (status, acknowledgements, reports).
//!
//! Commands are stored before they are sent: an agent that is offline gets them
//! (and the current desired state) when it connects again, until they expire.
//! A command counts as `sent` only once it was written to the agent's
//! connection; the agent executes an id at most once and acknowledges again when
//! it sees a command it already ran, so delivery is at least once and execution
//! exactly once.

use crate::error::{ApiError, ApiResult};
use crate::now;
use crate::server::AppState;
use crate::storage::{Scope, Tenant};
use axum::body::Bytes;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use futures_util::{SinkExt, StreamExt};
use ledgerlink_protocol::control::{Ack, AgentMessage, CommandKind, HubMessage, Transport};
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// An agent is addressed by its tenant's internal id and its agent id.
type AgentKey = (i64, String);

struct Session {
    id: u64,
    tx: mpsc::UnboundedSender<HubMessage>,
    transport: Transport,
}

/// Connected agents and how to reach them.
#[derive(Default)]
pub struct ControlHub {
    sessions: Mutex<HashMap<AgentKey, Session>>,
    /// Long-polling agents between two polls: when they last polled, and how long they wait per poll.
    polled: Mutex<HashMap<AgentKey, (Instant, Duration)>>,
    /// When an agent last posted a pong (SSE agents answer pings by POST).
    heard: Mutex<HashMap<AgentKey, Instant>>,
    next_id: AtomicU64,
}

impl ControlHub {
    fn lock_sessions(&self) -> std::sync::MutexGuard<'_, HashMap<AgentKey, Session>> {
        self.sessions.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers a connection, replacing (and so closing) an older one of the same agent.
    fn register(&self, key: AgentKey, transport: Transport) -> (u64, mpsc::UnboundedReceiver<HubMessage>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.lock_sessions().insert(key, Session { id, tx, transport });
        (id, rx)
    }

    /// Removes a connection unless a newer one replaced it.
    fn unregister(&self, key: &AgentKey, id: u64) -> bool {
        let mut sessions = self.lock_sessions();
        if sessions.get(key).is_some_and(|s| s.id == id) {
            sessions.remove(key);
            true
        } else {
            false
        }
    }

    /// Pushes a message to a connected agent; false when it is not connected.
    pub fn send(&self, tenant: &Tenant, agent_id: &str, message: HubMessage) -> bool {
        let sessions = self.lock_sessions();
        match sessions.get(&(tenant.id, agent_id.to_owned())) {
            Some(session) => session.tx.send(message).is_ok(),
            None => false,
        }
    }

    /// The transport of a connected agent, or `None` when it is offline.
    pub fn online(&self, tenant_id: i64, agent_id: &str) -> Option<Transport> {
        let key = (tenant_id, agent_id.to_owned());
        if let Some(session) = self.lock_sessions().get(&key) {
            return Some(session.transport);
        }
        let polled = self.polled.lock().unwrap_or_else(|p| p.into_inner());
        match polled.get(&key) {
            Some((at, wait)) if at.elapsed() < *wait + Duration::from_secs(10) => Some(Transport::LongPoll),
            _ => None,
        }
    }

    /// Notes that an agent answered a ping now.
    fn heard_from(&self, tenant_id: i64, agent_id: &str) {
        let mut heard = self.heard.lock().unwrap_or_else(|p| p.into_inner());
        heard.insert((tenant_id, agent_id.to_owned()), Instant::now());
    }

    /// When the agent last answered a ping, if it did.
    fn last_heard(&self, key: &AgentKey) -> Option<Instant> {
        self.heard.lock().unwrap_or_else(|p| p.into_inner()).get(key).copied()
    }

    /// How many agents hold a connection now.
    pub fn connected(&self) -> usize {
        self.lock_sessions().len()
    }
}

async fn blocking<T, F>(f: F) -> ApiResult<T>
where
    F: FnOnce() -> ApiResult<T> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(f).await.map_err(ApiError::internal)?
}

/// Query parameters of the connect endpoints.
#[derive(Debug, Deserialize)]
pub struct ConnectQuery {
    /// The agent's id (from its state store).
    pub agent_id: String,
    /// Heartbeat interval the agent wants, in seconds (1 to 300, default 25).
    #[serde(default)]
    pub heartbeat_secs: Option<u64>,
    /// Long-poll only: the most seconds to hold the request (1 to 120, default 25).
    #[serde(default)]
    pub wait_secs: Option<u64>,
    /// Long-poll only: true on the first poll after (re)connecting; re-sends unacknowledged commands.
    #[serde(default)]
    pub resume: bool,
}

impl ConnectQuery {
    fn check(&self) -> ApiResult<()> {
        let id = &self.agent_id;
        let ok = !id.is_empty()
            && id.len() <= 128
            && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if !ok {
            return Err(ApiError::bad_request(
                "invalid_agent_id",
                "agent_id must be 1 to 128 letters, digits, `-`, `_` or `.`",
            ));
        }
        Ok(())
    }

    fn heartbeat(&self) -> Duration {
        Duration::from_secs(self.heartbeat_secs.unwrap_or(25).clamp(1, 300))
    }
}

/// The first messages of a session: the desired state, then the commands waiting for the agent.
/// `resend` includes commands that were sent before but never acknowledged.
fn initial_messages(
    state: &AppState,
    tenant: &Tenant,
    agent_id: &str,
    resend: bool,
) -> ApiResult<Vec<HubMessage>> {
    let at = now();
    state.control_store.expire_commands(&at)?;
    let desired = state.control_store.desired_state(tenant, agent_id)?;
    let mut messages = vec![HubMessage::DesiredState { state: desired }];
    let pending = state.control_store.pending_commands(tenant, agent_id, &at)?;
    let sent: std::collections::HashSet<String> = if resend {
        Default::default()
    } else {
        state
            .control_store
            .recent_commands(tenant, agent_id, 200)?
            .into_iter()
            .filter(|c| c.state == "sent")
            .map(|c| c.command.id)
            .collect()
    };
    for command in pending {
        if !sent.contains(&command.id) {
            messages.push(HubMessage::Command { command });
        }
    }
    Ok(messages)
}

/// Notes that messages were written to the agent's connection.
fn delivered(state: &AppState, tenant: &Tenant, messages: &[HubMessage]) -> ApiResult<()> {
    let at = now();
    for message in messages {
        if let HubMessage::Command { command } = message {
            state.control_store.command_sent(tenant, &command.id, &at)?;
        }
    }
    Ok(())
}

/// Handles what an agent sent.
pub fn handle_agent_message(
    state: &AppState,
    tenant: &Tenant,
    agent_id: &str,
    message: AgentMessage,
) -> ApiResult<()> {
    let at = now();
    match message {
        AgentMessage::Status { status } => {
            let value = serde_json::to_value(&status).map_err(ApiError::internal)?;
            state.control_store.agent_status(tenant, agent_id, &value, &at)?;
        }
        AgentMessage::Ack { mut ack } => {
            discard_diagnostics_without_consent(state, tenant, agent_id, &mut ack)?;
            if !state.control_store.finish_command(tenant, agent_id, &ack, &at)? {
                tracing::debug!(agent = %agent_id, command = %ack.command_id, "Acknowledgement of an unknown or finished command ignored.");
            }
        }
        AgentMessage::Report { report } => {
            if state.control_store.record_report(tenant, agent_id, &report, &at)? {
                // The company list changed (e.g. the first report selects every company): tell the agent.
                let desired = state.control_store.desired_state(tenant, agent_id)?;
                state.control.send(tenant, agent_id, HubMessage::DesiredState { state: desired });
            }
        }
        AgentMessage::Pong => {}
    }
    Ok(())
}

/// Drops the result of a diagnostics command that arrives when the customer no
/// longer grants diagnostics: it is not kept on the hub at all (decision 0027).
fn discard_diagnostics_without_consent(
    state: &AppState,
    tenant: &Tenant,
    agent_id: &str,
    ack: &mut Ack,
) -> ApiResult<()> {
    if ack.result.is_null() {
        return Ok(());
    }
    let Some(row) = state.control_store.command(tenant, agent_id, &ack.command_id)? else { return Ok(()) };
    if !matches!(row.command.kind, CommandKind::Diagnostics)
        || crate::consent::current_grant(state, tenant, Scope::Diagnostics)?.is_some()
    {
        return Ok(());
    }
    ack.result = serde_json::Value::Null;
    ack.ok = false;
    ack.error = Some(
        "the result was discarded: the customer's grant of diagnostics ended before it arrived".to_owned(),
    );
    tracing::info!(tenant = %tenant.name, agent = %agent_id, command = %ack.command_id,
        "Diagnostics that arrived without the customer's grant were discarded.");
    Ok(())
}

async fn session_started(
    state: &AppState,
    tenant: &Tenant,
    agent_id: &str,
    transport: Transport,
) -> ApiResult<()> {
    let (state, tenant, agent_id) = (state.clone(), tenant.clone(), agent_id.to_owned());
    blocking(move || {
        Ok(state.control_store.agent_seen(&tenant, &agent_id, Some(transport.as_str()), true, &now())?)
    })
    .await?;
    Ok(())
}

/// True when the tenant's key was revoked while its agent was connected (checked
/// once per heartbeat: revoking is done by the `tenant revoke` command, beside the
/// running hub).
async fn revoked(state: &AppState, tenant: &Tenant) -> bool {
    let (state, tenant) = (state.clone(), tenant.clone());
    blocking(move || Ok(state.control_store.tenant_revoked(&tenant)?)).await.unwrap_or(false)
}

/// Marks an agent offline when its session ends (unless a newer one replaced it).
fn session_ended(state: &AppState, tenant: &Tenant, agent_id: &str, id: u64) {
    let key = (tenant.id, agent_id.to_owned());
    if state.control.unregister(&key, id) {
        let (state, tenant, agent_id) = (state.clone(), tenant.clone(), agent_id.to_owned());
        tokio::task::spawn_blocking(move || {
            let _ = state.control_store.agent_seen(&tenant, &agent_id, None, false, &now());
            tracing::info!(tenant = %tenant.name, agent = %agent_id, "Agent disconnected.");
        });
    }
}

async fn open_session(
    state: &AppState,
    tenant: &Tenant,
    agent_id: &str,
    transport: Transport,
) -> ApiResult<(u64, mpsc::UnboundedReceiver<HubMessage>, Vec<HubMessage>)> {
    session_started(state, tenant, agent_id, transport).await?;
    let (id, rx) = state.control.register((tenant.id, agent_id.to_owned()), transport);
    let initial = {
        let (state, tenant, agent_id) = (state.clone(), tenant.clone(), agent_id.to_owned());
        blocking(move || initial_messages(&state, &tenant, &agent_id, true)).await
    };
    match initial {
        Ok(initial) => {
            tracing::info!(tenant = %tenant.name, agent = %agent_id, %transport, "Agent connected.");
            Ok((id, rx, initial))
        }
        Err(e) => {
            session_ended(state, tenant, agent_id, id);
            Err(e)
        }
    }
}

fn encode(message: &HubMessage) -> String {
    serde_json::to_string(message).unwrap_or_else(|_| r#"{"type":"ping"}"#.to_owned())
}

/// `GET /v1/control/ws`: the WebSocket transport.
pub async fn websocket(
    State(state): State<AppState>,
    Extension(tenant): Extension<Tenant>,
    Query(query): Query<ConnectQuery>,
    upgrade: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> ApiResult<Response> {
    query.check()?;
    let Ok(upgrade) = upgrade else {
        return Err(ApiError::bad_request(
            "websocket_upgrade_required",
            "this endpoint speaks WebSocket only; send an HTTP/1.1 upgrade request",
        ));
    };
    let (id, rx, initial) = open_session(&state, &tenant, &query.agent_id, Transport::Websocket).await?;
    let heartbeat = query.heartbeat();
    Ok(upgrade.on_upgrade(move |socket| async move {
        run_websocket(&state, &tenant, &query.agent_id, socket, rx, initial, heartbeat).await;
        session_ended(&state, &tenant, &query.agent_id, id);
    }))
}

async fn run_websocket(
    state: &AppState,
    tenant: &Tenant,
    agent_id: &str,
    socket: WebSocket,
    mut rx: mpsc::UnboundedReceiver<HubMessage>,
    initial: Vec<HubMessage>,
    heartbeat: Duration,
) {
    let (mut sink, mut stream) = socket.split();
    for message in &initial {
        if sink.send(Message::Text(encode(message).into())).await.is_err() {
            return;
        }
    }
    let _ = delivered_async(state, tenant, initial).await;
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + heartbeat, heartbeat);
    let idle_limit = heartbeat * 3;
    let mut last_heard = tokio::time::Instant::now();
    loop {
        tokio::select! {
            message = rx.recv() => {
                let Some(message) = message else { break }; // replaced by a newer connection
                if sink.send(Message::Text(encode(&message).into())).await.is_err() {
                    break;
                }
                let _ = delivered_async(state, tenant, vec![message]).await;
            }
            frame = stream.next() => {
                last_heard = tokio::time::Instant::now();
                match frame {
                    Some(Ok(Message::Text(text))) => {
                        match serde_json::from_str::<AgentMessage>(text.as_str()) {
                            Ok(message) => {
                                let (state, tenant, id) = (state.clone(), tenant.clone(), agent_id.to_owned());
                                let handled = blocking(move || handle_agent_message(&state, &tenant, &id, message)).await;
                                if let Err(e) = handled {
                                    tracing::warn!(agent = %agent_id, error = %e.message, "Agent message not handled.");
                                }
                            }
                            Err(e) => tracing::warn!(agent = %agent_id, error = %e, "Agent sent a message the hub does not understand."),
                        }
                    }
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                    Some(Ok(_)) => {}
                }
            }
            _ = ping.tick() => {
                if revoked(state, tenant).await {
                    tracing::info!(agent = %agent_id, "The tenant's key was revoked; closing its agent's connection.");
                    let _ = sink.send(Message::Close(None)).await;
                    break;
                }
                if last_heard.elapsed() > idle_limit {
                    tracing::info!(agent = %agent_id, "No heartbeat from the agent; closing its connection.");
                    break;
                }
                if sink.send(Message::Text(encode(&HubMessage::Ping).into())).await.is_err() {
                    break;
                }
            }
        }
    }
    let _ = sink.close().await;
}

async fn delivered_async(state: &AppState, tenant: &Tenant, messages: Vec<HubMessage>) -> ApiResult<()> {
    if !messages.iter().any(|m| matches!(m, HubMessage::Command { .. })) {
        return Ok(());
    }
    let (state, tenant) = (state.clone(), tenant.clone());
    blocking(move || delivered(&state, &tenant, &messages)).await
}

/// Ends a session when the SSE stream is dropped (the agent went away).
struct SseGuard {
    state: AppState,
    tenant: Tenant,
    agent_id: String,
    id: u64,
}

impl Drop for SseGuard {
    fn drop(&mut self) {
        session_ended(&self.state, &self.tenant, &self.agent_id, self.id);
    }
}

/// `GET /v1/control/sse`: the Server-Sent Events transport (agent messages go to `POST /v1/control/messages`).
pub async fn sse(
    State(state): State<AppState>,
    Extension(tenant): Extension<Tenant>,
    Query(query): Query<ConnectQuery>,
) -> ApiResult<Response> {
    query.check()?;
    let (id, rx, initial) = open_session(&state, &tenant, &query.agent_id, Transport::Sse).await?;
    let heartbeat = query.heartbeat();
    let guard =
        SseGuard { state: state.clone(), tenant: tenant.clone(), agent_id: query.agent_id.clone(), id };
    let queue: std::collections::VecDeque<HubMessage> = initial.into();
    let (opened, idle_limit) = (Instant::now(), heartbeat * 3);
    let stream = futures_util::stream::unfold(
        (guard, rx, queue),
        move |(guard, mut rx, mut queue)| async move {
            // An agent that answers pings (a pong by POST) and stopped answering is
            // gone, even while its connection stays open: end the stream, so it is
            // shown offline. Agents that never send a pong (older ones) are not judged.
            if revoked(&guard.state, &guard.tenant).await {
                tracing::info!(agent = %guard.agent_id, "The tenant's key was revoked; ending its agent's event stream.");
                return None;
            }
            let key = (guard.tenant.id, guard.agent_id.clone());
            if let Some(heard) = guard.state.control.last_heard(&key).filter(|at| *at > opened) {
                if heard.elapsed() > idle_limit {
                    tracing::info!(agent = %guard.agent_id, "No pong from the agent over SSE; ending its event stream.");
                    return None;
                }
            }
            let message = match queue.pop_front() {
                Some(message) => message,
                None => match tokio::time::timeout(heartbeat, rx.recv()).await {
                    Ok(Some(message)) => message,
                    Ok(None) => return None,
                    Err(_) => HubMessage::Ping,
                },
            };
            let _ = delivered_async(&guard.state, &guard.tenant, vec![message.clone()]).await;
            let event = Event::default().data(encode(&message));
            Some((Ok::<_, std::convert::Infallible>(event), (guard, rx, queue)))
        },
    );
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(heartbeat)).into_response())
}

/// `GET /v1/control/poll`: the long-polling transport. Answers a JSON array of
/// hub messages (always the desired state first) as soon as there is a command,
/// or after `wait_secs` with only the desired state.
pub async fn poll(
    State(state): State<AppState>,
    Extension(tenant): Extension<Tenant>,
    Query(query): Query<ConnectQuery>,
) -> ApiResult<Json<Vec<HubMessage>>> {
    query.check()?;
    let wait = Duration::from_secs(query.wait_secs.unwrap_or(25).clamp(1, 120));
    let agent_id = query.agent_id.clone();
    session_started(&state, &tenant, &agent_id, Transport::LongPoll).await?;
    let key = (tenant.id, agent_id.clone());
    let (id, mut rx) = state.control.register(key.clone(), Transport::LongPoll);
    let initial = {
        let (state, tenant, agent_id) = (state.clone(), tenant.clone(), agent_id.clone());
        let resume = query.resume;
        blocking(move || initial_messages(&state, &tenant, &agent_id, resume)).await
    };
    let result = async {
        let mut messages = initial?;
        if messages.len() == 1 {
            // Only the desired state: wait for something new.
            if let Ok(Some(message)) = tokio::time::timeout(wait, rx.recv()).await {
                messages.push(message);
            }
        }
        while let Ok(message) = rx.try_recv() {
            messages.push(message);
        }
        // A pushed desired state supersedes the one read at the start.
        if let Some(pos) = messages.iter().rposition(|m| matches!(m, HubMessage::DesiredState { .. })) {
            if pos > 0 {
                let latest = messages.remove(pos);
                messages[0] = latest;
            }
        }
        delivered_async(&state, &tenant, messages.clone()).await?;
        Ok(messages)
    }
    .await;
    state.control.unregister(&key, id);
    state.control.polled.lock().unwrap_or_else(|p| p.into_inner()).insert(key, (Instant::now(), wait));
    result.map(Json)
}

/// `POST /v1/control/messages`: messages from an agent using SSE or long-polling (a JSON array).
pub async fn messages(
    State(state): State<AppState>,
    Extension(tenant): Extension<Tenant>,
    Query(query): Query<ConnectQuery>,
    body: Bytes,
) -> ApiResult<StatusCode> {
    query.check()?;
    if body.len() as u64 > state.limits.max_manifest_bytes {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("the messages are larger than {} bytes", state.limits.max_manifest_bytes),
        ));
    }
    let messages: Vec<AgentMessage> = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request("invalid_body", format!("the body is not a JSON array of agent messages: {e}"))
    })?;
    let agent_id = query.agent_id;
    // Only a pong says the agent answers pings: every agent, older ones too, posts its status.
    if messages.iter().any(|m| matches!(m, AgentMessage::Pong)) {
        state.control.heard_from(tenant.id, &agent_id);
    }
    blocking(move || {
        for message in messages {
            handle_agent_message(&state, &tenant, &agent_id, message)?;
        }
        Ok(())
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}
