//! Progress of long extractions: rows, rate and ETA per entity.
//!
//! On a terminal one status line is redrawn on stderr; otherwise a log line is
//! written every few seconds, so unattended runs show progress in their logs.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// How often a non-terminal progress line is logged.
const LOG_EVERY: Duration = Duration::from_secs(10);
/// How often the terminal line is redrawn.
const DRAW_EVERY: Duration = Duration::from_millis(200);

/// Progress of one entity's extraction.
pub struct Progress {
    label: String,
    expected: Option<u64>,
    rows: u64,
    started: Instant,
    last_shown: Instant,
    terminal: bool,
    quiet: bool,
}

impl Progress {
    /// Starts tracking `label` (e.g. "company 1 2025 voucher_lines"); `expected` is
    /// the count of the last snapshot, used for the ETA.
    pub fn start(label: String, expected: Option<u64>, quiet: bool) -> Self {
        let now = Instant::now();
        Self {
            label,
            expected,
            rows: 0,
            started: now,
            last_shown: now,
            terminal: std::io::stderr().is_terminal(),
            quiet,
        }
    }

    /// Counts `rows` more rows.
    pub fn add(&mut self, rows: u64) {
        self.rows += rows;
        let every = if self.terminal { DRAW_EVERY } else { LOG_EVERY };
        if !self.quiet && self.last_shown.elapsed() >= every {
            self.last_shown = Instant::now();
            self.show(false);
        }
    }

    /// Rows per second so far.
    pub fn rate(&self) -> f64 {
        self.rows as f64 / self.started.elapsed().as_secs_f64().max(1e-6)
    }

    fn eta(&self) -> Option<Duration> {
        let expected = self.expected?;
        let rate = self.rate();
        (expected > self.rows && rate > 0.0)
            .then(|| Duration::from_secs_f64((expected - self.rows) as f64 / rate))
    }

    fn show(&self, done: bool) {
        let eta = match (done, self.eta()) {
            (true, _) => format!("done in {:.1} s", self.started.elapsed().as_secs_f64()),
            (false, Some(eta)) => format!("ETA {}s", eta.as_secs()),
            (false, None) => String::new(),
        };
        let text = format!("{}: {} rows, {:.0} rows/s {}", self.label, self.rows, self.rate(), eta);
        if self.terminal {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[2K{text}");
            if done {
                let _ = writeln!(err);
            }
            let _ = err.flush();
        } else {
            tracing::info!(rows = self.rows, rate = self.rate().round(), "{}", text.trim_end());
        }
    }

    /// Ends tracking, showing the final line for long extractions; returns the row count.
    pub fn finish(self) -> u64 {
        if !self.quiet && (self.terminal || self.started.elapsed() >= LOG_EVERY) {
            self.show(true);
        }
        self.rows
    }
}
