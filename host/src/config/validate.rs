//! Semantic checks after parsing: what serde's types cannot say.

use super::locate::FieldPath;
use super::{Config, FiscalYears, ScheduleConfig, Source, Tenant};
use crate::schedule::ScheduleError;
use std::collections::HashMap;
use std::net::IpAddr;

/// One semantic problem, placed by field path.
#[derive(Debug)]
pub(crate) struct Issue {
    pub(crate) path: FieldPath,
    pub(crate) message: String,
    pub(crate) resolution: String,
}

struct Issues(Vec<Issue>);

impl Issues {
    fn push(&mut self, path: FieldPath, message: impl Into<String>, resolution: impl Into<String>) {
        self.0.push(Issue { path, message: message.into(), resolution: resolution.into() });
    }
}

/// Every semantic problem of `config`, in file order as far as possible.
pub(crate) fn validate(config: &Config) -> Vec<Issue> {
    let mut issues = Issues(Vec::new());
    let root = FieldPath::default();
    check_hub(config, &root.key("hub"), &mut issues);
    if config.spool.max_bytes == 0 {
        issues.push(
            root.key("spool").key("max_bytes"),
            "the spool size limit is 0 bytes: nothing could ever be spooled",
            "set max_bytes to the disk space the spool may use, e.g. 10_737_418_240 (10 GiB)",
        );
    }
    if config.tenants.is_empty() {
        issues.push(
            root.key("tenants"),
            "no [[tenants]]: there is nothing to sync",
            "add a [[tenants]] table with id and api_key, and its [[tenants.sources]] (see config/example.toml)",
        );
    }
    if let Some(control) = &config.control {
        check_control(control, &root.key("control"), &mut issues);
    }
    let mut tenant_ids: HashMap<&str, FieldPath> = HashMap::new();
    let mut source_ids: HashMap<&str, FieldPath> = HashMap::new();
    for (ti, tenant) in config.tenants.iter().enumerate() {
        let tpath = root.key("tenants").index(ti);
        check_tenant(tenant, &tpath, &mut tenant_ids, &mut issues);
        for (si, source) in tenant.sources.iter().enumerate() {
            let spath = tpath.key("sources").index(si);
            check_source(source, &spath, &mut source_ids, &mut issues);
        }
    }
    issues.0
}

fn check_control(control: &super::ControlConfig, path: &FieldPath, issues: &mut Issues) {
    if !(1..=300).contains(&control.heartbeat_secs) {
        issues.push(
            path.key("heartbeat_secs"),
            format!("heartbeat_secs is {}, outside 1 to 300", control.heartbeat_secs),
            "use a value from 1 to 300 seconds (default 25)",
        );
    }
    if control.reconnect_min_secs == 0 {
        issues.push(
            path.key("reconnect_min_secs"),
            "reconnect_min_secs is 0: a failing hub would be hammered without pause",
            "use at least 1 second (default 1)",
        );
    }
    if control.reconnect_max_secs < control.reconnect_min_secs.max(1) {
        issues.push(
            path.key("reconnect_max_secs"),
            format!(
                "reconnect_max_secs ({}) is less than reconnect_min_secs ({})",
                control.reconnect_max_secs, control.reconnect_min_secs
            ),
            "make reconnect_max_secs at least reconnect_min_secs (default 300)",
        );
    }
    if !(1..=120).contains(&control.poll_wait_secs) {
        issues.push(
            path.key("poll_wait_secs"),
            format!("poll_wait_secs is {}, outside 1 to 120", control.poll_wait_secs),
            "use a value from 1 to 120 seconds (default 25); proxies often cut requests after 30-60 s",
        );
    }
}

fn check_hub(config: &Config, path: &FieldPath, issues: &mut Issues) {
    let hub = &config.hub;
    match url::Url::parse(&hub.url) {
        Err(e) => issues.push(
            path.key("url"),
            format!("`{}` is not a URL ({e})", super::redact_url(&hub.url)),
            "write the hub's address with its scheme, e.g. \"https://hub.example.com\"",
        ),
        Ok(url) => {
            let loopback = is_loopback(&url);
            match url.scheme() {
                "https" => {}
                "http" if loopback => {}
                "http" => issues.push(
                    path.key("url"),
                    "plain http:// is only allowed to a loopback address (127.0.0.1, ::1, localhost): \
                     API keys and accounting data would cross the network unencrypted",
                    "use https:// (the hub must have a TLS certificate)",
                ),
                other => {
                    issues.push(path.key("url"), format!("the hub URL has scheme `{other}`"), "use https://")
                }
            }
            if !url.username().is_empty() || url.password().is_some() {
                issues.push(
                    path.key("url"),
                    "the hub URL contains credentials",
                    "remove them from the URL: each tenant authenticates with its api_key",
                );
            }
        }
    }
    if let Some(proxy) = &hub.proxy {
        let ok = url::Url::parse(proxy)
            .map(|u| matches!(u.scheme(), "http" | "https" | "socks5" | "socks5h") && u.host().is_some());
        if !matches!(ok, Ok(true)) {
            issues.push(
                path.key("proxy"),
                format!("`{}` is not a proxy URL", super::redact_url(proxy)),
                "write it as \"http://host:port\" (or https://, socks5://), or remove the key to use HTTPS_PROXY",
            );
        }
    }
    if hub.timeout_secs == 0 {
        issues.push(
            path.key("timeout_secs"),
            "the timeout is 0 seconds",
            "use a timeout of at least 1, e.g. 60",
        );
    }
}

fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    }
}

fn check_tenant<'a>(
    tenant: &'a Tenant,
    path: &FieldPath,
    seen: &mut HashMap<&'a str, FieldPath>,
    issues: &mut Issues,
) {
    if check_id("tenant id", &tenant.id, &path.key("id"), issues) {
        if let Some(first) = seen.get(tenant.id.as_str()) {
            issues.push(
                path.key("id"),
                format!("tenant id `{}` is already used by {first}", tenant.id),
                "give every [[tenants]] its own id, or merge their sources into one",
            );
        } else {
            seen.insert(&tenant.id, path.clone());
        }
    }
    if tenant.api_key.is_blank() {
        issues.push(
            path.key("api_key"),
            "api_key is empty",
            "paste the tenant's API key from the hub (it starts with llk_)",
        );
    }
}

fn check_source<'a>(
    source: &'a Source,
    path: &FieldPath,
    seen: &mut HashMap<&'a str, FieldPath>,
    issues: &mut Issues,
) {
    if check_id("source id", &source.id, &path.key("id"), issues) {
        if let Some(first) = seen.get(source.id.as_str()) {
            issues.push(
                path.key("id"),
                format!("source id `{}` is already used by {first}", source.id),
                "source ids are unique across the whole file (they name the source in `ledgerlink sync --source`)",
            );
        } else {
            seen.insert(&source.id, path.clone());
        }
    }
    check_id("plugin id", &source.plugin, &path.key("plugin"), issues);
    if let Some(companies) = &source.companies {
        if companies.is_empty() {
            issues.push(
                path.key("companies"),
                "companies is an empty list: no company would be synced",
                "list company ids, or remove the key to sync every company",
            );
        }
        if let Some(i) = companies.iter().position(|c| c.trim().is_empty()) {
            issues.push(path.key("companies").index(i), "an empty company id", "remove it");
        }
    }
    match &source.fiscal_years {
        FiscalYears::Recent { count: 0 } => issues.push(
            path.key("fiscal_years").key("count"),
            "count is 0: no fiscal year would be synced",
            "use count = 1 for the current year, 2 for it and the previous one",
        ),
        FiscalYears::List { years } if years.is_empty() => issues.push(
            path.key("fiscal_years").key("years"),
            "years is an empty list",
            "list the years, e.g. years = [2024, 2025], or use { type = \"recent\", count = 2 }",
        ),
        FiscalYears::List { years } => {
            if let Some(i) = years.iter().position(|y| !(1900..=2200).contains(y)) {
                issues.push(
                    path.key("fiscal_years").key("years").index(i),
                    format!("{} is not a plausible fiscal year", years[i]),
                    "write the year with four digits, e.g. 2025",
                );
            }
        }
        FiscalYears::Recent { .. } => {}
    }
    if source.worker_stall_secs == 0 {
        issues.push(
            path.key("worker_stall_secs"),
            "worker_stall_secs is 0: every worker would be killed at once",
            "use the default 300, or more for slow database servers",
        );
    }
    if source.worker_memory_mb < 32 {
        issues.push(
            path.key("worker_memory_mb"),
            format!("worker_memory_mb is {}: too little for any plugin to start", source.worker_memory_mb),
            "use the default 1024, or at least 32",
        );
    }
    if source.max_concurrent_jobs == 0 {
        issues.push(
            path.key("max_concurrent_jobs"),
            "max_concurrent_jobs is 0: the source could never run",
            "use 1 (the default) or more",
        );
    }
    if source.retry.max_attempts == 0 {
        issues.push(
            path.key("retry").key("max_attempts"),
            "max_attempts is 0: the source could never run",
            "use 1 for no retries, or more",
        );
    }
    if let Err(e) = source.schedule.build() {
        let field = schedule_field(&source.schedule, &e);
        issues.push(path.key("schedule").key(field), e.to_string(), schedule_resolution(&e));
    }
    check_secret_settings(&source.settings, &path.key("settings"), issues);
}

/// True for a setting that can only be a password or secret text: its last
/// word is one (`password`, `db_pwd`, `client_secret`). Broader secret-like names
/// (`max_tokens`, `sort_key`) may be numbers and are only hidden, not checked.
fn names_a_password(key: &str) -> bool {
    let last = key.rsplit(['_', '-', '.']).next().unwrap_or(key).to_ascii_lowercase();
    matches!(last.as_str(), "password" | "passwd" | "pwd" | "secret")
}

/// A setting named like a password (`password`, `pwd`, `client_secret`) must be a quoted
/// string: only strings are encrypted at rest and hidden from messages, and a
/// plugin's type error would otherwise quote the value. The value is not shown.
fn check_secret_settings(table: &toml::Table, path: &FieldPath, issues: &mut Issues) {
    for (key, value) in table {
        match value {
            toml::Value::Table(inner) => check_secret_settings(inner, &path.key(key), issues),
            toml::Value::String(_) => {}
            other if names_a_password(key) => issues.push(
                path.key(key),
                format!("`{key}` is a {}, not a quoted string (its value is not shown)", other.type_str()),
                format!("a secret is text: quote it, {key} = \"…\""),
            ),
            _ => {}
        }
    }
}

/// Checks an id's syntax; `true` when it is well-formed.
fn check_id(what: &str, id: &str, path: &FieldPath, issues: &mut Issues) -> bool {
    let ok = !id.is_empty()
        && id.len() <= 64
        && !id.starts_with(['.', '-'])
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if !ok {
        issues.push(
            path.clone(),
            format!("{what} `{id}` is not a valid id"),
            "use 1 to 64 characters: letters, digits, '-', '_' or '.', not starting with '.' or '-'",
        );
    }
    ok
}

/// The key of a schedule table that a schedule error is about.
fn schedule_field(config: &ScheduleConfig, error: &ScheduleError) -> &'static str {
    match (config, error) {
        (ScheduleConfig::Nightly { window_start, .. }, ScheduleError::InvalidTime(v))
            if v == window_start =>
        {
            "window_start"
        }
        (ScheduleConfig::Nightly { .. }, _) => "window_end",
        (ScheduleConfig::Weekly { .. }, ScheduleError::InvalidWeekday(_)) => "weekday",
        (ScheduleConfig::Weekly { .. }, ScheduleError::SpreadTooLong) => "spread_minutes",
        (ScheduleConfig::Weekly { .. }, _) => "at",
        (ScheduleConfig::Interval { .. }, _) => "every_minutes",
        (ScheduleConfig::Cron { .. }, _) => "expression",
    }
}

fn schedule_resolution(error: &ScheduleError) -> &'static str {
    match error {
        ScheduleError::InvalidTime(_) => "write the time as \"HH:MM\", e.g. \"19:00\"",
        ScheduleError::EmptyWindow(_) => "make window_end differ from window_start, e.g. 19:00 to 07:00",
        ScheduleError::IntervalTooShort => "use every_minutes = 1 or more",
        ScheduleError::SpreadTooLong => "use spread_minutes between 0 and 720",
        ScheduleError::InvalidWeekday(_) => "write the day in English, e.g. \"saturday\"",
        ScheduleError::InvalidCron { .. } | ScheduleError::CronNeverFires(_) => {
            "write 5 fields (minute hour day month weekday) or 6 with seconds first, e.g. \"0 30 2 * * *\""
        }
    }
}
