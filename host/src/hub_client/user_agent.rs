//! The User-Agent every request carries: `Ledgerlink/<version> (<host>; <OS>; <user>; <ERP>)`.

/// Builds the User-Agent for a source of the given ERP system.
///
/// `service_user` overrides the OS user name (the configuration's `agent.service_user`).
pub fn user_agent(erp_system: &str, service_user: Option<&str>) -> String {
    let host = whoami::fallible::hostname().unwrap_or_else(|_| "unknown-host".into());
    let os = whoami::distro();
    let user = service_user.map(str::to_owned).unwrap_or_else(whoami::username);
    let clean = |s: &str| s.replace([';', '(', ')'], " ").trim().to_owned();
    format!(
        "Ledgerlink/{} ({}; {}; {}; {})",
        env!("CARGO_PKG_VERSION"),
        clean(&host),
        clean(&os),
        clean(&user),
        clean(erp_system)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn has_the_documented_shape() {
        let ua = user_agent("Visma Business", Some("svc-ledgerlink"));
        let prefix = format!("Ledgerlink/{} (", env!("CARGO_PKG_VERSION"));
        assert!(ua.starts_with(&prefix) && ua.ends_with("; svc-ledgerlink; Visma Business)"), "{ua}");
        assert_eq!(ua.matches("; ").count(), 3, "{ua}");
    }
}
