//! Log setup: human-readable lines on stderr, filtered by `LEDGERLINK_LOG`.

use std::io::IsTerminal;
use tracing_subscriber::fmt::writer::MakeWriterExt;
use tracing_subscriber::EnvFilter;

/// Installs the global subscriber; `LEDGERLINK_LOG` (e.g. `debug`, `ledgerlink=trace`) sets the filter.
/// Colours only when stderr is a terminal, so log files and pipes stay plain text.
pub fn init(default_filter: &str) {
    let filter = EnvFilter::try_from_env("LEDGERLINK_LOG").unwrap_or_else(|_| EnvFilter::new(default_filter));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr.and(crate::control::logbuf::RecentLines::default))
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .try_init();
}
