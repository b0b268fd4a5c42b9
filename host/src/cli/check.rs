//! `ledgerlink plugins check`: the partner conformance kit.

use crate::exit::Exit;
use crate::plugins::{probe, LoadErrorView, LoadedPlugin, PluginSource, SourceError};
use ledgerlink_plugin_api::abi::CancelFlag;
use ledgerlink_plugin_api::canonical::{
    is_past_the_cent, validate_company, Entity, RepeatedRuns, SnapshotValidator, TrialBalance,
    ValidationReport,
};
use ledgerlink_plugin_api::sdk::Manifest;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

/// How many validation problems a year's report keeps (all are counted).
const MAX_PROBLEMS: usize = 100;

/// The whole outcome of a check, printed as JSON with `--json`.
#[derive(Debug, Default, Serialize)]
struct CheckReport {
    path: String,
    passed: bool,
    /// The step that failed, e.g. "extract voucher_lines (company 1, 2025)".
    failed_step: Option<String>,
    error: Option<ErrorView>,
    manifest: Option<Manifest>,
    /// What `check()` said about the other side.
    connection: Option<String>,
    companies: Vec<CompanyReport>,
    /// What passed but tested less than it seems (no fiscal years, no voucher lines).
    warnings: Vec<String>,
}

#[derive(Debug, Serialize)]
struct ErrorView {
    message: String,
    resolution: String,
}

#[derive(Debug, Serialize)]
struct CompanyReport {
    id: String,
    name: String,
    organisation_number: Option<String>,
    currency: String,
    years: Vec<YearReport>,
}

#[derive(Debug, Serialize)]
struct YearReport {
    year: i32,
    change_token: String,
    counts: BTreeMap<Entity, u64>,
    trial_balance: TrialBalance,
    validation: ValidationReport,
}

/// A failed step: its name and the error.
struct Failure {
    step: String,
    error: ErrorView,
}

impl From<SourceError> for ErrorView {
    fn from(e: SourceError) -> Self {
        match e {
            SourceError::Plugin { plugin, operation, error } => ErrorView {
                message: format!(
                    "plugin `{plugin}` failed in {operation}: {} [{}]",
                    error.message, error.kind
                ),
                resolution: error.resolution.into_string(),
            },
            other @ (SourceError::Malformed { .. } | SourceError::Crashed { .. }) => ErrorView {
                message: other.to_string(),
                resolution: "Report this to the plugin's vendor.".into(),
            },
        }
    }
}

fn fail(step: impl Into<String>) -> impl FnOnce(SourceError) -> Failure {
    let step = step.into();
    move |e| Failure { step, error: e.into() }
}

/// Reads plugin settings from a JSON or TOML file into a JSON value.
fn read_settings(path: &Path) -> Result<serde_json::Value, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read settings file {}: {e}", path.display()))?;
    let value = if path.extension().is_some_and(|e| e == "toml") {
        // toml's own Display quotes the offending line, which may hold a password:
        // name the position and the problem only.
        let table: toml::Table = toml::from_str(&text).map_err(|e| {
            let offset = e.span().map_or(0, |s| s.start);
            let before = &text[..offset.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            format!("{}:{line}:{column}: {}", path.display(), e.message())
        })?;
        serde_json::to_value(table).map_err(|e| format!("{}: {e}", path.display()))?
    } else {
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?
    };
    if !value.is_object() {
        return Err(format!(
            "{}: the settings must be an object (a JSON {{…}} or a TOML table)",
            path.display()
        ));
    }
    Ok(value)
}

/// Set in the child process that runs the plugin's calls: the file it writes
/// each step's name to before the step, so the parent can name the step a
/// crash ended.
const STEP_FILE_ENV: &str = "LEDGERLINK_CHECK_STEP_FILE";

/// What the child writes to the step file when it has printed its report: a
/// child that ends without it ended inside a step, whatever its exit code says
/// (a plugin's `exit(0)`, or a crash that Windows reports as an exit code).
const FINISHED: &str = "\0finished";

/// Runs the conformance kit on the plugin at `path`.
///
/// With settings, the plugin's calls run in a child process (this command run
/// again): a plugin that aborts or crashes there ends the child, and this
/// process reports the step it ended in, as `sync` does for its workers.
pub fn run(path: &Path, settings: Option<&Path>, probe_exe: &Path, as_json: bool, stall_secs: u64) -> Exit {
    let step_file = std::env::var_os(STEP_FILE_ENV).map(std::path::PathBuf::from);
    let settings_value = match settings.map(read_settings).transpose() {
        Ok(s) => s,
        Err(message) => {
            eprintln!("error: {message}\nResolution: fix the settings file and run the check again.");
            return Exit::Config;
        }
    };
    if let (Some(settings), None) = (settings, &step_file) {
        return supervise(path, settings, probe_exe, as_json, Duration::from_secs(stall_secs.max(1)));
    }
    let settings = settings_value;
    let mut report = CheckReport { path: path.display().to_string(), ..Default::default() };
    let printer = Printer { enabled: !as_json, step_file };
    let outcome = check(path, settings.as_ref(), probe_exe, &mut report, &printer);
    if let Err(failure) = outcome {
        report.failed_step = Some(failure.step);
        report.error = Some(failure.error);
    }
    let invalid = report.companies.iter().flat_map(|c| &c.years).any(|y| !y.validation.is_valid());
    if invalid && report.failed_step.is_none() {
        report.failed_step = Some("validate".into());
        report.error = Some(ErrorView {
            message: "some records are not valid canonical data (see the problems above)".into(),
            resolution: "Fix the plugin's mapping for the records named by their source keys.".into(),
        });
    }
    report.passed = report.failed_step.is_none();
    if as_json {
        outln!("{}", serde_json::to_string_pretty(&report).expect("report serializes"));
    } else {
        match (&report.failed_step, &report.error) {
            (Some(step), Some(error)) => {
                outln!("\nFAILED at step `{step}`: {}", error.message);
                outln!("Resolution: {}", error.resolution);
            }
            _ if settings.is_none() => {
                outln!("\nPASSED (manifest only; pass --settings FILE to run every call)")
            }
            _ => outln!("\nPASSED"),
        }
    }
    printer.step(FINISHED);
    if report.passed {
        Exit::Success
    } else {
        Exit::Problems
    }
}

/// Runs the check with settings in a child process and reports a crash there, or
/// a step that made no progress for `stall`, as the failure of the step the child
/// had begun.
fn supervise(path: &Path, settings: &Path, probe_exe: &Path, as_json: bool, stall: Duration) -> Exit {
    let step_file =
        std::env::temp_dir().join(format!("ledgerlink-check-{}.step", crate::state::random_hex(8)));
    let mut command = std::process::Command::new(probe_exe);
    command
        .args(["plugins", "check"])
        .arg(path)
        .arg("--settings")
        .arg(settings)
        .env(STEP_FILE_ENV, &step_file);
    if as_json {
        command.arg("--json");
    }
    let (status, stalled) = match run_watched(&mut command, &step_file, stall) {
        Ok(outcome) => outcome,
        Err(e) => {
            let _ = std::fs::remove_file(&step_file);
            eprintln!("error: cannot start {}: {e}", probe_exe.display());
            return Exit::Problems;
        }
    };
    let step = std::fs::read_to_string(&step_file).unwrap_or_default();
    let _ = std::fs::remove_file(&step_file);
    if step == FINISHED {
        return match status.code() {
            Some(0) => Exit::Success,
            Some(3) => Exit::Config,
            _ => Exit::Problems,
        };
    }
    let step = if step.is_empty() { "load".to_owned() } else { step };
    let error = if stalled {
        ErrorView {
            message: format!(
                "the plugin made no progress for {} s in this step (no call returned, no batch arrived); \
                 the check stopped it",
                stall.as_secs()
            ),
            resolution:
                "A query waiting on a lock, a network call without a timeout, or a loop: `sync` kills a \
                         worker after `worker_stall_secs` (default 300 s) the same way. Send the first batch \
                         of a long query early; for a step that is slow but progressing, raise --stall-secs."
                    .into(),
        }
    } else {
        ErrorView {
            message: format!(
                "the plugin ended the process it ran in ({}) inside this step; no result came back",
                crate::plugins::describe_exit_status(status)
            ),
            resolution: "A crash is not a panic the SDK can catch: an abort, `panic = \"abort\"` in a Cargo \
                         profile, a null pointer, or a bug in a driver. Run the step under a debugger, or read \
                         the panic message above if there is one. `sync` contains the same crash in its worker \
                         process."
                .into(),
        }
    };
    if as_json {
        let report = CheckReport {
            path: path.display().to_string(),
            failed_step: Some(step),
            error: Some(error),
            ..Default::default()
        };
        outln!("{}", serde_json::to_string_pretty(&report).expect("report serializes"));
    } else {
        outln!("\nFAILED at step `{step}`: {}", error.message);
        outln!("Resolution: {}", error.resolution);
    }
    Exit::Problems
}

/// Runs the child until it exits, or kills it once its step file (written at
/// every step, touched at every batch) has not changed for `stall`; true then.
fn run_watched(
    command: &mut std::process::Command,
    step_file: &Path,
    stall: Duration,
) -> std::io::Result<(std::process::ExitStatus, bool)> {
    let mut child = command.spawn()?;
    let started = SystemTime::now();
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok((status, false));
        }
        let changed = std::fs::metadata(step_file).and_then(|m| m.modified()).unwrap_or(started).max(started);
        if changed.elapsed().unwrap_or_default() > stall {
            let _ = child.kill();
            return Ok((child.wait()?, true));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Human progress output, silent in JSON mode; and the step being run, for
/// the supervising parent.
struct Printer {
    enabled: bool,
    step_file: Option<std::path::PathBuf>,
}

impl Printer {
    fn line(&self, text: impl AsRef<str>) {
        if self.enabled {
            outln!("{}", text.as_ref());
        }
    }

    /// Records that `step` begins (before the plugin is called for it).
    fn step(&self, step: &str) {
        if let Some(file) = &self.step_file {
            let _ = std::fs::write(file, step);
        }
    }

    /// Tells the supervising parent the step goes on (a batch arrived).
    fn progress(&self) {
        if let Some(file) = &self.step_file {
            if let Ok(handle) = std::fs::File::options().write(true).open(file) {
                let _ = handle.set_modified(SystemTime::now());
            }
        }
    }
}

fn check(
    path: &Path,
    settings: Option<&serde_json::Value>,
    probe_exe: &Path,
    report: &mut CheckReport,
    out: &Printer,
) -> Result<(), Failure> {
    let load_failure = |step: &str, e: crate::plugins::LoadError| {
        let view = LoadErrorView::from(&e);
        Failure { step: step.into(), error: ErrorView { message: view.message, resolution: view.resolution } }
    };
    // Vet the file in a child process first: a damaged library must not take us down.
    let manifest = probe(probe_exe, path).map_err(|e| load_failure("load", e))?;
    out.line(format!("Plugin      {} {} ({})", manifest.id, manifest.version, manifest.display_name));
    out.line(format!("ERP system  {}", manifest.erp_system));
    out.line(format!("plugin-api  {}", manifest.api_version));
    let entity_names: Vec<&str> = manifest.entities.iter().map(|e| e.as_str()).collect();
    out.line(format!("Entities    {}", entity_names.join(", ")));
    report.manifest = Some(manifest);
    let Some(settings) = settings else {
        return Ok(());
    };

    out.step("load");
    let plugin = LoadedPlugin::load_vetted(path).map_err(|e| load_failure("load", e))?;
    out.step("open");
    let source = plugin.open(settings).map_err(fail("open"))?;
    out.step("check");
    let connection = source.check().map_err(fail("check"))?;
    out.line(format!("Connection  {connection}"));
    report.connection = Some(connection);

    out.step("companies");
    let companies = source.companies().map_err(fail("companies"))?;
    out.line(format!("Companies   {}", companies.len()));
    let nothing_to_check = |message: String, resolution: &str| Failure {
        step: "companies".into(),
        error: ErrorView { message, resolution: resolution.into() },
    };
    if companies.is_empty() {
        return Err(nothing_to_check(
            "the plugin returned no companies, so nothing could be extracted or checked".into(),
            "Point the settings at an ERP database with at least one company; if it has some, fix the \
             plugin's company query.",
        ));
    }
    let mut seen = std::collections::BTreeSet::new();
    if let Some(twice) = companies.iter().find(|c| !seen.insert(c.id.as_str())) {
        return Err(nothing_to_check(
            format!(
                "company id `{}` is returned twice; the host keeps each company's data under its id",
                twice.id
            ),
            "Make company ids unique (e.g. the ERP's company number).",
        ));
    }
    let mut entities = plugin.manifest().entities.clone();
    crate::pipeline::extraction_order(&mut entities);
    for company in companies {
        out.line(format!("\nCompany {} — {}", company.id, company.name));
        let problems = validate_company(&company);
        if let Some(problem) = problems.first() {
            return Err(Failure {
                step: format!("companies (company {})", company.id),
                error: ErrorView {
                    message: format!("invalid company record: {problem}"),
                    resolution: "Fix the plugin's company mapping.".into(),
                },
            });
        }
        let mut company_report = CompanyReport {
            id: company.id.clone(),
            name: company.name.clone(),
            organisation_number: company.organisation_number.clone(),
            currency: company.currency.clone(),
            years: Vec::new(),
        };
        if company.fiscal_years.is_empty() {
            let warning =
                format!("company {} has no fiscal years: none of its data was extracted", company.id);
            out.line(format!("  WARNING: {warning}"));
            report.warnings.push(warning);
        }
        for fiscal_year in &company.fiscal_years {
            let year =
                check_year(&source, &company.id, fiscal_year.year, &entities, out, &mut report.warnings);
            match year {
                Ok(year) => company_report.years.push(year),
                Err(failure) => {
                    report.companies.push(company_report);
                    return Err(failure);
                }
            }
        }
        report.companies.push(company_report);
    }
    let lines: u64 = report
        .companies
        .iter()
        .flat_map(|c| &c.years)
        .filter_map(|y| y.counts.get(&Entity::VoucherLines))
        .sum();
    if lines == 0 {
        let warning = if entities.contains(&Entity::VoucherLines) {
            "no voucher lines were read in any company and year: the ledger was not tested; point the \
             settings at a database with postings"
        } else {
            "the manifest lists no voucher_lines: the host cannot sync a ledger with this plugin"
        };
        out.line(format!("\nWARNING: {warning}"));
        report.warnings.push(warning.into());
    }
    Ok(())
}

fn check_year(
    source: &PluginSource,
    company: &str,
    year: i32,
    entities: &[Entity],
    out: &Printer,
    warnings: &mut Vec<String>,
) -> Result<YearReport, Failure> {
    let step = format!("change_token (company {company}, {year})");
    out.step(&step);
    let token = source.change_token(company, year).map_err(fail(step.clone()))?;
    let again = source.change_token(company, year).map_err(fail(step.clone()))?;
    if token != again {
        return Err(Failure {
            step,
            error: ErrorView {
                message: format!(
                    "two calls on unchanged data returned different tokens: `{token}` then `{again}`"
                ),
                resolution:
                    "A change token must depend only on the data (e.g. max change stamp, counts, sums), \
                             never on the time or a random value."
                        .into(),
            },
        });
    }
    out.line(format!("  {year}  change token {token}"));
    let mut validator = SnapshotValidator::new(MAX_PROBLEMS);
    // As the hub does; here in one pass, as a partner's test data is small.
    let mut repeated_runs = RepeatedRuns::every_voucher(MAX_PROBLEMS);
    let mut trial_balance = TrialBalance::default();
    let mut past_the_cent: (u64, Option<String>) = (0, None);
    let mut counts = BTreeMap::new();
    for &entity in entities {
        let started = Instant::now();
        let step = format!("extract {entity} (company {company}, {year})");
        out.step(&step);
        let mut count = 0u64;
        for batch in source.extract(company, entity, year, CancelFlag::new()).map_err(fail(step.clone()))? {
            let batch = batch.map_err(fail(step.clone()))?;
            out.progress();
            count += batch.len() as u64;
            validator.observe(&batch);
            if let ledgerlink_plugin_api::RecordBatch::VoucherLines(lines) = &batch {
                lines.iter().for_each(|line| trial_balance.add(line));
                lines.iter().for_each(|line| repeated_runs.observe(&line.voucher_id, &line.source_key));
                for line in lines {
                    let amounts = [Some(line.amount), line.amount_currency, line.tax_amount];
                    if let Some(amount) = amounts.into_iter().flatten().find(|a| is_past_the_cent(*a)) {
                        past_the_cent.0 += 1;
                        past_the_cent.1.get_or_insert_with(|| format!("{} (`{amount}`)", line.source_key));
                    }
                }
            }
        }
        let secs = started.elapsed().as_secs_f64();
        out.line(format!("        {:<18} {:>10} records  {:>8.3} s", entity.as_str(), count, secs));
        counts.insert(entity, count);
    }
    if let (lines, Some(first)) = past_the_cent {
        let warning = format!(
            "{lines} voucher lines of company {company} {year} have money past the cent, the first {first}: \
             syncs keep it exactly, but the SAF-T export refuses it; round as the ERP shows it, unless the \
             ERP itself keeps more decimals"
        );
        out.line(format!("        WARNING: {warning}"));
        warnings.push(warning);
    }
    let mut validation = validator.finish();
    validation.append(repeated_runs.finish(), MAX_PROBLEMS);
    if validation.is_valid() {
        out.line("        validation         ok");
    } else {
        out.line(format!("        validation         {} problems, the first:", validation.total_problems));
        for problem in validation.problems.iter().take(10) {
            out.line(format!("          {problem}"));
        }
    }
    if !trial_balance.accounts.is_empty() {
        out.line(format!("        {:<10} {:>20} {:>20} {:>20}", "account", "debit", "credit", "net"));
        for (account, row) in &trial_balance.accounts {
            out.line(format!("        {account:<10} {:>20} {:>20} {:>20}", row.debit, row.credit, row.net));
        }
    }
    Ok(YearReport { year, change_token: token, counts, trial_balance, validation })
}
