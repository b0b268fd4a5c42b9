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
            if let Some(warning) = config::exposure_warning(&path) {
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

fn plural<'a>(n: usize, one: &'a str, many: &'a str) -> &'a str {
    if n == 1 {
        one
    } else {
        many
    }
}
