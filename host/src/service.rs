//! `ledgerlink run`: the service. Every enabled source runs on its schedule, one
//! job at a time per source; Ctrl-C and SIGTERM stop it within a drain deadline.
//!
//! Scheduling is plain: one task per source computes its next time, sleeps until
//! then (or until shutdown), and runs the job on a blocking thread. A run missed
//! while the machine was off is caught up once at start.

use crate::config::Source;
use crate::exit::Exit;
use crate::jobs::Agent;
use crate::pipeline::SyncRequest;
use crate::schedule::Schedule;
use chrono::{DateTime, Local};
use ledgerlink_plugin_api::abi::CancelFlag;
use ledgerlink_protocol::api::AgentHello;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Runs the service until a shutdown signal; returns the process exit code.
pub fn run(agent: Agent, drain: Duration) -> Exit {
    let agent = Arc::new(agent);
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            tracing::error!(error = %e, "Cannot start the async runtime.");
            return Exit::Source;
        }
    };
    runtime.block_on(serve(agent, drain))
}

async fn serve(agent: Arc<Agent>, drain: Duration) -> Exit {
    let data_dir = agent.config.agent.data_dir.clone();
    let _running = match crate::state::ServiceLock::acquire_for_service(&data_dir) {
        Ok(Some(lock)) => lock,
        Ok(None) => {
            tracing::error!(
                data_dir = %data_dir.display(),
                "Another `ledgerlink run` uses this data directory. Resolution: stop it first (systemctl stop \
                 ledgerlink), or give this one its own `agent.data_dir`."
            );
            return Exit::Config;
        }
        Err(e) => {
            tracing::error!(data_dir = %data_dir.display(), error = %e, "Cannot lock the data directory.");
            return Exit::Config;
        }
    };
    let agent_id =
        match agent.state().and_then(|s| s.agent_id().map_err(|e| crate::jobs::JobError::Sync(e.into()))) {
            Ok(id) => id,
            Err(e) => {
                tracing::error!(error = %e, "Cannot open the state store.");
                return Exit::Source;
            }
        };
    tracing::info!(agent = %agent_id, version = env!("CARGO_PKG_VERSION"), "Ledgerlink starting.");
    {
        let agent = agent.clone();
        let id = agent_id.clone();
        tokio::task::spawn_blocking(move || report_version(&agent, &id));
    }
    let (stop_tx, stop_rx) = watch::channel(false);
    let cell: crate::control::AgentCell = Arc::new(std::sync::RwLock::new(agent.clone()));
    let reload = Arc::new(tokio::sync::Notify::new());
    let control = crate::control::start(cell.clone(), reload.clone(), agent_id.clone(), stop_rx.clone());
    let mut agent = agent;
    let (mut loops_stop, mut loops) = schedule_sources(&agent, &agent_id);
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            _ = reload.notified() => {
                let Some(path) = crate::control::config_path() else { continue };
                match crate::config::load(path) {
                    Err(e) => tracing::error!(error = %e, "Configuration not reloaded: it is not valid."),
                    Ok(config) => {
                        // Running jobs are cancelled between batches; spooled data is safe.
                        let _ = loops_stop.send(true);
                        futures_join(std::mem::take(&mut loops)).await;
                        let exe = std::env::current_exe().unwrap_or_else(|_| "ledgerlink".into());
                        agent = Arc::new(Agent::new(config, exe));
                        *cell.write().unwrap_or_else(|p| p.into_inner()) = agent.clone();
                        (loops_stop, loops) = schedule_sources(&agent, &agent_id);
                        tracing::info!("Configuration reloaded; schedules restarted.");
                    }
                }
            }
        }
    }
    tracing::info!(
        drain_secs = drain.as_secs(),
        "Shutting down: running jobs get the drain deadline to finish."
    );
    let _ = loops_stop.send(true);
    let _ = stop_tx.send(true);
    loops.extend(control);
    let all = futures_join(loops);
    match tokio::time::timeout(drain, all).await {
        Ok(()) => {
            tracing::info!("Stopped cleanly.");
            Exit::Success
        }
        Err(_) => {
            tracing::warn!(
                "Jobs did not finish within the drain deadline; stopping anyway (spooled data is safe)."
            );
            Exit::Success
        }
    }
}

/// Starts one schedule task per enabled source; the sender stops them.
fn schedule_sources(
    agent: &Arc<Agent>,
    agent_id: &str,
) -> (watch::Sender<bool>, Vec<tokio::task::JoinHandle<()>>) {
    let (stop_tx, stop_rx) = watch::channel(false);
    let agent_id = agent_id.to_owned();
    let mut loops = Vec::new();
    for (_, source) in agent.config.sources() {
        if !source.enabled {
            tracing::info!(source = %source.id, "Source disabled in the configuration; not scheduled.");
            continue;
        }
        let schedule = match source.schedule() {
            Ok(schedule) => schedule,
            Err(e) => {
                tracing::error!(source = %source.id, error = %e, "Invalid schedule; source not scheduled.");
                continue;
            }
        };
        loops.push(tokio::spawn(source_loop(
            agent.clone(),
            source.clone(),
            schedule,
            agent_id.clone(),
            stop_rx.clone(),
        )));
    }
    if loops.is_empty() {
        tracing::warn!("No enabled source to schedule; waiting for a shutdown signal.");
    }
    (stop_tx, loops)
}

/// Why the hub switched this source (or its plugin) off, if it did.
async fn remote_block(agent: &Arc<Agent>, source: &Source) -> Option<String> {
    let (agent, source) = (agent.clone(), source.clone());
    tokio::task::spawn_blocking(move || {
        let tenant = agent.config.source(&source.id).map(|(t, _)| t.id.clone())?;
        let state = agent.state().ok()?;
        crate::control::DesiredState::for_tenant(&state, &tenant).blocked(&source)
    })
    .await
    .ok()
    .flatten()
}

/// Notes the next run of a source for status reports (`ledgerlink status`, the hub).
fn note_next_run(agent: &Arc<Agent>, source: &str, next: DateTime<Local>) {
    let at = next.to_rfc3339();
    crate::control::board().set_next_run(source, at.clone());
    if let Ok(state) = agent.state() {
        let _ = state.set_setting(&crate::control::next_run_key(source), &at);
    }
}

async fn futures_join(handles: Vec<tokio::task::JoinHandle<()>>) {
    for handle in handles {
        let _ = handle.await;
    }
}

/// Waits for Ctrl-C or (on Unix) SIGTERM.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut terminate = match signal(SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Sends the version report of every tenant once at start; failures are logged only.
fn report_version(agent: &Agent, agent_id: &str) {
    for tenant in &agent.config.tenants {
        let mut plugins = Vec::new();
        let mut erp = String::from("-");
        for source in tenant.sources.iter().filter(|s| s.enabled) {
            if let Ok((_, m)) = agent.find_plugin(&source.plugin) {
                erp = m.erp_system.clone();
                plugins.push(ledgerlink_protocol::PluginRef { id: m.id.clone(), version: m.version.clone() });
            }
        }
        let hello = AgentHello {
            agent_id: agent_id.to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            plugins,
        };
        match agent.hub_client(tenant, &erp).and_then(|hub| hub.hello(&hello)) {
            Ok(()) => tracing::info!(tenant = %tenant.id, "Version reported to the hub."),
            Err(e) => tracing::warn!(tenant = %tenant.id, error = %e, "Version report failed; syncs go on."),
        }
    }
}

fn parse_time(text: &str) -> Option<DateTime<Local>> {
    DateTime::parse_from_rfc3339(text).ok().map(|t| t.with_timezone(&Local))
}

/// Schedules one source until shutdown.
async fn source_loop(
    agent: Arc<Agent>,
    source: Source,
    schedule: Schedule,
    agent_id: String,
    mut stop: watch::Receiver<bool>,
) {
    let offset = schedule.install_offset_for(&agent_id);
    let last_start = agent
        .state()
        .ok()
        .and_then(|s| s.last_run(&source.id).ok().flatten())
        .and_then(|r| parse_time(&r.started_at));
    let now = Local::now();
    let interval_without_history = matches!(schedule, Schedule::Interval { .. }) && last_start.is_none();
    let mut next = if interval_without_history || schedule.missed_since(last_start, now, offset) {
        if last_start.is_some() {
            tracing::info!(source = %source.id, "A scheduled run was missed while the host was off; catching up now.");
        }
        now
    } else {
        schedule.next_after(last_start.map_or(now, |l| l.max(now)), offset)
    };
    tracing::info!(source = %source.id, schedule = %schedule.describe(offset), next = %next.to_rfc3339(), "Source scheduled.");
    note_next_run(&agent, &source.id, next);
    loop {
        let wait = (next - Local::now()).to_std().unwrap_or(Duration::ZERO);
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.changed() => return,
        }
        let started = Local::now();
        match remote_block(&agent, &source).await {
            Some(why) => tracing::info!(source = %source.id, reason = %why, "Scheduled run skipped."),
            None => run_with_retries(&agent, &source, &mut stop).await,
        }
        if *stop.borrow() {
            return;
        }
        // Intervals count from the start of the run; the others from now, so a run
        // that overran its slot is not repeated at once.
        next = match schedule {
            Schedule::Interval { .. } => schedule.next_after(started, offset),
            _ => schedule.next_after(Local::now(), offset),
        };
        tracing::info!(source = %source.id, next = %next.to_rfc3339(), "Next run scheduled.");
        note_next_run(&agent, &source.id, next);
    }
}

/// Runs a job, retrying failures of the source with the configured backoff.
async fn run_with_retries(agent: &Arc<Agent>, source: &Source, stop: &mut watch::Receiver<bool>) {
    let mut backoff = source.retry.initial_backoff();
    for attempt in 1..=source.retry.max_attempts.max(1) {
        let exit = run_job(agent, source, stop).await;
        if exit != Exit::Source || *stop.borrow() || attempt == source.retry.max_attempts.max(1) {
            return;
        }
        tracing::warn!(source = %source.id, attempt, retry_in_secs = backoff.as_secs(), "Job failed; retrying.");
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = stop.changed() => return,
        }
        backoff *= 2;
    }
}

/// Runs one job on a blocking thread; on shutdown asks it to stop between batches.
async fn run_job(agent: &Arc<Agent>, source: &Source, stop: &mut watch::Receiver<bool>) -> Exit {
    let cancel = CancelFlag::new();
    // One job per source at a time, also against syncs asked for by the hub.
    let lock = crate::control::board().lock(&source.id);
    let _running = lock.lock().await;
    crate::control::board().started(&source.id, cancel.clone());
    let (agent, id, job_cancel) = (agent.clone(), source.id.clone(), cancel.clone());
    let job = tokio::task::spawn_blocking(move || {
        tracing::info!(source = %id, "Job started.");
        let exit = match agent.sync(&id, &SyncRequest::default(), job_cancel, true) {
            Ok(report) => report.exit(),
            Err(e) => {
                tracing::error!(source = %id, error = %e, "Job failed.");
                e.exit()
            }
        };
        tracing::info!(source = %id, outcome = ?exit, "Job finished.");
        exit
    });
    tokio::pin!(job);
    let exit = tokio::select! {
        result = &mut job => result.unwrap_or(Exit::Source),
        _ = stop.changed() => {
            cancel.cancel();
            (&mut job).await.unwrap_or(Exit::Source)
        }
    };
    crate::control::board().finished(&source.id);
    exit
}
