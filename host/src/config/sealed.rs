//! Secrets encrypted at rest in the configuration file (decision 0028).
//!
//! A secret value is written as `enc:v1:<key id>:<base64url(nonce ‖ ciphertext)>`,
//! XChaCha20-Poly1305 under a 256-bit key kept in its own file (`agent.secret_key_file`,
//! default `<data_dir>/secret.key`, mode 0600). A copy of the configuration (a
//! ticket, a backup of /etc, a screen share) then carries no password or key; the
//! key file stays with the installation's data directory.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// What every sealed value starts with.
pub const SEALED_PREFIX: &str = "enc:";

const VERSION_1: &str = "enc:v1:";
const NONCE_LEN: usize = 24;
/// Bound into every value: a ciphertext from another context does not open here.
const ASSOCIATED_DATA: &[u8] = b"ledgerlink configuration secret v1";

/// The key that seals and opens the configuration's secrets.
pub struct SecretKey {
    bytes: [u8; 32],
    /// Where it was read from (or written to).
    pub path: PathBuf,
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretKey({}, id {})", self.path.display(), self.id())
    }
}

/// Why a key file or a sealed value cannot be used; the text says what to do.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum SealError {
    /// The key file is not there.
    #[error(
        "the value is encrypted, but the key file {} does not exist",
        path.display()
    )]
    KeyMissing {
        /// The key file.
        path: PathBuf,
    },
    /// This account may not read the key file.
    #[error("the key file {} cannot be read by this account: {detail}", path.display())]
    KeyUnreadable {
        /// The key file.
        path: PathBuf,
        /// The I/O error.
        detail: String,
    },
    /// The key file cannot be read, or is not a key.
    #[error("the key file {}: {detail}", path.display())]
    KeyUnusable {
        /// The key file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// The value was sealed with another key.
    #[error(
        "the value was encrypted with key {sealed_with}, but {} holds key {key_id}: the configuration \
         comes from another installation, or the key file was replaced",
        path.display()
    )]
    OtherKey {
        /// The id in the value.
        sealed_with: String,
        /// The id of the key file.
        key_id: String,
        /// The key file.
        path: PathBuf,
    },
    /// The value is damaged (edited, cut off) or not one this version writes.
    #[error("the encrypted value is damaged or incomplete ({0})")]
    Damaged(String),
}

impl SecretKey {
    /// Reads the key at `path`.
    pub fn read(path: &Path) -> Result<SecretKey, SealError> {
        match crate::key_file::read(path) {
            Ok(Some(bytes)) => Ok(SecretKey { bytes, path: path.to_owned() }),
            Ok(None) => Err(SealError::KeyMissing { path: path.to_owned() }),
            Err(e) => Err(key_error(path, e)),
        }
    }

    /// The key at `path`, created when there is none ([`crate::key_file`]): mode
    /// 0600, owned as its directory, never partial.
    pub fn read_or_create(path: &Path) -> Result<(SecretKey, bool), SealError> {
        let comment = "Ledgerlink key for the secrets in the configuration file. Keep it with this\n\
                       installation's data directory and readable by the service account only.";
        crate::key_file::read_or_create(path, comment)
            .map(|(bytes, made)| (SecretKey { bytes, path: path.to_owned() }, made))
            .map_err(|e| key_error(path, e))
    }

    /// A short id of the key (8 hex digits of its SHA-256), written into every value it seals.
    pub fn id(&self) -> String {
        crate::state::hex(&Sha256::digest(self.bytes)[..4])
    }

    /// `clear` sealed: `enc:v1:<key id>:<base64url>`.
    pub fn seal(&self, clear: &str) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).expect("the OS random number generator works");
        let cipher = XChaCha20Poly1305::new(Key::from_slice(&self.bytes));
        let sealed = cipher
            .encrypt(XNonce::from_slice(&nonce), Payload { msg: clear.as_bytes(), aad: ASSOCIATED_DATA })
            .expect("XChaCha20-Poly1305 encrypts any length that fits in memory");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        format!("{VERSION_1}{}:{}", self.id(), URL_SAFE_NO_PAD.encode(out))
    }

    /// The clear value of a sealed one.
    pub fn open(&self, sealed: &str) -> Result<String, SealError> {
        let rest = sealed.strip_prefix(VERSION_1).ok_or_else(|| {
            SealError::Damaged("it does not start with enc:v1:, the only format this version reads".into())
        })?;
        let (key_id, data) =
            rest.split_once(':').ok_or_else(|| SealError::Damaged("the key id is missing".into()))?;
        if key_id != self.id() {
            return Err(SealError::OtherKey {
                sealed_with: key_id.to_owned(),
                key_id: self.id(),
                path: self.path.clone(),
            });
        }
        let bytes =
            URL_SAFE_NO_PAD.decode(data).map_err(|e| SealError::Damaged(format!("not base64: {e}")))?;
        if bytes.len() < NONCE_LEN + 16 {
            return Err(SealError::Damaged("too short".into()));
        }
        let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
        let cipher = XChaCha20Poly1305::new(Key::from_slice(&self.bytes));
        let clear = cipher
            .decrypt(XNonce::from_slice(nonce), Payload { msg: ciphertext, aad: ASSOCIATED_DATA })
            .map_err(|_| SealError::Damaged("it does not authenticate".into()))?;
        String::from_utf8(clear).map_err(|_| SealError::Damaged("not UTF-8 inside".into()))
    }
}

fn key_error(path: &Path, error: crate::key_file::KeyFileError) -> SealError {
    let (path, detail) = (path.to_owned(), error.to_string());
    match error {
        crate::key_file::KeyFileError::Unreadable(_) => SealError::KeyUnreadable { path, detail },
        _ => SealError::KeyUnusable { path, detail },
    }
}

/// A warning when the key file at `path` is not owned like its directory (the
/// service account's data directory), so the service may not be able to read it.
pub fn ownership_warning(path: &Path) -> Option<String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let key = std::fs::metadata(path).ok()?;
        let dir = std::fs::metadata(path.parent()?).ok()?;
        (key.uid() != dir.uid()).then(|| {
            format!(
                "the key file {} belongs to uid {}, its directory to uid {}: the service must be able to read \
                 it. Resolution: chown it to the account the service runs as",
                path.display(),
                key.uid(),
                dir.uid()
            )
        })
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        None
    }
}

/// A warning when the private key file at `path` (which `does` something, e.g.
/// "opens the configuration's secrets") exists and other accounts may read or change it.
pub fn exposure_warning(path: &Path, does: &str) -> Option<String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o777;
        (mode & 0o077 != 0).then(|| {
            format!(
                "the key file {} {does} and other accounts can access it (mode {mode:04o}). Resolution: \
                 chmod 600 {0}, owned by the service account",
                path.display()
            )
        })
    }
    #[cfg(not(unix))]
    {
        let _ = (path, does);
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key_in(dir: &Path) -> SecretKey {
        SecretKey::read_or_create(&dir.join("secret.key")).unwrap().0
    }

    #[test]
    fn a_sealed_value_opens_with_its_key_only_and_never_shows_the_clear_text() {
        let dir = tempfile::tempdir().unwrap();
        let key = key_in(dir.path());
        let sealed = key.seal("Reader-Secret-42");
        assert!(sealed.starts_with(&format!("enc:v1:{}:", key.id())), "{sealed}");
        assert!(!sealed.contains("Reader-Secret-42"));
        assert_ne!(key.seal("Reader-Secret-42"), sealed, "a fresh nonce each time");
        assert_eq!(key.open(&sealed).unwrap(), "Reader-Secret-42");
        assert_eq!(key.open(&key.seal("")).unwrap(), "");

        let other_dir = tempfile::tempdir().unwrap();
        let other = key_in(other_dir.path());
        assert!(matches!(other.open(&sealed), Err(SealError::OtherKey { .. })));
    }

    #[test]
    fn a_damaged_value_is_refused_not_misread() {
        let dir = tempfile::tempdir().unwrap();
        let key = key_in(dir.path());
        let sealed = key.seal("llk_0123456789");
        let mut flipped = sealed.clone().into_bytes();
        let last = flipped.len() - 3;
        flipped[last] = if flipped[last] == b'A' { b'B' } else { b'A' };
        let flipped = String::from_utf8(flipped).unwrap();
        for bad in [&flipped, &sealed[..sealed.len() - 10].to_owned(), &format!("enc:v9:{}", &sealed[7..])] {
            assert!(matches!(key.open(bad), Err(SealError::Damaged(_))), "{bad}");
        }
    }

    #[test]
    fn the_key_file_is_created_once_and_its_problems_are_told_apart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data").join("secret.key");
        let (created, new) = SecretKey::read_or_create(&path).unwrap();
        assert!(new);
        let (again, new) = SecretKey::read_or_create(&path).unwrap();
        assert!(!new);
        assert_eq!(created.id(), again.id());
        std::fs::write(&path, "not a key\n").unwrap();
        assert!(matches!(SecretKey::read(&path), Err(SealError::KeyUnusable { .. })));
        assert!(matches!(SecretKey::read(&dir.path().join("nothing")), Err(SealError::KeyMissing { .. })));
    }
}
