//! `ledgerlink-hub support-token …` (local, on the data directory) and
//! `ledgerlink-hub admin …` (remote, over the admin API with a support token).

use crate::auth::{generate_support_token, hash_key};
use crate::now;
use crate::server::open_storage;
use crate::storage::{ControlStore, Role};
use anyhow::{bail, Context};
use clap::Subcommand;
use ledgerlink_protocol::api::path_segment;
use serde_json::{json, Value};
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// `support-token` subcommands.
#[derive(Debug, Subcommand)]
pub enum SupportTokenCommand {
    /// Creates a support token and prints it (shown only this once; only its hash is stored).
    Create {
        /// A name for the person or program using it (shown in the audit log).
        name: String,
        /// `viewer` sees everything and changes nothing; `support` may also send commands.
        #[arg(long, value_parser = ["viewer", "support"])]
        role: String,
        /// Data directory.
        #[arg(long, env = "LEDGERLINK_HUB_DATA")]
        data: PathBuf,
    },
    /// Lists support tokens.
    List {
        /// Data directory.
        #[arg(long, env = "LEDGERLINK_HUB_DATA")]
        data: PathBuf,
    },
    /// Revokes a support token.
    Revoke {
        /// The token's name.
        name: String,
        /// Data directory.
        #[arg(long, env = "LEDGERLINK_HUB_DATA")]
        data: PathBuf,
    },
}

/// Where the admin API is and how to authenticate.
#[derive(Debug, clap::Args)]
pub struct AdminConnection {
    /// The hub's base URL.
    #[arg(long, env = "LEDGERLINK_HUB_URL", default_value = "http://127.0.0.1:7380", global = true)]
    pub hub: String,
    /// A support token (`lls_…`); better passed in the environment than on the command line.
    #[arg(long, env = "LEDGERLINK_SUPPORT_TOKEN", hide_env_values = true, global = true)]
    pub token: Option<String>,
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    pub json: bool,
}

/// `admin` arguments.
#[derive(Debug, clap::Args)]
pub struct AdminArgs {
    /// Connection.
    #[command(flatten)]
    pub connection: AdminConnection,
    /// What to do.
    #[command(subcommand)]
    pub command: AdminCommand,
}

/// Options of commands sent to an agent.
#[derive(Debug, clap::Args)]
pub struct SendOptions {
    /// Why (kept with the command and in the audit log).
    #[arg(long)]
    pub reason: Option<String>,
    /// Wait up to this many seconds for the agent's result (0: only queue the command).
    #[arg(long, default_value_t = 0)]
    pub wait: u64,
    /// Seconds the command waits for an offline agent before it expires.
    #[arg(long)]
    pub expires_secs: Option<u64>,
}

/// `admin` subcommands.
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Agents: list, show.
    #[command(subcommand)]
    Agents(AgentsCommand),
    /// Switch a plugin of an agent off or on.
    Plugin {
        /// `disable` or `enable`.
        #[arg(value_parser = ["disable", "enable"])]
        action: String,
        /// Tenant name.
        tenant: String,
        /// Agent id.
        agent: String,
        /// Plugin id.
        plugin: String,
        /// Cancel a running job instead of letting it finish (disable only).
        #[arg(long)]
        cancel_running: bool,
        /// Sending options.
        #[command(flatten)]
        send: SendOptions,
    },
    /// Switch a source of an agent off or on.
    Source {
        /// `disable` or `enable`.
        #[arg(value_parser = ["disable", "enable"])]
        action: String,
        /// Tenant name.
        tenant: String,
        /// Agent id.
        agent: String,
        /// Source id.
        source: String,
        /// Cancel a running job instead of letting it finish (disable only).
        #[arg(long)]
        cancel_running: bool,
        /// Sending options.
        #[command(flatten)]
        send: SendOptions,
    },
    /// Ask an agent to sync a source now.
    Sync {
        /// Tenant name.
        tenant: String,
        /// Agent id.
        agent: String,
        /// Source id.
        #[arg(long)]
        source: String,
        /// Only this company.
        #[arg(long)]
        company: Option<String>,
        /// Only this fiscal year.
        #[arg(long)]
        year: Option<i32>,
        /// Upload even when nothing changed.
        #[arg(long)]
        force: bool,
        /// Sending options.
        #[command(flatten)]
        send: SendOptions,
    },
    /// Ask an agent for diagnostics (versions, plugins, spool, recent log lines; secrets redacted).
    Diagnostics {
        /// Tenant name.
        tenant: String,
        /// Agent id.
        agent: String,
        /// Sending options.
        #[command(flatten)]
        send: SendOptions,
    },
    /// Ask an agent for its status.
    Status {
        /// Tenant name.
        tenant: String,
        /// Agent id.
        agent: String,
        /// Sending options.
        #[command(flatten)]
        send: SendOptions,
    },
    /// Ask an agent to re-read its configuration file.
    Reload {
        /// Tenant name.
        tenant: String,
        /// Agent id.
        agent: String,
        /// Sending options.
        #[command(flatten)]
        send: SendOptions,
    },
    /// Select which reported companies of a source are integrated (all others are not synced).
    Companies {
        /// Tenant name.
        tenant: String,
        /// Agent id.
        agent: String,
        /// Source id.
        source: String,
        /// The company ids to integrate (none: integrate no company).
        companies: Vec<String>,
        /// Why (for the audit log).
        #[arg(long)]
        reason: Option<String>,
    },
    /// Show one command and its result.
    Command {
        /// Tenant name.
        tenant: String,
        /// Agent id.
        agent: String,
        /// Command id.
        id: String,
    },
    /// Agent identity keys: `reset` forgets the key an agent is known by, so a
    /// reinstalled agent's next upload registers its new key.
    AgentKey {
        /// `reset`.
        #[arg(value_parser = ["reset"])]
        action: String,
        /// Tenant name.
        tenant: String,
        /// Agent id.
        agent: String,
        /// Why (for the audit log).
        #[arg(long)]
        reason: Option<String>,
    },
    /// Which tenants grant support access now: to what, until when, and why.
    SupportAccess {
        /// Only this tenant (and its grants that ended too).
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Read a tenant's data (a GET on the tenant API) while the tenant grants support
    /// access to it; every read is logged where the customer sees it.
    Data {
        /// Tenant name.
        tenant: String,
        /// The path, e.g. `/v1/companies` or `/v1/companies/C/trial-balance?year=2025`.
        path: String,
    },
    /// The latest audit log entries.
    Audit {
        /// How many.
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
}

/// `admin agents` subcommands.
#[derive(Debug, Subcommand)]
pub enum AgentsCommand {
    /// Every agent of every tenant, with its status.
    List,
    /// One agent: plugins, sources, companies, last syncs, commands.
    Show {
        /// Tenant name.
        tenant: String,
        /// Agent id.
        agent: String,
    },
}

/// Runs a `support-token` subcommand.
pub fn support_token(command: SupportTokenCommand) -> anyhow::Result<()> {
    match command {
        SupportTokenCommand::Create { name, role, data } => {
            let ok = !name.is_empty()
                && name.len() <= 64
                && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'@'));
            if !ok {
                bail!("support token name `{name}` is not allowed: use 1 to 64 letters, digits, `-`, `_`, `.` or `@`");
            }
            let role = Role::parse(&role).context("role must be viewer or support")?;
            let (store, _) = open_storage(&data)?;
            let token = generate_support_token()?;
            if !store.create_support_token(&name, role, &hash_key(&token), &now())? {
                bail!("a support token named `{name}` already exists; revoke it or pick another name");
            }
            let mut out = std::io::stdout().lock();
            writeln!(out, "{token}")?;
            out.flush()?;
            eprintln!(
                "Support token `{name}` ({}) created. It is shown only this once; store it now.",
                role.as_str()
            );
            Ok(())
        }
        SupportTokenCommand::List { data } => {
            let (store, _) = open_storage(&data)?;
            let mut out = std::io::stdout().lock();
            for t in store.list_support_tokens()? {
                let status = t.revoked_at.map_or_else(|| "active".to_owned(), |at| format!("revoked {at}"));
                writeln!(out, "{}\t{}\t{}\tcreated {}", t.name, t.role.as_str(), status, t.created_at)?;
            }
            Ok(())
        }
        SupportTokenCommand::Revoke { name, data } => {
            let (store, _) = open_storage(&data)?;
            if !store.revoke_support_token(&name, &now())? {
                bail!("there is no support token `{name}`");
            }
            eprintln!("Support token `{name}` is revoked.");
            Ok(())
        }
    }
}

struct Api {
    http: reqwest::blocking::Client,
    base: String,
    token: String,
}

impl Api {
    fn new(connection: &AdminConnection) -> anyhow::Result<Self> {
        let token = connection.token.clone().filter(|t| !t.is_empty()).context(
            "no support token: set LEDGERLINK_SUPPORT_TOKEN (or pass --token); \
             create one with `ledgerlink-hub support-token create NAME --role viewer|support`",
        )?;
        let http = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(30))
            .user_agent(concat!("ledgerlink-hub-admin/", env!("CARGO_PKG_VERSION")))
            .build()
            .context("cannot set up the HTTP client")?;
        Ok(Self { http, base: connection.hub.trim_end_matches('/').to_owned(), token })
    }

    fn call(&self, method: reqwest::Method, path: &str, body: Option<&Value>) -> anyhow::Result<Value> {
        self.call_as(method, path, body, None)
    }

    /// [`Api::call`], on a tenant's data endpoint when `tenant` is given (`Ledgerlink-Tenant`).
    fn call_as(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
        tenant: Option<&str>,
    ) -> anyhow::Result<Value> {
        let url = format!("{}{path}", self.base);
        let mut request = self.http.request(method.clone(), &url).bearer_auth(&self.token);
        if let Some(tenant) = tenant {
            request = request.header(crate::consent::TENANT_HEADER, tenant);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().with_context(|| format!("cannot reach the hub at {}", self.base))?;
        let status = response.status();
        let value: Value = response.json().unwrap_or(Value::Null);
        if !status.is_success() {
            let message = value["error"]["message"].as_str().unwrap_or("no message");
            let code = value["error"]["code"].as_str().unwrap_or("?");
            bail!("the hub answered {status} ({code}) to {method} {path}: {message}");
        }
        Ok(value)
    }
}

fn agent_path(tenant: &str, agent: &str) -> String {
    format!("/v1/admin/agents/{}/{}", path_segment(tenant), path_segment(agent))
}

fn print_json(value: &Value) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", serde_json::to_string_pretty(value)?)?;
    Ok(())
}

fn send(
    api: &Api,
    tenant: &str,
    agent: &str,
    mut body: Value,
    options: &SendOptions,
    json_out: bool,
) -> anyhow::Result<bool> {
    if let Some(reason) = &options.reason {
        body["reason"] = json!(reason);
    }
    if let Some(expires) = options.expires_secs {
        body["expires_secs"] = json!(expires);
    }
    let base = agent_path(tenant, agent);
    let mut row = api.call(reqwest::Method::POST, &format!("{base}/commands"), Some(&body))?;
    let id = row["command"]["id"].as_str().unwrap_or_default().to_owned();
    if options.wait > 0 {
        let deadline = Instant::now() + Duration::from_secs(options.wait);
        while !matches!(row["state"].as_str(), Some("done" | "failed" | "expired"))
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(200));
            row = api.call(reqwest::Method::GET, &format!("{base}/commands/{}", path_segment(&id)), None)?;
        }
    }
    let state = row["state"].as_str().unwrap_or("?").to_owned();
    if json_out {
        print_json(&row)?;
    } else {
        let mut out = std::io::stdout().lock();
        writeln!(out, "command {id} ({}): {state}", row["command"]["type"].as_str().unwrap_or("?"))?;
        if let Some(error) = row["error"].as_str() {
            writeln!(out, "error: {error}")?;
        }
        if !row["result"].is_null() {
            writeln!(out, "{}", serde_json::to_string_pretty(&row["result"])?)?;
        }
        if let Some(withheld) = row["result_withheld"].as_str() {
            writeln!(out, "result withheld: {withheld}")?;
        }
    }
    if options.wait > 0 && !matches!(state.as_str(), "done") {
        if matches!(state.as_str(), "queued" | "sent") {
            eprintln!(
                "The agent has not answered within {} s; the command stays queued until it expires.",
                options.wait
            );
        }
        return Ok(false);
    }
    Ok(true)
}

fn print_agents(value: &Value) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "TENANT\tAGENT\tSTATE\tTRANSPORT\tVERSION\tHOST\tLAST SEEN")?;
    for agent in value["agents"].as_array().into_iter().flatten() {
        writeln!(
            out,
            "{}\t{}\t{}\t{}\t{}\t{}\t{}",
            agent["tenant"].as_str().unwrap_or("?"),
            agent["agent_id"].as_str().unwrap_or("?"),
            if agent["online"].as_bool() == Some(true) { "online" } else { "offline" },
            agent["transport"].as_str().unwrap_or("-"),
            agent["status"]["version"].as_str().unwrap_or("-"),
            agent["status"]["host"].as_str().unwrap_or("-"),
            agent["last_seen"].as_str().unwrap_or("-"),
        )?;
    }
    Ok(())
}

/// "disabled remotely by …: …" as the agent reports, and what the hub has queued
/// for it when that differs (the agent applies it when it next hears from the hub).
fn toggle_state(reported: &Value, wanted: &Value, online: bool) -> String {
    let describe = |d: &Value| {
        format!(
            "by {} at {}: {}",
            d["by"].as_str().unwrap_or("?"),
            d["at"].as_str().unwrap_or("?"),
            d["reason"].as_str().unwrap_or("no reason given")
        )
    };
    let now = if reported.is_object() {
        format!("disabled remotely {}", describe(reported))
    } else {
        "enabled".into()
    };
    let when = if online { "as soon as the agent answers" } else { "when the agent connects" };
    match (reported.is_object(), wanted.is_object()) {
        (false, true) => format!("{now}; switching off queued {}, applied {when}", describe(wanted)),
        (true, false) => format!("{now}; switching on queued, applied {when}"),
        _ => now,
    }
}

fn print_agent(agent: &Value) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    let status = &agent["status"];
    writeln!(
        out,
        "agent {} of tenant {}: {} ({}), version {}, host {}, {}",
        agent["agent_id"].as_str().unwrap_or("?"),
        agent["tenant"].as_str().unwrap_or("?"),
        if agent["online"].as_bool() == Some(true) { "online" } else { "offline" },
        agent["transport"].as_str().unwrap_or("-"),
        status["version"].as_str().unwrap_or("-"),
        status["host"].as_str().unwrap_or("-"),
        status["os"].as_str().unwrap_or("-"),
    )?;
    let grants: Vec<String> = agent["support_access"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|g| {
            let scopes: Vec<&str> =
                g["scopes"].as_array().into_iter().flatten().filter_map(|s| s.as_str()).collect();
            format!(
                "{} until {} ({})",
                scopes.join(" and "),
                g["expires_at"].as_str().unwrap_or("?"),
                g["grant_id"].as_str().unwrap_or("?")
            )
        })
        .collect();
    match agent["identity_key"]["fingerprint"].as_str() {
        Some(fingerprint) => writeln!(
            out,
            "identity key: {fingerprint} (since {})",
            agent["identity_key"]["registered_at"].as_str().unwrap_or("?")
        )?,
        None => writeln!(out, "identity key: none yet (registered by the agent's first signed upload)")?,
    }
    if grants.is_empty() {
        writeln!(out, "support access: not granted by the customer (diagnostics and data are closed)")?;
    } else {
        writeln!(out, "support access granted by the customer: {}", grants.join("; "))?;
    }
    writeln!(out, "plugins:")?;
    let online = agent["online"].as_bool() == Some(true);
    for plugin in status["plugins"].as_array().into_iter().flatten() {
        let id = plugin["id"].as_str().unwrap_or("?");
        let wanted = &agent["desired"]["disabled_plugins"][id];
        let state = toggle_state(&plugin["disabled"], wanted, online);
        let version = plugin["version"].as_str().filter(|v| !v.is_empty());
        let version = version.map_or_else(|| "(not installed on the agent)".to_owned(), str::to_owned);
        writeln!(out, "  {id} {version}: {state}")?;
    }
    writeln!(out, "sources:")?;
    for source in status["sources"].as_array().into_iter().flatten() {
        let id = source["id"].as_str().unwrap_or("?");
        let wanted = &agent["desired"]["disabled_sources"][id];
        let mut state = toggle_state(&source["disabled"], wanted, online);
        if source["configured"].as_bool() == Some(false) {
            state.push_str(" (disabled in the agent's configuration)");
        }
        writeln!(
            out,
            "  {} ({}): {}{}, last run {} ({}), next {}",
            id,
            source["plugin"].as_str().unwrap_or("?"),
            state,
            if source["running"].as_bool() == Some(true) { ", running" } else { "" },
            source["last_run"].as_str().unwrap_or("never"),
            source["last_outcome"].as_str().unwrap_or("-"),
            source["next_run"].as_str().unwrap_or("-"),
        )?;
    }
    writeln!(out, "companies:")?;
    for company in agent["companies"].as_array().into_iter().flatten() {
        writeln!(
            out,
            "  [{}] {}/{} {} {}",
            if company["selected"].as_bool() == Some(true) { "x" } else { " " },
            company["source"].as_str().unwrap_or("?"),
            company["company"]["id"].as_str().unwrap_or("?"),
            company["company"]["name"].as_str().unwrap_or(""),
            company["company"]["fiscal_years"],
        )?;
    }
    writeln!(out, "last syncs:")?;
    for sync in agent["syncs"].as_array().into_iter().flatten() {
        writeln!(
            out,
            "  {}/{} {}: {} at {}{}",
            sync["source"].as_str().unwrap_or("?"),
            sync["company"].as_str().unwrap_or("?"),
            sync["year"],
            sync["outcome"].as_str().unwrap_or("?"),
            sync["at"].as_str().unwrap_or("?"),
            sync["last_error"].as_str().map(|e| format!(" (last error: {e})")).unwrap_or_default(),
        )?;
    }
    writeln!(out, "recent commands (`admin command TENANT AGENT ID` shows one with its result):")?;
    for row in agent["commands"].as_array().into_iter().flatten() {
        let command = &row["command"];
        writeln!(
            out,
            "  {} {} by {} at {}: {}{}",
            command["id"].as_str().unwrap_or("?"),
            command["type"].as_str().unwrap_or("?"),
            command["issued_by"].as_str().unwrap_or("?"),
            command["issued_at"].as_str().unwrap_or("?"),
            row["state"].as_str().unwrap_or("?"),
            row["error"].as_str().map(|e| format!(" ({e})")).unwrap_or_default(),
        )?;
    }
    Ok(())
}

/// Prints grants: the active ones, or all of them (`all`, for one tenant).
fn print_grants(value: &Value, all: bool) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    let grants: Vec<&Value> =
        value["grants"].as_array().into_iter().flatten().filter(|g| all || g["active"] == true).collect();
    if grants.is_empty() {
        writeln!(
            out,
            "No tenant grants support access now. The customer grants it on its server with \
             `ledgerlink support-access grant --hours N --scope diagnostics|data`."
        )?;
        return Ok(());
    }
    writeln!(out, "TENANT\tGRANT\tSCOPES\tUNTIL\tSTATE\tREASON")?;
    for g in grants {
        let scopes: Vec<&str> =
            g["scopes"].as_array().into_iter().flatten().filter_map(|s| s.as_str()).collect();
        let state = match (g["active"].as_bool(), g["revoked_at"].as_str()) {
            (Some(true), _) => "active".to_owned(),
            (_, Some(at)) => format!("withdrawn {at}"),
            _ => "expired".to_owned(),
        };
        writeln!(
            out,
            "{}\t{}\t{}\t{}\t{}\t{}",
            g["tenant"].as_str().unwrap_or("?"),
            g["grant_id"].as_str().unwrap_or("?"),
            scopes.join(","),
            g["expires_at"].as_str().unwrap_or("?"),
            state,
            g["reason"].as_str().unwrap_or("-"),
        )?;
    }
    Ok(())
}

/// Runs an `admin` subcommand; `Ok(false)` when a waited-for command did not succeed.
pub fn admin(args: AdminArgs) -> anyhow::Result<bool> {
    let api = Api::new(&args.connection)?;
    let json_out = args.connection.json;
    match args.command {
        AdminCommand::Agents(AgentsCommand::List) => {
            let value = api.call(reqwest::Method::GET, "/v1/admin/agents", None)?;
            if json_out {
                print_json(&value)?;
            } else {
                print_agents(&value)?;
            }
        }
        AdminCommand::Agents(AgentsCommand::Show { tenant, agent }) => {
            let value = api.call(reqwest::Method::GET, &agent_path(&tenant, &agent), None)?;
            if json_out {
                print_json(&value)?;
            } else {
                print_agent(&value)?;
            }
        }
        AdminCommand::Plugin { action, tenant, agent, plugin, cancel_running, send: options } => {
            let body = if action == "disable" {
                json!({ "type": "plugin.disable", "plugin": plugin, "cancel_running": cancel_running })
            } else {
                json!({ "type": "plugin.enable", "plugin": plugin })
            };
            return send(&api, &tenant, &agent, body, &options, json_out);
        }
        AdminCommand::Source { action, tenant, agent, source, cancel_running, send: options } => {
            let body = if action == "disable" {
                json!({ "type": "source.disable", "source": source, "cancel_running": cancel_running })
            } else {
                json!({ "type": "source.enable", "source": source })
            };
            return send(&api, &tenant, &agent, body, &options, json_out);
        }
        AdminCommand::Sync { tenant, agent, source, company, year, force, send: options } => {
            let body =
                json!({ "type": "sync", "source": source, "company": company, "year": year, "force": force });
            return send(&api, &tenant, &agent, body, &options, json_out);
        }
        AdminCommand::Diagnostics { tenant, agent, send: options } => {
            return send(&api, &tenant, &agent, json!({ "type": "diagnostics" }), &options, json_out);
        }
        AdminCommand::Status { tenant, agent, send: options } => {
            return send(&api, &tenant, &agent, json!({ "type": "status" }), &options, json_out);
        }
        AdminCommand::Reload { tenant, agent, send: options } => {
            return send(&api, &tenant, &agent, json!({ "type": "config.reload" }), &options, json_out);
        }
        AdminCommand::Companies { tenant, agent, source, companies, reason } => {
            let path = format!("{}/sources/{}/companies", agent_path(&tenant, &agent), path_segment(&source));
            let value = api.call(
                reqwest::Method::PUT,
                &path,
                Some(&json!({ "companies": companies, "reason": reason })),
            )?;
            if json_out {
                print_json(&value)?;
            } else {
                let selected = &value["company_selection"][&source];
                println!("source {source} integrates: {selected}");
            }
        }
        AdminCommand::Command { tenant, agent, id } => {
            let value = api.call(
                reqwest::Method::GET,
                &format!("{}/commands/{}", agent_path(&tenant, &agent), path_segment(&id)),
                None,
            )?;
            print_json(&value)?;
        }
        AdminCommand::AgentKey { action: _, tenant, agent, reason } => {
            let path = format!("{}/key/reset", agent_path(&tenant, &agent));
            let value = api.call(reqwest::Method::POST, &path, Some(&json!({ "reason": reason })))?;
            if json_out {
                print_json(&value)?;
            } else {
                println!(
                    "Agent {agent}'s identity key {} is forgotten; its next signed upload registers the key it has now.",
                    value["reset"]["fingerprint"].as_str().unwrap_or("?")
                );
            }
        }
        AdminCommand::SupportAccess { tenant } => {
            let path = match &tenant {
                Some(tenant) => format!("/v1/admin/support-access?tenant={}", path_segment(tenant)),
                None => "/v1/admin/support-access".to_owned(),
            };
            let value = api.call(reqwest::Method::GET, &path, None)?;
            if json_out {
                print_json(&value)?;
            } else {
                print_grants(&value, tenant.is_some())?;
            }
        }
        AdminCommand::Data { tenant, path } => {
            if !path.starts_with("/v1/") {
                bail!("the path must be a tenant API path starting with /v1/, e.g. /v1/companies");
            }
            print_json(&api.call_as(reqwest::Method::GET, &path, None, Some(&tenant))?)?;
        }
        AdminCommand::Audit { limit } => {
            let value = api.call(reqwest::Method::GET, &format!("/v1/admin/audit?limit={limit}"), None)?;
            if json_out {
                print_json(&value)?;
            } else {
                let mut out = std::io::stdout().lock();
                for e in value["entries"].as_array().into_iter().flatten() {
                    writeln!(
                        out,
                        "{}\t{} ({})\t{}\t{}/{}\t{}",
                        e["at"].as_str().unwrap_or("?"),
                        e["actor"].as_str().unwrap_or("?"),
                        e["role"].as_str().unwrap_or("?"),
                        e["action"].as_str().unwrap_or("?"),
                        e["tenant"].as_str().unwrap_or("-"),
                        e["agent_id"].as_str().unwrap_or("-"),
                        e["details"]
                    )?;
                }
            }
        }
    }
    Ok(true)
}
