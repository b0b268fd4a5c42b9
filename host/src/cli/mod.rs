//! The `ledgerlink` command line.

/// `println!` that ignores a closed stdout (`ledgerlink … | head` must not panic).
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

mod check;
mod list;

use crate::plugins;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
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
    /// Inspect and test plugins.
    #[command(subcommand)]
    Plugins(PluginsCommand),
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
        /// A directory to search for plugin files (repeatable). Default: `plugins/` beside the executable.
        #[arg(long = "plugin-dir", value_name = "DIR", env = "LEDGERLINK_PLUGIN_DIR")]
        plugin_dirs: Vec<PathBuf>,
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
    },
}

/// The executable used for probe children: this very program.
fn probe_exe() -> PathBuf {
    std::env::current_exe().unwrap_or_else(|_| PathBuf::from("ledgerlink"))
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::PluginProbe { path } => plugins::run_probe_child(&path),
        Command::Plugins(PluginsCommand::List { plugin_dirs, json }) => {
            let dirs = if plugin_dirs.is_empty() { vec![default_plugin_dir()] } else { plugin_dirs };
            list::run(&dirs, &probe_exe(), json).into()
        }
        Command::Plugins(PluginsCommand::Check { path, settings, json }) => {
            check::run(&path, settings.as_deref(), &probe_exe(), json).into()
        }
    }
}

/// `plugins/` beside the executable.
fn default_plugin_dir() -> PathBuf {
    probe_exe().parent().map(|d| d.join("plugins")).unwrap_or_else(|| PathBuf::from("plugins"))
}
