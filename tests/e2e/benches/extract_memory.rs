//! Benchmark: extract 2 M voucher lines from PostgreSQL through psqlODBC with the
//! visma-business plugin, and report rows/s and the peak RSS of the process.
//!
//! Runs `ledgerlink plugins check` (release build) on a fixture of one company
//! with 2 M lines over two fiscal years: every line is fetched, crosses the plugin
//! boundary, is decoded, validated and summed into the trial balance. Peak RSS is
//! the kernel's high-water mark (VmHWM) of the process, sampled until it exits.
//! Run with `scripts/bench-extract` (it builds the release binaries first).

use ledgerlink_e2e::{binary, erp_plugin, reader_password, settings_file, settings_for};
use ledgerlink_fixtures::{Backend, Erp, Fixture, FixtureSpec};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const LINES: u64 = 2_000_000;

/// VmHWM of a running process in kB.
fn peak_rss_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn main() {
    let started = Instant::now();
    let mut spec = FixtureSpec::new(Erp::VismaBusiness, Backend::Postgres);
    spec.prefix = Some("bench_extract_".into());
    spec.voucher_lines = LINES;
    spec.companies = 1;
    let fixture = Fixture::create(spec).expect("fixture (run scripts/setup first)");
    println!(
        "Fixture: {LINES} voucher lines in PostgreSQL, created in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    println!("\n| fetch rows | wall (s) | lines/s | peak RSS (MB) |");
    println!("|-----------:|---------:|--------:|--------------:|");
    for fetch_rows in [10_000u64, 50_000] {
        let mut settings = settings_for(Erp::VismaBusiness, &fixture, &reader_password());
        settings["connection"]["fetch_rows"] = fetch_rows.into();
        let file = settings_file(&settings);
        let begin = Instant::now();
        let mut child = Command::new(binary("ledgerlink"))
            .args(["plugins", "check"])
            .arg(erp_plugin(Erp::VismaBusiness))
            .arg("--settings")
            .arg(file.path())
            .arg("--json")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("ledgerlink runs");
        let pid = child.id();
        let mut peak = 0;
        while child.try_wait().expect("wait").is_none() {
            peak = peak.max(peak_rss_kb(pid).unwrap_or(0));
            std::thread::sleep(Duration::from_millis(20));
        }
        let wall = begin.elapsed().as_secs_f64();
        let output = child.wait_with_output().expect("output");
        let report: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON report");
        assert_eq!(report["passed"], true, "{report:#}");
        let lines: u64 = report["companies"][0]["years"]
            .as_array()
            .expect("years")
            .iter()
            .map(|y| y["counts"]["voucher_lines"].as_u64().unwrap_or(0))
            .sum();
        assert_eq!(lines, LINES);
        println!(
            "| {fetch_rows:>10} | {wall:>8.2} | {:>7.0} | {:>13.1} |",
            lines as f64 / wall,
            peak as f64 / 1024.0
        );
    }
    drop(fixture);
}
