//! `ledgerlink`: the connector host's command line.

use clap::Parser;
use ledgerlink_host::{cli, logging};
use std::process::ExitCode;

fn main() -> ExitCode {
    limit_malloc_arenas();
    let cli = cli::Cli::parse();
    // A plugin worker logs JSON lines for its host to re-log (worker::child); a
    // human-readable subscriber installed first would take their place.
    if !matches!(cli.command, cli::Command::PluginWorker { .. }) {
        logging::init("info");
    }
    cli::run(cli)
}

/// Caps glibc's malloc arenas: one for the host, four where a plugin extracts
/// (a plugin worker, and `plugins check`, which extracts in-process).
///
/// glibc gives every thread that allocates an arena of its own and keeps each
/// arena's peak. The host's threads allocate little, so one arena saves its
/// upload thread's several MB. A worker reading in lanes runs four allocating
/// threads (two driver fetch threads, two converters); with one arena they
/// queue on its lock (2 M-line sync: 12.9 s and 13.1 CPU-s with one arena,
/// 11.4 s and 11.6 CPU-s with four, worker peak 38 MB; docs/benchmarks.md).
/// The host also gets a fixed mmap threshold (its peak in a 2 M-line sync
/// 20.2–22.0 → 17.8–18.2 MB at the same speed, session 5).
/// Must run before the first thread starts.
#[allow(unsafe_code)]
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let extracts = std::env::args_os()
            .nth(1)
            .is_some_and(|command| command == "plugin-worker" || command == "plugins");
        // SAFETY: mallopt only sets an allocator parameter; no other thread exists yet.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, if extracts { 4 } else { 1 });
            if !extracts {
                // A fixed threshold: a batch's buffers (hundreds of KB) are mapped
                // and unmapped each time instead of raising glibc's dynamic
                // threshold and staying in the heap at their peak.
                libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
            }
        }
    }
}
