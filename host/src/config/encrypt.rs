//! Which configuration values are secrets, opening the sealed ones at load, and
//! sealing the clear ones in the file (`ledgerlink config encrypt`).
//!
//! One rule decides what is a secret, on both sides: each tenant's `api_key`, a
//! `hub.proxy` URL with a password, and in a source's `settings` every string
//! under a key named like a secret ([`is_secret_key`], at any depth, inside
//! arrays too) or holding a `PWD=`/`Password=` attribute. Those are exactly the
//! values that output redacts, so a decrypted value can never be shown in clear.

use super::locate::FieldPath;
use super::sealed::{SealError, SecretKey, SEALED_PREFIX};
use super::validate::Issue;
use super::{holds_password_attribute, is_secret_key, Config, ConfigError, Secret};
use std::path::{Path, PathBuf};

/// Whether a settings string is a secret: under a secret-named key, or a connection string with a password.
fn is_secret_setting(under_secret_key: bool, text: &str) -> bool {
    under_secret_key || holds_password_attribute(text)
}

/// Whether a proxy URL carries a password.
fn proxy_has_password(proxy: &str) -> bool {
    url::Url::parse(proxy).is_ok_and(|u| u.password().is_some())
}

/// What to do about a value that cannot be opened.
fn resolution(error: &SealError) -> String {
    match error {
        SealError::KeyUnreadable { path, .. } => format!(
            "make the key file readable by the account the service runs as, and by it only \
             (`chown <service account> {0}; chmod 600 {0}`)",
            path.display()
        ),
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
    /// A clear value that `is_secret` says is a secret is noted.
    fn open(&mut self, value: &str, path: &FieldPath, is_secret: impl Fn(&str) -> bool) -> Option<String> {
        if !value.starts_with(SEALED_PREFIX) {
            if is_secret(value) && !value.trim().is_empty() {
                self.clear.push(path.to_string());
            }
            return None;
        }
        let key = self.key.get_or_insert_with(|| SecretKey::read(&self.path));
        let opened = match key {
            Ok(key) => key.open(value),
            Err(e) => Err(e.clone()),
        };
        let issue = match opened {
            Ok(clear) if is_secret(&clear) => return Some(clear),
            Ok(_) => Issue {
                path: path.clone(),
                message:
                    "an encrypted value in a setting that is not named like a secret: output would show it \
                          in clear"
                        .to_owned(),
                resolution:
                    "give the setting a name with password, secret, key, token or credential in it, or \
                             write the value in clear"
                        .to_owned(),
            },
            Err(e) => Issue {
                path: path.clone(),
                message: format!("cannot decrypt this secret: {e}"),
                resolution: resolution(&e),
            },
        };
        self.issues.push(issue);
        None
    }

    fn open_setting(&mut self, value: &mut toml::Value, path: &FieldPath, under_secret_key: bool) {
        match value {
            toml::Value::String(text) => {
                if let Some(clear) = self.open(text, path, |t| is_secret_setting(under_secret_key, t)) {
                    *text = clear;
                }
            }
            toml::Value::Table(table) => self.open_settings(table, path, under_secret_key),
            toml::Value::Array(items) => {
                for (i, item) in items.iter_mut().enumerate() {
                    self.open_setting(item, &path.index(i), under_secret_key);
                }
            }
            _ => {}
        }
    }

    fn open_settings(&mut self, table: &mut toml::Table, path: &FieldPath, under_secret_key: bool) {
        for (key, value) in table.iter_mut() {
            self.open_setting(value, &path.key(key), under_secret_key || is_secret_key(key));
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
        if let Some(clear) = opener.open(proxy, &root.key("hub").key("proxy"), proxy_has_password) {
            *proxy = clear;
        }
    }
    for (ti, tenant) in config.tenants.iter_mut().enumerate() {
        let tpath = root.key("tenants").index(ti);
        if let Some(clear) = opener.open(tenant.api_key.expose(), &tpath.key("api_key"), |_| true) {
            tenant.api_key = Secret::new(clear);
        }
        for (si, source) in tenant.sources.iter_mut().enumerate() {
            let spath = tpath.key("sources").index(si).key("settings");
            opener.open_settings(&mut source.settings, &spath, false);
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
    /// Things the admin should fix (ownership it could not keep).
    pub warnings: Vec<String>,
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

/// Seals every secret written in clear in the configuration file at `path` (a
/// symbolic link is followed: its target is rewritten), keeping its layout and
/// comments, with the key file (created when there is none, owned as its
/// directory). The file is replaced atomically and loads to the same values.
pub fn encrypt_file(path: &Path) -> Result<Encrypted, EncryptError> {
    let read_error = |source| ConfigError::Read { path: path.to_owned(), source };
    let path = &std::fs::canonicalize(path).map_err(read_error)?;
    let text = std::fs::read_to_string(path).map_err(read_error)?;
    let before = super::parse(&text, path)?;
    let key_file = before.agent.secret_key_path();
    let (key, key_created) =
        SecretKey::read_or_create(&key_file).map_err(|error| EncryptError::Key { error })?;
    // `parse` accepted it, so it is TOML.
    let mut doc: toml_edit::DocumentMut = text.parse().expect("a parsed configuration is TOML");
    let mut sealer = Sealer { key: &key, sealed: Vec::new() };
    let root = FieldPath::default();
    if let Some(proxy) = doc.get_mut("hub").and_then(|h| h.get_mut("proxy")) {
        sealer.item(proxy, &root.key("hub").key("proxy"), &|t| proxy_has_password(t));
    }
    if let Some(tenants) = doc.get_mut("tenants") {
        for_each_table(tenants, &root.key("tenants"), &mut |tenant, tpath| {
            if let Some(api_key) = tenant.get_mut("api_key") {
                sealer.item(api_key, &tpath.key("api_key"), &|_| true);
            }
            if let Some(sources) = tenant.get_mut("sources") {
                for_each_table(sources, &tpath.key("sources"), &mut |source, spath| {
                    if let Some(settings) = source.get_mut("settings") {
                        sealer.setting(settings, &spath.key("settings"), false);
                    }
                });
            }
        });
    }
    let sealed = sealer.sealed;
    let mut warnings = Vec::new();
    if !sealed.is_empty() {
        let write = |bytes: &[u8], warnings: &mut Vec<String>| {
            replace_file(path, bytes, warnings)
                .map_err(|source| EncryptError::Write { path: path.to_owned(), source })
        };
        write(doc.to_string().as_bytes(), &mut warnings)?;
        // The file must load to the very values it held; otherwise it goes back as it was.
        let reloaded = super::load(path);
        if !reloaded.as_ref().is_ok_and(|after| same_secrets(&before, after)) {
            write(text.as_bytes(), &mut Vec::new())?;
            return Err(EncryptError::Unchanged);
        }
    }
    if key_created {
        warnings.extend(crate::config::sealed::ownership_warning(&key_file));
    }
    Ok(Encrypted { sealed, key_file, key_id: key.id(), key_created, warnings })
}

/// Calls `f` with every table of an array of tables or an array of inline tables.
fn for_each_table(
    item: &mut toml_edit::Item,
    path: &FieldPath,
    f: &mut dyn FnMut(&mut dyn toml_edit::TableLike, &FieldPath),
) {
    if let Some(tables) = item.as_array_of_tables_mut() {
        for (i, table) in tables.iter_mut().enumerate() {
            f(table, &path.index(i));
        }
    } else if let Some(values) = item.as_array_mut() {
        for (i, value) in values.iter_mut().enumerate() {
            if let Some(table) = value.as_inline_table_mut() {
                f(table, &path.index(i));
            }
        }
    }
}

/// Seals clear secrets in a `toml_edit` document, noting their paths.
struct Sealer<'a> {
    key: &'a SecretKey,
    sealed: Vec<String>,
}

impl Sealer<'_> {
    /// Seals `item` when it is a clear, non-empty string that `is_secret` calls a secret.
    fn item(&mut self, item: &mut toml_edit::Item, path: &FieldPath, is_secret: &dyn Fn(&str) -> bool) {
        if let Some(value) = item.as_value_mut() {
            self.value(value, path, is_secret);
        }
    }

    fn value(&mut self, value: &mut toml_edit::Value, path: &FieldPath, is_secret: &dyn Fn(&str) -> bool) {
        let Some(clear) = value.as_str() else { return };
        if clear.starts_with(SEALED_PREFIX) || clear.trim().is_empty() || !is_secret(clear) {
            return;
        }
        let decor = value.decor().clone();
        *value = toml_edit::Value::from(self.key.seal(clear));
        *value.decor_mut() = decor;
        self.sealed.push(path.to_string());
    }

    /// A settings item at any depth: tables, inline tables, arrays, arrays of tables.
    fn setting(&mut self, item: &mut toml_edit::Item, path: &FieldPath, under_secret_key: bool) {
        match item {
            toml_edit::Item::Value(value) => self.setting_value(value, path, under_secret_key),
            toml_edit::Item::Table(table) => self.setting_table(table, path, under_secret_key),
            toml_edit::Item::ArrayOfTables(tables) => {
                for (i, table) in tables.iter_mut().enumerate() {
                    self.setting_table(table, &path.index(i), under_secret_key);
                }
            }
            toml_edit::Item::None => {}
        }
    }

    fn setting_table(
        &mut self,
        table: &mut dyn toml_edit::TableLike,
        path: &FieldPath,
        under_secret_key: bool,
    ) {
        for (name, item) in table.iter_mut() {
            let secret = under_secret_key || is_secret_key(&name);
            self.setting(item, &path.key(&name), secret);
        }
    }

    fn setting_value(&mut self, value: &mut toml_edit::Value, path: &FieldPath, under_secret_key: bool) {
        match value {
            toml_edit::Value::InlineTable(table) => self.setting_table(table, path, under_secret_key),
            toml_edit::Value::Array(items) => {
                for (i, item) in items.iter_mut().enumerate() {
                    self.setting_value(item, &path.index(i), under_secret_key);
                }
            }
            other => self.value(other, path, &|t| is_secret_setting(under_secret_key, t)),
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

/// Replaces `path` with `bytes` atomically: a temporary file beside it, private from
/// its creation, then given the file's mode and owner, synced, and renamed over it.
fn replace_file(path: &Path, bytes: &[u8], warnings: &mut Vec<String>) -> std::io::Result<()> {
    use std::io::Write;
    let metadata = std::fs::metadata(path)?;
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let (tmp, file) = crate::state::private_temp_beside(path)?;
    let written = (|| {
        let mut file = file;
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            let mine = std::fs::metadata(&tmp)?;
            if (mine.uid(), mine.gid()) != (metadata.uid(), metadata.gid())
                && std::os::unix::fs::fchown(&file, Some(metadata.uid()), Some(metadata.gid())).is_err()
            {
                warnings.push(format!(
                    "{} now belongs to this user, not to uid {} as before; give it back to the account the \
                     service runs as (`chown`), or it may not be able to read it",
                    path.display(),
                    metadata.uid()
                ));
            }
        }
        file.set_permissions(metadata.permissions())?;
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
