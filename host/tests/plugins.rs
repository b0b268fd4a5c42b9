//! Plugin boundary tests against real plugin libraries loaded from disk.
//!
//! The workspace's plugin crates must be built first (`cargo build --workspace`,
//! which the project's test command does); each test finds the libraries next to
//! the `ledgerlink` binary.

use hello_erp::data;
use ledgerlink_host::plugins::{probe, LoadedPlugin, SourceError};
use ledgerlink_plugin_api::abi::CancelFlag;
use ledgerlink_plugin_api::canonical::Decimal;
use ledgerlink_plugin_api::{Entity, ErrorKind};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn ledgerlink_exe() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_ledgerlink"))
}

/// The built library of a workspace plugin crate (e.g. `hello_erp`).
fn library(crate_name: &str) -> PathBuf {
    let dir = ledgerlink_exe().parent().expect("target dir");
    let path =
        dir.join(format!("{}{crate_name}{}", std::env::consts::DLL_PREFIX, std::env::consts::DLL_SUFFIX));
    assert!(path.exists(), "{} is missing: run `cargo build --workspace` before the tests", path.display());
    path
}

fn ledgerlink(args: &[&str]) -> Output {
    Command::new(ledgerlink_exe()).args(args).output().expect("ledgerlink runs")
}

/// Runs `plugins list` on one plugin directory.
fn list_dir(dir: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["plugins", "list", "--plugin-dir", dir.to_str().unwrap()];
    args.extend_from_slice(extra);
    ledgerlink(&args)
}

fn stdout_json(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}):\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

/// hello-erp cut after 20 000 bytes, as an interrupted copy would leave it.
fn write_truncated_library(path: &Path) {
    let bytes = std::fs::read(library("hello_erp")).unwrap();
    std::fs::write(path, &bytes[..20_000]).unwrap();
}

/// A plugin directory with hello-erp, a duplicate of it, and every broken fixture.
fn plugin_dir_with_broken_files() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let copy =
        |crate_name: &str, file: &str| std::fs::copy(library(crate_name), dir.path().join(file)).unwrap();
    copy("hello_erp", "a-hello-erp.so");
    copy("hello_erp", "z-hello-erp-copy.so");
    copy("fixture_wrong_api_major", "wrong-api-major.so");
    copy("fixture_no_root_module", "no-root-module.so");
    copy("fixture_panicking", "panicking.so");
    std::fs::write(dir.path().join("not-a-library.so"), "this is a text file, not a library\n").unwrap();
    write_truncated_library(&dir.path().join("truncated.so"));
    std::fs::write(dir.path().join("README.txt"), "not a plugin name, ignored").unwrap();
    dir
}

#[test]
fn list_shows_good_plugins_and_every_broken_file_with_a_reason() {
    let dir = plugin_dir_with_broken_files();
    let output = list_dir(dir.path(), &["--json"]);
    assert_eq!(output.status.code(), Some(1), "broken files make exit code 1");
    let json = stdout_json(&output);
    let by_file: BTreeMap<String, &Value> = json["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (Path::new(p["path"].as_str().unwrap()).file_name().unwrap().to_string_lossy().into_owned(), p)
        })
        .collect();
    assert_eq!(by_file.len(), 7, "README.txt is not a plugin file: {by_file:?}");

    let panicking = by_file["panicking.so"];
    assert_eq!(panicking["status"], "ok");
    assert_eq!(panicking["id"], "panicking");
    assert_eq!(panicking["api_version"], ledgerlink_plugin_api::API_VERSION);

    let kind = |file: &str| by_file[file]["error"]["kind"].as_str().unwrap_or("<ok>").to_owned();
    // Two files with one id: neither is used, whichever sorts first.
    for (file, other) in
        [("a-hello-erp.so", "z-hello-erp-copy.so"), ("z-hello-erp-copy.so", "a-hello-erp.so")]
    {
        assert_eq!(kind(file), "duplicate_id");
        let message = by_file[file]["error"]["message"].as_str().unwrap();
        assert!(message.contains(other) && message.contains("none of these files is used"), "{message}");
    }
    assert_eq!(kind("wrong-api-major.so"), "incompatible_api");
    assert_eq!(kind("no-root-module.so"), "missing_root_module");
    assert_eq!(kind("not-a-library.so"), "not_a_library");
    // A truncated library either fails dlopen or kills the probe (SIGBUS); never us.
    assert!(
        ["crashed", "not_a_library"].contains(&kind("truncated.so").as_str()),
        "{}",
        kind("truncated.so")
    );

    let major = &by_file["wrong-api-major.so"]["error"];
    let message = major["message"].as_str().unwrap();
    assert!(message.contains("2.0.0") && message.contains(ledgerlink_plugin_api::API_VERSION), "{message}");
    for entry in by_file.values().filter(|p| p["status"] == "error") {
        assert!(!entry["error"]["resolution"].as_str().unwrap().is_empty(), "{entry}");
    }
}

#[test]
fn list_table_names_the_crash_signal_of_a_truncated_library() {
    let dir = tempfile::tempdir().unwrap();
    write_truncated_library(&dir.path().join("truncated.so"));
    let output = list_dir(dir.path(), &[]);
    let text = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(text.contains("truncated.so") && text.contains("Resolution:"), "{text}");
    assert!(text.contains("SIGBUS") || text.contains("not a loadable library"), "{text}");
}

#[test]
fn a_plugin_whose_code_panics_while_loading_is_named_a_plugin_bug_with_its_panic() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(library("fixture_misbehaving"), dir.path().join("misbehaving.so")).unwrap();
    let output = Command::new(ledgerlink_exe())
        .args(["plugins", "list", "--json", "--plugin-dir"])
        .arg(dir.path())
        .env("MISBEHAVING_PANIC_IN_MANIFEST", "1")
        .output()
        .unwrap();
    let json = stdout_json(&output);
    let error = &json["plugins"][0]["error"];
    assert_eq!(error["kind"], "panicked", "{json}");
    let message = error["message"].as_str().unwrap();
    assert!(message.contains("manifest bug: the id is missing"), "{message}");
    assert!(!message.contains("damaged"), "not blamed on the file: {message}");
    assert!(error["resolution"].as_str().unwrap().contains("panic = \"unwind\""), "{error}");
}

#[test]
fn list_of_only_good_plugins_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(library("hello_erp"), dir.path().join("hello.so")).unwrap();
    let output = list_dir(dir.path(), &[]);
    let text = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{text}");
    assert!(text.contains("hello-erp") && text.contains("0.3.0") && text.contains("Hello ERP 1.0"), "{text}");
}

#[test]
fn probe_refuses_incompatible_major_naming_both_versions() {
    let error = probe(ledgerlink_exe(), &library("fixture_wrong_api_major")).unwrap_err();
    let text = error.to_string();
    assert!(text.contains("2.0.0") && text.contains(ledgerlink_plugin_api::API_VERSION), "{text}");
    assert!(error.resolution().contains("rebuild"), "{}", error.resolution());
}

fn expect_panic_error(result: Result<impl Sized, SourceError>, operation: &str) {
    let Err(error) = result else { panic!("expected a panic error from {operation}") };
    assert_eq!(error.kind(), ErrorKind::PANIC, "{error}");
    let text = error.to_string();
    assert!(
        text.contains("plugin `panicking`") && text.contains(operation) && text.contains("fixture panic"),
        "{text}"
    );
}

#[test]
fn a_panic_inside_the_plugin_becomes_an_error_and_the_next_call_works() {
    let path = library("fixture_panicking");
    probe(ledgerlink_exe(), &path).expect("the fixture is a valid plugin");
    let plugin = LoadedPlugin::load_vetted(&path).unwrap();
    let source = plugin.open(&serde_json::json!({})).unwrap();

    // A panic in the extract call itself.
    expect_panic_error(
        source.extract("1", Entity::Customers, 2025, CancelFlag::new()).map(|_| ()),
        "extract customers",
    );

    // A panic while producing the second batch: the first batch arrives, then an error, then the end.
    let mut batches = source.extract("1", Entity::VoucherLines, 2025, CancelFlag::new()).unwrap();
    assert!(batches.next().unwrap().is_ok());
    expect_panic_error(batches.next().unwrap(), "extract voucher_lines");
    assert!(batches.next().is_none(), "a failed stream ends");

    // The same source still works afterwards.
    let accounts: Vec<_> = source.extract("1", Entity::Accounts, 2025, CancelFlag::new()).unwrap().collect();
    assert_eq!(accounts.len(), 1);
    assert_eq!(accounts[0].as_ref().unwrap().len(), 1);
    assert_eq!(source.companies().unwrap()[0].name, "Fixture AS");

    // A panic in open is an error too, and a new source opens fine after it.
    let error = plugin.open(&serde_json::json!({"panic_in_open": true})).err().expect("open panics");
    assert_eq!(error.kind(), ErrorKind::PANIC);
    assert!(plugin.open(&serde_json::json!({})).is_ok());
}

#[test]
fn cancelled_extraction_stops_with_a_cancelled_error() {
    let plugin = LoadedPlugin::load_vetted(&library("fixture_synthetic")).unwrap();
    let source = plugin.open(&serde_json::json!({"voucher_lines": 100000, "batch_size": 1000})).unwrap();
    let cancel = CancelFlag::new();
    let mut batches = source.extract("1", Entity::VoucherLines, 2025, cancel.clone()).unwrap();
    assert!(batches.next().unwrap().is_ok());
    cancel.cancel();
    // Batches already read ahead may still arrive; then the stream ends with "cancelled".
    let after: Vec<_> = batches.by_ref().collect();
    assert!(after.len() <= 4, "went on after cancel: {} more batches of 100", after.len());
    let error = after.last().expect("an error ends the stream").as_ref().unwrap_err();
    assert_eq!(error.kind(), ErrorKind::CANCELLED, "{error}");
    assert!(after[..after.len() - 1].iter().all(|b| b.is_ok()));
}

fn hello_settings() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../sdk-examples/hello-erp/settings.example.json")
}

/// The trial balance of hello-erp's data, summed here without any Ledgerlink code.
fn independent_trial_balance(company: &str, year: i32) -> BTreeMap<String, (Decimal, Decimal)> {
    let mut totals: BTreeMap<String, (Decimal, Decimal)> = BTreeMap::new();
    for line in data::voucher_lines(company, year) {
        let entry = totals.entry(line.account_id.clone()).or_default();
        if line.amount > Decimal::ZERO {
            entry.0 += line.amount;
        } else {
            entry.1 -= line.amount;
        }
    }
    totals
}

fn decimal(value: &Value) -> Decimal {
    value.as_str().unwrap_or_else(|| panic!("{value} is not a decimal string")).parse().unwrap()
}

#[test]
fn check_json_trial_balances_equal_the_fixture_data() {
    let hello = library("hello_erp");
    let output = ledgerlink(&[
        "plugins",
        "check",
        hello.to_str().unwrap(),
        "--settings",
        hello_settings().to_str().unwrap(),
        "--json",
    ]);
    let json = stdout_json(&output);
    assert_eq!(output.status.code(), Some(0), "{json:#}");
    assert_eq!(json["passed"], true);
    assert_eq!(json["manifest"]["id"], "hello-erp");
    let companies = json["companies"].as_array().unwrap();
    assert_eq!(companies.len(), data::COMPANIES.len());
    assert_eq!(companies[1]["name"], "Østre Rørlegger og Søn AS", "æøå survive the boundary");
    let mut years_checked = 0;
    for company in companies {
        let id = company["id"].as_str().unwrap();
        for year in company["years"].as_array().unwrap() {
            let fiscal_year = year["year"].as_i64().unwrap() as i32;
            let expected = independent_trial_balance(id, fiscal_year);
            let actual = year["trial_balance"].as_object().unwrap();
            assert_eq!(actual.len(), expected.len(), "accounts of company {id} {fiscal_year}");
            for (account, (debit, credit)) in &expected {
                let row = &actual[account];
                assert_eq!(decimal(&row["debit"]), *debit, "{id}/{fiscal_year}/{account} debit");
                assert_eq!(decimal(&row["credit"]), *credit, "{id}/{fiscal_year}/{account} credit");
                assert_eq!(decimal(&row["net"]), debit - credit, "{id}/{fiscal_year}/{account} net");
            }
            let counts = &year["counts"];
            assert_eq!(counts["voucher_lines"], data::voucher_lines(id, fiscal_year).len() as u64);
            assert_eq!(counts["vouchers"], data::vouchers(id, fiscal_year).len() as u64);
            assert_eq!(counts["accounts"], data::accounts(id).len() as u64);
            assert_eq!(year["validation"]["total_problems"], 0);
            years_checked += 1;
        }
    }
    assert_eq!(years_checked, 4);
}

/// Runs `plugins check` on a workspace plugin with settings written to a temporary file.
fn check_with_settings(crate_name: &str, suffix: &str, settings: &str, extra: &[&str]) -> (Output, String) {
    let file = tempfile::NamedTempFile::with_suffix(suffix).unwrap();
    std::fs::write(file.path(), settings).unwrap();
    let (plugin, path) = (library(crate_name), file.path().to_str().unwrap().to_owned());
    let mut args = vec!["plugins", "check", plugin.to_str().unwrap(), "--settings", &path];
    args.extend_from_slice(extra);
    (ledgerlink(&args), path)
}

#[test]
fn check_names_the_failing_step_and_exits_one() {
    let (output, _) = check_with_settings("fixture_panicking", ".json", "{}", &[]);
    let text = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(text.contains("FAILED at step `extract customers (company 1, 2025)`"), "{text}");
    assert!(text.contains("panicked") && text.contains("Resolution:"), "{text}");
}

#[test]
fn check_reports_unknown_settings_fields_from_the_plugin() {
    let toml = "batch_size = 10\nbatch_sise = 3\n";
    let (output, _) = check_with_settings("hello_erp", ".toml", toml, &["--json"]);
    let json = stdout_json(&output);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(json["failed_step"], "open");
    let message = json["error"]["message"].as_str().unwrap();
    assert!(message.contains("batch_sise") && message.contains("invalid_settings"), "{message}");
}

#[test]
fn check_with_malformed_settings_file_names_file_and_line() {
    let malformed = "{\n  \"batch_size\": 10,\n  oops\n}\n";
    let (output, path) = check_with_settings("hello_erp", ".json", malformed, &[]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains(&path) && stderr.contains("line 3"), "{stderr}");
}

#[test]
fn a_malformed_toml_settings_file_names_the_position_but_never_quotes_the_line() {
    let malformed = "batch_size = 10\nconnection = { password = \"Very-Secret-9 }\n";
    let (output, path) = check_with_settings("hello_erp", ".toml", malformed, &[]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains(&format!("{path}:2:")), "{stderr}");
    assert!(!stderr.contains("Very-Secret-9"), "the password was quoted: {stderr}");
}

#[test]
fn check_without_settings_shows_the_manifest_only() {
    let output = ledgerlink(&["plugins", "check", library("hello_erp").to_str().unwrap()]);
    let text = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{text}");
    assert!(text.contains("hello-erp 0.3.0") && text.contains("manifest only"), "{text}");
}

#[test]
fn check_refuses_a_broken_file_without_crashing() {
    let output =
        ledgerlink(&["plugins", "check", library("fixture_wrong_api_major").to_str().unwrap(), "--json"]);
    let json = stdout_json(&output);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(json["failed_step"], "load");
    assert!(json["error"]["message"].as_str().unwrap().contains("2.0.0"));
}

#[test]
fn plugin_log_lines_reach_the_host_log_tagged_with_the_plugin() {
    let output = Command::new(ledgerlink_exe())
        .args([
            "plugins",
            "check",
            library("hello_erp").to_str().unwrap(),
            "--settings",
            hello_settings().to_str().unwrap(),
        ])
        .env("LEDGERLINK_LOG", "debug")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("hello-erp source opened") && stderr.contains("plugin=\"hello-erp\""),
        "{stderr}"
    );
}

#[test]
fn list_without_a_directory_lists_the_configurations_plugin_directories() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("configured-plugins");
    std::fs::create_dir(&plugins).unwrap();
    std::fs::copy(library("hello_erp"), plugins.join("hello.so")).unwrap();
    let missing = dir.path().join("not-there");
    let config = dir.path().join("ledgerlink.toml");
    std::fs::write(
        &config,
        format!(
            "[hub]\nurl = \"https://hub.example.com\"\n[plugins]\ndirectories = [{plugins:?}, {missing:?}]\n\
             [[tenants]]\nid = \"acme\"\napi_key = \"llk_x\"\n  [[tenants.sources]]\n  id = \"s\"\n  plugin = \"hello-erp\"\n"
        ),
    )
    .unwrap();
    let output = Command::new(ledgerlink_exe())
        .args(["plugins", "list"])
        .env("LEDGERLINK_CONFIG", &config)
        .env_remove("LEDGERLINK_PLUGIN_DIR")
        .output()
        .unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("hello-erp") && stdout.contains("configured-plugins"), "{stdout}");
    assert!(stderr.contains("not-there does not exist") && stderr.contains("Resolution:"), "{stderr}");
    assert_eq!(output.status.code(), Some(1), "a missing directory is a problem: {stdout}{stderr}");
}

#[test]
fn config_validate_checks_each_sources_plugin_and_its_settings_against_the_installed_plugins() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("plugins");
    std::fs::create_dir(&plugins).unwrap();
    std::fs::copy(library("hello_erp"), plugins.join("hello.so")).unwrap();
    let config = dir.path().join("ledgerlink.toml");
    let write = |sources: &str| {
        std::fs::write(
            &config,
            format!(
                "[hub]\nurl = \"https://hub.example.com\"\n[plugins]\ndirectories = [{plugins:?}]\n\
                 [[tenants]]\nid = \"acme\"\napi_key = \"llk_x\"\n{sources}"
            ),
        )
        .unwrap()
    };
    let validate = || ledgerlink(&["config", "validate", "--config", config.to_str().unwrap()]);

    write("  [[tenants.sources]]\n  id = \"a\"\n  plugin = \"helo-erp\"\n");
    let output = validate();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains(":10:")
            && stderr.contains("plugin `helo-erp` is not installed (installed: hello-erp)"),
        "{stderr}"
    );

    write("  [[tenants.sources]]\n  id = \"a\"\n  plugin = \"hello-erp\"\n  [tenants.sources.settings]\n  batch_sise = 10\n  companies = \"1\"\n");
    let output = validate();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains(":12:") && stderr.contains("`batch_sise` is not a setting of this plugin"),
        "{stderr}"
    );
    assert!(stderr.contains("takes: batch_size, companies"), "{stderr}");
    assert!(
        stderr.contains(":13:") && stderr.contains("`companies` must be an array, not a string"),
        "{stderr}"
    );

    write("  [[tenants.sources]]\n  id = \"a\"\n  plugin = \"hello-erp\"\n  [tenants.sources.settings]\n  batch_size = 10\n");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o644)).unwrap();
        let output = validate();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(0), "valid, with a warning: {stderr}");
        assert!(
            stderr.contains("other users can access it (mode 0644)") && stderr.contains("chmod 600"),
            "{stderr}"
        );
        std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let output = validate();
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("other users"), "a private file: no warning about its mode: {stderr}");
    assert!(
        stderr.contains("holds 1 secret in clear (tenants[0].api_key)") && stderr.contains("config encrypt"),
        "but one about the key in clear: {stderr}"
    );
}

#[test]
fn check_reports_a_plugin_that_aborts_as_the_failed_step_and_survives_it() {
    let dir = tempfile::tempdir().unwrap();
    let settings = dir.path().join("settings.json");
    std::fs::write(&settings, r#"{"mode": "abort"}"#).unwrap();
    let plugin = library("fixture_misbehaving");
    let check = |extra: &[&str]| {
        let mut args =
            vec!["plugins", "check", plugin.to_str().unwrap(), "--settings", settings.to_str().unwrap()];
        args.extend_from_slice(extra);
        ledgerlink(&args)
    };
    let output = check(&[]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "a failed step, not a dead check: {stdout}");
    assert!(stdout.contains("Companies   1"), "the steps before ran: {stdout}");
    assert!(stdout.contains("FAILED at step `extract voucher_lines (company "), "{stdout}");
    assert!(stdout.contains("ended the process it ran in (signal 6 (SIGABRT)) inside this step"), "{stdout}");

    let output = check(&["--json"]);
    let json = stdout_json(&output);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(json["passed"], false);
    assert!(json["failed_step"].as_str().unwrap().starts_with("extract voucher_lines"), "{json}");

    // A plugin that ends the process "successfully" mid-step did not pass.
    std::fs::write(&settings, r#"{"mode": "exit"}"#).unwrap();
    let output = check(&[]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("FAILED at step `extract voucher_lines (company ")
            && stdout.contains("(exit code 0)"),
        "{stdout}"
    );
}

#[test]
fn check_fails_when_the_plugin_returns_no_companies_to_check() {
    let dir = tempfile::tempdir().unwrap();
    let settings = dir.path().join("settings.json");
    std::fs::write(&settings, r#"{"companies": []}"#).unwrap();
    let hello = library("hello_erp");
    let output =
        ledgerlink(&["plugins", "check", hello.to_str().unwrap(), "--settings", settings.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "nothing checked is not a pass: {stdout}");
    assert!(stdout.contains("FAILED at step `companies`: the plugin returned no companies"), "{stdout}");
}

#[test]
fn check_passes_money_past_the_cent_with_a_warning_naming_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let settings = dir.path().join("settings.json");
    std::fs::write(&settings, r#"{"voucher_lines": 100, "mills_voucher": 7}"#).unwrap();
    let plugin = library("fixture_synthetic");
    let output = ledgerlink(&[
        "plugins",
        "check",
        plugin.to_str().unwrap(),
        "--settings",
        settings.to_str().unwrap(),
        "--json",
    ]);
    let json = stdout_json(&output);
    assert_eq!(output.status.code(), Some(0), "exact money is valid: {json}");
    let warnings = json["warnings"].as_array().unwrap();
    assert_eq!(warnings.len(), 1, "{json}");
    let warning = warnings[0].as_str().unwrap();
    assert!(warning.starts_with("2 voucher lines of company 1 2025 have money past the cent"), "{warning}");
    assert!(warning.contains("SAF-T export refuses it"), "{warning}");
}

#[test]
fn check_fails_a_plugin_whose_voucher_lines_come_back_and_names_where() {
    let settings = r#"{"voucher_lines": 100, "batch_size": 16, "repeated_voucher": 3}"#;
    let (output, _) = check_with_settings("fixture_synthetic", ".json", settings, &["--json"]);
    let json = stdout_json(&output);
    assert_eq!(output.status.code(), Some(1), "{json}");
    assert_eq!(json["failed_step"], "validate", "{json}");
    let validation = &json["companies"][0]["years"][0]["validation"];
    assert_eq!(validation["total_problems"], 1, "{json}");
    let problem = &validation["problems"][0];
    assert_eq!(problem["source_key"], "AcTr:3:1", "the first line of the run that came back: {json}");
    assert!(problem["message"].as_str().unwrap().contains("voucher `3` come back"), "{json}");

    let (output, _) = check_with_settings("fixture_synthetic", ".json", r#"{"voucher_lines": 100}"#, &[]);
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stdout));
}

#[test]
fn check_stops_a_plugin_that_hangs_and_names_the_step() {
    let (output, _) = check_with_settings(
        "fixture_misbehaving",
        ".json",
        r#"{"mode": "hang"}"#,
        &["--stall-secs", "2", "--json"],
    );
    let json = stdout_json(&output);
    assert_eq!(output.status.code(), Some(1), "{json}");
    assert!(json["failed_step"].as_str().unwrap().starts_with("extract voucher_lines (company "), "{json}");
    let message = json["error"]["message"].as_str().unwrap();
    assert!(message.contains("no progress for 2 s"), "{message}");
    assert!(json["error"]["resolution"].as_str().unwrap().contains("worker_stall_secs"), "{json}");

    // A plugin that keeps sending batches is not stopped, however long it takes.
    let (output, _) = check_with_settings(
        "fixture_synthetic",
        ".json",
        r#"{"voucher_lines": 600000, "batch_size": 512}"#,
        &["--stall-secs", "1"],
    );
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stdout));
}
