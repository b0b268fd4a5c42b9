//! The configuration file: a TOML model, its validation, and where the file lives.
//!
//! [`load`] reads, parses and validates in one step; every problem it reports names
//! `file:line:column`, the field path (`tenants[0].sources[1].schedule.type`) and what
//! to do. Unknown keys are errors everywhere except inside a source's `settings`,
//! which belong to the plugin. `docs/configuration.md` documents every key.

mod encrypt;
mod locate;
mod plugin_settings;
mod sealed;
pub use plugin_settings::Installed;
mod redact;
mod secret;
mod validate;

pub use encrypt::{encrypt_file, EncryptError, Encrypted};
pub use redact::{holds_password_attribute, is_secret_key, redact_json, REDACTED};
pub use sealed::{SealError, SecretKey};
pub use secret::Secret;

use crate::schedule::{self, Schedule, ScheduleError};
use ledgerlink_plugin_api::sdk::without_quoted_values;
use locate::{line_col, FieldPath, Locator, Seg};
use serde::Deserialize;
use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};

/// The environment variable that overrides the default configuration path.
pub const CONFIG_ENV: &str = "LEDGERLINK_CONFIG";

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// This installation: data directory, service user.
    #[serde(default)]
    pub agent: AgentConfig,
    /// The hub to upload to.
    pub hub: HubConfig,
    /// The store-and-forward spool.
    #[serde(default)]
    pub spool: SpoolConfig,
    /// Where plugin files are.
    #[serde(default)]
    pub plugins: PluginsConfig,
    /// The customers this agent syncs for, each with its own API key and sources.
    #[serde(default)]
    pub tenants: Vec<Tenant>,
    /// The outbound control channel to the hub; `None`: no remote control.
    #[serde(default)]
    pub control: Option<ControlConfig>,
    /// Field paths of the secrets written in clear in the file (not encrypted at rest).
    #[serde(skip)]
    pub clear_secrets: Vec<String>,
}

/// `[control]`: the outbound control channel (one connection per tenant).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControlConfig {
    /// False keeps the section but opens no connection.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// How to connect: try each in turn (`auto`), or one only.
    #[serde(default)]
    pub transport: ControlTransport,
    /// Seconds between heartbeats; a connection silent for three heartbeats is reopened.
    #[serde(default = "default_heartbeat_secs")]
    pub heartbeat_secs: u64,
    /// First wait before reconnecting, in seconds; doubled (with jitter) after each failure.
    #[serde(default = "default_reconnect_min_secs")]
    pub reconnect_min_secs: u64,
    /// Longest wait before reconnecting, in seconds.
    #[serde(default = "default_reconnect_max_secs")]
    pub reconnect_max_secs: u64,
    /// How long one long-poll request waits for a command, in seconds.
    #[serde(default = "default_poll_wait_secs")]
    pub poll_wait_secs: u64,
}

/// `control.transport`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ControlTransport {
    /// WebSocket, else Server-Sent Events, else long-polling.
    #[default]
    Auto,
    /// WebSocket only.
    Websocket,
    /// Server-Sent Events only.
    Sse,
    /// Long-polling only.
    LongPoll,
}

impl Default for ControlConfig {
    fn default() -> Self {
        ControlConfig {
            enabled: true,
            transport: ControlTransport::Auto,
            heartbeat_secs: default_heartbeat_secs(),
            reconnect_min_secs: default_reconnect_min_secs(),
            reconnect_max_secs: default_reconnect_max_secs(),
            poll_wait_secs: default_poll_wait_secs(),
        }
    }
}

fn default_heartbeat_secs() -> u64 {
    25
}

fn default_reconnect_min_secs() -> u64 {
    1
}

fn default_reconnect_max_secs() -> u64 {
    300
}

fn default_poll_wait_secs() -> u64 {
    25
}

/// `[agent]`: this installation.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// State store, default spool and the agent id file live here.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// The service account, reported in the User-Agent; `None`: the OS user the host runs as.
    #[serde(default)]
    pub service_user: Option<String>,
    /// The key of the secrets encrypted in this file; `None`: `<data_dir>/secret.key`.
    #[serde(default)]
    pub secret_key_file: Option<PathBuf>,
}

impl AgentConfig {
    /// The key file of the encrypted secrets: `secret_key_file`, else `<data_dir>/secret.key`.
    pub fn secret_key_path(&self) -> PathBuf {
        self.secret_key_file.clone().unwrap_or_else(|| self.data_dir.join("secret.key"))
    }
}

/// `[hub]`: where snapshots go.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HubConfig {
    /// The hub's base URL: `https://…` (plain `http://` only to a loopback address).
    pub url: String,
    /// An HTTP(S) proxy URL; `None`: `HTTPS_PROXY` / `https_proxy` from the environment.
    #[serde(default)]
    pub proxy: Option<String>,
    /// Timeout of one HTTP request, in seconds.
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: u64,
    /// A PEM file of an extra certificate authority to trust (a company's private CA);
    /// the public web roots are always trusted.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
}

/// `[spool]`: snapshots waiting for the hub.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpoolConfig {
    /// The spool directory; `None`: `<data_dir>/spool`.
    #[serde(default)]
    pub directory: Option<PathBuf>,
    /// The most bytes the spool may hold; extraction waits when it is full.
    #[serde(default = "default_spool_max_bytes")]
    pub max_bytes: u64,
}

/// `[plugins]`: where plugin files are.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginsConfig {
    /// Directories searched for plugin files; empty: `plugins/` beside the executable.
    #[serde(default)]
    pub directories: Vec<PathBuf>,
}

/// `[[tenants]]`: one customer of the hub.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tenant {
    /// The tenant id on the hub.
    pub id: String,
    /// The tenant's API key for the hub.
    pub api_key: Secret,
    /// The ERP sources synced for this tenant.
    #[serde(default)]
    pub sources: Vec<Source>,
}

/// `[[tenants.sources]]`: one ERP database read by one plugin.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Source {
    /// Unique across the whole file; names the source on the command line and in state.
    pub id: String,
    /// The plugin id (from the plugin's manifest), e.g. `visma-business`.
    pub plugin: String,
    /// A disabled source is kept in the file but never run.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Only these company ids; `None`: every company the plugin lists.
    #[serde(default)]
    pub companies: Option<Vec<String>>,
    /// Which fiscal years to sync.
    #[serde(default)]
    pub fiscal_years: FiscalYears,
    /// At most this many jobs of this source at a time.
    #[serde(default = "default_one")]
    pub max_concurrent_jobs: u32,
    /// Retries of a failed job.
    #[serde(default)]
    pub retry: RetryConfig,
    /// When the source runs.
    #[serde(default)]
    pub schedule: ScheduleConfig,
    /// Where the plugin runs: in a supervised worker process (default) or in the host.
    #[serde(default)]
    pub isolation: Isolation,
    /// A worker that produces nothing for this many seconds is killed.
    #[serde(default = "default_worker_stall_secs")]
    pub worker_stall_secs: u64,
    /// A worker using more resident memory than this many MiB is killed.
    #[serde(default = "default_worker_memory_mb")]
    pub worker_memory_mb: u64,
    /// Free-form settings for the plugin (see [`Source::plugin_settings_json`]).
    #[serde(default)]
    pub settings: toml::Table,
}

/// Which fiscal years a source syncs; selected by `type`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum FiscalYears {
    /// The current year and the `count - 1` before it.
    Recent {
        /// How many years, at least 1.
        count: u32,
    },
    /// Exactly these years.
    List {
        /// The years, e.g. `[2024, 2025]`.
        years: Vec<i32>,
    },
}

/// How a failed job is retried.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetryConfig {
    /// Attempts in all, the first included (at least 1).
    pub max_attempts: u32,
    /// Wait before the first retry, in seconds; doubled for each further retry.
    pub initial_backoff_secs: u64,
}

/// A schedule as written in the file; selected by `type`. [`ScheduleConfig::build`] makes it a [`Schedule`].
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ScheduleConfig {
    /// Once a night inside a local-time window, at a point fixed per install.
    Nightly {
        /// Window start, `HH:MM` local time (default 19:00).
        #[serde(default = "default_window_start")]
        window_start: String,
        /// Window end, `HH:MM` local time (default 07:00); before the start when it wraps midnight.
        #[serde(default = "default_window_end")]
        window_end: String,
    },
    /// Once a week.
    Weekly {
        /// `monday` … `sunday`.
        weekday: String,
        /// `HH:MM` local time.
        at: String,
        /// Spread installs over this many minutes after `at` (0 to 720, default 0).
        #[serde(default)]
        spread_minutes: u32,
    },
    /// Every N minutes, counted from the start of the previous run.
    Interval {
        /// Minutes between runs, at least 1.
        every_minutes: u32,
    },
    /// A cron expression in local time: 5 fields, or 6 with seconds first.
    Cron {
        /// The expression, e.g. `"0 30 2 * * *"`.
        expression: String,
    },
}

/// Why the configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read.
    #[error(
        "cannot read the configuration file {}: {source}\n    Resolution: {}",
        path.display(),
        read_resolution(source)
    )]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file was read but is not a valid configuration.
    #[error("{}", Problems { path, problems })]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Every problem found (a syntax or type error stops at the first).
        problems: Vec<Problem>,
    },
}

/// One problem in the configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// 1-based line, when the problem has a place in the file.
    pub line: Option<usize>,
    /// 1-based column (in characters), with `line`.
    pub column: Option<usize>,
    /// The field path, e.g. `tenants[0].sources[1].schedule.type`; empty for the whole file.
    pub field: String,
    /// What is wrong.
    pub message: String,
    /// What to do about it.
    pub resolution: String,
}

impl ConfigError {
    /// The problems, empty for a read error.
    pub fn problems(&self) -> &[Problem] {
        match self {
            ConfigError::Read { .. } => &[],
            ConfigError::Invalid { problems, .. } => problems,
        }
    }
}

/// The default configuration path of this OS.
pub fn default_path() -> PathBuf {
    if cfg!(windows) {
        program_data().join("Ledgerlink").join("ledgerlink.toml")
    } else {
        PathBuf::from("/etc/ledgerlink/ledgerlink.toml")
    }
}

/// The configuration path to use: `cli` (`--config`), else `LEDGERLINK_CONFIG`, else [`default_path`].
pub fn resolve_path(cli: Option<&Path>) -> PathBuf {
    resolve_path_from(cli, std::env::var_os(CONFIG_ENV))
}

fn resolve_path_from(cli: Option<&Path>, env: Option<OsString>) -> PathBuf {
    match (cli, env) {
        (Some(path), _) => path.to_owned(),
        (None, Some(env)) if !env.is_empty() => PathBuf::from(env),
        _ => default_path(),
    }
}

/// A warning when the configuration file at `path` can be changed by other accounts
/// (they could point `hub.url` elsewhere and receive the API key), or, while it holds
/// secrets in clear, read by any account (Unix modes). The key file of encrypted
/// secrets gets the same check.
pub fn exposure_warning(config: &Config, path: &Path) -> Option<String> {
    let keys = [
        sealed::exposure_warning(&config.agent.secret_key_path(), "opens the configuration's secrets"),
        sealed::exposure_warning(
            &crate::identity::key_path(&config.agent.data_dir),
            "is this agent's identity (whoever has it uploads as this agent)",
        ),
    ];
    let key_file = keys.into_iter().flatten().reduce(|a, b| format!("{a}; {b}"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o777;
        // Group read (0640, root:ledgerlink) is the usual way to let the service read it.
        let (mask, what) = if config.clear_secrets.is_empty() {
            (0o022, "other accounts can change it (and send the API key elsewhere)")
        } else {
            (0o027, "holds API keys and passwords in clear and other users can access it")
        };
        let file = (mode & mask != 0).then(|| {
            format!(
                "the configuration file {} {what} (mode {mode:04o}). Resolution: chmod 600 {0}, owned by the \
                 service account",
                path.display()
            )
        });
        match (file, key_file) {
            (Some(a), Some(b)) => Some(format!("{a}; {b}")),
            (a, b) => a.or(b),
        }
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        key_file
    }
}

/// A warning when the configuration at `path` holds secrets in clear (`config.clear_secrets`).
pub fn clear_secrets_warning(config: &Config, path: &Path) -> Option<String> {
    let clear = &config.clear_secrets;
    (!clear.is_empty()).then(|| {
        format!(
            "the configuration file {} holds {} in clear ({}). Resolution: `ledgerlink config encrypt \
             --config {0}` encrypts {} with a key kept in the data directory",
            path.display(),
            if clear.len() == 1 { "1 secret".to_owned() } else { format!("{} secrets", clear.len()) },
            clear.join(", "),
            if clear.len() == 1 { "it" } else { "them" },
        )
    })
}

/// Reads, parses and validates the configuration file at `path`.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
    parse(&text, path)
}

/// Parses and validates configuration `text`; `path` only names the file in errors.
pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
    let invalid = |problems| ConfigError::Invalid { path: path.to_owned(), problems };
    let mut config: Config = toml::from_str(text).map_err(|e| invalid(vec![parse_problem(text, &e)]))?;
    let sealed = encrypt::open_sealed(&mut config);
    if !sealed.is_empty() {
        return Err(invalid(placed(text, sealed)));
    }
    let issues = validate::validate(&config);
    if issues.is_empty() {
        return Ok(config);
    }
    Err(invalid(placed(text, issues)))
}

/// Issues placed at their line in `text`.
fn placed(text: &str, issues: Vec<validate::Issue>) -> Vec<Problem> {
    let locator = Locator::new(text);
    issues
        .into_iter()
        .map(|issue| {
            let span = locator.as_ref().and_then(|l| l.span_of(&issue.path));
            let (line, column) = span.map(|s| line_col(text, s.start)).unzip();
            Problem {
                line,
                column,
                field: issue.path.to_string(),
                message: issue.message,
                resolution: issue.resolution,
            }
        })
        .collect()
}

/// Checks a loaded `config` (from `path`) against the installed plugins, by id
/// with their settings schemas: every source's plugin is installed and its
/// settings fit the schema (`ledgerlink config validate`).
pub fn check_plugins(path: &Path, config: &Config, installed: &Installed) -> Result<(), ConfigError> {
    let issues = plugin_settings::check(config, installed);
    if issues.is_empty() {
        return Ok(());
    }
    let text = std::fs::read_to_string(path)
        .map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
    Err(ConfigError::Invalid { path: path.to_owned(), problems: placed(&text, issues) })
}

/// A syntax or type error from toml, with its place, field path and a resolution.
fn parse_problem(text: &str, error: &toml::de::Error) -> Problem {
    let mut message = error.message().trim().to_owned();
    let locator = Locator::new(text);
    let (mut path, mut span) = match (&locator, error.span()) {
        // An empty span at the start is toml's way of blaming the root table.
        (Some(_), Some(s)) if s.is_empty() && s.start == 0 => (FieldPath::default(), Some(s)),
        (Some(l), Some(s)) => l.path_at(s.start),
        _ => (FieldPath::default(), None),
    };
    let span_start = span.as_ref().map(|s| s.start).or(error.span().map(|s| s.start));
    // Name the key the message is about, when the span covers its whole table.
    let quoted = message.split('`').nth(1).map(str::to_owned);
    let resolution;
    if let Some(field) = quoted.as_deref().filter(|_| message.starts_with("unknown field")) {
        if path.0.last() != Some(&Seg::Key(field.to_owned())) {
            path = path.key(field);
            span = locator.as_ref().and_then(|l| l.key_span(&path)).or(span);
        }
        resolution =
            "remove this key or correct its spelling (docs/configuration.md lists every key)".to_owned();
    } else if let Some(field) = quoted.as_deref().filter(|_| message.starts_with("missing field")) {
        path = path.key(field);
        resolution = format!("add `{field} = …` here (see config/example.toml)");
    } else if let Some(value) = quoted.as_deref().filter(|_| message.starts_with("unknown variant")) {
        if let Some(key) = locator.as_ref().and_then(|l| l.key_with_string(&path, value)) {
            path = path.key(&key);
            span = locator.as_ref().and_then(|l| l.span_of(&path)).or(span);
        }
        resolution = "use one of the values listed above".to_owned();
    } else if message.starts_with("invalid type") || message.starts_with("invalid value") {
        if matches!(path.0.last(), Some(Seg::Key(key)) if is_secret_key(key)) {
            message = format!("{} (the value is not shown)", without_quoted_values(&message));
        }
        resolution = "give this key a value of the expected type (see docs/configuration.md)".to_owned();
    } else if locator.is_none() {
        resolution = "fix the TOML syntax at this position".to_owned();
    } else {
        resolution = "see docs/configuration.md".to_owned();
    }
    let start = span.map(|s| s.start).or(span_start);
    let (line, column) = start.map(|s| line_col(text, s)).unzip();
    Problem { line, column, field: path.to_string(), message, resolution }
}

impl Config {
    /// Every source of every tenant, in file order.
    pub fn sources(&self) -> impl Iterator<Item = (&Tenant, &Source)> {
        self.tenants.iter().flat_map(|t| t.sources.iter().map(move |s| (t, s)))
    }

    /// The source with this id, and its tenant.
    pub fn source(&self, id: &str) -> Option<(&Tenant, &Source)> {
        self.sources().find(|(_, s)| s.id == id)
    }

    /// The spool directory: `spool.directory`, else `<data_dir>/spool`.
    pub fn spool_dir(&self) -> PathBuf {
        self.spool.directory.clone().unwrap_or_else(|| self.agent.data_dir.join("spool"))
    }
}

impl HubConfig {
    /// The request timeout.
    pub fn timeout(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.timeout_secs)
    }

    /// The proxy to use: `proxy`, else `HTTPS_PROXY`, else `https_proxy`; `None` when none is set.
    pub fn effective_proxy(&self) -> Option<String> {
        self.proxy.clone().or_else(|| {
            ["HTTPS_PROXY", "https_proxy"]
                .iter()
                .find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
        })
    }
}

impl fmt::Debug for HubConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HubConfig")
            .field("url", &redact_url(&self.url))
            .field("proxy", &self.proxy.as_deref().map(redact_url))
            .field("timeout_secs", &self.timeout_secs)
            .field("ca_file", &self.ca_file)
            .finish()
    }
}

/// A URL with its password (if any) replaced by `***`.
pub fn redact_url(text: &str) -> String {
    match url::Url::parse(text) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some(REDACTED));
            parsed.to_string()
        }
        Ok(_) => text.to_owned(),
        // Not a URL: hide everything between "://" and "@", if both are there.
        Err(_) => match (text.find("://"), text.rfind('@')) {
            (Some(a), Some(b)) if a + 3 < b => format!("{}{REDACTED}{}", &text[..a + 3], &text[b..]),
            _ => text.to_owned(),
        },
    }
}

impl Source {
    /// The plugin settings as the JSON object the plugin receives. Contains secrets in
    /// clear: pass it to the plugin only, and show it through [`redact_json`].
    pub fn plugin_settings_json(&self) -> serde_json::Value {
        redact::toml_table_to_json(&self.settings)
    }

    /// The schedule; always `Ok` for a configuration returned by [`load`] or [`parse`].
    pub fn schedule(&self) -> Result<Schedule, ScheduleError> {
        self.schedule.build()
    }

    /// Whether this source syncs company `company` (no `companies` filter: every company).
    pub fn wants_company(&self, company: &str) -> bool {
        match &self.companies {
            None => true,
            Some(list) => list.iter().any(|c| c == company),
        }
    }
}

impl fmt::Debug for Source {
    /// Settings are shown through [`redact_json`].
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Source")
            .field("id", &self.id)
            .field("plugin", &self.plugin)
            .field("enabled", &self.enabled)
            .field("companies", &self.companies)
            .field("fiscal_years", &self.fiscal_years)
            .field("max_concurrent_jobs", &self.max_concurrent_jobs)
            .field("retry", &self.retry)
            .field("schedule", &self.schedule)
            .field("isolation", &self.isolation)
            .field("worker_stall_secs", &self.worker_stall_secs)
            .field("worker_memory_mb", &self.worker_memory_mb)
            .field("settings", &format_args!("{}", redact_json(&self.plugin_settings_json())))
            .finish()
    }
}

impl FiscalYears {
    /// The years to sync when the current fiscal year is `current`, oldest first.
    pub fn years(&self, current: i32) -> Vec<i32> {
        match self {
            FiscalYears::Recent { count } => {
                let count = i32::try_from(*count).unwrap_or(i32::MAX).max(1);
                (current.saturating_sub(count - 1)..=current).collect()
            }
            FiscalYears::List { years } => {
                let mut years = years.clone();
                years.sort_unstable();
                years.dedup();
                years
            }
        }
    }
}

impl Default for FiscalYears {
    /// The current and the previous year.
    fn default() -> Self {
        FiscalYears::Recent { count: 2 }
    }
}

impl Default for RetryConfig {
    /// 3 attempts, 30 s before the first retry.
    fn default() -> Self {
        RetryConfig { max_attempts: 3, initial_backoff_secs: 30 }
    }
}

impl RetryConfig {
    /// The wait before the first retry.
    pub fn initial_backoff(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.initial_backoff_secs)
    }
}

impl Default for ScheduleConfig {
    /// Nightly between 19:00 and 07:00.
    fn default() -> Self {
        ScheduleConfig::Nightly { window_start: default_window_start(), window_end: default_window_end() }
    }
}

impl ScheduleConfig {
    /// The schedule this describes, or why it is invalid.
    pub fn build(&self) -> Result<Schedule, ScheduleError> {
        match self {
            ScheduleConfig::Nightly { window_start, window_end } => {
                Schedule::nightly(schedule::parse_time(window_start)?, schedule::parse_time(window_end)?)
            }
            ScheduleConfig::Weekly { weekday, at, spread_minutes } => Schedule::weekly(
                schedule::parse_weekday(weekday)?,
                schedule::parse_time(at)?,
                chrono::Duration::minutes(i64::from(*spread_minutes)),
            ),
            ScheduleConfig::Interval { every_minutes } => {
                Schedule::interval(chrono::Duration::minutes(i64::from(*every_minutes)))
            }
            ScheduleConfig::Cron { expression } => Schedule::cron(expression),
        }
    }
}

impl Default for AgentConfig {
    fn default() -> Self {
        AgentConfig { data_dir: default_data_dir(), service_user: None, secret_key_file: None }
    }
}

impl Default for SpoolConfig {
    fn default() -> Self {
        SpoolConfig { directory: None, max_bytes: default_spool_max_bytes() }
    }
}

/// The default data directory of this OS.
pub fn default_data_dir() -> PathBuf {
    if cfg!(windows) {
        program_data().join("Ledgerlink")
    } else {
        PathBuf::from("/var/lib/ledgerlink")
    }
}

fn program_data() -> PathBuf {
    std::env::var_os("ProgramData")
        .filter(|v| !v.is_empty())
        .map_or_else(|| PathBuf::from(r"C:\ProgramData"), PathBuf::from)
}

fn read_resolution(error: &std::io::Error) -> String {
    match error.kind() {
        std::io::ErrorKind::NotFound => format!(
            "create it (config/example.toml is an annotated start), or point --config or {CONFIG_ENV} at it"
        ),
        std::io::ErrorKind::PermissionDenied => {
            "run as the service user or root, or make the file readable by this user".to_owned()
        }
        _ => "check the path and the file".to_owned(),
    }
}

struct Problems<'a> {
    path: &'a Path,
    problems: &'a [Problem],
}

impl fmt::Display for Problems<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{}", self.path.display())?;
            if let (Some(line), Some(column)) = (p.line, p.column) {
                write!(f, ":{line}:{column}")?;
            }
            let field = if p.field.is_empty() { String::new() } else { format!(" {}:", p.field) };
            write!(f, ":{field} {}\n    Resolution: {}", p.message, p.resolution)?;
        }
        Ok(())
    }
}

fn default_worker_stall_secs() -> u64 {
    300
}

fn default_worker_memory_mb() -> u64 {
    1024
}

/// Where a source's plugin runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Isolation {
    /// In a worker process the host supervises: crashes, hangs and leaks end the job, not the host.
    #[default]
    Process,
    /// In the host process itself (for debugging; a plugin crash takes the host down).
    InProcess,
}

fn default_true() -> bool {
    true
}

fn default_one() -> u32 {
    1
}

fn default_timeout_secs() -> u64 {
    60
}

fn default_spool_max_bytes() -> u64 {
    10 * 1024 * 1024 * 1024
}

fn default_window_start() -> String {
    "19:00".to_owned()
}

fn default_window_end() -> String {
    "07:00".to_owned()
}

#[cfg(test)]
mod tests;
