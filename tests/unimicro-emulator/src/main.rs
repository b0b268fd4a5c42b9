//! `ledgerlink-unimicro-emulator`: serves the emulated Uni Micro API on loopback and
//! prints `listening on http://127.0.0.1:PORT` once bound.

use clap::Parser;
use ledgerlink_unimicro_emulator::{serve, Config, Emulator};
use std::io::Write;

/// A local emulator of the Uni Micro REST API subset, with faults.
#[derive(Debug, Parser)]
#[command(name = "ledgerlink-unimicro-emulator", version, about)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: std::net::SocketAddr,
    /// Accepted OAuth2 client id.
    #[arg(long, default_value = "ledgerlink-test")]
    client_id: String,
    /// Accepted OAuth2 client secret (read from this environment variable, never the command line).
    #[arg(long, default_value = "UNIMICRO_EMULATOR_CLIENT_SECRET")]
    client_secret_env: String,
    /// Answer every N-th API call with 429 (0: never).
    #[arg(long, default_value_t = 0)]
    rate_limit_every: u64,
    /// Retry-After seconds of a 429.
    #[arg(long, default_value_t = 1)]
    retry_after_secs: u64,
    /// A token stops working after this many API calls (0: never).
    #[arg(long, default_value_t = 0)]
    token_max_requests: u64,
    /// Entity that answers slowly.
    #[arg(long)]
    slow_entity: Option<String>,
    /// Delay of the slow entity in milliseconds.
    #[arg(long, default_value_t = 0)]
    slow_ms: u64,
    /// Vouchers per company and year.
    #[arg(long, default_value_t = 250)]
    vouchers_per_year: u32,
}

fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let defaults = Config::default();
    let config = Config {
        client_id: args.client_id,
        client_secret: std::env::var(&args.client_secret_env).unwrap_or(defaults.client_secret),
        rate_limit_every: args.rate_limit_every,
        retry_after_secs: args.retry_after_secs,
        token_max_requests: args.token_max_requests,
        slow_entity: args.slow_entity,
        slow_ms: args.slow_ms,
        vouchers_per_year: args.vouchers_per_year,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(args.listen).await?;
        let mut out = std::io::stdout().lock();
        writeln!(out, "listening on http://{}", listener.local_addr()?)?;
        out.flush()?;
        drop(out);
        serve(listener, Emulator::new(config)).await
    })
}
