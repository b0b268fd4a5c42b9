//! Benchmark: 2 M voucher lines through a worker process versus in-process.
//!
//! The `synthetic` fixture plugin (a real cdylib, release build) generates the
//! lines; the host decodes every batch. In worker mode the plugin runs in
//! `ledgerlink plugin-worker` and its batches cross a pipe in checksummed frames.
//! Reports lines/s and the peak RSS of the host and of the worker.
//! Run with `scripts/bench-worker` (it builds the release binaries first).

use ledgerlink_host::plugins::{Extractor, LoadedPlugin};
use ledgerlink_host::worker::{WorkerLimits, WorkerSource};
use ledgerlink_plugin_api::abi::CancelFlag;
use ledgerlink_plugin_api::Entity;
use std::path::PathBuf;
use std::time::{Duration, Instant};

const LINES: u64 = 2_000_000;
const ROUNDS: usize = 3;

fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("bench executable");
    exe.parent().and_then(|deps| deps.parent()).expect("target dir").to_owned()
}

fn peak_rss_mb(pid: &str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kb: f64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    kb / 1024.0
}

fn drain(source: &dyn Extractor) -> (u64, f64) {
    let started = Instant::now();
    let mut lines = 0;
    for batch in source.extract("1", Entity::VoucherLines, 2025, CancelFlag::new()).expect("extract") {
        lines += batch.expect("batch").len() as u64;
    }
    assert_eq!(lines, LINES);
    (lines, started.elapsed().as_secs_f64())
}

fn best(f: impl Fn() -> (u64, f64)) -> f64 {
    (0..ROUNDS).map(|_| f()).map(|(n, s)| n as f64 / s).fold(0.0, f64::max)
}

fn main() {
    let dir = target_dir();
    let library = dir.join(format!(
        "{}fixture_synthetic{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    ));
    let exe = dir.join("ledgerlink");
    assert!(
        library.exists() && exe.exists(),
        "build first: cargo build --release -p ledgerlink-host -p fixture-synthetic"
    );
    let settings = serde_json::json!({"voucher_lines": LINES, "batch_size": 8192});

    // Worker first, so the host's high-water mark is the worker mode's.
    let limits = WorkerLimits { stall: Duration::from_secs(60), memory_bytes: None };
    let worker =
        WorkerSource::start(&exe, &library, "synthetic", "bench", &settings, limits).expect("worker");
    let worker_rate = best(|| drain(&worker));
    let worker_peak = peak_rss_mb(&worker.pid().to_string());
    let host_peak_worker_mode = peak_rss_mb("self");
    drop(worker);

    let plugin = LoadedPlugin::load_vetted(&library).expect("load");
    let source = plugin.open(&settings).expect("open");
    let in_process_rate = best(|| drain(&source));
    let host_peak_in_process = peak_rss_mb("self");

    println!("Plugin isolation: {LINES} voucher lines, best of {ROUNDS} rounds\n");
    println!("| mode | lines/s | ratio | peak RSS host (MB) | peak RSS worker (MB) |");
    println!("|---|---:|---:|---:|---:|");
    println!("| in-process | {in_process_rate:.0} | 1.00 | {host_peak_in_process:.1} | - |");
    println!(
        "| worker process | {worker_rate:.0} | {:.2} | {host_peak_worker_mode:.1} | {worker_peak:.1} |",
        worker_rate / in_process_rate
    );
}
