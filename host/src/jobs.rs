//! A job: one sync of one configured source, from configuration to exit code.
//!
//! This is where configuration, plugins, state, spool and hub client meet; the
//! `sync` command runs one job, the `run` service runs them on schedules.

use crate::config::{Config, Isolation, Source, Tenant};
use crate::exit::Exit;
use crate::hub_client::{user_agent, HubClient, HubClientSettings, HubError, Refusal, RetryPolicy};
use crate::pipeline::{
    sync_source, SourceSpec, SyncContext, SyncError, SyncReport, SyncRequest, YearOutcome, YearSelection,
};
use crate::plugins::{scan, Extractor, LoadError, LoadedPlugin, PluginStatus};
use crate::spool::Spool;
use crate::state::StateStore;
use crate::worker::{WorkerLimits, WorkerSource};
use chrono::Datelike;
use ledgerlink_plugin_api::abi::CancelFlag;
use ledgerlink_plugin_api::sdk::Manifest;
use ledgerlink_protocol::PluginRef;
use std::path::{Path, PathBuf};

/// Why a job could not run or failed as a whole.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// No source with this id in the configuration.
    #[error(
        "there is no source `{id}` in the configuration (sources: {known}). Resolution: use one of those ids"
    )]
    UnknownSource {
        /// The id asked for.
        id: String,
        /// The configured ids.
        known: String,
    },
    /// The source is disabled in the configuration.
    #[error("source `{0}` is disabled in the configuration. Resolution: set `enabled = true` to sync it")]
    Disabled(String),
    /// The hub switched the source or its plugin off.
    #[error("{0}. Resolution: it runs again when support enables it on the hub")]
    RemotelyDisabled(String),
    /// The source's plugin is not installed or not usable.
    #[error("{0}")]
    Plugin(String),
    /// The sync failed as a whole.
    #[error(transparent)]
    Sync(#[from] SyncError),
    /// The hub client could not be set up.
    #[error(transparent)]
    Hub(#[from] HubError),
}

impl JobError {
    /// The exit code this failure maps to.
    pub fn exit(&self) -> Exit {
        match self {
            JobError::UnknownSource { .. } | JobError::Disabled(_) | JobError::RemotelyDisabled(_) => {
                Exit::Config
            }
            JobError::Sync(SyncError::Selection(_)) => Exit::Config,
            JobError::Hub(HubError::Setup(_) | HubError::Identity(_)) => Exit::Config,
            _ => Exit::Source,
        }
    }
}

/// What an exit code means, in a few words (for `ledgerlink status`).
fn exit_label(exit: Exit) -> &'static str {
    match exit {
        Exit::Success => "uploaded",
        Exit::NothingChanged => "nothing changed",
        Exit::Spooled => "spooled",
        Exit::Validation => "invalid data",
        Exit::Config => "configuration error",
        Exit::Source => "source error",
        Exit::Problems | Exit::Usage => "failed",
    }
}

/// `text` on one line of at most 600 characters (room for a resolution).
fn one_line(text: &str) -> String {
    let line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match line.char_indices().nth(600) {
        Some((end, _)) => format!("{} …", &line[..end]),
        None => line,
    }
}

impl SyncReport {
    /// The run's outcome for `ledgerlink status`: what its exit code means and,
    /// unless it went well, the first company/year that decided it and why.
    pub fn summary(&self) -> String {
        let exit = self.exit();
        let label = exit_label(exit);
        if let Some(error) = &self.source_error {
            return format!("{label}: {error}");
        }
        let decisive = self.years.iter().find_map(|(key, outcome)| {
            let why = match (exit, outcome) {
                (Exit::Config | Exit::Validation, YearOutcome::Refused { error, .. }) => error.clone(),
                (Exit::Source, YearOutcome::Failed { error }) => error.clone(),
                (Exit::Validation, YearOutcome::Invalid { report }) => format!(
                    "{} problems, first: {}",
                    report.total_problems,
                    report.problems.first().map(|p| p.to_string()).unwrap_or_default()
                ),
                (Exit::Spooled, YearOutcome::Spooled { reason } | YearOutcome::Deferred { reason }) => {
                    reason.clone()
                }
                _ => return None,
            };
            Some(format!("company {} {}: {why}", key.company, key.fiscal_year))
        });
        match decisive {
            Some(why) => format!("{label} ({why})"),
            None => label.to_owned(),
        }
    }

    /// The exit code of a finished sync (worst outcome wins).
    pub fn exit(&self) -> Exit {
        let any = |f: fn(&YearOutcome) -> bool| self.years.iter().any(|(_, o)| f(o));
        // A refused key, address or size is the configuration's to fix; a refused
        // snapshot is data the hub does not accept.
        let config = |o: &YearOutcome| matches!(o, YearOutcome::Refused { refusal, .. } if *refusal != Refusal::Snapshot);
        if any(config) {
            Exit::Config
        } else if self.source_error.is_some() || any(|o| matches!(o, YearOutcome::Failed { .. })) {
            Exit::Source
        } else if any(|o| matches!(o, YearOutcome::Invalid { .. } | YearOutcome::Refused { .. })) {
            Exit::Validation
        } else if any(|o| matches!(o, YearOutcome::Spooled { .. } | YearOutcome::Deferred { .. })) {
            Exit::Spooled
        } else if any(|o| matches!(o, YearOutcome::Uploaded { .. })) {
            Exit::Success
        } else {
            Exit::NothingChanged
        }
    }
}

/// The agent: configuration plus where its executable is (for plugin probes).
pub struct Agent {
    /// The loaded configuration.
    pub config: Config,
    probe_exe: PathBuf,
}

impl Agent {
    /// An agent for a loaded configuration.
    pub fn new(config: Config, probe_exe: PathBuf) -> Self {
        Self { config, probe_exe }
    }

    /// The executable that probes plugin files and runs plugin workers.
    pub fn probe_exe(&self) -> &Path {
        &self.probe_exe
    }

    /// The plugin directories: configured, or `plugins/` beside the executable.
    pub fn plugin_dirs(&self) -> Vec<PathBuf> {
        if self.config.plugins.directories.is_empty() {
            let beside =
                self.probe_exe.parent().map(|d| d.join("plugins")).unwrap_or_else(|| "plugins".into());
            vec![beside]
        } else {
            self.config.plugins.directories.clone()
        }
    }

    /// Checks the configuration (read from `path`) against the installed plugins, as
    /// `ledgerlink config validate` does: each source's plugin is installed, and its
    /// settings fit that plugin's schema.
    pub fn check_plugins(&self, path: &Path) -> Result<(), crate::config::ConfigError> {
        let mut installed = crate::config::Installed::default();
        for entry in scan(&self.plugin_dirs(), &self.probe_exe) {
            match entry.status {
                PluginStatus::Ok { manifest } => {
                    installed.schemas.insert(manifest.id, manifest.settings_schema);
                }
                PluginStatus::Error { error: LoadError::DuplicateId { id, .. } } => {
                    installed.duplicate_ids.insert(id);
                }
                PluginStatus::Error { .. } => installed.unusable_files += 1,
            }
        }
        crate::config::check_plugins(path, &self.config, &installed)
    }

    /// Opens the state store.
    pub fn state(&self) -> Result<StateStore, JobError> {
        StateStore::open(&self.config.agent.data_dir).map_err(|e| JobError::Sync(SyncError::State(e)))
    }

    /// Opens the spool.
    pub fn spool(&self) -> Result<Spool, JobError> {
        Spool::open(&self.config.spool_dir(), self.config.spool.max_bytes)
            .map_err(|e| JobError::Sync(SyncError::Spool(e)))
    }

    /// Finds the plugin file with this id, vetted by a probe process; scanned anew
    /// for every job, so a replaced plugin file is used by the next job.
    pub fn find_plugin(&self, id: &str) -> Result<(PathBuf, Manifest), JobError> {
        let dirs = self.plugin_dirs();
        let mut problems = Vec::new();
        let mut claimed_by = Vec::new();
        for entry in scan(&dirs, &self.probe_exe) {
            match entry.status {
                PluginStatus::Ok { manifest } if manifest.id == id => return Ok((entry.path, manifest)),
                PluginStatus::Error { error: LoadError::DuplicateId { id: duplicate, .. } }
                    if duplicate == id =>
                {
                    claimed_by.push(entry.path.display().to_string())
                }
                PluginStatus::Error { error } => problems.push(format!("{}: {error}", entry.path.display())),
                PluginStatus::Ok { .. } => {}
            }
        }
        if !claimed_by.is_empty() {
            return Err(JobError::Plugin(format!(
                "plugin `{id}` is provided by more than one file ({}), so none of them runs. Resolution: keep the \
                 file from the plugin's vendor and remove the others (`ledgerlink plugins list` shows each file's \
                 version and ERP); a copied or renamed plugin must have an id of its own",
                claimed_by.join(", ")
            )));
        }
        let shown: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
        let mut message = format!(
            "plugin `{id}` is not installed in {}. Resolution: copy the plugin file there, or fix `plugins.directories`",
            shown.join(", ")
        );
        if !problems.is_empty() {
            message.push_str(&format!(" (unusable files: {})", problems.join("; ")));
        }
        Err(JobError::Plugin(message))
    }

    /// Opens a source's plugin where the configuration says: a worker process or in-process.
    pub fn open_source(&self, source: &Source) -> Result<(Box<dyn Extractor>, Manifest), JobError> {
        let (path, manifest) = self.find_plugin(&source.plugin)?;
        let settings = source.plugin_settings_json();
        match source.isolation {
            Isolation::Process => {
                let limits = WorkerLimits {
                    stall: std::time::Duration::from_secs(source.worker_stall_secs.max(1)),
                    memory_bytes: Some(source.worker_memory_mb.saturating_mul(1 << 20)),
                };
                let job = format!("{}-{}", source.id, crate::state::random_hex(3));
                let worker =
                    WorkerSource::start(&self.probe_exe, &path, &source.plugin, &job, &settings, limits)
                        .map_err(|e| JobError::Sync(SyncError::Source(e)))?;
                let manifest = worker.manifest().clone();
                Ok((Box::new(worker), manifest))
            }
            Isolation::InProcess => {
                let plugin = LoadedPlugin::load_vetted(&path).map_err(|e| {
                    JobError::Plugin(format!(
                        "plugin `{}` ({}): {e}. Resolution: {}",
                        source.plugin,
                        path.display(),
                        e.resolution()
                    ))
                })?;
                let opened = plugin.open(&settings).map_err(|e| JobError::Sync(SyncError::Source(e)))?;
                Ok((Box::new(opened), manifest))
            }
        }
    }

    /// The hub client of a tenant, with the User-Agent of a source's ERP.
    pub fn hub_client(&self, tenant: &Tenant, erp_system: &str) -> Result<HubClient, HubError> {
        let extra_root_pem = match &self.config.hub.ca_file {
            Some(path) => Some(
                std::fs::read(path)
                    .map_err(|e| HubError::Setup(format!("hub.ca_file {}: {e}", path.display())))?,
            ),
            None => None,
        };
        HubClient::new(HubClientSettings {
            identity_dir: Some(self.config.agent.data_dir.clone()),
            url: self.config.hub.url.clone(),
            api_key: tenant.api_key.expose().to_owned(),
            proxy: self.config.hub.effective_proxy(),
            user_agent: user_agent(erp_system, self.config.agent.service_user.as_deref()),
            timeout: self.config.hub.timeout(),
            retry: retry_policy(),
            extra_root_pem,
        })
    }

    /// Runs one sync of the source `source_id`.
    pub fn sync(
        &self,
        source_id: &str,
        request: &SyncRequest,
        cancel: CancelFlag,
        quiet: bool,
    ) -> Result<SyncReport, JobError> {
        let (tenant, source) = self.config.source(source_id).ok_or_else(|| JobError::UnknownSource {
            id: source_id.to_owned(),
            known: self.config.sources().map(|(_, s)| s.id.clone()).collect::<Vec<_>>().join(", "),
        })?;
        if !source.enabled {
            return Err(JobError::Disabled(source.id.clone()));
        }
        let state = self.state()?;
        let desired = crate::control::DesiredState::for_tenant(&state, &tenant.id);
        if let Some(why) = desired.blocked(source) {
            return Err(JobError::RemotelyDisabled(why));
        }
        // Every sync is a run of the source (manual ones too): `status` shows it and
        // the schedule's catch-up counts from it.
        let now = || chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let _ = state.run_started(&source.id, &now());
        let result = self.sync_started(&state, &desired, tenant, source, request, cancel, quiet);
        let outcome = match &result {
            Ok(report) => report.summary(),
            Err(e) => format!("{}: {e}", exit_label(e.exit())),
        };
        let _ = state.run_finished(&source.id, &now(), &one_line(&outcome));
        result
    }

    /// The part of [`Agent::sync`] after the source was found and allowed to run.
    #[allow(clippy::too_many_arguments)]
    fn sync_started(
        &self,
        state: &StateStore,
        desired: &crate::control::DesiredState,
        tenant: &Tenant,
        source: &Source,
        request: &SyncRequest,
        cancel: CancelFlag,
        quiet: bool,
    ) -> Result<SyncReport, JobError> {
        let spool = self.spool()?;
        let agent_id = state.agent_id().map_err(|e| JobError::Sync(SyncError::State(e)))?;
        let (opened, manifest) = self.open_source(source)?;
        let hub = self.hub_client(tenant, &manifest.erp_system)?;
        let ctx = SyncContext { agent_id: &agent_id, state, spool: &spool, hub: &hub, cancel, quiet };
        let plugin_ref = PluginRef { id: manifest.id.clone(), version: manifest.version.clone() };
        let mut entities = manifest.entities.clone();
        crate::pipeline::extraction_order(&mut entities);
        let mut spec = spec_of(tenant, source);
        spec.hub_selection = desired.company_selection(&source.id);
        let report = sync_source(&ctx, opened.as_ref(), &plugin_ref, &entities, &spec, request)?;
        crate::control::record_sync(state, tenant, source, &report);
        Ok(report)
    }
}

/// The pipeline's view of a configured source.
fn spec_of(tenant: &Tenant, source: &Source) -> SourceSpec {
    let current_year = chrono::Local::now().year();
    SourceSpec {
        tenant: tenant.id.clone(),
        id: source.id.clone(),
        companies: source.companies.clone(),
        hub_selection: None,
        years: YearSelection::List(source.fiscal_years.years(current_year)),
    }
}

/// Retries of hub requests; `LEDGERLINK_HUB_RETRY_ATTEMPTS` lowers them for tests and demos.
fn retry_policy() -> RetryPolicy {
    let mut policy = RetryPolicy::default();
    if let Some(attempts) = std::env::var("LEDGERLINK_HUB_RETRY_ATTEMPTS").ok().and_then(|v| v.parse().ok()) {
        policy.attempts = attempts;
        policy.initial_backoff = std::time::Duration::from_millis(100);
    }
    policy
}
