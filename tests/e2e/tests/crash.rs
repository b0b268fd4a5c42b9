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
