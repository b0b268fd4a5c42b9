//! A blocking client of the Uni Micro REST API: OAuth2 bearer tokens with one
//! refresh on 401, `CompanyKey` per company, `Retry-After` on 429, timeouts.
//! Tokens and the client secret never enter a log line or an error message.

use ledgerlink_plugin_api::{ErrorKind, Host, PluginError};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use std::fmt;
use std::sync::Mutex;
use std::time::Duration;

/// A secret setting: shown as `***` in `Debug`.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// How to reach the API.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Base URL, e.g. `https://test.unimicro.no` (the API is under `/api/`).
    pub base_url: String,
    /// OAuth2 token endpoint.
    pub token_url: String,
    /// OAuth2 client id.
    pub client_id: String,
    /// OAuth2 client secret.
    pub client_secret: Secret,
    /// Refresh token issued with `offline_access`, if any.
    pub refresh_token: Option<Secret>,
    /// Per-request timeout.
    pub timeout: Duration,
    /// How many 429 answers in a row one request survives.
    pub max_rate_limit_retries: u32,
}

#[derive(Default)]
struct Tokens {
    access: Option<Secret>,
    refresh: Option<Secret>,
}

/// The API client.
pub struct Client {
    agent: ureq::Agent,
    config: ClientConfig,
    tokens: Mutex<Tokens>,
    host: Host,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    refresh_token: Option<String>,
}

fn connection_error(what: &str, e: &ureq::Transport) -> PluginError {
    let timed_out = e.kind() == ureq::ErrorKind::Io
        && std::error::Error::source(e).and_then(|s| s.downcast_ref::<std::io::Error>()).is_some_and(|io| {
            matches!(io.kind(), std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock)
        });
    if timed_out || e.to_string().contains("timed out") {
        return PluginError::new(
            ErrorKind::TIMEOUT,
            format!("{what}: Uni Micro did not answer in time"),
            "Try again later; if it keeps happening, raise `timeout_secs` or lower `page_size`.",
        );
    }
    PluginError::new(
        ErrorKind::CONNECTION,
        format!("{what}: cannot reach Uni Micro ({})", e.kind()),
        "Check `base_url`/`token_url` and that this machine reaches the Uni Micro service over HTTPS.",
    )
}

fn api_message(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("Message").and_then(|m| m.as_str()).map(str::to_owned))
        .unwrap_or_else(|| body.chars().take(200).collect())
}

impl Client {
    /// A client; no request is made yet.
    pub fn new(config: ClientConfig, host: Host) -> Self {
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(config.timeout.min(Duration::from_secs(15)))
            .timeout(config.timeout)
            .user_agent(concat!("Ledgerlink-unimicro/", env!("CARGO_PKG_VERSION")))
            .build();
        let tokens = Tokens { access: None, refresh: config.refresh_token.clone() };
        Self { agent, config, tokens: Mutex::new(tokens), host }
    }

    fn tokens(&self) -> std::sync::MutexGuard<'_, Tokens> {
        self.tokens.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Gets a new access token: with the refresh token when there is one, else with the client credentials.
    fn fetch_token(&self) -> Result<Secret, PluginError> {
        let refresh = self.tokens().refresh.clone();
        let c = &self.config;
        // ureq's error type is large by design; it lives only for the match below.
        #[allow(clippy::result_large_err)]
        let attempt = |form: &[(&str, &str)]| self.agent.post(&c.token_url).send_form(form);
        let result = match &refresh {
            Some(r) => {
                self.host.debug("Refreshing the Uni Micro access token.");
                let refreshed = attempt(&[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", &r.0),
                    ("client_id", &c.client_id),
                    ("client_secret", &c.client_secret.0),
                ]);
                match refreshed {
                    Err(ureq::Error::Status(400, _)) if !c.client_secret.0.is_empty() => {
                        self.host.warn("The refresh token was refused; requesting a new token with the client credentials.");
                        attempt(&[
                            ("grant_type", "client_credentials"),
                            ("client_id", &c.client_id),
                            ("client_secret", &c.client_secret.0),
                        ])
                    }
                    other => other,
                }
            }
            None => {
                self.host.debug("Requesting a Uni Micro access token.");
                attempt(&[
                    ("grant_type", "client_credentials"),
                    ("client_id", &c.client_id),
                    ("client_secret", &c.client_secret.0),
                ])
            }
        };
        let response = match result {
            Ok(r) => r,
            Err(ureq::Error::Status(code, r)) => {
                let body = r.into_string().unwrap_or_default();
                let reason = serde_json::from_str::<serde_json::Value>(&body)
                    .ok()
                    .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_owned))
                    .unwrap_or_default();
                return Err(PluginError::new(
                    ErrorKind::AUTHENTICATION,
                    format!("the Uni Micro token endpoint refused the credentials (HTTP {code} {reason})"),
                    "Check `client_id`, `client_secret` and `refresh_token` in the source's settings; a refresh token \
                     is only issued with the `offline_access` scope.",
                ));
            }
            Err(ureq::Error::Transport(t)) => return Err(connection_error("getting a token", &t)),
        };
        let body = response.into_string().unwrap_or_default();
        let parsed: TokenResponse = serde_json::from_str(&body).map_err(|e| {
            PluginError::new(
                ErrorKind::AUTHENTICATION,
                format!("the Uni Micro token endpoint answered something that is not a token response (line {}, column {})", e.line(), e.column()),
                "Check `token_url`: it must be the OAuth2 token endpoint of Uni Micro's identity service.",
            )
        })?;
        let access = Secret(parsed.access_token);
        let mut tokens = self.tokens();
        tokens.access = Some(access.clone());
        if let Some(r) = parsed.refresh_token {
            tokens.refresh = Some(Secret(r));
        }
        Ok(access)
    }

    fn access_token(&self) -> Result<Secret, PluginError> {
        let current = self.tokens().access.clone();
        match current {
            Some(t) => Ok(t),
            None => self.fetch_token(),
        }
    }

    /// `GET {base}/api/{path}` with query parameters and the company's key; the parsed JSON body.
    pub fn get<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, String)],
        company_key: Option<&str>,
    ) -> Result<T, PluginError> {
        let url = format!("{}/api/{path}", self.config.base_url.trim_end_matches('/'));
        let mut refreshed = false;
        let mut rate_limited = 0u32;
        loop {
            let token = self.access_token()?;
            let mut request = self.agent.get(&url).set("Authorization", &format!("Bearer {}", token.0));
            if let Some(key) = company_key {
                request = request.set("CompanyKey", key);
            }
            for (k, v) in query {
                request = request.query(k, v);
            }
            match request.call() {
                Ok(response) => {
                    let body = response.into_string().map_err(|e| {
                        PluginError::new(
                            ErrorKind::CONNECTION,
                            format!("reading {path}: {e}"),
                            "Try again later.",
                        )
                    })?;
                    return serde_json::from_str(&body).map_err(|e| {
                        PluginError::new(
                            ErrorKind::DATA,
                            format!("Uni Micro's answer to {path} is not what the API describes: {e}"),
                            "Report this with the plugin version; the Uni Micro API may have changed.",
                        )
                    });
                }
                Err(ureq::Error::Status(429, response)) => {
                    rate_limited += 1;
                    if rate_limited > self.config.max_rate_limit_retries {
                        return Err(PluginError::new(
                            ErrorKind::CONNECTION,
                            format!("Uni Micro rate-limited {path} {rate_limited} times in a row (HTTP 429)"),
                            "Run the sync later or less often; other integrations may share the same API quota.",
                        ));
                    }
                    let wait = response
                        .header("Retry-After")
                        .and_then(|v| v.trim().parse::<u64>().ok())
                        .unwrap_or(1)
                        .min(120);
                    self.host.info(&format!(
                        "Uni Micro asked to slow down (429); waiting {wait} s as Retry-After says."
                    ));
                    std::thread::sleep(Duration::from_secs(wait));
                }
                Err(ureq::Error::Status(401, _)) if !refreshed => {
                    refreshed = true;
                    self.host.info("The Uni Micro access token was refused (401); getting a new one.");
                    self.tokens().access = None;
                    self.fetch_token()?;
                }
                Err(ureq::Error::Status(401, response)) => {
                    let message = api_message(&response.into_string().unwrap_or_default());
                    return Err(PluginError::new(
                        ErrorKind::AUTHENTICATION,
                        format!("Uni Micro refused a freshly issued token for {path} (HTTP 401: {message})"),
                        "Check that the API client has access to this company and the scopes the plugin needs \
                         (AppFramework, offline_access); then run the sync again.",
                    ));
                }
                Err(ureq::Error::Status(code, response)) => {
                    let message = api_message(&response.into_string().unwrap_or_default());
                    let (kind, resolution) = match code {
                        403 => (
                            ErrorKind::AUTHENTICATION,
                            "Grant the API client access to the company in Uni Micro.",
                        ),
                        404 => (ErrorKind::NOT_FOUND, "Check `base_url`; the API path was not found."),
                        400..=499 => {
                            (ErrorKind::DATA, "Report this with the plugin version; the request was refused.")
                        }
                        _ => (ErrorKind::CONNECTION, "Uni Micro had a problem; try again later."),
                    };
                    return Err(PluginError::new(
                        kind,
                        format!("Uni Micro answered HTTP {code} to {path}: {message}"),
                        resolution,
                    ));
                }
                Err(ureq::Error::Transport(t)) => return Err(connection_error(&format!("GET {path}"), &t)),
            }
        }
    }
}
