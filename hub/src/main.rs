//! `ledgerlink-hub`: the Ledgerlink reference hub (see `ledgerlink-hub --help`).

fn main() -> std::process::ExitCode {
    ledgerlink_hub::cli::run()
}
