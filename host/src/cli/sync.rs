//! `ledgerlink sync`: one sync of one source, now.

use crate::config;
use crate::exit::Exit;
use crate::jobs::Agent;
use crate::pipeline::{SyncRequest, YearOutcome};
use ledgerlink_plugin_api::abi::CancelFlag;
use std::path::{Path, PathBuf};

/// What `ledgerlink sync` was asked.
pub(super) struct SyncArgs {
    pub config: Option<PathBuf>,
    pub source: String,
    pub request: SyncRequest,
    pub json: bool,
}

/// Loads the configuration or prints why it cannot be used.
pub(super) fn load_config(cli_path: Option<&Path>) -> Result<config::Config, Exit> {
    let path = config::resolve_path(cli_path);
    config::load(&path).map_err(|error| {
        eprintln!("{error}");
        Exit::Config
    })
}

/// Runs the sync and prints one line per company and fiscal year.
pub(super) fn run(args: SyncArgs, probe_exe: PathBuf) -> Exit {
    let config = match load_config(args.config.as_deref()) {
        Ok(config) => config,
        Err(exit) => return exit,
    };
    let agent = Agent::new(config, probe_exe);
    let report = match agent.sync(&args.source, &args.request, CancelFlag::new(), args.json) {
        Ok(report) => report,
        Err(error) => {
            eprintln!("error: sync of source `{}` failed: {error}", args.source);
            let exit = error.exit();
            if args.json {
                // A monitor reading stdout gets an answer on every path.
                outln!(
                    "{}",
                    serde_json::json!({ "exit_code": exit as u8, "error": error.to_string(), "years": [] })
                );
            }
            return exit;
        }
    };
    let exit = report.exit();
    if args.json {
        let years: Vec<_> = report
            .years
            .iter()
            .map(|(key, outcome)| {
                let (status, detail) = describe(outcome);
                serde_json::json!({
                    "source": key.source, "company": key.company, "fiscal_year": key.fiscal_year,
                    "status": status, "detail": detail,
                })
            })
            .collect();
        outln!("{}", serde_json::json!({ "exit_code": exit as u8, "years": years }));
    } else {
        if report.years.is_empty() {
            outln!("Nothing to sync: no company and fiscal year of source `{}` is selected.", args.source);
        }
        for (key, outcome) in &report.years {
            let (status, detail) = describe(outcome);
            outln!("{:<12} company {:<16} {}  {}", status, key.company, key.fiscal_year, detail);
        }
        outln!("{}", summary(exit));
    }
    exit
}

fn describe(outcome: &YearOutcome) -> (&'static str, String) {
    match outcome {
        YearOutcome::Unchanged => ("unchanged", "same data as the last upload; nothing sent".into()),
        YearOutcome::Uploaded { snapshot_id, counts } => {
            let lines = counts.get("voucher_lines").copied().unwrap_or(0);
            ("uploaded", format!("snapshot {snapshot_id} ({lines} voucher lines)"))
        }
        YearOutcome::Spooled { reason } => ("spooled", reason.clone()),
        YearOutcome::Deferred { reason } => ("deferred", reason.clone()),
        YearOutcome::Invalid { report } => {
            let first: Vec<String> = report.problems.iter().take(5).map(|p| p.to_string()).collect();
            (
                "invalid",
                format!("{} problems, not uploaded; first: {}", report.total_problems, first.join("; ")),
            )
        }
        YearOutcome::Refused { error, .. } => ("refused", error.clone()),
        YearOutcome::Failed { error } => ("failed", error.clone()),
    }
}

fn summary(exit: Exit) -> &'static str {
    match exit {
        Exit::Success => "Done: everything changed was uploaded and acknowledged by the hub.",
        Exit::NothingChanged => "Done: nothing changed since the last upload.",
        Exit::Spooled => {
            "Spooled: what was extracted is safe on disk and goes with the next run; \
                          a deferred year is extracted by a later run."
        }
        Exit::Validation => {
            "Some data is invalid, or was refused by the hub, and was not uploaded (see above)."
        }
        Exit::Config => {
            "The hub refused the upload: fix the configuration as said above; the data waits in the spool."
        }
        _ => "The sync failed (see above).",
    }
}
