//! Remote control: the outbound control channel to the hub, the desired state it
//! delivers, and the commands it carries.
//!
//! What the rest of the host needs is small:
//! - [`DesiredState`]: what the hub switched off, and which companies it selected.
//!   Jobs consult it ([`DesiredState::blocked`], [`DesiredState::company_selection`]);
//!   it lives in the state store, so restarts keep it and `ledgerlink sync` obeys it too.
//! - [`record_sync`]: a job notes what its source saw and did; the channel reports it.
//! - [`JobBoard`]: which jobs run now, so a command can cancel one and a remote
//!   sync never overlaps a scheduled one.
//! - [`start`]: the service starts one channel task per tenant.
//!
//! The channel itself (`channel.rs`) connects with WebSocket, Server-Sent Events or
//! long-polling; the executor (`executor.rs`) runs commands exactly once per id.

mod channel;
mod executor;
pub mod logbuf;

pub use channel::{start, AgentCell};

use crate::config::{Source, Tenant};
use crate::pipeline::{SyncReport, YearOutcome};
use crate::state::StateStore;
use ledgerlink_plugin_api::abi::CancelFlag;
use ledgerlink_protocol::control::{
    AgentMessage, CompanySeen, DesiredState as Desired, Disabled, SourceReport, SyncResult,
};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

/// Key of a tenant's desired state in the state store's key-value table.
fn desired_key(tenant: &str) -> String {
    format!("control.desired.{tenant}")
}

/// Key of a tenant's channel state (for `ledgerlink status`).
pub(crate) fn channel_key(tenant: &str) -> String {
    format!("control.channel.{tenant}")
}

/// Key of a source's next scheduled run (for `ledgerlink status`).
pub fn next_run_key(source: &str) -> String {
    format!("schedule.next.{source}")
}

/// What the hub wants of one tenant's sources: remote switches and the company selection.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DesiredState {
    inner: Desired,
}

impl DesiredState {
    /// The desired state of `tenant` as last received (empty when the hub never sent one).
    pub fn for_tenant(state: &StateStore, tenant: &str) -> Self {
        let inner = state
            .setting(&desired_key(tenant))
            .ok()
            .flatten()
            .and_then(|text| serde_json::from_str(&text).ok())
            .unwrap_or_default();
        Self { inner }
    }

    /// Stores the desired state of `tenant`.
    pub fn save(&self, state: &StateStore, tenant: &str) -> Result<(), crate::state::StateError> {
        let text = serde_json::to_string(&self.inner).unwrap_or_else(|_| "{}".into());
        state.set_setting(&desired_key(tenant), &text)
    }

    /// Wraps the wire form.
    pub fn from_wire(inner: Desired) -> Self {
        Self { inner }
    }

    /// The wire form.
    pub fn wire(&self) -> &Desired {
        &self.inner
    }

    /// Mutable wire form.
    pub fn wire_mut(&mut self) -> &mut Desired {
        &mut self.inner
    }

    /// False when the hub switched the source off.
    pub fn source_enabled(&self, id: &str) -> bool {
        !self.inner.disabled_sources.contains_key(id)
    }

    /// False when the hub switched the plugin off.
    pub fn plugin_enabled(&self, id: &str) -> bool {
        !self.inner.disabled_plugins.contains_key(id)
    }

    /// Who switched the source off, when and why.
    pub fn source_disabled(&self, id: &str) -> Option<&Disabled> {
        self.inner.disabled_sources.get(id)
    }

    /// Who switched the plugin off, when and why.
    pub fn plugin_disabled(&self, id: &str) -> Option<&Disabled> {
        self.inner.disabled_plugins.get(id)
    }

    /// The companies selected on the hub for a source; `None`: no selection yet (all the configuration allows).
    pub fn company_selection(&self, source: &str) -> Option<Vec<String>> {
        self.inner.company_selection.get(source).cloned()
    }

    /// Why a source must not run now, or `None` when it may.
    pub fn blocked(&self, source: &Source) -> Option<String> {
        if let Some(d) = self.plugin_disabled(&source.plugin) {
            return Some(format!("plugin `{}` is {}", source.plugin, describe_disabled(d)));
        }
        self.source_disabled(&source.id)
            .map(|d| format!("source `{}` is {}", source.id, describe_disabled(d)))
    }
}

/// "disabled remotely by <who> at <when>: <reason>".
pub fn describe_disabled(d: &Disabled) -> String {
    format!(
        "disabled remotely by {} at {}: {}",
        d.by,
        d.at,
        d.reason.as_deref().filter(|r| !r.is_empty()).unwrap_or("no reason given")
    )
}

fn outcome_name(outcome: &YearOutcome) -> (&'static str, Option<String>) {
    match outcome {
        YearOutcome::Unchanged => ("unchanged", None),
        YearOutcome::Uploaded { .. } => ("uploaded", None),
        YearOutcome::Spooled { reason } => ("spooled", Some(reason.clone())),
        YearOutcome::Deferred { reason } => ("deferred", Some(reason.clone())),
        YearOutcome::Invalid { report } => (
            "invalid",
            Some(format!(
                "{} validation problems; first: {}",
                report.total_problems,
                report.problems.first().map(|p| p.to_string()).unwrap_or_default()
            )),
        ),
        // Hubs know the outcomes of protocol.md; a refusal is a failure there.
        YearOutcome::Refused { error, .. } | YearOutcome::Failed { error } => ("failed", Some(error.clone())),
    }
}

/// The report of a finished sync, as sent to the hub.
pub fn source_report(source: &Source, report: &SyncReport) -> SourceReport {
    let at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    SourceReport {
        source: source.id.clone(),
        companies: report
            .companies
            .iter()
            .map(|c| CompanySeen {
                id: c.id.clone(),
                name: c.name.clone(),
                organisation_number: c.organisation_number.clone(),
                fiscal_years: c.fiscal_years.iter().map(|y| y.year).collect(),
            })
            .collect(),
        syncs: report
            .years
            .iter()
            .map(|(key, outcome)| {
                let (name, error) = outcome_name(outcome);
                SyncResult {
                    company: key.company.clone(),
                    year: key.fiscal_year,
                    outcome: name.to_owned(),
                    error,
                    at: at.clone(),
                }
            })
            .collect(),
        error: report.source_error.clone(),
    }
}

/// Notes what a sync saw and did, for the tenant's control channel to report to
/// the hub (now, or when the service next connects). Failures are logged only.
pub fn record_sync(state: &StateStore, tenant: &Tenant, source: &Source, report: &SyncReport) {
    let message = AgentMessage::Report { report: source_report(source, report) };
    let stored = serde_json::to_string(&message)
        .map_err(|e| e.to_string())
        .and_then(|text| state.push_outbox(&tenant.id, &text).map_err(|e| e.to_string()));
    match stored {
        Ok(()) => outbox_notify().notify_waiters(),
        Err(e) => {
            tracing::warn!(source = %source.id, error = %e, "Cannot queue the sync report for the hub.")
        }
    }
}

/// Wakes the control channels when a report was queued.
pub(crate) fn outbox_notify() -> &'static tokio::sync::Notify {
    static NOTIFY: OnceLock<tokio::sync::Notify> = OnceLock::new();
    NOTIFY.get_or_init(tokio::sync::Notify::new)
}

/// The configuration file the service was started with (for `config.reload`).
static CONFIG_PATH: OnceLock<PathBuf> = OnceLock::new();

/// Remembers the configuration file of the service, so `config.reload` can read it again.
pub fn set_config_path(path: PathBuf) {
    let _ = CONFIG_PATH.set(path);
}

pub(crate) fn config_path() -> Option<&'static PathBuf> {
    CONFIG_PATH.get()
}

#[derive(Default)]
struct SourceJobs {
    running: Option<CancelFlag>,
    next_run: Option<String>,
}

/// The process's job board (the service's schedules and the hub's commands share it).
pub fn board() -> &'static JobBoard {
    static BOARD: OnceLock<JobBoard> = OnceLock::new();
    BOARD.get_or_init(JobBoard::default)
}

/// Which jobs run now and when each source runs next; one lock per source so jobs never overlap.
#[derive(Default)]
pub struct JobBoard {
    sources: Mutex<HashMap<String, SourceJobs>>,
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl JobBoard {
    fn sources(&self) -> std::sync::MutexGuard<'_, HashMap<String, SourceJobs>> {
        self.sources.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The lock a job of `source` holds while it runs.
    pub fn lock(&self, source: &str) -> Arc<tokio::sync::Mutex<()>> {
        self.locks.lock().unwrap_or_else(|p| p.into_inner()).entry(source.to_owned()).or_default().clone()
    }

    /// Notes that a job of `source` started, cancellable with `cancel`.
    pub fn started(&self, source: &str, cancel: CancelFlag) {
        self.sources().entry(source.to_owned()).or_default().running = Some(cancel);
    }

    /// Notes that the job of `source` ended.
    pub fn finished(&self, source: &str) {
        if let Some(jobs) = self.sources().get_mut(source) {
            jobs.running = None;
        }
    }

    /// Notes the next scheduled run of `source` (RFC 3339).
    pub fn set_next_run(&self, source: &str, at: String) {
        self.sources().entry(source.to_owned()).or_default().next_run = Some(at);
    }

    /// Asks the running job of `source` to stop between batches; false when none runs.
    pub fn cancel(&self, source: &str) -> bool {
        match self.sources().get(source).and_then(|j| j.running.clone()) {
            Some(cancel) => {
                cancel.cancel();
                true
            }
            None => false,
        }
    }

    /// True while a job of `source` runs.
    pub fn running(&self, source: &str) -> bool {
        self.sources().get(source).is_some_and(|j| j.running.is_some())
    }

    /// The next scheduled run of `source`, when known.
    pub fn next_run(&self, source: &str) -> Option<String> {
        self.sources().get(source).and_then(|j| j.next_run.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn desired_state_survives_reopening_the_state_store() {
        let dir = tempfile::tempdir().unwrap();
        let disabled = Disabled {
            by: "alice".into(),
            at: "2025-06-01T10:00:00Z".into(),
            reason: Some("ERP upgrade".into()),
        };
        {
            let state = StateStore::open(dir.path()).unwrap();
            let mut desired = DesiredState::for_tenant(&state, "acme");
            assert!(desired.plugin_enabled("hello-erp"));
            desired.wire_mut().disabled_plugins.insert("hello-erp".into(), disabled.clone());
            desired.save(&state, "acme").unwrap();
        }
        let state = StateStore::open(dir.path()).unwrap();
        let desired = DesiredState::for_tenant(&state, "acme");
        assert!(!desired.plugin_enabled("hello-erp"));
        assert_eq!(desired.plugin_disabled("hello-erp"), Some(&disabled));
        assert!(DesiredState::for_tenant(&state, "other").plugin_enabled("hello-erp"), "per tenant");
        assert_eq!(
            describe_disabled(&disabled),
            "disabled remotely by alice at 2025-06-01T10:00:00Z: ERP upgrade"
        );
    }
}
