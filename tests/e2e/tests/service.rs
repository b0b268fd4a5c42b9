//! `ledgerlink run`: schedules run, SIGTERM stops the service cleanly, and a
//! replaced plugin file is used by the next job without a restart. These tests
//! wait for a 1-minute schedule, so they share one test binary and run side by side.

use ledgerlink_e2e::agent::{Agent, SourceConfig};
use ledgerlink_e2e::hub::Hub;
use ledgerlink_e2e::plugin_library;
use ledgerlink_e2e::service::{wait_for, Service};
use serde_json::json;
use std::process::Command;
use std::time::Duration;

/// An agent with a hello-erp source on an interval schedule.
fn hello_agent(hub: &Hub, key: &str, years: Vec<i32>, every_minutes: u32) -> Agent {
    let source = SourceConfig {
        id: "hello".into(),
        plugin: "hello-erp".into(),
        settings: json!({}),
        years,
        extra: format!("  schedule = {{ type = \"interval\", every_minutes = {every_minutes} }}"),
    };
    Agent::new(&[plugin_library("hello_erp")], &hub.url, key, &[source])
}

#[test]
fn a_one_minute_schedule_runs_twice_and_sigterm_stops_within_the_deadline() {
    let hub = Hub::start();
    let key = hub.create_tenant("acme");
    let agent = hello_agent(&hub, &key, vec![2024, 2025], 1);
    let service = Service::start(&agent);
    service.wait_for_jobs(2, Duration::from_secs(100));
    assert_eq!(
        hub.snapshot_count(&key, "hello", "1", 2025),
        1,
        "the first run uploaded, the second found no change"
    );
    assert!(service.log().contains("Version reported to the hub."), "{}", service.log());
    let (status, agents) = hub.get(&key, "/v1/agents");
    assert_eq!(status, 200, "{agents}");
    let agent_report = &agents["agents"][0];
    let user_agent = agent_report["user_agent"].as_str().unwrap_or_default();
    let version = Command::new(ledgerlink_e2e::binary("ledgerlink")).arg("--version").output().unwrap();
    let version =
        String::from_utf8_lossy(&version.stdout).trim().trim_start_matches("ledgerlink ").to_owned();
    let prefix = format!("Ledgerlink/{version} (");
    assert!(user_agent.starts_with(&prefix) && user_agent.ends_with("; Hello ERP 1.0)"), "{user_agent}");
    assert_eq!(user_agent.matches("; ").count(), 3, "host; OS; service user; ERP: {user_agent}");
    assert_eq!(agent_report["plugins"][0]["id"], "hello-erp", "{agent_report}");
    let log = service.log_path();
    let took = service.stop();
    assert!(took < Duration::from_secs(6), "stopped within the 5 s drain deadline (took {took:?})");
    let log = std::fs::read_to_string(log).unwrap();
    assert!(log.contains("Stopped cleanly."), "{log}");
}

#[test]
fn replacing_a_plugin_file_while_the_host_runs_takes_effect_at_the_next_job() {
    let hub = Hub::start();
    let key = hub.create_tenant("acme");
    let source = SourceConfig {
        id: "s".into(),
        plugin: "synthetic".into(),
        settings: json!({"voucher_lines": 2000}),
        years: vec![2025],
        extra: "  schedule = { type = \"interval\", every_minutes = 1 }".into(),
    };
    let agent = Agent::new(&[plugin_library("fixture_synthetic")], &hub.url, &key, &[source]);
    let service = Service::start(&agent);
    let version = |hub: &Hub| {
        let (status, body) = hub.get(&key, "/v1/companies/1/current?year=2025&source=s");
        assert_eq!(status, 200, "{body}");
        body["plugin"]["version"].as_str().unwrap_or_default().to_owned()
    };
    wait_for("the first job", Duration::from_secs(30), || service.log().contains("Job finished."));
    assert_eq!(version(&hub), "0.1.0");

    // Replace the file the way an installer does: write beside it, rename over it.
    let installed =
        agent.dir().join("plugins").join(plugin_library("fixture_synthetic").file_name().unwrap());
    let staged = agent.dir().join("plugins").join("synthetic.so.partial");
    std::fs::copy(plugin_library("fixture_synthetic_next"), &staged).unwrap();
    std::fs::rename(&staged, &installed).unwrap();
    let list = Command::new(ledgerlink_e2e::binary("ledgerlink"))
        .args(["plugins", "list", "--json", "--plugin-dir"])
        .arg(agent.dir().join("plugins"))
        .output()
        .unwrap();
    let list: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!(list["plugins"][0]["version"], "0.2.0", "plugins list shows what the next job uses");

    wait_for("the second job", Duration::from_secs(90), || {
        service.log().matches("Job finished.").count() >= 2
    });
    assert_eq!(version(&hub), "0.2.0", "the hub got data from the new plugin, without a host restart");
    service.stop();
}

#[test]
fn sigterm_during_an_extraction_defers_the_year_instead_of_failing_it() {
    let hub = Hub::start();
    let key = hub.create_tenant("acme");
    let source = SourceConfig {
        id: "big".into(),
        plugin: "synthetic".into(),
        settings: json!({"voucher_lines": 5_000_000, "batch_size": 1000}),
        years: vec![2025],
        extra: "  schedule = { type = \"interval\", every_minutes = 60 }".into(),
    };
    let agent = Agent::new(&[plugin_library("fixture_synthetic")], &hub.url, &key, &[source]);
    let service = Service::start(&agent);
    // The snapshot being written shows the extraction is under way.
    let tmp = agent.dir().join("data/spool/tmp");
    wait_for("the extraction to start", Duration::from_secs(60), || {
        std::fs::read_dir(&tmp).map(|d| d.flatten().any(|e| e.path().is_dir())).unwrap_or(false)
    });
    service.stop();
    let log = std::fs::read_to_string(agent.dir().join("run.log")).unwrap();
    assert!(log.contains("Not extracted now; a later run extracts it."), "{log}");
    assert!(!log.contains("Failed."), "a stop on purpose is not a failure: {log}");
    assert!(log.contains("outcome=Spooled"), "{log}");
    assert_eq!(hub.snapshot_count(&key, "big", "1", 2025), 0);
}

#[test]
fn status_tells_whether_the_service_runs_and_a_second_service_is_refused() {
    let hub = Hub::start();
    let key = hub.create_tenant("acme");
    let agent = hello_agent(&hub, &key, vec![2025], 60);
    let status = || -> serde_json::Value {
        let output = agent.command(&["status", "--json"]).output().expect("status runs");
        serde_json::from_slice(&output.stdout).expect("status JSON")
    };
    let service = Service::start(&agent);
    service.wait_for_jobs(1, Duration::from_secs(60));
    let running = status();
    assert_eq!(running["service_running"], true, "{running}");
    assert!(running["tenants"][0]["sources"][0]["next_run"].is_string(), "{running}");

    let second = agent.command(&["run"]).output().expect("a second run");
    assert_eq!(second.status.code(), Some(3), "{}", String::from_utf8_lossy(&second.stderr));
    assert!(
        String::from_utf8_lossy(&second.stderr).contains("Another `ledgerlink run` uses this data directory")
    );

    service.stop();
    let stopped = status();
    assert_eq!(stopped["service_running"], false, "{stopped}");
    assert!(stopped["tenants"][0]["sources"][0]["next_run"].is_null(), "no stale next run: {stopped}");
}
