//! `ledgerlink`: the connector host's command line.

use clap::Parser;
use ledgerlink_host::{cli, logging};
use std::process::ExitCode;

fn main() -> ExitCode {
    limit_malloc_arenas();
    let cli = cli::Cli::parse();
    logging::init("info");
    cli::run(cli)
}

/// One malloc arena for the whole process (host and plugin worker alike).
///
/// glibc gives every thread that allocates its own arena and keeps each arena's
/// peak: the upload thread of the host and the fetch thread of a worker each
/// added several MB of resident memory that no other thread could reuse
/// (measured: 2 M-line sync, host + worker 84 MB with per-thread arenas, 64 MB
/// with one, same wall time). Must run before the first thread starts.
#[allow(unsafe_code)]
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator parameter; no other thread exists yet.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}
