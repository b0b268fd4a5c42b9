//! `ledgerlink-hub export saf-t`: the SAF-T 1.30 export from the command line.

use super::mapping::Mapping;
use super::{prepare, ExportOptions};
use crate::server::open_storage;
use crate::storage::{CompanyKey, MetadataStore, Tenant};
use anyhow::{bail, Context};
use std::io::Write;
use std::path::PathBuf;

/// Arguments of `export saf-t`.
#[derive(Debug, clap::Args)]
pub struct SafTArgs {
    /// Tenant name.
    #[arg(long)]
    pub tenant: String,
    /// Company id (as delivered by its source).
    #[arg(long)]
    pub company: String,
    /// Fiscal year.
    #[arg(long)]
    pub year: i32,
    /// Source id; needed when several sources deliver the same company id.
    #[arg(long)]
    pub source: Option<String>,
    /// Output file; standard output when absent.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Mapping file: lines `account;<id>;<GroupingCategory>;<GroupingCode>` and `tax;<code>;<StandardTaxCode>`.
    #[arg(long)]
    pub mapping: Option<PathBuf>,
    /// Contact person in the header, "First Last" (mandatory in SAF-T).
    #[arg(long, default_value = "Ikke oppgitt")]
    pub contact_name: String,
    /// Contact telephone in the header (mandatory in SAF-T).
    #[arg(long, default_value = "-")]
    pub contact_phone: String,
    /// Data directory.
    #[arg(long, env = "LEDGERLINK_HUB_DATA")]
    pub data: PathBuf,
}

/// The tenant called `name`, read from the hub database.
fn tenant_by_name(data: &std::path::Path, name: &str) -> anyhow::Result<Tenant> {
    let conn = rusqlite::Connection::open_with_flags(
        data.join("hub.sqlite3"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .with_context(|| format!("cannot open the hub database in {}", data.display()))?;
    let found = conn.query_row("SELECT id, name FROM tenants WHERE name = ?1", [name], |r| {
        Ok(Tenant { id: r.get(0)?, name: r.get(1)? })
    });
    match found {
        Ok(t) => Ok(t),
        Err(rusqlite::Error::QueryReturnedNoRows) => {
            bail!("there is no tenant `{name}`; `ledgerlink-hub tenant list` shows them")
        }
        Err(e) => Err(e).context("cannot read tenants"),
    }
}

/// Runs `export saf-t`.
pub fn run(args: SafTArgs) -> anyhow::Result<()> {
    let (meta, blobs) = open_storage(&args.data)?;
    let tenant = tenant_by_name(&args.data, &args.tenant)?;
    let sources = meta.company_sources(&tenant, &args.company)?;
    let source = match (&args.source, sources.as_slice()) {
        (Some(s), _) if sources.contains(s) => s.clone(),
        (Some(s), _) => bail!("company `{}` has no committed data from source `{s}`", args.company),
        (None, []) => bail!("company `{}` has no committed data for tenant `{}`", args.company, args.tenant),
        (None, [only]) => only.clone(),
        (None, several) => {
            bail!(
                "company `{}` comes from several sources ({}); pass --source",
                args.company,
                several.join(", ")
            )
        }
    };
    let mapping = match &args.mapping {
        Some(path) => Mapping::with_file(path)?,
        None => Mapping::official(),
    };
    let (first, last) = match args.contact_name.trim().split_once(' ') {
        Some((f, l)) => (f.to_owned(), l.trim().to_owned()),
        None => (args.contact_name.trim().to_owned(), "-".to_owned()),
    };
    let options = ExportOptions {
        mapping,
        contact_first_name: first,
        contact_last_name: last,
        contact_telephone: args.contact_phone.clone(),
        ..ExportOptions::default()
    };
    let key = CompanyKey { source_id: source, company_id: args.company.clone() };
    let prepared = prepare(&meta, &blobs, &tenant, &key, args.year, options)?;
    let entries = prepared.entries();
    match &args.out {
        Some(path) => {
            // Write next to the target and rename, so a failed export never leaves half a file.
            let tmp = path.with_extension("xml.partial");
            let file =
                std::fs::File::create(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
            prepared.write(file)?;
            std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
            eprintln!("Wrote {} ({entries} transactions).", path.display());
        }
        None => {
            let stdout = std::io::stdout().lock();
            prepared.write(stdout)?;
            std::io::stdout().flush()?;
        }
    }
    Ok(())
}
