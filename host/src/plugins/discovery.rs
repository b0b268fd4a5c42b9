//! Finding plugin files in plugin directories.

use std::path::{Path, PathBuf};

/// True for file names with a shared-library extension of any platform.
pub fn is_plugin_file(path: &Path) -> bool {
    matches!(path.extension().and_then(|e| e.to_str()), Some("so" | "dll" | "dylib"))
}

/// The plugin files directly inside `dir`, sorted by name; empty when `dir` does not exist.
pub fn discover(dir: &Path) -> Vec<PathBuf> {
    let Ok(read) = std::fs::read_dir(dir) else {
        tracing::warn!(dir = %dir.display(), "Plugin directory cannot be read; no plugins from it.");
        return Vec::new();
    };
    let mut files: Vec<PathBuf> =
        read.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| p.is_file() && is_plugin_file(p)).collect();
    files.sort();
    files
}
