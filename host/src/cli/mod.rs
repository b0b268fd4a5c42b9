//! The `ledgerlink` command line.

/// `println!` that ignores a closed stdout (`ledgerlink … | head` must not panic).
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

mod check;
mod config_cmd;
mod demo;
mod list;
mod status;
mod support_access;
mod sync;

use crate::exit::Exit;
use crate::plugins;
use clap::{Parser, Subcommand};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Ledgerlink connector host: runs ERP extractor plugins and uploads to the hub.
#[derive(Debug, Parser)]
#[command(name = "ledgerlink", version, about, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check the configuration file.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Inspect and test plugins.
    #[command(subcommand)]
    Plugins(PluginsCommand),
    /// The demo: a hub on loopback, a Visma Business database in SQLite, a sync over ODBC, the trial balance.
    Demo {
        /// Where the demo's files go (recreated each time).
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
    /// Run the service: every enabled source on its schedule, until Ctrl-C or SIGTERM.
    Run {
        /// The configuration file (default: $LEDGERLINK_CONFIG, else the OS default path).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Seconds running jobs get to finish after a shutdown signal.
        #[arg(long, value_name = "SECS", default_value_t = 30)]
        drain_secs: u64,
    },
    /// Sync one source now: extract what changed, validate, spool, upload.
    ///
    /// Exit codes: 0 uploaded, 7 nothing changed, 6 spooled (hub unreachable; sent
    /// by the next run), 5 invalid data (not uploaded), 4 source error, 3 configuration error.
    Sync {
        /// The source id from the configuration.
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
        /// The configuration file (default: $LEDGERLINK_CONFIG, else the OS default path).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Print the outcome as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Internal: run one plugin in this (child) process for the host, over stdin/stdout.
    #[command(name = "plugin-worker", hide = true)]
    PluginWorker {
        /// The plugin file.
        path: PathBuf,
    },
    /// Show sources, plugins (and who disabled them remotely), last and next runs, spool and control channel.
    Status {
        /// The configuration file (default: $LEDGERLINK_CONFIG, else the OS default path).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Let support at the central service look at this tenant's diagnostics or data for a
    /// limited time, see every look it took, and withdraw access.
    ///
    /// Exit codes: 0 done, 1 the hub is unreachable or refused, 3 configuration problem.
    #[command(subcommand, name = "support-access")]
    SupportAccess(support_access::SupportAccessCommand),
    /// Internal: load one plugin file in this (child) process and print its manifest.
    #[command(name = "plugin-probe", hide = true)]
    PluginProbe {
        /// The plugin file.
        path: PathBuf,
    },
}

/// `ledgerlink plugins …`
#[derive(Debug, Subcommand)]
pub enum PluginsCommand {
    /// List every plugin file in the plugin directories, with its version or why it is unusable.
    ///
    /// Exit code 0 when every file is a usable plugin, 1 when any file is not.
    List {
        /// A directory to search for plugin files (repeatable). Default: the
        /// configuration's `plugins.directories`, else `plugins/` beside the executable.
        #[arg(long = "plugin-dir", value_name = "DIR", env = "LEDGERLINK_PLUGIN_DIR")]
        plugin_dirs: Vec<PathBuf>,
        /// The configuration whose `plugins.directories` to list (default:
        /// LEDGERLINK_CONFIG, else /etc/ledgerlink/ledgerlink.toml when it exists).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// The partner conformance kit: load a plugin, and with settings run every call on it.
    ///
    /// Exit code 0 when every step passed, 1 when a step failed (the output names
    /// it), 3 when the settings file cannot be read.
    Check {
        /// The plugin file.
        path: PathBuf,
        /// Settings for the plugin (a JSON object, or TOML when the file ends in .toml).
        #[arg(long, value_name = "FILE")]
        settings: Option<PathBuf>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
        /// Fail a step that makes no progress (no call returns, no batch arrives) for this
        /// many seconds, as `sync` kills a worker after `worker_stall_secs`.
        #[arg(long, value_name = "SECS", default_value_t = 300)]
        stall_secs: u64,
    },
}

/// `ledgerlink config …`
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Parse and validate the configuration file; name the file, line and field of every problem.
    ///
    /// Exit code 0 when the configuration is valid, 3 when it cannot be read or is invalid.
    Validate {
        /// The configuration file. Default: $LEDGERLINK_CONFIG, else /etc/ledgerlink/ledgerlink.toml
        /// (%ProgramData%\Ledgerlink\ledgerlink.toml on Windows).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Encrypt every secret written in clear (API keys, passwords, a proxy's password) in the
    /// configuration file, with a key kept in the data directory (created when missing).
    ///
    /// Comments and layout stay; a value encrypted already is left alone. Exit code 0 when done
    /// (or nothing was left to encrypt), 3 when the file or the key cannot be used.
    Encrypt {
        /// The configuration file. Default: $LEDGERLINK_CONFIG, else the OS default path.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
}

/// The executable used for probe children: this very program.
fn probe_exe() -> PathBuf {
    std::env::current_exe().unwrap_or_else(|_| PathBuf::from("ledgerlink"))
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Config(ConfigCommand::Validate { config }) => {
            config_cmd::validate(config.as_deref(), &probe_exe()).into()
        }
        Command::Config(ConfigCommand::Encrypt { config }) => config_cmd::encrypt(config.as_deref()).into(),
        Command::PluginProbe { path } => plugins::run_probe_child(&path),
        Command::PluginWorker { path } => crate::worker::run_worker_child(&path),
        Command::Demo { dir } => demo::run(dir, probe_exe()).into(),
        Command::Run { config, drain_secs } => {
            // `config.reload` from the hub reads this file again.
            crate::control::set_config_path(crate::config::resolve_path(config.as_deref()));
            let path = crate::config::resolve_path(config.as_deref());
            match sync::load_config(config.as_deref()) {
                Ok(config) => {
                    let warnings = [
                        crate::config::exposure_warning(&config, &path),
                        crate::config::clear_secrets_warning(&config, &path),
                    ];
                    for warning in warnings.into_iter().flatten() {
                        tracing::warn!("{warning}");
                    }
                    let agent = crate::jobs::Agent::new(config, probe_exe());
                    crate::service::run(agent, std::time::Duration::from_secs(drain_secs)).into()
                }
                Err(exit) => exit.into(),
            }
        }
        Command::Status { config, json } => status::run(config.as_deref(), json).into(),
        Command::SupportAccess(command) => support_access::run(command, probe_exe()).into(),
        Command::Sync { source, company, year, force, config, json } => {
            let request = crate::pipeline::SyncRequest { company, year, force };
            sync::run(sync::SyncArgs { config, source, request, json }, probe_exe()).into()
        }
        Command::Plugins(PluginsCommand::List { plugin_dirs, config, json }) => {
            let dirs = if plugin_dirs.is_empty() {
                match configured_plugin_dirs(config.as_deref()) {
                    Ok(dirs) => dirs,
                    Err(exit) => return exit.into(),
                }
            } else {
                plugin_dirs
            };
            list::run(&dirs, &probe_exe(), json).into()
        }
        Command::Plugins(PluginsCommand::Check { path, settings, json, stall_secs }) => {
            check::run(&path, settings.as_deref(), &probe_exe(), json, stall_secs).into()
        }
    }
}

/// The plugin directories of the configuration the command names (or
/// LEDGERLINK_CONFIG names), or of the default configuration file when it
/// exists; else `plugins/` beside the executable, as the service would use.
fn configured_plugin_dirs(cli_path: Option<&Path>) -> Result<Vec<PathBuf>, Exit> {
    let named =
        cli_path.is_some() || std::env::var_os(crate::config::CONFIG_ENV).is_some_and(|v| !v.is_empty());
    let path = crate::config::resolve_path(cli_path);
    if !named && !path.exists() {
        return Ok(vec![default_plugin_dir()]);
    }
    let config = crate::config::load(&path).map_err(|error| {
        eprintln!("{error}");
        Exit::Config
    })?;
    let dirs = config.plugins.directories;
    Ok(if dirs.is_empty() { vec![default_plugin_dir()] } else { dirs })
}

/// `plugins/` beside the executable.
fn default_plugin_dir() -> PathBuf {
    probe_exe().parent().map(|d| d.join("plugins")).unwrap_or_else(|| PathBuf::from("plugins"))
}
