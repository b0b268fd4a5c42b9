//! The plugin-api compatibility rule: semver's caret rule on the plugin's api version.

use super::LoadError;
use semver::{Version, VersionReq};

/// The plugin-api version this host was built with.
pub const HOST_API_VERSION: &str = ledgerlink_plugin_api::API_VERSION;

/// Accepts a plugin built against `plugin_api` when `^plugin_api` matches the host's
/// version: same major (same minor below 1.0), and the host at least as new.
pub fn check_api_version(plugin_api: &str) -> Result<(), LoadError> {
    let incompatible =
        || LoadError::IncompatibleApi { plugin: plugin_api.to_owned(), host: HOST_API_VERSION.to_owned() };
    let plugin = Version::parse(plugin_api).map_err(|_| incompatible())?;
    let host = Version::parse(HOST_API_VERSION).expect("the host's own version is semver");
    let requirement = VersionReq::parse(&format!("^{plugin}")).map_err(|_| incompatible())?;
    if requirement.matches(&host) {
        Ok(())
    } else {
        Err(incompatible())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host() -> Version {
        Version::parse(HOST_API_VERSION).unwrap()
    }

    #[test]
    fn same_version_is_compatible() {
        assert!(check_api_version(HOST_API_VERSION).is_ok());
    }

    #[test]
    fn older_minor_of_the_same_major_is_compatible() {
        let h = host();
        if h.minor > 0 {
            assert!(check_api_version(&format!("{}.{}.0", h.major, h.minor - 1)).is_ok());
        }
        assert!(check_api_version(&format!("{}.0.0", h.major)).is_ok());
    }

    #[test]
    fn newer_minor_or_other_major_is_refused_naming_both_versions() {
        let h = host();
        for plugin in
            [format!("{}.{}.0", h.major, h.minor + 1), format!("{}.0.0", h.major + 1), "0.9.0".to_string()]
        {
            let err = check_api_version(&plugin).unwrap_err().to_string();
            assert!(err.contains(&plugin) && err.contains(HOST_API_VERSION), "{err}");
        }
    }

    #[test]
    fn garbage_version_is_refused() {
        assert!(check_api_version("one point oh").is_err());
    }
}
