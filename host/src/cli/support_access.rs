//! `ledgerlink support-access`: the customer lets support look at its diagnostics
//! or data on the hub for a limited time, sees every look, and withdraws access.

use crate::config::{Config, Tenant};
use crate::exit::Exit;
use crate::hub_client::{HubClient, HubError};
use crate::jobs::Agent;
use clap::{Args, Subcommand};
use serde_json::Value;
use std::path::PathBuf;

/// Which tenant of which configuration, and how to print.
#[derive(Debug, Args)]
pub struct Target {
    /// The tenant (its `id` in the configuration); needed when there are several.
    #[arg(long)]
    pub tenant: Option<String>,
    /// The configuration file (default: $LEDGERLINK_CONFIG, else the OS default path).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// `ledgerlink support-access …`
#[derive(Debug, Subcommand)]
pub enum SupportAccessCommand {
    /// Let support look at this tenant's diagnostics (and, with `--scope data`, its data on the hub) for a limited time.
    Grant {
        /// How long, 1 to 168 hours (7 days).
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=168))]
        hours: u32,
        /// What support may look at (repeatable): `diagnostics` (versions, plugins, redacted
        /// settings, paths, recent log lines of this tenant's agents) or `data` (the
        /// accounting data on the hub).
        #[arg(long = "scope", value_parser = ["diagnostics", "data"], default_value = "diagnostics")]
        scopes: Vec<String>,
        /// Why (a ticket number, say); support sees it.
        #[arg(long)]
        reason: Option<String>,
        /// Tenant, configuration, output.
        #[command(flatten)]
        target: Target,
    },
    /// Show this tenant's grants and every look support took under them.
    List {
        /// Tenant, configuration, output.
        #[command(flatten)]
        target: Target,
    },
    /// Withdraw a grant at once, or every active one with `--all`.
    Revoke {
        /// The grant's id (`grant-…`, from `list`).
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        grant_id: Option<String>,
        /// Withdraw every active grant.
        #[arg(long)]
        all: bool,
        /// Tenant, configuration, output.
        #[command(flatten)]
        target: Target,
    },
}

/// Runs a `support-access` subcommand: exit 0, 1 when the hub is unreachable or refused, 3 on a configuration problem.
pub(super) fn run(command: SupportAccessCommand, probe_exe: PathBuf) -> Exit {
    let target = match &command {
        SupportAccessCommand::Grant { target, .. }
        | SupportAccessCommand::List { target }
        | SupportAccessCommand::Revoke { target, .. } => target,
    };
    let config = match super::sync::load_config(target.config.as_deref()) {
        Ok(config) => config,
        Err(exit) => return exit,
    };
    let tenant = match pick_tenant(&config, target.tenant.as_deref()) {
        Ok(tenant) => tenant.clone(),
        Err(message) => {
            eprintln!("error: {message}");
            return Exit::Config;
        }
    };
    let json_out = target.json;
    let agent = Agent::new(config, probe_exe);
    let erp = tenant.sources.first().map_or("", |s| s.plugin.as_str()).to_owned();
    let client = match agent.hub_client(&tenant, &erp) {
        Ok(client) => client,
        Err(e) => return failed(&tenant, e),
    };
    let outcome = match command {
        SupportAccessCommand::Grant { hours, scopes, reason, .. } => {
            let scopes: Vec<&str> = scopes.iter().map(String::as_str).collect();
            client.grant_support_access(hours, &scopes, reason.as_deref()).map(|grant| {
                print(&grant, json_out, || {
                    format!(
                        "Support may look at tenant {}'s {} until {} (grant {}).\n\
                         Every look is logged: `ledgerlink support-access list`. Withdraw it at any time: \
                         `ledgerlink support-access revoke {}`.",
                        tenant.id,
                        scopes_of(&grant),
                        text(&grant["expires_at"]),
                        text(&grant["grant_id"]),
                        text(&grant["grant_id"]),
                    )
                })
            })
        }
        SupportAccessCommand::List { .. } => {
            client.support_access().map(|listing| print(&listing, json_out, || describe(&tenant, &listing)))
        }
        SupportAccessCommand::Revoke { grant_id, .. } => revoke(&client, grant_id).map(|revoked| {
            let value = Value::Array(revoked.clone());
            print(&value, json_out, || match revoked.as_slice() {
                [] => format!("Tenant {} has no active grant; support has no access.", tenant.id),
                grants => grants
                    .iter()
                    .map(|g| {
                        format!(
                            "Grant {} is withdrawn; support's access under it ended.",
                            text(&g["grant_id"])
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n"),
            })
        }),
    };
    match outcome {
        Ok(()) => Exit::Success,
        Err(e) => failed(&tenant, e),
    }
}

/// Withdraws one grant, or every active one (`None`); the grants as they are now.
fn revoke(client: &HubClient, grant_id: Option<String>) -> Result<Vec<Value>, HubError> {
    let ids = match grant_id {
        Some(id) => vec![id],
        None => {
            let listing = client.support_access()?;
            let grants = listing["grants"].as_array().cloned().unwrap_or_default();
            grants.iter().filter(|g| g["active"] == true).map(|g| text(&g["grant_id"]).to_owned()).collect()
        }
    };
    ids.iter().map(|id| client.revoke_support_access(id)).collect()
}

fn pick_tenant<'a>(config: &'a Config, wanted: Option<&str>) -> Result<&'a Tenant, String> {
    let ids = || config.tenants.iter().map(|t| t.id.as_str()).collect::<Vec<_>>().join(", ");
    match wanted {
        Some(id) => config
            .tenants
            .iter()
            .find(|t| t.id == id)
            .ok_or_else(|| format!("the configuration has no tenant `{id}`; its tenants: {}", ids())),
        None => match config.tenants.as_slice() {
            [only] => Ok(only),
            _ => {
                Err(format!("the configuration has several tenants ({}); name one with `--tenant ID`", ids()))
            }
        },
    }
}

fn failed(tenant: &Tenant, error: HubError) -> Exit {
    let message = match &error {
        HubError::Rejected { url, status, code, message, .. } if *status == 401 => format!(
            "the hub at {url} refused tenant {}'s API key ({status} {code}: {message}). Resolution: check the \
             tenant's `api_key` against the key the central service issued",
            tenant.id
        ),
        HubError::Rejected { url, status, code, message, .. } => {
            format!("the hub at {url} refused: {status} {code}: {message}")
        }
        HubError::Unreachable { url, detail } => format!(
            "the hub at {url} is unreachable or failing: {detail}. Resolution: check the network and \
             `hub.proxy`, then run the command again"
        ),
        other => other.to_string(),
    };
    eprintln!("error: {message}");
    Exit::Problems
}

fn print(value: &Value, json_out: bool, describe: impl FnOnce() -> String) {
    if json_out {
        outln!("{}", serde_json::to_string_pretty(value).unwrap_or_default());
    } else {
        outln!("{}", describe());
    }
}

fn text(value: &Value) -> &str {
    value.as_str().unwrap_or("?")
}

fn scopes_of(grant: &Value) -> String {
    let scopes: Vec<&str> =
        grant["scopes"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
    scopes.join(" and ")
}

/// Grants (active first) and the looks support took, as text.
fn describe(tenant: &Tenant, listing: &Value) -> String {
    let grants = listing["grants"].as_array().cloned().unwrap_or_default();
    let mut lines = Vec::new();
    let active: Vec<&Value> = grants.iter().filter(|g| g["active"] == true).collect();
    if active.is_empty() {
        lines.push(format!(
            "Support has no access to tenant {}'s diagnostics or data now. \
             `ledgerlink support-access grant --hours N` gives it for a limited time.",
            tenant.id
        ));
    }
    for g in &grants {
        let state = if g["active"] == true {
            format!("active until {}", text(&g["expires_at"]))
        } else if let Some(at) = g["revoked_at"].as_str() {
            format!("withdrawn {at}")
        } else {
            format!("expired {}", text(&g["expires_at"]))
        };
        lines.push(format!(
            "grant {}: {}, {} (granted {}{})",
            text(&g["grant_id"]),
            scopes_of(g),
            state,
            text(&g["created_at"]),
            g["reason"].as_str().map(|r| format!(", reason: {r}")).unwrap_or_default(),
        ));
    }
    let accesses = listing["accesses"].as_array().cloned().unwrap_or_default();
    if accesses.is_empty() {
        lines.push("Support has not looked.".into());
    } else {
        lines.push("Looks by support, newest first:".into());
        for a in &accesses {
            lines.push(format!(
                "  {} {} ({}, grant {}): {}",
                text(&a["at"]),
                text(&a["actor"]),
                text(&a["scope"]),
                text(&a["grant_id"]),
                text(&a["what"])
            ));
        }
    }
    lines.join("\n")
}
