//! Plugins run in supervised worker processes: a plugin that crashes, hangs or
//! leaks fails its own job with the reason, while the host and every other
//! source go on.

use ledgerlink_e2e::agent::{Agent, SourceConfig};
use ledgerlink_e2e::hub::Hub;
use ledgerlink_e2e::plugin_library;
use ledgerlink_e2e::service::Service;
use serde_json::json;
use std::time::Duration;

fn hello() -> SourceConfig {
    SourceConfig {
        id: "good".into(),
        plugin: "hello-erp".into(),
        settings: json!({}),
        years: vec![2024, 2025],
        extra: "  schedule = { type = \"interval\", every_minutes = 1 }".into(),
    }
}

fn misbehaving(mode: &str) -> SourceConfig {
    SourceConfig {
        id: "bad".into(),
        plugin: "misbehaving".into(),
        settings: json!({ "mode": mode }),
        years: vec![2025],
        extra: "  schedule = { type = \"interval\", every_minutes = 1 }\n  retry = { max_attempts = 1, initial_backoff_secs = 1 }\n  worker_stall_secs = 3\n  worker_memory_mb = 256".into(),
    }
}

#[test]
fn a_crashing_hanging_or_leaking_plugin_fails_its_job_and_the_other_source_completes() {
    let cases = [
        ("segfault", "crashed: signal 11 (SIGSEGV)"),
        ("abort", "crashed: signal 6 (SIGABRT)"),
        ("hang", "made no progress for 3 s"),
        ("allocate", "more than its limit of 256 MB"),
    ];
    // The four hosts run side by side; each has its own hub tenant and data.
    let hub = Hub::start();
    let runs: Vec<_> = cases
        .iter()
        .map(|(mode, reason)| {
            let key = hub.create_tenant(&format!("t-{mode}"));
            let plugins = [plugin_library("fixture_misbehaving"), plugin_library("hello_erp")];
            let agent = Agent::new(&plugins, &hub.url, &key, &[misbehaving(mode), hello()]);
            let service = Service::start(&agent);
            (mode, reason, key, agent, service)
        })
        .collect();
    for (mode, reason, key, _agent, service) in runs {
        service.wait_for_jobs(2, Duration::from_secs(60));
        let log = service.log();
        assert!(
            log.contains("plugin `misbehaving`") && log.contains(reason),
            "{mode}: expected `{reason}` in:\n{log}"
        );
        assert_eq!(
            hub.snapshot_count(&key, "good", "1", 2025),
            1,
            "{mode}: the other source completed its sync"
        );
        service.stop();
    }
}
