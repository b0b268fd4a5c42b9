//! `ledgerlink run`: schedules run, and SIGTERM stops the service cleanly.

use ledgerlink_e2e::agent::{Agent, SourceConfig};
use ledgerlink_e2e::hub::Hub;
use ledgerlink_e2e::plugin_library;
use serde_json::json;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn a_one_minute_schedule_runs_twice_and_sigterm_stops_within_the_deadline() {
    let hub = Hub::start();
    let key = hub.create_tenant("acme");
    let source = SourceConfig {
        id: "hello".into(),
        plugin: "hello-erp".into(),
        settings: json!({}),
        years: vec![2024, 2025],
        extra: "  schedule = { type = \"interval\", every_minutes = 1 }".into(),
    };
    let agent = Agent::new(&[plugin_library("hello_erp")], &hub.url, &key, &[source]);
    let log = agent.dir().join("run.log");
    let mut child = agent
        .command(&["run", "--drain-secs", "10"])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("ledgerlink run starts");
    let log_text = || std::fs::read_to_string(&log).unwrap_or_default();
    wait_for("two finished jobs", Duration::from_secs(100), || {
        log_text().matches("Job finished.").count() >= 2
    });
    assert_eq!(
        hub.snapshot_count(&key, "hello", "1", 2025),
        1,
        "the first run uploaded, the second found no change"
    );
    assert!(log_text().contains("Version reported to the hub."), "{}", log_text());

    let stop_requested = Instant::now();
    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    wait_for("the service to exit", Duration::from_secs(12), || child.try_wait().unwrap().is_some());
    let exit = child.wait().unwrap();
    assert_eq!(exit.code(), Some(0), "{}", log_text());
    assert!(stop_requested.elapsed() < Duration::from_secs(11), "stopped within the drain deadline");
    assert!(log_text().contains("Stopped cleanly."), "{}", log_text());
}
