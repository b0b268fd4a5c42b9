//! Which configuration values are secrets, opening the sealed ones at load, and
//! sealing the clear ones in the file (`ledgerlink config encrypt`).
//!
//! Secrets are each tenant's `api_key`, a `hub.proxy` URL with a password, and every
//! plugin setting named like a secret ([`is_secret_key`]). Any plugin setting whose
//! string starts with `enc:` is opened, whatever its name.

use super::locate::FieldPath;
use super::sealed::{SealError, SecretKey, SEALED_PREFIX};
use super::validate::Issue;
use super::{is_secret_key, Config, ConfigError, Secret};
use std::path::{Path, PathBuf};

/// What to do about a value that cannot be opened.
fn resolution(error: &SealError) -> String {
    match error {
        SealError::KeyMissing { .. } | SealError::KeyUnusable { .. } | SealError::OtherKey { .. } => {
            "restore the key file of the installation that encrypted this configuration (`agent.secret_key_file`, \
             default <data_dir>/secret.key), or write the value in clear and run `ledgerlink config encrypt`"
                .to_owned()
        }
        SealError::Damaged(_) => "write the value in clear and run `ledgerlink config encrypt`".to_owned(),
    }
}

/// Opens sealed values in place, with the key read at most once.
struct Opener {
    path: PathBuf,
    key: Option<Result<SecretKey, SealError>>,
    issues: Vec<Issue>,
    clear: Vec<String>,
}

impl Opener {
    /// `value` opened when it is sealed; `None` (and an issue) when it cannot be.
    /// A clear value named like a secret is noted.
    fn open(&mut self, value: &str, path: &FieldPath, secret: bool) -> Option<String> {
        if !value.starts_with(SEALED_PREFIX) {
            if secret && !value.trim().is_empty() {
                self.clear.push(path.to_string());
            }
            return None;
        }
        let key = self.key.get_or_insert_with(|| SecretKey::read(&self.path));
        let opened = match key {
            Ok(key) => key.open(value),
            Err(e) => Err(e.clone()),
        };
        match opened {
            Ok(clear) => Some(clear),
            Err(e) => {
                self.issues.push(Issue {
                    path: path.clone(),
                    message: format!("cannot decrypt this secret: {e}"),
                    resolution: resolution(&e),
                });
                None
            }
        }
    }

    fn open_setting(&mut self, value: &mut toml::Value, path: &FieldPath, secret: bool) {
        match value {
            toml::Value::String(text) => {
                if let Some(clear) = self.open(text, path, secret) {
                    *text = clear;
                }
            }
            toml::Value::Table(table) => self.open_settings(table, path),
            toml::Value::Array(items) => {
                for (i, item) in items.iter_mut().enumerate() {
                    self.open_setting(item, &path.index(i), secret);
                }
            }
            _ => {}
        }
    }

    fn open_settings(&mut self, table: &mut toml::Table, path: &FieldPath) {
        for (key, value) in table.iter_mut() {
            self.open_setting(value, &path.key(key), is_secret_key(key));
        }
    }
}

/// Opens every sealed value of `config` with its key file; the problems, placed by
/// path. Records in `config.clear_secrets` the secrets still written in clear.
pub(crate) fn open_sealed(config: &mut Config) -> Vec<Issue> {
    let mut opener =
        Opener { path: config.agent.secret_key_path(), key: None, issues: Vec::new(), clear: Vec::new() };
    let root = FieldPath::default();
    if let Some(proxy) = config.hub.proxy.as_mut() {
        let secret = url::Url::parse(proxy).is_ok_and(|u| u.password().is_some());
        if let Some(clear) = opener.open(proxy, &root.key("hub").key("proxy"), secret) {
            *proxy = clear;
        }
    }
    for (ti, tenant) in config.tenants.iter_mut().enumerate() {
        let tpath = root.key("tenants").index(ti);
        if let Some(clear) = opener.open(tenant.api_key.expose(), &tpath.key("api_key"), true) {
            tenant.api_key = Secret::new(clear);
        }
        for (si, source) in tenant.sources.iter_mut().enumerate() {
            opener.open_settings(&mut source.settings, &tpath.key("sources").index(si).key("settings"));
        }
    }
    config.clear_secrets = opener.clear;
    opener.issues
}

/// What `ledgerlink config encrypt` did.
#[derive(Debug)]
pub struct Encrypted {
    /// The field paths it sealed, in file order.
    pub sealed: Vec<String>,
    /// The key file.
    pub key_file: PathBuf,
    /// The key's id.
    pub key_id: String,
    /// True when the key file was created now.
    pub key_created: bool,
}

/// Why `config encrypt` could not finish; the file is then unchanged.
#[derive(Debug, thiserror::Error)]
pub enum EncryptError {
    /// The configuration does not load (its problems say why).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The key file cannot be read or created.
    #[error("{error}. Resolution: {}", resolution(.error))]
    Key {
        /// What is wrong with the key file.
        error: SealError,
    },
    /// The encrypted file did not load to the same values, so the original was put back.
    #[error(
        "the encrypted configuration did not read back to the same values, so the file was left as it was. \
         Resolution: report this as a bug of `ledgerlink config encrypt`"
    )]
    Unchanged,
    /// The file cannot be written.
    #[error("cannot write {}: {source}. Resolution: run as the file's owner (or root)", path.display())]
    Write {
        /// The configuration file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// Seals every secret written in clear in the configuration file at `path`, keeping
/// its layout and comments, with the key file (created when there is none). The file
/// is replaced atomically and loads to the same values afterwards.
pub fn encrypt_file(path: &Path) -> Result<Encrypted, EncryptError> {
    let before = super::load(path)?;
    let key_file = before.agent.secret_key_path();
    let (key, key_created) =
        SecretKey::read_or_create(&key_file).map_err(|error| EncryptError::Key { error })?;
    let text = std::fs::read_to_string(path)
        .map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
    // `load` parsed it, so it is TOML.
    let mut doc: toml_edit::DocumentMut = text.parse().expect("a loaded configuration is TOML");
    let mut sealed = Vec::new();
    let root = FieldPath::default();
    if let Some(proxy) = doc.get_mut("hub").and_then(|h| h.get_mut("proxy")).and_then(|p| p.as_value_mut()) {
        let has_password =
            proxy.as_str().and_then(|p| url::Url::parse(p).ok()).is_some_and(|u| u.password().is_some());
        if has_password && seal_value(proxy, &key) {
            sealed.push(root.key("hub").key("proxy").to_string());
        }
    }
    if let Some(tenants) = doc.get_mut("tenants").and_then(|t| t.as_array_of_tables_mut()) {
        for (ti, tenant) in tenants.iter_mut().enumerate() {
            let tpath = root.key("tenants").index(ti);
            if let Some(value) = tenant.get_mut("api_key").and_then(|k| k.as_value_mut()) {
                if seal_value(value, &key) {
                    sealed.push(tpath.key("api_key").to_string());
                }
            }
            let Some(sources) = tenant.get_mut("sources").and_then(|s| s.as_array_of_tables_mut()) else {
                continue;
            };
            for (si, source) in sources.iter_mut().enumerate() {
                let spath = tpath.key("sources").index(si).key("settings");
                if let Some(settings) = source.get_mut("settings").and_then(|s| s.as_table_like_mut()) {
                    seal_settings(settings, &spath, &key, &mut sealed);
                }
            }
        }
    }
    if !sealed.is_empty() {
        let write = |bytes: &[u8]| {
            replace_file(path, bytes).map_err(|source| EncryptError::Write { path: path.to_owned(), source })
        };
        write(doc.to_string().as_bytes())?;
        // The file must load to the very values it held; otherwise it goes back as it was.
        let reloaded = super::load(path);
        if !reloaded.as_ref().is_ok_and(|after| same_secrets(&before, after)) {
            write(text.as_bytes())?;
            return Err(EncryptError::Unchanged);
        }
    }
    Ok(Encrypted { sealed, key_file, key_id: key.id(), key_created })
}

/// Seals a clear, non-empty string value in place, keeping its decoration; true when it did.
fn seal_value(value: &mut toml_edit::Value, key: &SecretKey) -> bool {
    let Some(clear) = value.as_str().filter(|v| !v.starts_with(SEALED_PREFIX) && !v.trim().is_empty()) else {
        return false;
    };
    let decor = value.decor().clone();
    *value = toml_edit::Value::from(key.seal(clear));
    *value.decor_mut() = decor;
    true
}

fn seal_settings(
    table: &mut dyn toml_edit::TableLike,
    path: &FieldPath,
    key: &SecretKey,
    sealed: &mut Vec<String>,
) {
    for (name, item) in table.iter_mut() {
        let name = name.get().to_owned();
        let item_path = path.key(&name);
        if let Some(inner) = item.as_table_like_mut() {
            seal_settings(inner, &item_path, key, sealed);
        } else if let Some(value) = item.as_value_mut() {
            if is_secret_key(&name) && seal_value(value, key) {
                sealed.push(item_path.to_string());
            }
        }
    }
}

fn same_secrets(a: &Config, b: &Config) -> bool {
    a.hub.proxy == b.hub.proxy
        && a.tenants.len() == b.tenants.len()
        && a.tenants.iter().zip(&b.tenants).all(|(x, y)| {
            x.api_key == y.api_key
                && x.sources.iter().map(|s| &s.settings).eq(y.sources.iter().map(|s| &s.settings))
        })
}

/// Replaces `path` with `bytes` atomically: a temporary file beside it with the
/// same permissions (and owner, when allowed), synced, renamed over it.
fn replace_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let metadata = std::fs::metadata(path)?;
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.encrypt-{}", std::process::id()));
    let written = (|| {
        let mut file = std::fs::OpenOptions::new().write(true).create_new(true).open(&tmp)?;
        file.set_permissions(metadata.permissions())?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            // Only root may give the file to another owner; the mode is kept either way.
            let _ = std::os::unix::fs::fchown(&file, Some(metadata.uid()), Some(metadata.gid()));
        }
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)?;
        if let Ok(dir) = std::fs::File::open(dir) {
            let _ = dir.sync_all();
        }
        Ok(())
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}
