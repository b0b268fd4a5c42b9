//! Benchmark: voucher lines per second through the plugin boundary.
//!
//! Loads the `synthetic` fixture plugin (a real cdylib) and pulls 1 M voucher
//! lines through the abi_stable boundary: the plugin builds the records and
//! encodes each batch, the host decodes it back into canonical records. A second
//! column adds what the host does next (validation and trial balance), and a
//! codec-only row shows what encoding costs without the boundary.
//!
//! Run with `scripts/bench-boundary` (it builds the plugin in release mode first).

use ledgerlink_host::plugins::LoadedPlugin;
use ledgerlink_plugin_api::abi::CancelFlag;
use ledgerlink_plugin_api::canonical::{decode_batch, encode_batch, SnapshotValidator, TrialBalance};
use ledgerlink_plugin_api::{Entity, RecordBatch};
use std::path::PathBuf;
use std::time::Instant;

const LINES: u64 = 1_000_000;
const ROUNDS: usize = 3;

fn synthetic_library() -> PathBuf {
    let exe = std::env::current_exe().expect("bench executable");
    let dir = exe.parent().and_then(|deps| deps.parent()).expect("target dir");
    let name = format!("{}fixture_synthetic{}", std::env::consts::DLL_PREFIX, std::env::consts::DLL_SUFFIX);
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} missing: run `cargo build --release -p fixture-synthetic` first",
        path.display()
    );
    path
}

/// Pulls every voucher line through the boundary; returns (lines, seconds).
fn run(plugin: &LoadedPlugin, batch_size: usize, validate: bool) -> (u64, f64) {
    let source =
        plugin.open(&serde_json::json!({"voucher_lines": LINES, "batch_size": batch_size})).expect("open");
    let started = Instant::now();
    let mut validator = SnapshotValidator::default();
    let mut trial_balance = TrialBalance::default();
    let mut lines = 0u64;
    for batch in source.extract("1", Entity::VoucherLines, 2025, CancelFlag::new()).expect("extract") {
        let batch = batch.expect("batch");
        lines += batch.len() as u64;
        if validate {
            validator.observe(&batch);
            if let RecordBatch::VoucherLines(rows) = &batch {
                rows.iter().for_each(|l| trial_balance.add(l));
            }
        }
    }
    let secs = started.elapsed().as_secs_f64();
    if validate {
        assert!(validator.finish().is_valid());
        assert!(trial_balance.total_net().is_zero());
    }
    (lines, secs)
}

fn best_of(f: impl Fn() -> (u64, f64)) -> (u64, f64) {
    (0..ROUNDS).map(|_| f()).min_by(|a, b| a.1.total_cmp(&b.1)).expect("rounds")
}

fn main() {
    let plugin = LoadedPlugin::load_vetted(&synthetic_library()).expect("load synthetic plugin");
    println!("Plugin boundary: {LINES} voucher lines, best of {ROUNDS} rounds (plugin reads on its own thread, host decodes)\n");
    println!("| batch size | boundary + decode (lines/s) | + validate + trial balance (lines/s) |");
    println!("|-----------:|----------------------------:|-------------------------------------:|");
    for batch_size in [1_024, 8_192, 65_536] {
        let (n, plain) = best_of(|| run(&plugin, batch_size, false));
        let (_, full) = best_of(|| run(&plugin, batch_size, true));
        println!("| {batch_size:>10} | {:>27.0} | {:>36.0} |", n as f64 / plain, n as f64 / full);
    }

    // Codec alone, in the host: the floor of what the boundary format costs.
    let source = plugin.open(&serde_json::json!({"voucher_lines": 8192, "batch_size": 8192})).expect("open");
    let batch =
        source.extract("1", Entity::VoucherLines, 2025, CancelFlag::new()).unwrap().next().unwrap().unwrap();
    let rounds = (LINES / batch.len() as u64) as usize;
    let started = Instant::now();
    let mut bytes = 0usize;
    for _ in 0..rounds {
        let encoded = encode_batch(&batch);
        bytes += encoded.len();
        std::hint::black_box(decode_batch(&encoded).unwrap());
    }
    let secs = started.elapsed().as_secs_f64();
    let lines = rounds * batch.len();
    println!(
        "\nCodec only (encode + decode, no boundary): {:.0} lines/s, {:.1} bytes/line",
        lines as f64 / secs,
        bytes as f64 / lines as f64
    );
}
