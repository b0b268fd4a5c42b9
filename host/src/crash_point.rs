//! Named points where a test may kill the process, to prove that a crash between
//! two steps of a delivery loses nothing and duplicates nothing.
//!
//! `LEDGERLINK_CRASH_AT=<name>` aborts the process (as `kill -9` would, without
//! unwinding or flushing) when it reaches the point of that name. Unset, as in
//! production, a point costs one environment lookup per delivery step.

/// Aborts the process here when `LEDGERLINK_CRASH_AT` names this point.
pub fn crash_point(name: &str) {
    if std::env::var_os("LEDGERLINK_CRASH_AT").is_some_and(|at| at == name) {
        eprintln!("crash point `{name}` reached: aborting, as LEDGERLINK_CRASH_AT asks");
        std::process::abort();
    }
}
