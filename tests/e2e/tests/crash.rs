//! `kill -9` of the host at many moments of a large sync: after a restart every
//! snapshot is delivered exactly once and the trial balance is right.

use fixture_synthetic::lines_of;
use ledgerlink_e2e::agent::{text, Agent, SourceConfig};
use ledgerlink_e2e::hub::Hub;
use ledgerlink_e2e::plugin_library;
use ledgerlink_plugin_api::canonical::Decimal;
use serde_json::json;
use std::collections::BTreeMap;
use std::time::Instant;

const LINES: u64 = 150_000;

fn source(id: &str) -> SourceConfig {
    SourceConfig {
        id: id.into(),
        plugin: "synthetic".into(),
        settings: json!({"voucher_lines": LINES, "batch_size": 4096}),
        years: vec![2025],
        extra: String::new(),
    }
}

/// The trial balance of the synthetic data, summed here line by line.
fn expected_trial_balance() -> BTreeMap<String, (Decimal, Decimal)> {
    let mut tb: BTreeMap<String, (Decimal, Decimal)> = BTreeMap::new();
    for n in 0..LINES / 2 {
        for line in lines_of(n) {
            let entry = tb.entry(line.account_id).or_default();
            if line.amount > Decimal::ZERO {
                entry.0 += line.amount;
            } else {
                entry.1 -= line.amount;
            }
        }
    }
    tb
}

#[test]
fn kill_9_at_any_moment_loses_nothing_and_duplicates_nothing() {
    let hub = Hub::start();
    let key = hub.create_tenant("acme");
    let agent = Agent::new(
        &[plugin_library("fixture_synthetic")],
        &hub.url,
        &key,
        &[source("calibration"), source("big")],
    );

    // How long one whole sync takes here, to spread the kills over it.
    let started = Instant::now();
    let calibration = agent.sync("calibration", &[]);
    assert_eq!(calibration.status.code(), Some(0), "{}", text(&calibration));
    let full = started.elapsed();

    // Kill at spread-out moments until ten runs died mid-way. `--force` gives every
    // run real work (extract, spool, upload, commit), even after a delivery.
    let fractions = [0.1, 0.5, 0.9, 0.3, 0.7, 0.2, 0.6, 0.4, 0.8, 0.15, 0.55, 0.35];
    let mut killed = 0;
    for (i, fraction) in fractions.iter().cycle().take(30).enumerate() {
        if killed == 10 {
            break;
        }
        let mut child = agent
            .command(&["sync", "--source", "big", "--force"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(full.mul_f64(*fraction));
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap();
            killed += 1;
        }
        child.wait().unwrap();
        assert!(hub.snapshot_count(&key, "big", "1", 2025) <= 1, "never a duplicate (after run {i})");
    }
    assert_eq!(killed, 10, "could not kill 10 runs mid-way in 30 tries (a run takes {full:?})");

    let last = agent.sync("big", &[]);
    let code = last.status.code();
    assert!(code == Some(0) || code == Some(7), "{}", text(&last));
    assert_eq!(hub.snapshot_count(&key, "big", "1", 2025), 1, "delivered exactly once");
    assert!(agent.spooled().is_empty(), "nothing left behind in the spool");
    let tmp = agent.dir().join("data/spool/tmp");
    assert_eq!(std::fs::read_dir(tmp).map(|d| d.count()).unwrap_or(0), 0, "torn snapshots were cleaned up");

    let tb = hub.trial_balance(&key, "big", "1", 2025);
    let accounts = tb["accounts"].as_object().unwrap();
    for (account, (debit, credit)) in expected_trial_balance() {
        let row = &accounts[&account];
        assert_eq!(row["debit"].as_str().unwrap().parse::<Decimal>().unwrap(), debit, "{account}");
        assert_eq!(row["credit"].as_str().unwrap().parse::<Decimal>().unwrap(), credit, "{account}");
    }
}

/// The records of the current snapshot of company 1, 2025.
fn current_records(hub: &Hub, key: &str) -> u64 {
    let (_, current) = hub.get(key, "/v1/companies/1/current?year=2025");
    current["records"].as_u64().unwrap_or_default()
}

#[test]
fn a_crash_at_every_step_of_a_delivery_loses_nothing_duplicates_nothing_and_later_changes_arrive() {
    for point in ["spooled", "parts_uploaded", "hub_committed", "acknowledgement_recorded"] {
        let hub = Hub::start();
        let key = hub.create_tenant("acme");
        let settings = |lines: u64| SourceConfig {
            settings: json!({"voucher_lines": lines, "batch_size": 4096}),
            ..source("synthetic")
        };
        let agent = Agent::new(&[plugin_library("fixture_synthetic")], &hub.url, &key, &[settings(600)]);
        let crashed = agent
            .command(&["sync", "--source", "synthetic"])
            .env("LEDGERLINK_CRASH_AT", point)
            .output()
            .unwrap();
        assert_eq!(crashed.status.code(), None, "{point}: killed by the abort: {}", text(&crashed));
        assert!(text(&crashed).contains(&format!("crash point `{point}` reached")), "{}", text(&crashed));

        let after = agent.sync("synthetic", &[]);
        let code = after.status.code();
        assert!(code == Some(0) || code == Some(7), "{point}: {}", text(&after));
        assert_eq!(hub.snapshot_count(&key, "synthetic", "1", 2025), 1, "{point}: delivered exactly once");
        assert!(agent.spooled().is_empty(), "{point}: nothing left in the spool");
        let first = current_records(&hub, &key);
        assert!(first > 600, "{point}: the data is current ({first} records)");
        assert_eq!(agent.sync("synthetic", &[]).status.code(), Some(7), "{point}: then nothing to send");

        // A change after the crash arrives as the one new version.
        let config = std::fs::read_to_string(&agent.config).unwrap();
        std::fs::write(&agent.config, config.replace("voucher_lines = 600", "voucher_lines = 900")).unwrap();
        let changed = agent.sync("synthetic", &[]);
        assert_eq!(changed.status.code(), Some(0), "{point}: {}", text(&changed));
        assert_eq!(hub.snapshot_count(&key, "synthetic", "1", 2025), 2, "{point}");
        assert!(current_records(&hub, &key) > first, "{point}: the changed data is current");
    }
}
