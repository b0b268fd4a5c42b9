//! Command line: `serve` and `tenant create|list|revoke`.

use crate::auth::{generate_key, hash_key};
use crate::now;
use crate::server::{default_verify_threads, open_storage, serve, Limits, ServeConfig};
use crate::storage::{MetadataStore, StoreError};
use anyhow::{bail, Context};
use clap::{Parser, Subcommand, ValueEnum};
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

/// The Ledgerlink reference hub: verified ingest, storage and queries.
#[derive(Debug, Parser)]
#[command(name = "ledgerlink-hub", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Runs the hub's HTTP(S) API.
    Serve(ServeArgs),
    /// Manages tenants and their API keys.
    #[command(subcommand)]
    Tenant(TenantCommand),
    /// Manages support tokens (admin API and console; roles viewer and support).
    #[command(subcommand, name = "support-token")]
    SupportToken(crate::admin_cli::SupportTokenCommand),
    /// Remote control over the admin API: agents, plugin and source toggles, syncs, diagnostics.
    Admin(crate::admin_cli::AdminArgs),
    /// Exports accounting data in a standard file format.
    #[command(subcommand)]
    Export(ExportCommand),
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Arguments of `serve`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Data directory (SQLite database and part files).
    #[arg(long, env = "LEDGERLINK_HUB_DATA")]
    pub data: PathBuf,
    /// Address to listen on; plain HTTP is allowed only on a loopback address.
    #[arg(long, default_value = "127.0.0.1:7380")]
    pub listen: SocketAddr,
    /// PEM certificate chain; enables TLS (with --tls-key).
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of the certificate.
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Largest accepted part body, in bytes.
    #[arg(long, default_value_t = Limits::default().max_part_bytes)]
    pub max_part_bytes: u64,
    /// Largest accepted manifest (or other JSON) body, in bytes.
    #[arg(long, default_value_t = Limits::default().max_manifest_bytes)]
    pub max_manifest_bytes: u64,
    /// Most parts a snapshot may have.
    #[arg(long, default_value_t = Limits::default().max_parts)]
    pub max_parts: usize,
    /// Accept NDJSON parts only, as hubs before the postcard part format did
    /// (agents ask `GET /v1/capabilities` and write NDJSON then).
    #[arg(long)]
    pub no_postcard_parts: bool,
    /// Threads a commit may verify voucher lines on (default: one per core, at
    /// most 8): its own plus spares, of which all commits together share N − 1;
    /// each holds one part in memory while it reads it.
    #[arg(long, default_value_t = default_verify_threads() as u16, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub verify_threads: u16,
    /// Refuse unsigned uploads from every agent (agents older than identity keys
    /// included); without it only agents whose key the hub knows must sign.
    #[arg(long)]
    pub require_agent_signatures: bool,
    /// Log format (logs go to stderr; filter with RUST_LOG).
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// Tenant subcommands.
#[derive(Debug, Subcommand)]
pub enum TenantCommand {
    /// Creates a tenant and prints its API key (shown only this once).
    Create {
        /// Tenant name: lower-case letters, digits, `-` and `_`.
        name: String,
        /// Data directory.
        #[arg(long, env = "LEDGERLINK_HUB_DATA")]
        data: PathBuf,
    },
    /// Lists tenants.
    List {
        /// Data directory.
        #[arg(long, env = "LEDGERLINK_HUB_DATA")]
        data: PathBuf,
    },
    /// Revokes a tenant's API key; its data stays.
    Revoke {
        /// Tenant name.
        name: String,
        /// Data directory.
        #[arg(long, env = "LEDGERLINK_HUB_DATA")]
        data: PathBuf,
    },
}

/// Export subcommands.
#[derive(Debug, Subcommand)]
pub enum ExportCommand {
    /// Writes a SAF-T Financial 1.30 file of a company's fiscal year (its current snapshot).
    #[command(name = "saf-t")]
    SafT(crate::saft::cli::SafTArgs),
}

/// Parses the command line, runs it, and turns errors into a message and exit code 1.
pub fn run() -> ExitCode {
    let cli = Cli::parse();
    match execute(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn execute(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::SupportToken(command) => crate::admin_cli::support_token(command),
        Command::Admin(args) => {
            if crate::admin_cli::admin(args)? {
                Ok(())
            } else {
                bail!("the command did not succeed (see above)")
            }
        }
        Command::Serve(args) => {
            init_logging(args.log_format);
            let config = ServeConfig {
                data: args.data,
                listen: args.listen,
                tls: args.tls_cert.zip(args.tls_key),
                limits: Limits {
                    max_part_bytes: args.max_part_bytes,
                    max_manifest_bytes: args.max_manifest_bytes,
                    max_parts: args.max_parts,
                    postcard_parts: !args.no_postcard_parts,
                    verify_threads: usize::from(args.verify_threads),
                    require_agent_signatures: args.require_agent_signatures,
                },
            };
            let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            runtime.block_on(serve(config))
        }
        Command::Tenant(TenantCommand::Create { name, data }) => {
            check_tenant_name(&name)?;
            let (meta, _) = open_storage(&data)?;
            let key = generate_key()?;
            match meta.create_tenant(&name, &hash_key(&key), &now()) {
                Err(StoreError::TenantExists(_)) => bail!("tenant `{name}` already exists"),
                other => other.context("cannot create the tenant")?,
            }
            let mut out = std::io::stdout().lock();
            writeln!(out, "{key}")?;
            out.flush()?;
            eprintln!("Tenant `{name}` created. The API key above is shown only once; store it now.");
            Ok(())
        }
        Command::Tenant(TenantCommand::List { data }) => {
            let (meta, _) = open_storage(&data)?;
            let mut out = std::io::stdout().lock();
            for t in meta.list_tenants()? {
                let status = match &t.revoked_at {
                    Some(at) => format!("revoked {at}"),
                    None => "active".to_owned(),
                };
                writeln!(out, "{}\t{}\tcreated {}", t.name, status, t.created_at)?;
            }
            Ok(())
        }
        Command::Export(ExportCommand::SafT(args)) => crate::saft::cli::run(args),
        Command::Tenant(TenantCommand::Revoke { name, data }) => {
            let (meta, _) = open_storage(&data)?;
            if !meta.revoke_tenant(&name, &now())? {
                bail!("there is no tenant `{name}`");
            }
            eprintln!("Tenant `{name}`'s API key is revoked; its data is kept.");
            Ok(())
        }
    }
}

fn check_tenant_name(name: &str) -> anyhow::Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if !ok {
        bail!("tenant name `{name}` is not allowed: use 1 to 64 lower-case letters, digits, `-` or `_`");
    }
    Ok(())
}

fn init_logging(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder =
        tracing_subscriber::fmt().with_env_filter(filter).with_ansi(ansi).with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn tenant_names() {
        assert!(check_tenant_name("acme-1_x").is_ok());
        assert!(check_tenant_name("Acme").is_err());
        assert!(check_tenant_name("").is_err());
        assert!(check_tenant_name("a b").is_err());
    }
}
