//! `ledgerlink status`: what this installation does, from its configuration and state store.

use crate::control::{describe_disabled, next_run_key, DesiredState};
use crate::exit::Exit;
use crate::state::StateStore;
use serde_json::{json, Value};
use std::path::Path;

/// Prints sources, plugins, runs, spool and control channel; exit 0, or 3 when the configuration is unusable.
pub(super) fn run(config_path: Option<&Path>, as_json: bool) -> Exit {
    let config = match super::sync::load_config(config_path) {
        Ok(config) => config,
        Err(exit) => return exit,
    };
    let state = match StateStore::open(&config.agent.data_dir) {
        Ok(state) => state,
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::Source;
        }
    };
    let spool = crate::spool::Spool::open(&config.spool_dir(), config.spool.max_bytes).ok();
    let (spool_entries, spool_bytes) =
        spool.as_ref().map_or((0, 0), |s| (s.pending().map(|p| p.len()).unwrap_or(0), s.usage()));
    let service_running = crate::state::ServiceLock::held(&config.agent.data_dir);
    let mut tenants = Vec::new();
    for tenant in &config.tenants {
        let desired = DesiredState::for_tenant(&state, &tenant.id);
        let channel: Value = state
            .setting(&crate::control::channel_key(&tenant.id))
            .ok()
            .flatten()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or(json!({ "state": if config.control.as_ref().is_some_and(|c| c.enabled) { "not started" } else { "not configured" } }));
        // What the last service left behind is not the state now.
        let channel = match channel {
            Value::Object(mut map) if !service_running => {
                map.insert("state".into(), json!("not running (the service is stopped)"));
                Value::Object(map)
            }
            other => other,
        };
        let mut plugins: Vec<Value> = Vec::new();
        for source in &tenant.sources {
            if plugins.iter().any(|p| p["id"] == source.plugin.as_str()) {
                continue;
            }
            let disabled = desired.plugin_disabled(&source.plugin);
            plugins.push(json!({
                "id": source.plugin,
                "enabled": disabled.is_none(),
                "disabled": disabled,
                "state": disabled.map_or_else(|| "enabled".to_owned(), describe_disabled),
            }));
        }
        let sources: Vec<Value> = tenant
            .sources
            .iter()
            .map(|source| {
                let last = state.last_run(&source.id).ok().flatten();
                let state_text = if !source.enabled {
                    "disabled in the configuration".to_owned()
                } else if let Some(why) = desired.blocked(source) {
                    why
                } else {
                    "enabled".to_owned()
                };
                json!({
                    "id": source.id,
                    "plugin": source.plugin,
                    "enabled": source.enabled && desired.blocked(source).is_none(),
                    "state": state_text,
                    "companies_selected_on_hub": desired.company_selection(&source.id),
                    "last_run": last.as_ref().map(|l| &l.started_at),
                    "last_finished": last.as_ref().and_then(|l| l.finished_at.clone()),
                    "last_outcome": last.as_ref().and_then(|l| l.outcome.clone()),
                    "next_run": service_running.then(|| state.setting(&next_run_key(&source.id)).ok().flatten()).flatten(),
                })
            })
            .collect();
        tenants.push(json!({ "id": tenant.id, "control": channel, "plugins": plugins, "sources": sources }));
    }
    let identity = match crate::identity::fingerprint(&config.agent.data_dir) {
        Ok(Some(fingerprint)) => json!({ "fingerprint": fingerprint }),
        Ok(None) => json!({ "state": "not made yet (the first hello or upload makes it)" }),
        Err(error) => json!({ "error": error }),
    };
    let report = json!({
        "agent_id": state.agent_id().ok(),
        "identity_key": identity,
        "service_running": service_running,
        "version": env!("CARGO_PKG_VERSION"),
        "spool": { "entries": spool_entries, "bytes": spool_bytes },
        "tenants": tenants,
    });
    if as_json {
        outln!("{}", serde_json::to_string_pretty(&report).unwrap_or_default());
        return Exit::Success;
    }
    outln!(
        "Ledgerlink {} (agent {}); service {}",
        env!("CARGO_PKG_VERSION"),
        report["agent_id"].as_str().unwrap_or("?"),
        if service_running { "running" } else { "not running" }
    );
    let identity = &report["identity_key"];
    match (identity["fingerprint"].as_str(), identity["error"].as_str()) {
        (Some(fingerprint), _) => outln!("identity key: {fingerprint} (as the hub shows it)"),
        (None, Some(error)) => outln!("identity key: {error}"),
        _ => outln!("identity key: not made yet (the first hello or upload makes it)"),
    }
    outln!("spool: {spool_entries} snapshot(s) waiting, {spool_bytes} bytes");
    for tenant in &tenants {
        let control = &tenant["control"];
        outln!(
            "tenant {}: control channel {}{}{}",
            tenant["id"].as_str().unwrap_or("?"),
            control["state"].as_str().unwrap_or("?"),
            control["transport"].as_str().map(|t| format!(" ({t})")).unwrap_or_default(),
            control["last_error"].as_str().map(|e| format!(", last error: {e}")).unwrap_or_default(),
        );
        for plugin in tenant["plugins"].as_array().into_iter().flatten() {
            outln!(
                "  plugin {}: {}",
                plugin["id"].as_str().unwrap_or("?"),
                plugin["state"].as_str().unwrap_or("?")
            );
        }
        for source in tenant["sources"].as_array().into_iter().flatten() {
            outln!(
                "  source {} ({}): {}; last run {} ({}); next run {}",
                source["id"].as_str().unwrap_or("?"),
                source["plugin"].as_str().unwrap_or("?"),
                source["state"].as_str().unwrap_or("?"),
                source["last_run"].as_str().unwrap_or("never"),
                source["last_outcome"].as_str().unwrap_or("-"),
                source["next_run"].as_str().unwrap_or("not scheduled (the service is not running)"),
            );
        }
    }
    Exit::Success
}
