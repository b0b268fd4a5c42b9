//! The outbound HTTPS client of the hub: version report, capabilities and snapshot upload.
//!
//! Uploads follow `docs/protocol.md`: create the snapshot (the hub answers with
//! the parts it still misses), upload those parts, commit. Every step is
//! idempotent, so a retry after any failure — or after the host was killed —
//! never duplicates a snapshot. Transient failures (network, 5xx, 429) are
//! retried with exponential backoff and jitter; 4xx answers are final.

mod support_access;
mod user_agent;

pub use user_agent::user_agent;

use crate::spool::{SpoolEntry, SpoolError};
use crate::state::random_hex;
use ledgerlink_protocol::api::{
    AgentHello, Capabilities, ErrorBody, SnapshotState, SnapshotStatus, SnapshotSummary,
};
use ledgerlink_protocol::identity;
use ledgerlink_protocol::PartFormat;
use reqwest::blocking::{Client, RequestBuilder, Response};
use reqwest::StatusCode;
use std::sync::OnceLock;
use std::time::Duration;

/// How the client retries transient failures.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Attempts per request, the first included.
    pub attempts: u32,
    /// Wait before the second attempt; doubles each time (with ±50 % jitter).
    pub initial_backoff: Duration,
    /// Longest wait between attempts.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts: 5,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
        }
    }
}

/// Settings of a hub client.
#[derive(Debug, Clone)]
pub struct HubClientSettings {
    /// The hub's base URL, e.g. `https://hub.example.com`.
    pub url: String,
    /// The tenant's API key (sent only as a bearer token).
    pub api_key: String,
    /// An HTTP(S) proxy; `None` uses `HTTPS_PROXY` / `https_proxy` from the environment.
    pub proxy: Option<String>,
    /// The User-Agent of every request.
    pub user_agent: String,
    /// Timeout of one request.
    pub timeout: Duration,
    /// Retries of transient failures.
    pub retry: RetryPolicy,
    /// PEM of an extra certificate authority to trust.
    pub extra_root_pem: Option<Vec<u8>>,
    /// The data directory whose `agent-key` signs every manifest this agent offers
    /// (decision 0029); read (or made) at the first request that needs it.
    pub identity_dir: Option<std::path::PathBuf>,
}

/// An upload or report that did not go through.
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    /// The hub could not be reached or kept failing (after all retries).
    #[error(
        "the hub at {url} is unreachable or failing: {detail}. The data stays in the spool and is sent by the next run"
    )]
    Unreachable {
        /// The hub URL.
        url: String,
        /// The last failure.
        detail: String,
    },
    /// The hub (or whatever answers at `hub.url`) refused the request; retrying
    /// the same request cannot help until the cause is fixed.
    #[error("{}", refusal_text(.url, .what, *.status, .code, .message))]
    Rejected {
        /// The hub URL.
        url: String,
        /// What was sent.
        what: String,
        /// HTTP status.
        status: u16,
        /// The hub's error code (`http_error` when the answer was not a hub's).
        code: String,
        /// The hub's message.
        message: String,
    },
    /// TLS with the server at `hub.url` failed in a way no retry changes: its
    /// certificate is not trusted, or it does not speak TLS on that port.
    #[error("{}", tls_text(.url, *.problem, .detail))]
    Tls {
        /// The hub URL.
        url: String,
        /// Which failure.
        problem: TlsProblem,
        /// The TLS library's words.
        detail: String,
    },
    /// The spooled snapshot is damaged.
    #[error(transparent)]
    Spool(#[from] SpoolError),
    /// The agent's identity key cannot be read or made (the text says what to do).
    #[error("{0}")]
    Identity(String),
    /// The client could not be built (bad proxy URL, TLS setup).
    #[error("cannot set up the connection to the hub: {0}. Resolution: check `hub.url` and `hub.proxy`")]
    Setup(String),
}

impl HubError {
    /// True when the failure says nothing about the data (try again later).
    pub fn is_transient(&self) -> bool {
        matches!(self, HubError::Unreachable { .. })
    }

    /// What kind of refusal this is, when the hub refused the request (or
    /// could not be spoken to safely).
    pub fn refusal(&self) -> Option<Refusal> {
        match self {
            HubError::Rejected { status, code, .. } => Some(Refusal::of(*status, code)),
            HubError::Tls { problem: TlsProblem::Certificate, .. } => Some(Refusal::Certificate),
            HubError::Tls { problem: TlsProblem::NotTls, .. } => Some(Refusal::NotAHub),
            // This agent cannot sign: nothing can go until its key file is fixed.
            HubError::Identity(_) => Some(Refusal::AgentKey),
            _ => None,
        }
    }

    /// True when no other upload of this run can succeed either: the hub is
    /// unreachable, refuses the tenant's key, cannot be trusted, or is not at `hub.url`.
    pub fn stops_every_upload(&self) -> bool {
        self.is_transient()
            || matches!(
                self.refusal(),
                Some(Refusal::Credentials | Refusal::NotAHub | Refusal::Certificate | Refusal::AgentKey)
            )
    }
}

/// Why the hub refused a request, which decides what the user is told to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// 401/403: the tenant's API key is wrong or was revoked.
    Credentials,
    /// The answer was not a Ledgerlink hub's: `hub.url` or a proxy is wrong.
    NotAHub,
    /// A part is larger (or a snapshot has more parts) than the hub, or a proxy
    /// in front of it, accepts.
    TooLarge,
    /// The hub's checks refused this snapshot.
    Snapshot,
    /// The hub's TLS certificate is not trusted.
    Certificate,
    /// The hub knows this agent id by another identity key (or expects a signature).
    AgentKey,
}

/// A TLS failure that retrying cannot fix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsProblem {
    /// The certificate is not trusted (unknown CA, wrong name, expired).
    Certificate,
    /// The server does not speak TLS on that port.
    NotTls,
}

impl TlsProblem {
    /// The problem a transport error describes, if it is one of these (by the
    /// words of rustls, which the e2e tests against a real TLS hub pin down).
    fn of(detail: &str) -> Option<TlsProblem> {
        if detail.contains("invalid peer certificate") {
            Some(TlsProblem::Certificate)
        } else if detail.contains("received corrupt message") {
            Some(TlsProblem::NotTls)
        } else {
            None
        }
    }
}

/// Said of every refusal the configuration can fix.
const KEPT: &str = "The data stays in the spool and goes with the first run after that.";

fn tls_text(url: &str, problem: TlsProblem, detail: &str) -> String {
    match problem {
        TlsProblem::Certificate => format!(
            "the hub at {url} cannot be trusted: {detail}. Resolution: if its certificate comes from a private \
             CA (or from a proxy that inspects TLS), put that CA in `hub.ca_file`; check that `hub.url` names \
             the host the certificate is for. {KEPT}"
        ),
        TlsProblem::NotTls => format!(
            "the server at {url} does not speak TLS on that port ({detail}). Resolution: check the port in \
             `hub.url`, or use http:// for a hub on this machine's loopback address. {KEPT}"
        ),
    }
}

impl Refusal {
    fn of(status: u16, code: &str) -> Refusal {
        match (status, code) {
            // A proxy's or firewall's page rather than the hub's answer.
            (401 | 403 | 407, "http_error") | (407, _) => Refusal::NotAHub,
            (
                _,
                "agent_key_mismatch"
                | "agent_signature_required"
                | "agent_signature_invalid"
                | "agent_signature_stale",
            ) => Refusal::AgentKey,
            (401 | 403, _) => Refusal::Credentials,
            (413, _) | (_, "body_too_large" | "part_size" | "part_count") => Refusal::TooLarge,
            (_, "http_error" | "not_found" | "method_not_allowed") => Refusal::NotAHub,
            _ => Refusal::Snapshot,
        }
    }
}

/// What becomes of a snapshot the hub refused.
const SNAPSHOT_KEPT: &str =
    "The snapshot stays in the spool; new data in the ERP or a new plugin version replaces it.";

/// A refusal in one line: what was refused, by whom, and what to do about it.
fn refusal_text(url: &str, what: &str, status: u16, code: &str, message: &str) -> String {
    match Refusal::of(status, code) {
        Refusal::Credentials => format!(
            "the hub at {url} refused this tenant's API key ({status} {code}: {message}). Resolution: check \
             the tenant's `api_key` against the key the central service issued; if that key was revoked, \
             ask the central service for a new one. {KEPT}"
        ),
        Refusal::NotAHub => format!(
            "the server at {url} did not answer as a Ledgerlink hub does ({status} {code}: {message}). \
             Resolution: set `hub.url` to the hub's base address the central service gave (no path after \
             the host name), and check the proxy in between (`hub.proxy`, HTTPS_PROXY). {KEPT}"
        ),
        Refusal::TooLarge => format!(
            "{what} is larger than the hub at {url}, or a proxy in front of it, accepts ({status} {code}: \
             {message}). Resolution: raise the limit — the hub's (`ledgerlink-hub serve --max-part-bytes`, \
             `--max-parts`; ask the central service) or the proxy's (nginx: `client_max_body_size`) — to at \
             least 64 MiB per part. {KEPT}"
        ),
        Refusal::Certificate => tls_text(url, TlsProblem::Certificate, message),
        Refusal::AgentKey if code == "agent_signature_stale" => format!(
            "the hub at {url} refused this agent's signature as too old or too new ({status} {code}: \
             {message}). Resolution: set this server's clock right (NTP). {KEPT}"
        ),
        Refusal::AgentKey if code == "agent_signature_invalid" => format!(
            "the hub at {url} refused this agent's signature ({status} {code}: {message}). Resolution: the \
             agent's `<data_dir>/agent-key` may be damaged, or a proxy changed the request; restore the key \
             from a backup or ask the central service to reset it. {KEPT}"
        ),
        Refusal::AgentKey => format!(
            "the hub at {url} does not recognise this agent's identity key (<data_dir>/agent-key): {status} \
             {code}: {message}. {KEPT}"
        ),
        Refusal::Snapshot if code == "validation_failed" => format!(
            "the hub at {url} refused {what}: {status} {code}: {message}. Resolution: the hub checks a \
             snapshot more closely than the agent can while it syncs (for example that each voucher's lines \
             come together), or its checks are newer; what it names is in the data the plugin read: update \
             the plugin, or send this message to the plugin's vendor. {SNAPSHOT_KEPT}"
        ),
        Refusal::Snapshot => format!(
            "the hub at {url} refused {what}: {status} {code}: {message}. Resolution: the hub's checks \
             disagree with this agent's, so their versions may differ: update the agent and its plugins, \
             or send this message to the central service. {SNAPSHOT_KEPT}"
        ),
    }
}

/// A client for one tenant of one hub.
pub struct HubClient {
    http: Client,
    settings: HubClientSettings,
    part_formats: OnceLock<HubFormats>,
    signer: OnceLock<Result<ledgerlink_protocol::identity::AgentSigner, String>>,
}

/// The part formats the hub reads, as far as this client could learn.
#[derive(Debug)]
enum HubFormats {
    /// The hub said (or is older than `GET /v1/capabilities`: NDJSON only).
    Known(Vec<PartFormat>),
    /// The hub did not answer the question.
    Unknown,
}

/// How long the question for the hub's capabilities may take (it is asked once,
/// without retries; a hub that does not answer gets NDJSON parts).
const CAPABILITIES_TIMEOUT: Duration = Duration::from_secs(10);

enum Attempt {
    Done(Response),
    Retry(String),
    Fail(HubError),
}

impl HubClient {
    /// Builds the client (rustls, proxy from settings or environment).
    pub fn new(settings: HubClientSettings) -> Result<Self, HubError> {
        let mut builder = Client::builder()
            .user_agent(settings.user_agent.clone())
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout.min(Duration::from_secs(30)))
            .use_rustls_tls();
        if let Some(pem) = &settings.extra_root_pem {
            let certificate = reqwest::Certificate::from_pem(pem)
                .map_err(|e| HubError::Setup(format!("hub.ca_file is not a PEM certificate: {e}")))?;
            builder = builder.add_root_certificate(certificate);
        }
        if let Some(proxy) = &settings.proxy {
            let proxy = reqwest::Proxy::all(proxy).map_err(|e| HubError::Setup(format!("proxy: {e}")))?;
            builder = builder.proxy(proxy);
        }
        let http = builder.build().map_err(|e| HubError::Setup(e.to_string()))?;
        Ok(Self { http, settings, part_formats: OnceLock::new(), signer: OnceLock::new() })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.settings.url.trim_end_matches('/'))
    }

    /// Sends a request, retrying transient failures; `what` names it in errors.
    fn send(&self, what: &str, build: impl Fn() -> RequestBuilder) -> Result<Response, HubError> {
        let retry = self.settings.retry;
        let mut backoff = retry.initial_backoff;
        let mut last = String::new();
        for attempt in 1..=retry.attempts.max(1) {
            let outcome = match build().bearer_auth(&self.settings.api_key).send() {
                Err(e) => {
                    let detail = describe_reqwest(e);
                    match TlsProblem::of(&detail) {
                        Some(problem) => {
                            Attempt::Fail(HubError::Tls { url: self.settings.url.clone(), problem, detail })
                        }
                        None => Attempt::Retry(detail),
                    }
                }
                Ok(r) if r.status().is_success() => Attempt::Done(r),
                Ok(r)
                    if r.status().is_server_error()
                        || r.status() == StatusCode::TOO_MANY_REQUESTS
                        || r.status() == StatusCode::REQUEST_TIMEOUT =>
                {
                    if let Some(wait) = retry_after(&r) {
                        backoff = wait.min(retry.max_backoff);
                    }
                    Attempt::Retry(failing(r))
                }
                Ok(r) => Attempt::Fail(rejected(&self.settings.url, what, r)),
            };
            match outcome {
                Attempt::Done(response) => return Ok(response),
                Attempt::Fail(error) => return Err(error),
                Attempt::Retry(detail) => {
                    tracing::debug!(attempt, what, %detail, "Hub request failed; retrying.");
                    last = detail;
                }
            }
            if attempt < retry.attempts {
                std::thread::sleep(jitter(backoff));
                backoff = (backoff * 2).min(retry.max_backoff);
            }
        }
        Err(HubError::Unreachable { url: self.settings.url.clone(), detail: last })
    }

    /// The part formats the hub reads, asked once per client (`GET /v1/capabilities`;
    /// NDJSON only from a hub older than that endpoint); `None` when the hub did not
    /// answer the question.
    pub fn known_part_formats(&self) -> Option<&[PartFormat]> {
        match self.part_formats() {
            HubFormats::Known(formats) => Some(formats),
            HubFormats::Unknown => None,
        }
    }

    /// The hub's base URL, as configured.
    pub fn url_base(&self) -> &str {
        &self.settings.url
    }

    /// Whether the hub reads parts in `format`: every hub reads NDJSON (asked
    /// nothing then); `None` when the hub did not answer the question.
    pub fn reads(&self, format: PartFormat) -> Option<bool> {
        if format == PartFormat::Ndjson {
            return Some(true);
        }
        match self.part_formats() {
            HubFormats::Known(formats) => Some(formats.contains(&format)),
            HubFormats::Unknown => None,
        }
    }

    fn part_formats(&self) -> &HubFormats {
        self.part_formats.get_or_init(|| match self.capabilities() {
            Ok(Some(capabilities)) => HubFormats::Known(capabilities.known_part_formats()),
            Ok(None) => HubFormats::Known(vec![PartFormat::Ndjson]),
            Err(detail) => {
                tracing::debug!(%detail, "The hub did not say which part formats it reads; writing NDJSON.");
                HubFormats::Unknown
            }
        })
    }

    /// The hub's capabilities; `None` from a hub older than the endpoint (404).
    fn capabilities(&self) -> Result<Option<Capabilities>, String> {
        let response = self
            .http
            .get(self.url("/v1/capabilities"))
            .bearer_auth(&self.settings.api_key)
            .timeout(CAPABILITIES_TIMEOUT)
            .send()
            .map_err(describe_reqwest)?;
        if response.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !response.status().is_success() {
            return Err(format!("HTTP {}", response.status()));
        }
        response.json().map(Some).map_err(|e| format!("not a capabilities body: {e}"))
    }

    /// Reports this agent's version once at start (`POST /v1/agents/hello`), signed,
    /// which registers its identity key with the hub before its first upload.
    pub fn hello(&self, hello: &AgentHello) -> Result<(), HubError> {
        let body = bytes::Bytes::from(
            serde_json::to_vec(hello).map_err(|e| HubError::Setup(format!("hello: {e}")))?,
        );
        let signed = self.sign(identity::HELLO_LABEL, &body)?;
        self.send("the version report", || self.signed_post("/v1/agents/hello", &body, signed.as_ref()))
            .map(|_| ())
    }

    /// This agent's signer, when it signs (read or made once per client).
    fn signer(&self) -> Result<Option<&identity::AgentSigner>, HubError> {
        let Some(dir) = &self.settings.identity_dir else { return Ok(None) };
        match self.signer.get_or_init(|| crate::identity::load_or_create(dir)) {
            Ok(signer) => Ok(Some(signer)),
            Err(e) => Err(HubError::Identity(e.clone())),
        }
    }

    /// The agent's key, the time now and the signature of `body` after `label`, when it signs.
    fn sign(&self, label: &[u8], body: &[u8]) -> Result<Option<[String; 3]>, HubError> {
        let at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        Ok(self.signer()?.map(|s| {
            let signature = s.sign_labelled(label, &at, body);
            [s.public_key(), at, signature]
        }))
    }

    /// A JSON POST of `body`, with the agent's key, signing time and signature when given.
    fn signed_post(&self, path: &str, body: &bytes::Bytes, signed: Option<&[String; 3]>) -> RequestBuilder {
        let mut request = self
            .http
            .post(self.url(path))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.clone());
        if let Some([key, at, signature]) = signed {
            request = request
                .header(identity::AGENT_KEY_HEADER, key)
                .header(identity::AGENT_SIGNED_AT_HEADER, at)
                .header(identity::AGENT_SIGNATURE_HEADER, signature);
        }
        request
    }

    /// Uploads a spooled snapshot and commits it; returns the hub's summary of it.
    pub fn upload(&self, entry: &SpoolEntry) -> Result<SnapshotSummary, HubError> {
        let id = entry.snapshot_id();
        let what = format!("snapshot {id}");
        let body = bytes::Bytes::from(
            serde_json::to_vec(&entry.manifest).map_err(|e| HubError::Setup(format!("manifest: {e}")))?,
        );
        let signed = self.sign(identity::SIGNED_LABEL, &body)?;
        let created: SnapshotStatus = json(
            &self.settings.url,
            &what,
            self.send(&what, || self.signed_post("/v1/snapshots", &body, signed.as_ref()))?,
        )?;
        if created.state != SnapshotState::Committed {
            for index in &created.missing_parts {
                // Shared, not copied, by every attempt.
                let bytes = bytes::Bytes::from(entry.read_part(*index)?);
                let part = format!("part {index} of snapshot {id}");
                let url = self.url(&format!("/v1/snapshots/{id}/parts/{index}"));
                self.send(&part, || {
                    self.http
                        .put(&url)
                        .header(reqwest::header::CONTENT_TYPE, ledgerlink_protocol::PART_CONTENT_TYPE)
                        .body(bytes.clone())
                })?;
            }
        }
        crate::crash_point::crash_point("parts_uploaded");
        let url = self.url(&format!("/v1/snapshots/{id}/commit"));
        let records = entry.manifest.parts.iter().map(|p| p.records).sum();
        let timeout = commit_timeout(self.settings.timeout, records);
        let commit = self.send(&format!("the commit of {what}"), || self.http.post(&url).timeout(timeout))?;
        json(&self.settings.url, &what, commit)
    }
}

/// How long a commit may take: the hub verifies every record before it answers,
/// so the request timeout grows by 30 s per million records. A year of 5 M lines
/// took ≈ 15 s to verify on a busy 2-core hub; with a fixed timeout a large year
/// would time out on every run and never be committed.
fn commit_timeout(request_timeout: Duration, records: u64) -> Duration {
    request_timeout + Duration::from_micros(records.saturating_mul(30))
}

fn json<T: serde::de::DeserializeOwned>(url: &str, what: &str, response: Response) -> Result<T, HubError> {
    let status = response.status().as_u16();
    // A reply cut off on the way says nothing about the data: the next run asks again.
    response.json().map_err(|e| HubError::Unreachable {
        url: url.to_owned(),
        detail: format!("the answer to {what} ({status}) could not be read: {}", describe_reqwest(e)),
    })
}

/// Codes with which the hub asks for the upload again: a part it no longer has,
/// a body cut off on the way. The data is fine; the next run uploads it again.
const UPLOAD_AGAIN: [&str; 2] = ["parts_missing", "body_unreadable"];

fn rejected(url: &str, what: &str, response: Response) -> HubError {
    let status = response.status().as_u16();
    let text = response.text().unwrap_or_default();
    let (code, message) = match serde_json::from_str::<ErrorBody>(&text) {
        Ok(body) => (body.error.code, body.error.message),
        Err(_) => ("http_error".into(), excerpt(&text)),
    };
    if UPLOAD_AGAIN.contains(&code.as_str()) {
        return HubError::Unreachable {
            url: url.to_owned(),
            detail: format!("the hub asked for {what} again ({status} {code}: {message})"),
        };
    }
    HubError::Rejected { url: url.to_owned(), what: what.to_owned(), status, code, message }
}

/// A failing answer worth retrying, with the hub's own words when it gave them
/// (`507 storage_full` says more than "unreachable").
fn failing(response: Response) -> String {
    let status = response.status();
    match serde_json::from_str::<ErrorBody>(&response.text().unwrap_or_default()) {
        Ok(body) => format!("HTTP {status} ({}: {})", body.error.code, body.error.message),
        Err(_) => format!("HTTP {status}"),
    }
}

/// The start of a body that is not a hub's error (a proxy's page), on one line.
fn excerpt(text: &str) -> String {
    let words: Vec<&str> = text.split_whitespace().collect();
    let line = words.join(" ");
    match line.char_indices().nth(200) {
        Some((end, _)) => format!("{} …", &line[..end]),
        None if line.is_empty() => "(no body)".into(),
        None => line,
    }
}

fn retry_after(response: &Response) -> Option<Duration> {
    let value = response.headers().get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// The error without its URL's query or credentials, in one line.
fn describe_reqwest(error: reqwest::Error) -> String {
    let error = error.without_url();
    let mut text = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(inner) = source {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    text
}

/// ±50 % jitter, so agents that failed together do not retry together.
fn jitter(base: Duration) -> Duration {
    let random = u64::from_str_radix(&random_hex(2), 16).unwrap_or(0) as f64 / 65535.0;
    base.mul_f64(0.5 + random)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_told_apart_by_status_and_the_hubs_code() {
        let cases = [
            (401, "unauthorized", Refusal::Credentials),
            (403, "forbidden", Refusal::Credentials),
            (403, "http_error", Refusal::NotAHub),
            (413, "http_error", Refusal::TooLarge),
            (400, "part_size", Refusal::TooLarge),
            (400, "part_count", Refusal::TooLarge),
            (404, "not_found", Refusal::NotAHub),
            (404, "http_error", Refusal::NotAHub),
            (407, "http_error", Refusal::NotAHub),
            (400, "validation_failed", Refusal::Snapshot),
            (404, "snapshot_not_found", Refusal::Snapshot),
            (403, "agent_key_mismatch", Refusal::AgentKey),
            (401, "agent_signature_required", Refusal::AgentKey),
            (401, "agent_signature_stale", Refusal::AgentKey),
            (409, "snapshot_not_committed", Refusal::Snapshot),
        ];
        for (status, code, expected) in cases {
            assert_eq!(Refusal::of(status, code), expected, "{status} {code}");
        }
    }

    #[test]
    fn only_a_refused_key_or_address_stops_the_runs_other_uploads() {
        let refused = |status: u16, code: &str| HubError::Rejected {
            url: "https://hub.example".into(),
            what: "snapshot 1".into(),
            status,
            code: code.into(),
            message: "no".into(),
        };
        assert!(refused(401, "unauthorized").stops_every_upload());
        assert!(refused(404, "not_found").stops_every_upload());
        assert!(!refused(413, "body_too_large").stops_every_upload());
        assert!(!refused(400, "validation_failed").stops_every_upload());
        let down = HubError::Unreachable { url: "https://hub.example".into(), detail: "refused".into() };
        assert!(down.stops_every_upload());
    }

    #[test]
    fn a_proxys_page_is_quoted_on_one_short_line() {
        assert_eq!(
            excerpt("<html>\n  <body>Not   Found</body>\n</html>\n"),
            "<html> <body>Not Found</body> </html>"
        );
        assert_eq!(excerpt(" \n"), "(no body)");
        let long = excerpt(&"ø".repeat(500));
        assert_eq!(long.chars().count(), 202, "200 characters and an ellipsis: {long}");
    }
}
