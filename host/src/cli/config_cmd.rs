//! `ledgerlink config validate`: check the configuration file and say which line is wrong.

use crate::config;
use crate::exit::Exit;
use crate::jobs::Agent;
use std::path::Path;

/// Loads and validates the configuration, then checks it against the installed
/// plugins (each source's plugin is there, its settings fit the plugin's
/// schema); prints a summary or every problem.
///
/// Exit code 0 when the file is valid, 3 ([`Exit::Config`]) when it cannot be read or is invalid.
pub(super) fn validate(cli_path: Option<&Path>, probe_exe: &Path) -> Exit {
    let path = config::resolve_path(cli_path);
    let checked = config::load(&path).and_then(|cfg| {
        let agent = Agent::new(cfg, probe_exe.to_owned());
        agent.check_plugins(&path).map(|()| agent.config)
    });
    match checked {
        Ok(cfg) => {
            let warnings =
                [config::exposure_warning(&cfg, &path), config::clear_secrets_warning(&cfg, &path)];
            for warning in warnings.into_iter().flatten() {
                eprintln!("warning: {warning}");
            }
            let tenants = cfg.tenants.len();
            let sources = cfg.sources().count();
            outln!(
                "configuration OK: {tenants} {}, {sources} {} ({})",
                plural(tenants, "tenant", "tenants"),
                plural(sources, "source", "sources"),
                path.display()
            );
            Exit::Success
        }
        Err(error) => {
            eprintln!("{error}");
            let n = error.problems().len();
            if n > 1 {
                eprintln!("{n} problems in the configuration.");
            }
            Exit::Config
        }
    }
}

/// Encrypts the secrets written in clear in the configuration file; says which, and
/// where the key is. Exit code 0 when done, 3 ([`Exit::Config`]) when it could not be.
pub(super) fn encrypt(cli_path: Option<&Path>) -> Exit {
    let path = config::resolve_path(cli_path);
    match config::encrypt_file(&path) {
        Ok(done) => {
            if done.key_created {
                eprintln!("Created the key file {} (key {}).", done.key_file.display(), done.key_id);
            }
            for warning in &done.warnings {
                eprintln!("warning: {warning}");
            }
            if done.sealed.is_empty() {
                outln!(
                    "Nothing to encrypt: no secret in {} is in clear (key {}, {}).",
                    path.display(),
                    done.key_id,
                    done.key_file.display()
                );
            } else {
                outln!(
                    "Encrypted {} {} in {}: {}.\nKey {} in {}: keep it with the data directory (back them up \
                     together); without it the configuration's secrets cannot be read, and the configuration \
                     file alone reveals none of them.",
                    done.sealed.len(),
                    plural(done.sealed.len(), "secret", "secrets"),
                    path.display(),
                    done.sealed.join(", "),
                    done.key_id,
                    done.key_file.display()
                );
            }
            Exit::Success
        }
        Err(error) => {
            eprintln!("{error}");
            Exit::Config
        }
    }
}

fn plural<'a>(n: usize, one: &'a str, many: &'a str) -> &'a str {
    if n == 1 {
        one
    } else {
        many
    }
}
