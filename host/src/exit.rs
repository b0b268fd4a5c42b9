//! Process exit codes, documented for schedulers and monitoring (docs/cli.md).

/// Every exit code the `ledgerlink` binary uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Exit {
    /// Everything worked.
    Success = 0,
    /// The command ran but found problems (a broken plugin file, a failed check step).
    Problems = 1,
    /// The command line was wrong (clap's own code).
    Usage = 2,
    /// A file the command needs (settings, configuration) is missing or malformed.
    Config = 3,
    /// The source failed: plugin not found or broken, ERP unreachable, extraction failed.
    Source = 4,
    /// Some data was not valid canonical data and was not uploaded.
    Validation = 5,
    /// The hub was unreachable (or the spool full): data is safe in the spool and goes with the next run.
    Spooled = 6,
    /// Nothing changed since the last acknowledged upload; nothing was sent.
    NothingChanged = 7,
}

impl From<Exit> for std::process::ExitCode {
    fn from(exit: Exit) -> Self {
        std::process::ExitCode::from(exit as u8)
    }
}
