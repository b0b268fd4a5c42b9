//! `ledgerlink`: the connector host's command line.

use clap::Parser;
use ledgerlink_host::{cli, logging};
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    logging::init("info");
    cli::run(cli)
}
