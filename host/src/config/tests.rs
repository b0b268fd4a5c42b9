use super::*;

const MINIMAL: &str = r#"
[hub]
url = "https://hub.example.com"

[[tenants]]
id = "acme"
api_key = "llk_supersecretkey"

  [[tenants.sources]]
  id = "visma"
  plugin = "visma-business"
"#;

fn parse_ok(text: &str) -> Config {
    match parse(text, Path::new("test.toml")) {
        Ok(c) => c,
        Err(e) => panic!("expected a valid configuration, got:\n{e}"),
    }
}

/// The single problem of an invalid configuration.
fn problem(text: &str) -> Problem {
    let problems = problems(text);
    assert_eq!(problems.len(), 1, "expected one problem, got {problems:#?}");
    problems.into_iter().next().unwrap()
}

fn problems(text: &str) -> Vec<Problem> {
    match parse(text, Path::new("test.toml")) {
        Ok(c) => panic!("expected an error, got {c:#?}"),
        Err(e) => e.problems().to_vec(),
    }
}

/// Asserts the problem's line and field, and that the message contains `needle`.
#[track_caller]
fn assert_problem(p: &Problem, line: usize, field: &str, needle: &str) {
    assert_eq!((p.line, p.field.as_str()), (Some(line), field), "{p:#?}");
    assert!(p.message.contains(needle), "message {:?} lacks {needle:?}", p.message);
    assert!(!p.resolution.is_empty());
}

/// MINIMAL with `extra` appended after the source's `plugin` line (line 11), so `extra` is on line 12.
fn with_source_lines(extra: &str) -> String {
    format!("{MINIMAL}{extra}\n")
}

#[test]
fn minimal_config_gets_defaults() {
    let c = parse_ok(MINIMAL);
    assert_eq!(c.hub.timeout_secs, 60);
    assert_eq!(c.spool.max_bytes, 10_737_418_240);
    assert_eq!(c.spool_dir(), default_data_dir().join("spool"));
    let (tenant, source) = c.source("visma").unwrap();
    assert_eq!(tenant.id, "acme");
    assert!(source.enabled);
    assert_eq!(source.fiscal_years, FiscalYears::Recent { count: 2 });
    assert_eq!(source.retry, RetryConfig { max_attempts: 3, initial_backoff_secs: 30 });
    assert_eq!(source.schedule, ScheduleConfig::default());
    assert_eq!(source.schedule().unwrap(), Schedule::default());
    assert_eq!(source.max_concurrent_jobs, 1);
    assert!(source.wants_company("anything"));
    assert_eq!(source.plugin_settings_json(), serde_json::json!({}));
}

#[test]
fn full_config_parses() {
    let text = r#"
[agent]
data_dir = "/srv/llk"
service_user = "svc"
[hub]
url = "https://hub.example.com"
proxy = "http://proxy.local:3128"
timeout_secs = 30
[spool]
directory = "/srv/spool"
max_bytes = 1_000
[plugins]
directories = ["/usr/lib/ledgerlink/plugins"]
[[tenants]]
id = "acme"
api_key = "llk_a"
  [[tenants.sources]]
  id = "visma"
  plugin = "visma-business"
  enabled = false
  companies = ["1", "2"]
  fiscal_years = { type = "list", years = [2025, 2024] }
  max_concurrent_jobs = 2
  retry = { max_attempts = 5, initial_backoff_secs = 10 }
  schedule = { type = "weekly", weekday = "saturday", at = "02:00", spread_minutes = 60 }
  [tenants.sources.settings]
  connection = { driver = "ODBC Driver 18 for SQL Server", server = "erp-sql", user = "reader", password = "hunter2" }
  batch_rows = 5000
  [[tenants.sources]]
  id = "cron-one"
  plugin = "sap-b1"
  schedule = { type = "cron", expression = "0 30 2 * * *" }
  [[tenants.sources]]
  id = "often"
  plugin = "unimicro"
  schedule = { type = "interval", every_minutes = 15 }
"#;
    let c = parse_ok(text);
    assert_eq!(c.spool_dir(), PathBuf::from("/srv/spool"));
    assert_eq!(c.sources().count(), 3);
    let (_, visma) = c.source("visma").unwrap();
    assert!(!visma.enabled && visma.wants_company("2") && !visma.wants_company("3"));
    assert_eq!(visma.fiscal_years.years(2025), vec![2024, 2025]);
    assert_eq!(
        visma.plugin_settings_json(),
        serde_json::json!({
            "connection": { "driver": "ODBC Driver 18 for SQL Server", "server": "erp-sql", "user": "reader", "password": "hunter2" },
            "batch_rows": 5000
        })
    );
    assert!(matches!(visma.schedule().unwrap(), Schedule::Weekly { .. }));
    assert!(matches!(c.source("cron-one").unwrap().1.schedule().unwrap(), Schedule::Cron(_)));
    assert_eq!(
        c.source("often").unwrap().1.schedule().unwrap(),
        Schedule::interval(chrono::Duration::minutes(15)).unwrap()
    );
}

#[test]
fn example_toml_is_valid() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/example.toml");
    let c = match load(&path) {
        Ok(c) => c,
        Err(e) => panic!("config/example.toml:\n{e}"),
    };
    assert!(!c.tenants.is_empty() && c.sources().count() >= 2);
    for (_, s) in c.sources() {
        s.schedule().unwrap();
    }
}

#[test]
fn secrets_never_appear_in_debug_output() {
    let text = MINIMAL.to_owned()
        + r#"
  [tenants.sources.settings]
  connection = { server = "erp", user = "reader", password = "hunter2" }
  api_token = "tok-123456"
  nested = [{ client_secret = "s3cr3t-value" }]
  connection_string = "Driver={X};Server=erp;UID=reader;PWD=pa55word;Database=db"
"#;
    let mut c = parse_ok(&text);
    c.hub.proxy = Some("http://user:proxypass@proxy.local:3128".into());
    let debug = format!("{c:?} {c:#?}");
    for secret in ["llk_supersecretkey", "hunter2", "tok-123456", "s3cr3t-value", "pa55word", "proxypass"] {
        assert!(!debug.contains(secret), "{secret} leaked in {debug}");
    }
    assert!(debug.contains("***") && debug.contains("reader") && debug.contains("Server=erp"));
    let key = &c.tenants[0].api_key;
    assert_eq!((format!("{key}"), format!("{key:?}")), ("***".into(), "***".into()));
    assert_eq!(key.expose(), "llk_supersecretkey");
}

#[test]
fn redact_json_hides_secret_keys_at_any_depth() {
    let v = serde_json::json!({
        "user": "reader",
        "Password": "p1",
        "a": { "b": [{ "apiKey": { "inner": "p2" }, "ok": 1 }] },
        "dsn": "DSN=x;Pwd={p3;x};uid=y",
        "PASSWORD=": "notakey",
    });
    let r = redact_json(&v);
    let text = r.to_string();
    for s in ["p1", "p2", "p3"] {
        assert!(!text.contains(s), "{s} in {text}");
    }
    assert_eq!(r["user"], "reader");
    assert_eq!(r["a"]["b"][0]["ok"], 1);
    assert_eq!(r["dsn"], "DSN=x;Pwd=***;uid=y");
    assert_eq!(redact_json(&serde_json::json!("server=a;xpwd=1")), "server=a;xpwd=1");
}

#[test]
fn unknown_top_level_key_names_line_and_field() {
    let text = format!("{MINIMAL}\n[hubb]\nurl = \"x\"\n");
    let p = problem(&text);
    assert_problem(&p, 13, "hubb", "unknown field `hubb`");
    assert_eq!(p.column, Some(2));
}

#[test]
fn unknown_key_in_a_source_names_line_and_field() {
    let p = problem(&with_source_lines("  shedule = { type = \"nightly\" }"));
    assert_problem(&p, 12, "tenants[0].sources[0].shedule", "unknown field `shedule`");
    assert!(p.message.contains("schedule"), "the message lists the allowed keys: {}", p.message);
}

#[test]
fn unknown_key_in_an_inline_table_names_line_and_field() {
    let p = problem(&with_source_lines("  retry = { max_attempts = 3, backoff = 5 }"));
    assert_problem(&p, 12, "tenants[0].sources[0].retry.backoff", "unknown field `backoff`");
    let p = problem(&with_source_lines(
        "  schedule = { type = \"nightly\", window_start = \"19:00\", windw_end = \"07:00\" }",
    ));
    assert_problem(&p, 12, "tenants[0].sources[0].schedule.windw_end", "unknown field `windw_end`");
    assert_eq!(p.column, Some(58), "points at the key itself");
}

#[test]
fn unknown_schedule_type_names_the_type_field() {
    let p = problem(&with_source_lines("  schedule = { type = \"nighty\" }"));
    assert_problem(&p, 12, "tenants[0].sources[0].schedule.type", "unknown variant `nighty`");
    assert!(p.message.contains("nightly") && p.message.contains("cron"), "{}", p.message);
}

#[test]
fn second_source_is_named_by_index() {
    let text = format!(
        "{MINIMAL}\n  [[tenants.sources]]\n  id = \"two\"\n  plugin = \"p\"\n  schedule = {{ type = \"weekly\", weekday = \"saturday\" }}\n"
    );
    let p = problem(&text);
    assert_problem(&p, 16, "tenants[0].sources[1].schedule.at", "missing field `at`");
}

#[test]
fn missing_required_keys() {
    let p = problem("[[tenants]]\nid = \"a\"\napi_key = \"k\"\n");
    assert_eq!((p.field.as_str(), p.line), ("hub", Some(1)), "{p:#?}");
    assert!(p.message.contains("missing field `hub`"));
    let p = problem("[hub]\nurl = \"https://h\"\n\n[[tenants]]\nid = \"a\"\n");
    assert!(p.message.contains("missing field `api_key`"), "{p:#?}");
    assert_eq!(p.field, "tenants[0].api_key");
    assert_eq!(p.line, Some(4));
}

#[test]
fn wrong_types_name_line_and_field() {
    let p = problem(&MINIMAL.replace("[hub]\n", "[hub]\ntimeout_secs = \"60\"\n"));
    assert_problem(&p, 3, "hub.timeout_secs", "invalid type");
    let p = problem(&with_source_lines("  max_concurrent_jobs = -1"));
    assert_problem(&p, 12, "tenants[0].sources[0].max_concurrent_jobs", "-1");
}

#[test]
fn syntax_error_names_line() {
    let p = problem(&with_source_lines("  enabled = tru"));
    assert_eq!(p.line, Some(12), "{p:#?}");
    assert!(!p.message.is_empty());
}

#[test]
fn duplicate_ids_name_the_second_occurrence() {
    let text = format!(
        "{MINIMAL}\n[[tenants]]\nid = \"acme\"\napi_key = \"k2\"\n  [[tenants.sources]]\n  id = \"visma\"\n  plugin = \"x\"\n"
    );
    let ps = problems(&text);
    assert_eq!(ps.len(), 2, "{ps:#?}");
    assert_problem(&ps[0], 14, "tenants[1].id", "already used by tenants[0]");
    assert_problem(&ps[1], 17, "tenants[1].sources[0].id", "already used by tenants[0].sources[0]");
}

#[test]
fn empty_api_key() {
    let p = problem(&MINIMAL.replace("llk_supersecretkey", " "));
    assert_problem(&p, 7, "tenants[0].api_key", "api_key is empty");
}

#[test]
fn hub_url_must_be_https_except_loopback() {
    for ok in
        ["http://127.0.0.1:8080", "http://localhost:1", "http://[::1]:9", "https://hub.example.com/base"]
    {
        parse_ok(&MINIMAL.replace("https://hub.example.com", ok));
    }
    let p = problem(&MINIMAL.replace("https://hub.example.com", "http://hub.example.com"));
    assert_problem(&p, 3, "hub.url", "plain http://");
    let p = problem(&MINIMAL.replace("https://hub.example.com", "hub.example.com"));
    assert_problem(&p, 3, "hub.url", "not a URL");
    let p = problem(&MINIMAL.replace("https://hub.example.com", "ftp://hub"));
    assert_problem(&p, 3, "hub.url", "scheme `ftp`");
}

#[test]
fn a_hub_url_that_does_not_parse_is_reported_without_its_password() {
    for url in ["https://ops:S3cretPW@hub.example.com:99999", "https://ops:S3cretPW@hub example.com"] {
        let p = problem(&MINIMAL.replace("https://hub.example.com", url));
        assert_problem(&p, 3, "hub.url", "is not a URL");
        assert!(!format!("{p:?}").contains("S3cretPW"), "{p:?}");
    }
    let p = problem(&MINIMAL.replace("https://hub.example.com", "https://ops:S3cretPW@hub.example.com"));
    assert_problem(&p, 3, "hub.url", "contains credentials");
    assert!(!format!("{p:?}").contains("S3cretPW"), "{p:?}");
}

#[test]
fn schedule_values_are_validated_with_their_field() {
    let cases = [
        ("{ type = \"nightly\", window_start = \"25:00\" }", "window_start", "`25:00` is not a time"),
        ("{ type = \"nightly\", window_end = \"7pm\" }", "window_end", "`7pm` is not a time"),
        (
            "{ type = \"nightly\", window_start = \"07:00\" }",
            "window_end",
            "starts and ends at the same time",
        ),
        ("{ type = \"weekly\", weekday = \"caturday\", at = \"02:00\" }", "weekday", "not a weekday"),
        ("{ type = \"weekly\", weekday = \"monday\", at = \"2\" }", "at", "not a time"),
        (
            "{ type = \"weekly\", weekday = \"monday\", at = \"02:00\", spread_minutes = 800 }",
            "spread_minutes",
            "at most 720",
        ),
        ("{ type = \"interval\", every_minutes = 0 }", "every_minutes", "at least 1 minute"),
        ("{ type = \"cron\", expression = \"61 * * * *\" }", "expression", "invalid cron expression"),
        ("{ type = \"cron\", expression = \"0 0 30 2 *\" }", "expression", "never fires"),
    ];
    for (schedule, field, needle) in cases {
        let p = problem(&with_source_lines(&format!("  schedule = {schedule}")));
        assert_problem(&p, 12, &format!("tenants[0].sources[0].schedule.{field}"), needle);
    }
}

#[test]
fn numeric_limits_are_validated() {
    let p = problem(&format!("[spool]\nmax_bytes = 0\n{MINIMAL}"));
    assert_problem(&p, 2, "spool.max_bytes", "0 bytes");
    let p = problem(&with_source_lines("  fiscal_years = { type = \"recent\", count = 0 }"));
    assert_problem(&p, 12, "tenants[0].sources[0].fiscal_years.count", "count is 0");
    let p = problem(&with_source_lines("  fiscal_years = { type = \"list\", years = [] }"));
    assert_problem(&p, 12, "tenants[0].sources[0].fiscal_years.years", "empty");
    let p = problem(&with_source_lines("  max_concurrent_jobs = 0"));
    assert_problem(&p, 12, "tenants[0].sources[0].max_concurrent_jobs", "is 0");
    let p = problem(&with_source_lines("  retry = { max_attempts = 0 }"));
    assert_problem(&p, 12, "tenants[0].sources[0].retry.max_attempts", "is 0");
    let p = problem(&with_source_lines("  companies = []"));
    assert_problem(&p, 12, "tenants[0].sources[0].companies", "empty list");
}

#[test]
fn worker_limits_and_isolation_are_validated() {
    let p = problem(&with_source_lines("  worker_stall_secs = 0"));
    assert_problem(&p, 12, "tenants[0].sources[0].worker_stall_secs", "is 0");
    let p = problem(&with_source_lines("  worker_memory_mb = 8"));
    assert_problem(&p, 12, "tenants[0].sources[0].worker_memory_mb", "is 8");
    let p = problem(&with_source_lines("  isolation = \"container\""));
    assert_eq!((p.line, p.field.as_str()), (Some(12), "tenants[0].sources[0].isolation"), "{p:#?}");
    let config = parse_ok(&with_source_lines("  isolation = \"in-process\""));
    assert_eq!(config.tenants[0].sources[0].isolation, Isolation::InProcess);
    assert_eq!(
        parse_ok(MINIMAL).tenants[0].sources[0].isolation,
        Isolation::Process,
        "process is the default"
    );
}

#[test]
fn control_section_values_are_validated() {
    let p = problem(&format!("[control]\nheartbeat_secs = 0\n{MINIMAL}"));
    assert_problem(&p, 2, "control.heartbeat_secs", "outside 1 to 300");
    let p = problem(&format!("[control]\nreconnect_min_secs = 10\nreconnect_max_secs = 5\n{MINIMAL}"));
    assert_problem(&p, 3, "control.reconnect_max_secs", "less than reconnect_min_secs");
    let p = problem(&format!("[control]\ntransport = \"carrier-pigeon\"\n{MINIMAL}"));
    assert_eq!((p.line, p.field.as_str()), (Some(2), "control.transport"), "{p:#?}");
}

#[test]
fn invalid_ids_and_no_tenants() {
    let p = problem(&MINIMAL.replace("id = \"visma\"", "id = \"../etc\""));
    assert_problem(&p, 10, "tenants[0].sources[0].id", "not a valid id");
    let p = problem("[hub]\nurl = \"https://h\"\n");
    assert_eq!((p.field.as_str(), p.line), ("tenants", None));
}

#[test]
fn several_semantic_problems_are_reported_together() {
    let text = MINIMAL.replace("https://hub.example.com", "http://hub").replace("llk_supersecretkey", "");
    let ps = problems(&text);
    assert_eq!(ps.iter().map(|p| p.field.as_str()).collect::<Vec<_>>(), ["hub.url", "tenants[0].api_key"]);
}

#[test]
fn error_display_names_file_line_column_field_and_resolution() {
    let err = parse(&with_source_lines("  shedule = 1"), Path::new("/etc/x.toml")).unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with("/etc/x.toml:12:3: tenants[0].sources[0].shedule: unknown field `shedule`"),
        "{text}"
    );
    assert!(text.contains("\n    Resolution: "), "{text}");
}

#[test]
fn read_errors_say_what_to_do() {
    let err = load(Path::new("/nonexistent/ledgerlink.toml")).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("/nonexistent/ledgerlink.toml") && text.contains("Resolution: create it"),
        "{text}"
    );
}

#[test]
fn config_path_resolution_order() {
    let cli = Path::new("/from/cli.toml");
    let env = Some(OsString::from("/from/env.toml"));
    assert_eq!(resolve_path_from(Some(cli), env.clone()), cli);
    assert_eq!(resolve_path_from(None, env), PathBuf::from("/from/env.toml"));
    assert_eq!(resolve_path_from(None, Some(OsString::new())), default_path());
    assert_eq!(resolve_path_from(None, None), default_path());
    if cfg!(unix) {
        assert_eq!(default_path(), PathBuf::from("/etc/ledgerlink/ledgerlink.toml"));
    }
}

#[test]
fn line_col_counts_characters() {
    assert_eq!(line_col("ab\ncd", 0), (1, 1));
    assert_eq!(line_col("ab\ncd", 4), (2, 2));
    assert_eq!(line_col("é\nx", 3), (2, 1));
    assert_eq!(line_col("éx", 2), (1, 2));
}

#[test]
fn a_secret_setting_that_is_not_a_string_names_line_and_field_but_not_its_value() {
    let text = with_source_lines(
        "  [tenants.sources.settings]\n  connection = { server = \"db\", password = 98765432 }",
    );
    let p = problem(&text);
    assert_problem(&p, 13, "tenants[0].sources[0].settings.connection.password", "not a quoted string");
    assert!(!format!("{p:?}").contains("98765432"), "{p:#?}");
    let p = problem(&with_source_lines("  [tenants.sources.settings]\n  client_secret = true"));
    assert_problem(&p, 13, "tenants[0].sources[0].settings.client_secret", "is a boolean");
    // Other settings may be numbers, even with secret-like words in their names,
    // and secrets may be nested in tables.
    parse_ok(&with_source_lines(
        "  [tenants.sources.settings]\n  port = 5432\n  max_tokens = 100\n  sort_key = 3\n  credentials = { user = \"u\", pwd = \"p\" }",
    ));
}

#[test]
fn an_api_key_that_is_not_a_string_is_not_quoted_in_the_error() {
    let p = problem(&MINIMAL.replace("api_key = \"", "api_key = 98765432 #\""));
    assert!(!format!("{p:?}").contains("98765432"), "{p:#?}");
    assert!(p.field.ends_with("api_key"), "{p:#?}");
}

/// A configuration in `dir` whose data directory (and so key file) is `dir/data`, with a
/// tenant key, a proxy with a password and plugin settings, nested ones included.
fn secrets_config(dir: &Path, api_key: &str, password: &str) -> String {
    format!(
        r#"# Ledgerlink at ACME
[agent]
data_dir = {data:?}

[hub]
url = "https://hub.example.com"
proxy = "http://proxyuser:Proxy-Pass-7@proxy.acme.local:3128"  # the company proxy

[[tenants]]
id = "acme"
api_key = "{api_key}"   # issued by the central service

  [[tenants.sources]]
  id = "visma"
  plugin = "visma-business"
  settings = {{ dsn = "VismaBusiness", user = "erp_reader", password = "{password}", options = {{ token = "Nested-Token-9" }} }}
"#,
        data = dir.join("data"),
    )
}

#[test]
fn secrets_in_clear_are_named_and_encrypt_file_seals_them_keeping_the_file_and_the_values() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledgerlink.toml");
    std::fs::write(&path, secrets_config(dir.path(), "llk_Clear-Api-Key-1", "Reader-Secret-42")).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
    }
    let before = load(&path).unwrap();
    assert_eq!(
        before.clear_secrets,
        [
            "hub.proxy",
            "tenants[0].api_key",
            "tenants[0].sources[0].settings.options.token",
            "tenants[0].sources[0].settings.password",
        ]
    );
    let warning = clear_secrets_warning(&before, &path).unwrap();
    assert!(
        warning.contains("4 secrets in clear") && warning.contains("ledgerlink config encrypt"),
        "{warning}"
    );
    assert!(!warning.contains("Reader-Secret-42"));

    let done = encrypt_file(&path).unwrap();
    assert!(done.key_created);
    assert_eq!(done.sealed.len(), 4, "{:?}", done.sealed);
    assert_eq!(done.key_file, dir.path().join("data").join("secret.key"));
    let text = std::fs::read_to_string(&path).unwrap();
    for clear in ["llk_Clear-Api-Key-1", "Reader-Secret-42", "Proxy-Pass-7", "Nested-Token-9"] {
        assert!(!text.contains(clear), "{clear} is still in the file:\n{text}");
    }
    for kept in
        ["# Ledgerlink at ACME", "# issued by the central service", "# the company proxy", "erp_reader"]
    {
        assert!(text.contains(kept), "{kept} is gone:\n{text}");
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o640, "mode kept");
    }

    let after = load(&path).unwrap();
    assert!(after.clear_secrets.is_empty(), "{:?}", after.clear_secrets);
    assert_eq!(after.tenants[0].api_key.expose(), "llk_Clear-Api-Key-1");
    assert_eq!(after.hub.proxy.as_deref(), Some("http://proxyuser:Proxy-Pass-7@proxy.acme.local:3128"));
    let settings = after.tenants[0].sources[0].plugin_settings_json();
    assert_eq!(settings["password"], "Reader-Secret-42");
    assert_eq!(settings["options"]["token"], "Nested-Token-9");
    assert_eq!(settings["user"], "erp_reader");

    let again = encrypt_file(&path).unwrap();
    assert!(again.sealed.is_empty() && !again.key_created);
    assert_eq!(std::fs::read_to_string(&path).unwrap(), text, "a second run changes nothing");
}

#[test]
fn a_sealed_secret_without_its_key_or_with_another_is_a_placed_error_without_values() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledgerlink.toml");
    std::fs::write(&path, secrets_config(dir.path(), "llk_Clear-Api-Key-1", "Reader-Secret-42")).unwrap();
    encrypt_file(&path).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    let key_file = dir.path().join("data").join("secret.key");

    std::fs::rename(&key_file, dir.path().join("moved.key")).unwrap();
    let missing = load(&path).unwrap_err();
    let shown = missing.to_string();
    let problems = missing.problems();
    assert_eq!(problems.len(), 4, "{shown}");
    assert_eq!((problems[0].line, problems[0].field.as_str()), (Some(7), "hub.proxy"), "{shown}");
    assert_eq!((problems[1].line, problems[1].field.as_str()), (Some(11), "tenants[0].api_key"), "{shown}");
    assert!(problems[1].message.contains("secret.key does not exist"), "{shown}");
    assert!(problems[1].resolution.contains("restore the key file"), "{shown}");
    for leaked in ["Reader-Secret-42", "llk_Clear", "Proxy-Pass-7", "enc:v1:"] {
        assert!(!shown.contains(leaked), "{leaked} in:\n{shown}");
    }

    SecretKey::read_or_create(&key_file).unwrap();
    let other = load(&path).unwrap_err().to_string();
    assert!(other.contains("another installation"), "{other}");

    std::fs::rename(dir.path().join("moved.key"), &key_file).unwrap();
    let damaged = text.replacen("enc:v1:", "enc:v1:00", 1);
    std::fs::write(&path, damaged).unwrap();
    let error = load(&path).unwrap_err().to_string();
    assert!(error.contains("hub.proxy") && error.contains("another installation"), "{error}");
}

/// A configuration with secrets in every shape settings can take.
fn shaped_secrets_config(dir: &Path) -> String {
    format!(
        r#"[agent]
data_dir = {data:?}

[hub]
url = "https://hub.example.com"

[[tenants]]
id = "acme"
api_key = "llk_Shape-Key-0"

  [[tenants.sources]]
  id = "rest"
  plugin = "unimicro"
  [tenants.sources.settings]
  connection_string = "Driver=X;Server=s;UID=u;PWD=Conn-Pass-5;"
  tokens = ["List-Token-1", "List-Token-2"]
  api_keys = {{ primary = "Sub-Key-3", note = "Sub-Note-4" }}
  clients = [{{ id = "c1", client_secret = "Inline-Secret-6" }}]
  region = "eu"

  [[tenants.sources.settings.endpoints]]
  url = "https://api.example.com"
  token = "Table-Token-7"
"#,
        data = dir.join("data"),
    )
}

const SHAPED_CLEAR: [&str; 8] = [
    "llk_Shape-Key-0",
    "Conn-Pass-5",
    "List-Token-1",
    "List-Token-2",
    "Sub-Key-3",
    "Sub-Note-4",
    "Inline-Secret-6",
    "Table-Token-7",
];

#[test]
fn encrypt_file_seals_secrets_in_arrays_subtrees_tables_and_connection_strings_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledgerlink.toml");
    std::fs::write(&path, shaped_secrets_config(dir.path())).unwrap();
    let before = load(&path).unwrap();
    assert_eq!(before.clear_secrets.len(), SHAPED_CLEAR.len(), "{:?}", before.clear_secrets);

    let done = encrypt_file(&path).unwrap();
    assert_eq!(done.sealed.len(), SHAPED_CLEAR.len(), "{:?}", done.sealed);
    let text = std::fs::read_to_string(&path).unwrap();
    for clear in SHAPED_CLEAR {
        assert!(!text.contains(clear), "{clear} is still in the file:\n{text}");
    }
    for kept in ["region = \"eu\"", "id = \"c1\"", "https://api.example.com"] {
        assert!(text.contains(kept), "{kept} was sealed or lost:\n{text}");
    }
    let after = load(&path).unwrap();
    assert!(after.clear_secrets.is_empty(), "{:?}", after.clear_secrets);
    assert_eq!(
        after.tenants[0].sources[0].plugin_settings_json(),
        before.tenants[0].sources[0].plugin_settings_json()
    );
}

#[test]
fn a_sealed_value_in_a_setting_output_would_show_is_refused_and_a_damaged_one_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledgerlink.toml");
    std::fs::write(&path, shaped_secrets_config(dir.path())).unwrap();
    encrypt_file(&path).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    let sealed_token = text.lines().find(|l| l.trim_start().starts_with("token = ")).unwrap();
    let sealed = sealed_token.split('"').nth(1).unwrap().to_owned();

    // Moved into `region`: decrypting it would put a token where output shows it.
    std::fs::write(&path, text.replace("region = \"eu\"", &format!("region = \"{sealed}\""))).unwrap();
    let moved = load(&path).unwrap_err();
    assert_eq!(moved.problems().len(), 1, "{moved}");
    assert_eq!(moved.problems()[0].field, "tenants[0].sources[0].settings.region", "{moved}");
    assert!(
        moved.to_string().contains("not named like a secret") && !moved.to_string().contains("Table-Token-7")
    );

    // One character changed inside the ciphertext.
    let position = sealed.len() - 5;
    let mut damaged = sealed.clone().into_bytes();
    damaged[position] = if damaged[position] == b'A' { b'B' } else { b'A' };
    let damaged = String::from_utf8(damaged).unwrap();
    std::fs::write(&path, text.replace(&sealed, &damaged)).unwrap();
    let error = load(&path).unwrap_err();
    let shown = error.to_string();
    assert!(
        shown.contains("damaged or incomplete") && shown.contains("settings.endpoints[0].token"),
        "{shown}"
    );
    assert!(shown.contains("write the value in clear"), "{shown}");
}

#[cfg(unix)]
#[test]
fn encrypt_file_follows_a_symlink_and_gives_the_key_its_directorys_owner() {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().unwrap();
    let managed = dir.path().join("managed.toml");
    std::fs::write(&managed, secrets_config(dir.path(), "llk_Linked-Key-8", "Linked-Pass-9")).unwrap();
    let link = dir.path().join("ledgerlink.toml");
    std::os::unix::fs::symlink(&managed, &link).unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    // As root (CI), the data directory belongs to the service account, here `nobody`.
    let root = std::fs::metadata(&data).unwrap().uid() == 0;
    if root {
        std::os::unix::fs::chown(&data, Some(65534), Some(65534)).unwrap();
    }

    let done = encrypt_file(&link).unwrap();
    assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink(), "the link stays a link");
    let target = std::fs::read_to_string(&managed).unwrap();
    assert!(!target.contains("Linked-Pass-9") && !target.contains("llk_Linked-Key-8"), "{target}");
    assert_eq!(load(&link).unwrap().tenants[0].api_key.expose(), "llk_Linked-Key-8");
    let key = std::fs::metadata(&done.key_file).unwrap();
    assert_eq!(
        key.uid(),
        std::fs::metadata(&data).unwrap().uid(),
        "the key belongs to the directory's owner"
    );
    assert!(done.warnings.is_empty(), "{:?}", done.warnings);
    assert_eq!(root, key.uid() == 65534);
}

#[cfg(unix)]
#[test]
fn an_encrypted_file_still_warns_when_others_can_change_it_or_read_the_key() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledgerlink.toml");
    std::fs::write(&path, secrets_config(dir.path(), "llk_Mode-Key-1", "Mode-Pass-2")).unwrap();
    let mode = |p: &Path, m: u32| std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap();
    mode(&path, 0o644);
    let clear = load(&path).unwrap();
    assert!(exposure_warning(&clear, &path).unwrap().contains("other users can access it (mode 0644)"));

    let done = encrypt_file(&path).unwrap();
    let sealed = load(&path).unwrap();
    assert_eq!(exposure_warning(&sealed, &path), None, "readable is fine once nothing is in clear");
    mode(&path, 0o664);
    let warning = exposure_warning(&sealed, &path).unwrap();
    assert!(warning.contains("other accounts can change it"), "{warning}");
    mode(&path, 0o644);
    mode(&done.key_file, 0o644);
    let warning = exposure_warning(&sealed, &path).unwrap();
    assert!(warning.contains("the key file") && warning.contains("chmod 600"), "{warning}");
    mode(&done.key_file, 0o600);
    crate::identity::load_or_create(&sealed.agent.data_dir).unwrap();
    assert_eq!(exposure_warning(&sealed, &path), None);
    mode(&crate::identity::key_path(&sealed.agent.data_dir), 0o640);
    let warning = exposure_warning(&sealed, &path).unwrap();
    assert!(warning.contains("agent-key is this agent's identity"), "{warning}");
}
