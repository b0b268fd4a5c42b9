//! A local emulator of the Uni Micro (Uni Economy) REST API subset the unimicro
//! plugin uses (`../shared/erp-schemas/unimicro-api.md`), with its faults.
//!
//! - `POST /connect/token` (form: `grant_type=client_credentials` with
//!   `client_id`/`client_secret`, or `grant_type=refresh_token` with `refresh_token`):
//!   bearer tokens that expire after `token_max_requests` API calls (a stand-in
//!   for the real one-hour lifetime, so tests see expiry quickly) → `401`.
//! - `GET /api/init/companies`; `GET /api/biz/{entity}` with the `CompanyKey`
//!   header and `filter`, `expand`, `orderby`, `top`, `skip` (no `$`). `select`
//!   is accepted and ignored (full objects come back, as when it is omitted).
//! - Every `rate_limit_every`-th API call is answered `429` with `Retry-After`.
//! - `slow_entity` answers after `slow_ms` (for client timeouts).
//! - Errors look like the real service's: JSON `{ "Message", "Messages" }`.
//! - `GET /_emulator/stats` (counters) and `GET /_emulator/trial-balance?company=KEY&year=Y`
//!   (computed from the emulator's own data) let tests check the plugin independently.

#![allow(clippy::result_large_err)] // handlers return ready-made error responses

pub mod data;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Fault and credential settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// The accepted client id.
    pub client_id: String,
    /// The accepted client secret.
    pub client_secret: String,
    /// Answer every N-th API call with 429 (0: never).
    pub rate_limit_every: u64,
    /// `Retry-After` seconds of a 429.
    pub retry_after_secs: u64,
    /// A token stops working after this many API calls (0: never).
    pub token_max_requests: u64,
    /// Entity whose answers are slow.
    pub slow_entity: Option<String>,
    /// Delay of the slow entity, in milliseconds.
    pub slow_ms: u64,
    /// Vouchers per company and year.
    pub vouchers_per_year: u32,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            client_id: "ledgerlink-test".into(),
            client_secret: "emulator-client-secret".into(),
            rate_limit_every: 0,
            retry_after_secs: 1,
            token_max_requests: 0,
            slow_entity: None,
            slow_ms: 0,
            vouchers_per_year: 250,
        }
    }
}

#[derive(Default)]
struct Stats {
    api_requests: AtomicU64,
    rate_limited: AtomicU64,
    unauthorized: AtomicU64,
    tokens_issued: AtomicU64,
    refreshes: AtomicU64,
}

struct Inner {
    config: Config,
    companies: Vec<data::Company>,
    /// token → API calls made with it.
    tokens: Mutex<HashMap<String, u64>>,
    refresh_tokens: Mutex<HashMap<String, ()>>,
    counter: AtomicU64,
    stats: Stats,
}

/// The emulator's shared state.
#[derive(Clone)]
pub struct Emulator(Arc<Inner>);

fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "Message": message, "Messages": [{ "Message": message }] }))).into_response()
}

impl Emulator {
    /// An emulator with generated data.
    pub fn new(config: Config) -> Self {
        let companies = data::companies(config.vouchers_per_year);
        Self(Arc::new(Inner {
            config,
            companies,
            tokens: Mutex::default(),
            refresh_tokens: Mutex::default(),
            counter: AtomicU64::new(0),
            stats: Stats::default(),
        }))
    }

    /// The companies and their data.
    pub fn companies(&self) -> &[data::Company] {
        &self.0.companies
    }

    /// The router.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/connect/token", post(token))
            .route("/api/init/companies", get(init_companies))
            .route("/api/biz/{entity}", get(biz))
            .route("/_emulator/stats", get(stats))
            .route("/_emulator/trial-balance", get(trial_balance))
            .with_state(self.clone())
    }

    fn new_token(&self, prefix: &str) -> String {
        let n = self.0.counter.fetch_add(1, Ordering::SeqCst);
        format!("{prefix}{:016x}{:08x}", 0x51A7_E00D_u64.wrapping_mul(n + 7919), n)
    }

    /// Checks the bearer token and the rate limit; `Err` is the response to send.
    fn admit(&self, headers: &HeaderMap) -> Result<(), Response> {
        let s = &self.0.stats;
        let n = s.api_requests.fetch_add(1, Ordering::SeqCst) + 1;
        let every = self.0.config.rate_limit_every;
        if every > 0 && n % every == 0 {
            s.rate_limited.fetch_add(1, Ordering::SeqCst);
            let mut r = error(StatusCode::TOO_MANY_REQUESTS, "Rate limit is exceeded. Try again later.");
            r.headers_mut().insert("Retry-After", self.0.config.retry_after_secs.into());
            return Err(r);
        }
        let token = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::to_owned);
        let mut tokens = self.0.tokens.lock().expect("lock");
        let unauthorized = |msg: &str| {
            s.unauthorized.fetch_add(1, Ordering::SeqCst);
            let mut r = error(StatusCode::UNAUTHORIZED, msg);
            r.headers_mut()
                .insert("WWW-Authenticate", "Bearer error=\"invalid_token\"".parse().expect("header"));
            r
        };
        let Some(token) = token else { return Err(unauthorized("Authorization header is missing.")) };
        let Some(used) = tokens.get_mut(&token) else { return Err(unauthorized("The token is not valid.")) };
        let max = self.0.config.token_max_requests;
        if max > 0 && *used >= max {
            return Err(unauthorized("The token expired."));
        }
        *used += 1;
        Ok(())
    }

    fn company(&self, headers: &HeaderMap) -> Result<&data::Company, Response> {
        let Some(key) = headers.get("companykey").and_then(|v| v.to_str().ok()) else {
            return Err(error(StatusCode::BAD_REQUEST, "Missing CompanyKey header."));
        };
        self.0
            .companies
            .iter()
            .find(|c| c.row.key == key)
            .ok_or_else(|| error(StatusCode::FORBIDDEN, &format!("No access to company {key}.")))
    }
}

async fn token(State(e): State<Emulator>, Form(form): Form<HashMap<String, String>>) -> Response {
    let grant = form.get("grant_type").map(String::as_str).unwrap_or_default();
    let c = &e.0.config;
    match grant {
        "client_credentials" => {
            if form.get("client_id") != Some(&c.client_id)
                || form.get("client_secret") != Some(&c.client_secret)
            {
                return (StatusCode::BAD_REQUEST, Json(json!({"error": "invalid_client"}))).into_response();
            }
        }
        "refresh_token" => {
            let known = form
                .get("refresh_token")
                .is_some_and(|t| e.0.refresh_tokens.lock().expect("lock").remove(t).is_some());
            if !known {
                return (StatusCode::BAD_REQUEST, Json(json!({"error": "invalid_grant"}))).into_response();
            }
            e.0.stats.refreshes.fetch_add(1, Ordering::SeqCst);
        }
        _ => {
            return (StatusCode::BAD_REQUEST, Json(json!({"error": "unsupported_grant_type"})))
                .into_response()
        }
    }
    e.0.stats.tokens_issued.fetch_add(1, Ordering::SeqCst);
    let access = e.new_token("umat_");
    let refresh = e.new_token("umrt_");
    e.0.tokens.lock().expect("lock").insert(access.clone(), 0);
    e.0.refresh_tokens.lock().expect("lock").insert(refresh.clone(), ());
    Json(json!({"access_token": access, "token_type": "Bearer", "expires_in": 3600, "refresh_token": refresh, "scope": "AppFramework offline_access"}))
        .into_response()
}

async fn init_companies(State(e): State<Emulator>, headers: HeaderMap) -> Response {
    if let Err(r) = e.admit(&headers) {
        return r;
    }
    Json(e.0.companies.iter().map(|c| c.row.clone()).collect::<Vec<_>>()).into_response()
}

/// A literal of a filter clause.
#[derive(Debug, Clone, PartialEq)]
enum Literal {
    Text(String),
    Number(f64),
    Bool(bool),
    Null,
}

fn parse_filter(filter: &str) -> Result<Vec<(String, String, Literal)>, String> {
    let mut clauses = Vec::new();
    for clause in filter.split(" and ") {
        let clause = clause.trim();
        let mut parts = clause.splitn(3, ' ');
        let (Some(field), Some(op), Some(value)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(format!("Invalid filter clause '{clause}'."));
        };
        if !["eq", "ne", "gt", "ge", "lt", "le"].contains(&op) {
            return Err(format!("Unknown operator '{op}' in filter."));
        }
        let value = value.trim();
        let literal = if let Some(text) = value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')) {
            Literal::Text(text.to_owned())
        } else if value == "true" || value == "false" {
            Literal::Bool(value == "true")
        } else if value == "null" {
            Literal::Null
        } else {
            Literal::Number(value.parse().map_err(|_| format!("Invalid value '{value}' in filter."))?)
        };
        clauses.push((field.to_owned(), op.to_owned(), literal));
    }
    Ok(clauses)
}

fn matches(row: &Value, clauses: &[(String, String, Literal)]) -> Result<bool, String> {
    for (field, op, literal) in clauses {
        let Some(value) = row.get(field) else {
            return Err(format!("Could not find a property named '{field}'."));
        };
        let ordering = match (value, literal) {
            (Value::Null, Literal::Null) => Some(std::cmp::Ordering::Equal),
            (Value::Null, _) | (_, Literal::Null) => None,
            (Value::String(a), Literal::Text(b)) => Some(a.as_str().cmp(b.as_str())),
            (Value::Number(a), Literal::Number(b)) => a.as_f64().and_then(|a| a.partial_cmp(b)),
            (Value::Bool(a), Literal::Bool(b)) => Some(a.cmp(b)),
            _ => return Err(format!("The types of '{field}' and its filter value do not match.")),
        };
        let ok = match (op.as_str(), ordering) {
            ("eq", Some(o)) => o.is_eq(),
            ("ne", o) => o != Some(std::cmp::Ordering::Equal),
            ("gt", Some(o)) => o.is_gt(),
            ("ge", Some(o)) => o.is_ge(),
            ("lt", Some(o)) => o.is_lt(),
            ("le", Some(o)) => o.is_le(),
            _ => false,
        };
        if !ok {
            return Ok(false);
        }
    }
    Ok(true)
}

async fn biz(
    State(e): State<Emulator>,
    Path(entity): Path<String>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    if let Err(r) = e.admit(&headers) {
        return r;
    }
    let company = match e.company(&headers) {
        Ok(c) => c,
        Err(r) => return r,
    };
    if e.0.config.slow_entity.as_deref() == Some(entity.as_str()) {
        tokio::time::sleep(Duration::from_millis(e.0.config.slow_ms)).await;
    }
    let Some(rows) = company.data.entities.get(entity.as_str()) else {
        return error(StatusCode::NOT_FOUND, &format!("Entity '{entity}' was not found."));
    };
    if query.keys().any(|k| k.starts_with('$')) {
        return error(
            StatusCode::BAD_REQUEST,
            "Query parameters are given without '$' (filter, top, skip, ...).",
        );
    }
    let number = |name: &str, default: usize| -> Result<usize, Response> {
        match query.get(name) {
            None => Ok(default),
            Some(v) => v.parse().map_err(|_| {
                error(StatusCode::BAD_REQUEST, &format!("'{v}' is not a valid value for {name}."))
            }),
        }
    };
    let top = match number("top", 100) {
        Ok(t) => t.min(1000),
        Err(r) => return r,
    };
    let skip = match number("skip", 0) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let clauses = match query.get("filter").map(|f| parse_filter(f)).transpose() {
        Ok(c) => c.unwrap_or_default(),
        Err(m) => return error(StatusCode::BAD_REQUEST, &m),
    };
    let mut selected = Vec::new();
    for row in rows {
        match matches(row, &clauses) {
            Ok(true) => selected.push(row.clone()),
            Ok(false) => {}
            Err(m) => return error(StatusCode::BAD_REQUEST, &m),
        }
    }
    if let Some(order) = query.get("orderby") {
        let (field, desc) = match order.trim().split_once(' ') {
            Some((f, dir)) => (f.to_owned(), dir.eq_ignore_ascii_case("desc")),
            None => (order.trim().to_owned(), false),
        };
        if selected.first().is_some_and(|r| r.get(&field).is_none()) {
            return error(StatusCode::BAD_REQUEST, &format!("Could not find a property named '{field}'."));
        }
        let key = |r: &Value| -> (u8, String, f64) {
            match r.get(&field) {
                Some(Value::Number(n)) => (1, String::new(), n.as_f64().unwrap_or(0.0)),
                Some(Value::String(s)) => (1, s.clone(), 0.0),
                _ => (0, String::new(), 0.0),
            }
        };
        selected.sort_by(|a, b| {
            let o = key(a).partial_cmp(&key(b)).unwrap_or(std::cmp::Ordering::Equal);
            if desc {
                o.reverse()
            } else {
                o
            }
        });
    }
    let expand: Vec<&str> =
        query.get("expand").map(|e| e.split(',').map(str::trim).collect()).unwrap_or_default();
    let page: Vec<Value> = selected
        .into_iter()
        .skip(skip)
        .take(top)
        .map(|mut r| {
            // Like the real API, related objects come only when expanded.
            if let Value::Object(map) = &mut r {
                if map.contains_key("Info") && !expand.contains(&"Info") {
                    map.insert("Info".into(), Value::Null);
                }
            }
            r
        })
        .collect();
    Json(page).into_response()
}

async fn stats(State(e): State<Emulator>) -> Json<Value> {
    let s = &e.0.stats;
    Json(json!({
        "api_requests": s.api_requests.load(Ordering::SeqCst),
        "rate_limited": s.rate_limited.load(Ordering::SeqCst),
        "unauthorized": s.unauthorized.load(Ordering::SeqCst),
        "tokens_issued": s.tokens_issued.load(Ordering::SeqCst),
        "refreshes": s.refreshes.load(Ordering::SeqCst),
    }))
}

async fn trial_balance(State(e): State<Emulator>, Query(query): Query<HashMap<String, String>>) -> Response {
    let Some(company) = query.get("company").and_then(|k| e.0.companies.iter().find(|c| &c.row.key == k))
    else {
        return error(StatusCode::NOT_FOUND, "unknown company");
    };
    let Some(year) = query.get("year").and_then(|y| y.parse().ok()) else {
        return error(StatusCode::BAD_REQUEST, "year is required");
    };
    let tb: BTreeMap<String, Value> = data::trial_balance(company, year)
        .into_iter()
        .map(|(k, (d, c))| (k, json!({"debit": d.to_string(), "credit": c.to_string()})))
        .collect();
    Json(json!({"company": company.row.key, "organisation_number": company.row.organization_number, "year": year, "accounts": tb}))
        .into_response()
}

/// Serves on `listener` until the process ends.
pub async fn serve(listener: tokio::net::TcpListener, emulator: Emulator) -> std::io::Result<()> {
    axum::serve(listener, emulator.router()).await
}
