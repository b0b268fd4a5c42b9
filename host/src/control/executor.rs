//! Runs hub commands, each id at most once (the state store remembers executed
//! ids with their result), and acknowledges them.
//!
//! A command is claimed in the state store *before* it runs: if the host dies
//! while running it, the re-delivered command is not run again but answered
//! "interrupted". A command seen again after it ran is answered with the stored
//! result, so a lost acknowledgement is repaired without a second execution.

use super::channel::{diagnostics, forget_plugin_versions, send_status, state_store, status, Ctx};
use super::DesiredState;
use crate::jobs::Agent;
use crate::pipeline::SyncRequest;
use ledgerlink_plugin_api::abi::CancelFlag;
use ledgerlink_protocol::control::{Ack, AgentMessage, Command, CommandKind, Disabled};
use serde_json::{json, Value};
use std::sync::Arc;
use tokio::sync::mpsc;

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

enum Claim {
    New,
    Done(Ack),
}

/// Executes a command (at most once per id) and sends its acknowledgement.
pub(super) async fn execute(ctx: Arc<Ctx>, command: Command, out: mpsc::UnboundedSender<AgentMessage>) {
    if !ctx.executing.lock().unwrap_or_else(|p| p.into_inner()).insert(command.id.clone()) {
        return; // re-delivered while it runs: its acknowledgement follows
    }
    let claim = {
        let (ctx, id) = (ctx.clone(), command.id.clone());
        tokio::task::spawn_blocking(move || -> Result<Claim, String> {
            let store = state_store(&ctx)?;
            if let Some(text) = store.executed_command(&id).map_err(|e| e.to_string())? {
                let ack = serde_json::from_str(&text).unwrap_or_else(|_| Ack {
                    command_id: id.clone(),
                    ok: false,
                    result: Value::Null,
                    error: Some("the stored result is unreadable".into()),
                });
                return Ok(Claim::Done(ack));
            }
            let interrupted = Ack {
                command_id: id.clone(),
                ok: false,
                result: Value::Null,
                error: Some("the host stopped while running this command; it was not run again".into()),
            };
            let text = serde_json::to_string(&interrupted).unwrap_or_default();
            if store.record_executed_command(&id, &now(), &text).map_err(|e| e.to_string())? {
                Ok(Claim::New)
            } else {
                Ok(Claim::Done(interrupted))
            }
        })
        .await
        .unwrap_or_else(|e| Err(e.to_string()))
    };
    let ack = match claim {
        Ok(Claim::Done(ack)) => {
            tracing::info!(command = %command.id, "Command already executed; acknowledging it again.");
            ack
        }
        Err(e) => Ack {
            command_id: command.id.clone(),
            ok: false,
            result: Value::Null,
            error: Some(format!("cannot record the command in the state store: {e}")),
        },
        Ok(Claim::New) => {
            tracing::info!(
                command = %command.id, kind = command.kind.name(), by = %command.issued_by,
                "Command from the hub."
            );
            let ack = match run(&ctx, &command, &out).await {
                Ok(result) => Ack { command_id: command.id.clone(), ok: true, result, error: None },
                Err(error) => {
                    tracing::warn!(command = %command.id, %error, "Command failed.");
                    Ack { command_id: command.id.clone(), ok: false, result: Value::Null, error: Some(error) }
                }
            };
            let (ctx2, id, text) =
                (ctx.clone(), command.id.clone(), serde_json::to_string(&ack).unwrap_or_default());
            let _ = tokio::task::spawn_blocking(move || {
                if let Ok(store) = state_store(&ctx2) {
                    let _ = store.update_executed_command(&id, &text);
                }
            })
            .await;
            ack
        }
    };
    let _ = out.send(AgentMessage::Ack { ack });
    if command.kind.changes_state() {
        send_status(&ctx, &out).await;
    }
    ctx.executing.lock().unwrap_or_else(|p| p.into_inner()).remove(&command.id);
}

async fn run(
    ctx: &Arc<Ctx>,
    command: &Command,
    out: &mpsc::UnboundedSender<AgentMessage>,
) -> Result<Value, String> {
    match &command.kind {
        CommandKind::Sync { source, company, year, force } => {
            let request = SyncRequest { company: company.clone(), year: *year, force: *force };
            sync(ctx, source, request).await
        }
        CommandKind::PluginDisable { plugin, cancel_running } => {
            toggle(ctx, command, Target::Plugin(plugin), false, *cancel_running).await
        }
        CommandKind::PluginEnable { plugin } => {
            toggle(ctx, command, Target::Plugin(plugin), true, false).await
        }
        CommandKind::SourceDisable { source, cancel_running } => {
            toggle(ctx, command, Target::Source(source), false, *cancel_running).await
        }
        CommandKind::SourceEnable { source } => {
            toggle(ctx, command, Target::Source(source), true, false).await
        }
        CommandKind::ConfigReload => reload(ctx).await,
        CommandKind::Status => {
            let ctx = ctx.clone();
            let status =
                tokio::task::spawn_blocking(move || status(&ctx)).await.map_err(|e| e.to_string())?;
            let _ = out.send(AgentMessage::Status { status: status.clone() });
            serde_json::to_value(status).map_err(|e| e.to_string())
        }
        CommandKind::Diagnostics => {
            let ctx = ctx.clone();
            tokio::task::spawn_blocking(move || diagnostics(&ctx)).await.map_err(|e| e.to_string())
        }
    }
}

enum Target<'a> {
    Plugin(&'a str),
    Source(&'a str),
}

async fn toggle(
    ctx: &Arc<Ctx>,
    command: &Command,
    target: Target<'_>,
    enable: bool,
    cancel: bool,
) -> Result<Value, String> {
    let tenant = ctx.tenant();
    let affected: Vec<String> = match target {
        Target::Plugin(id) => {
            tenant.sources.iter().filter(|s| s.plugin == id).map(|s| s.id.clone()).collect()
        }
        Target::Source(id) => tenant.sources.iter().filter(|s| s.id == id).map(|s| s.id.clone()).collect(),
    };
    if affected.is_empty() {
        let what = match target {
            Target::Plugin(id) => format!("no source of tenant `{}` uses plugin `{id}`", tenant.id),
            Target::Source(id) => format!("tenant `{}` has no source `{id}`", tenant.id),
        };
        return Err(format!("{what}; the toggle is kept and applies if it is configured later"));
    }
    let disabled = Disabled {
        by: command.issued_by.clone(),
        at: command.issued_at.clone(),
        reason: command.reason.clone(),
    };
    let (kind, id) = match target {
        Target::Plugin(id) => ("plugin", id.to_owned()),
        Target::Source(id) => ("source", id.to_owned()),
    };
    {
        let (ctx, tenant_id, id) = (ctx.clone(), tenant.id.clone(), id.clone());
        tokio::task::spawn_blocking(move || -> Result<(), String> {
            let store = state_store(&ctx)?;
            let mut desired = DesiredState::for_tenant(&store, &tenant_id);
            let map = if kind == "plugin" {
                &mut desired.wire_mut().disabled_plugins
            } else {
                &mut desired.wire_mut().disabled_sources
            };
            if enable {
                map.remove(&id);
            } else {
                map.insert(id, disabled);
            }
            desired.save(&store, &tenant_id).map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| e.to_string())??;
    }
    let mut running = Vec::new();
    let mut cancelled = Vec::new();
    for source in &affected {
        if ctx.board.running(source) {
            if !enable && cancel && ctx.board.cancel(source) {
                cancelled.push(source.clone());
            } else {
                running.push(source.clone());
            }
        }
    }
    tracing::info!(
        kind, id = %id, enabled = enable, by = %command.issued_by,
        "{} {} remotely.", if kind == "plugin" { "Plugin" } else { "Source" }, if enable { "enabled" } else { "disabled" }
    );
    Ok(json!({
        kind: id,
        "enabled": enable,
        "sources": affected,
        "running_jobs_finishing": running,
        "running_jobs_cancelled": cancelled,
    }))
}

async fn sync(ctx: &Arc<Ctx>, source_id: &str, request: SyncRequest) -> Result<Value, String> {
    let tenant = ctx.tenant();
    if !tenant.sources.iter().any(|s| s.id == source_id) {
        let known: Vec<&str> = tenant.sources.iter().map(|s| s.id.as_str()).collect();
        return Err(format!(
            "tenant `{}` has no source `{source_id}` (it has: {})",
            tenant.id,
            known.join(", ")
        ));
    }
    let lock = ctx.board.lock(source_id);
    let _guard = lock.lock().await;
    let cancel = CancelFlag::new();
    ctx.board.started(source_id, cancel.clone());
    let agent = ctx.agent();
    let id = source_id.to_owned();
    // `Agent::sync` records the run and its outcome, as for a scheduled one; a
    // sync it refuses (source or plugin switched off) is no run.
    let result = tokio::task::spawn_blocking(move || agent.sync(&id, &request, cancel, true)).await;
    ctx.board.finished(source_id);
    match result.map_err(|e| e.to_string())? {
        Ok(report) => {
            let exit = report.exit();
            let years: Vec<Value> = super::source_report(
                ctx.tenant().sources.iter().find(|s| s.id == source_id).expect("checked above"),
                &report,
            )
            .syncs
            .into_iter()
            .map(|s| json!({ "company": s.company, "year": s.year, "outcome": s.outcome, "error": s.error }))
            .collect();
            Ok(
                json!({ "source": source_id, "exit_code": exit as u8, "exit": format!("{exit:?}"), "years": years }),
            )
        }
        Err(e) => Err(e.to_string()),
    }
}

async fn reload(ctx: &Arc<Ctx>) -> Result<Value, String> {
    let Some(path) = super::config_path() else {
        return Err("this host was not started with a configuration file it can re-read".into());
    };
    let (path, probe_exe) = (path.clone(), ctx.agent().probe_exe().to_owned());
    let file = path.clone();
    // Checked as `ledgerlink config validate` checks it, against the installed plugins too.
    let config = tokio::task::spawn_blocking(move || {
        let config = crate::config::load(&path)?;
        let agent = Agent::new(config, probe_exe);
        agent.check_plugins(&path).map(|()| agent.config)
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| format!("the configuration file is not valid; nothing changed:\n{e}"))?;
    let sources = config.sources().count();
    // As at the service's start: names and paths only, never a value.
    let warnings: Vec<String> = [
        crate::config::exposure_warning(&config, &file),
        crate::config::clear_secrets_warning(&config, &file),
    ]
    .into_iter()
    .flatten()
    .collect();
    for warning in &warnings {
        tracing::warn!("{warning}");
    }
    forget_plugin_versions(ctx);
    ctx.reload.notify_one();
    Ok(json!({ "valid": true, "tenants": config.tenants.len(), "sources": sources, "warnings": warnings,
               "note": "schedules restart with the new configuration; new tenants get a control channel at the next service start" }))
}
