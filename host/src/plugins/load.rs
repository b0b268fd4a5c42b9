//! Loading a plugin library into this process.

use super::{check_api_version, LoadError, PluginSource, SourceError};
use abi_stable::library::{lib_header_from_path, LibraryError};
use ledgerlink_plugin_api::abi::PluginModuleRef;
use ledgerlink_plugin_api::sdk::Manifest;
use std::path::{Path, PathBuf};

/// A plugin library loaded into this process (libraries are never unloaded).
#[derive(Clone)]
pub struct LoadedPlugin {
    path: PathBuf,
    manifest: Manifest,
    module: PluginModuleRef,
}

impl std::fmt::Debug for LoadedPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedPlugin").field("path", &self.path).field("id", &self.manifest.id).finish()
    }
}

fn classify(error: LibraryError) -> LoadError {
    match error {
        LibraryError::OpenError { err, .. } => LoadError::NotALibrary { detail: err.to_string() },
        LibraryError::GetSymbolError { err, .. } => LoadError::MissingRootModule { detail: err.to_string() },
        LibraryError::IncompatibleVersionNumber { expected_version, actual_version, .. } => {
            LoadError::IncompatibleApi {
                plugin: actual_version.to_string(),
                host: expected_version.to_string(),
            }
        }
        LibraryError::ParseVersionError(e) => LoadError::InvalidManifest { detail: e.to_string() },
        LibraryError::AbiInstability(e) => LoadError::AbiMismatch { detail: e.to_string() },
        LibraryError::InvalidAbiHeader(h) => {
            LoadError::AbiMismatch { detail: format!("the library uses abi_stable's ABI header {h:?}") }
        }
        other => LoadError::InitFailed { detail: other.to_string() },
    }
}

impl LoadedPlugin {
    /// Loads a plugin library into this process, checking the plugin-api version and
    /// the ABI layout before calling any plugin code.
    ///
    /// Call this only for files vetted by [`super::probe`] (or inside the probe
    /// child): a damaged file can crash the process that loads it.
    pub fn load_vetted(path: &Path) -> Result<Self, LoadError> {
        let header = lib_header_from_path(path).map_err(classify)?;
        // Our caret rule first, so a mismatch names both versions in our words.
        check_api_version(header.version_strings().version.as_str())?;
        let module = header.init_root_module::<PluginModuleRef>().map_err(classify)?;
        let json = module.manifest_json()()
            .into_result()
            .map_err(|e| LoadError::InitFailed { detail: e.to_string() })?;
        let manifest: Manifest =
            serde_json::from_str(&json).map_err(|e| LoadError::InvalidManifest { detail: e.to_string() })?;
        validate_manifest(&manifest)?;
        Ok(Self { path: path.to_owned(), manifest, module })
    }

    /// The plugin's manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The library file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Opens a source with the given settings (a JSON object).
    pub fn open(&self, settings: &serde_json::Value) -> Result<PluginSource, SourceError> {
        PluginSource::open(self.module, &self.manifest.id, settings)
    }
}

/// Checks what the host relies on in a manifest.
fn validate_manifest(manifest: &Manifest) -> Result<(), LoadError> {
    let invalid = |detail: String| Err(LoadError::InvalidManifest { detail });
    let id_ok = !manifest.id.is_empty()
        && manifest.id.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if !id_ok {
        return invalid(format!(
            "id `{}` must be non-empty lower-case letters, digits, `-` or `_`",
            manifest.id
        ));
    }
    if semver::Version::parse(&manifest.version).is_err() {
        return invalid(format!("version `{}` is not a semantic version (like 1.2.3)", manifest.version));
    }
    if manifest.erp_system.trim().is_empty() {
        return invalid("erp_system is empty".into());
    }
    check_api_version(&manifest.api_version)
}
