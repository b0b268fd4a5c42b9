//! 32-byte keys kept in private files: the configuration's secret key
//! (`<data_dir>/secret.key`, decision 0028) and the agent's identity key
//! (`<data_dir>/agent-key`, decision 0029). A file holds `#` comment lines and
//! one line of 64 hex digits; it is mode 0600, owned like its directory, and
//! written whole before it appears ([`crate::state::create_private_file`]).

use std::path::Path;

/// Why a key file cannot be used; the caller says what to do about it.
#[derive(Debug)]
pub enum KeyFileError {
    /// This account may not read it.
    Unreadable(std::io::Error),
    /// It cannot be read or created for another reason.
    Io(std::io::Error),
    /// It holds no line of 64 hex digits.
    Damaged,
}

impl std::fmt::Display for KeyFileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyFileError::Unreadable(e) | KeyFileError::Io(e) => write!(f, "{e}"),
            KeyFileError::Damaged => f.write_str("it is not a Ledgerlink key (64 hex digits)"),
        }
    }
}

/// The key in the file at `path`; `None` when there is no file.
pub fn read(path: &Path) -> Result<Option<[u8; 32]>, KeyFileError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            return Err(KeyFileError::Unreadable(e))
        }
        Err(e) => return Err(KeyFileError::Io(e)),
    };
    let hex = text.lines().map(str::trim).find(|l| !l.is_empty() && !l.starts_with('#')).unwrap_or("");
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(KeyFileError::Damaged);
    }
    let mut key = [0u8; 32];
    for (i, byte) in key.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|_| KeyFileError::Damaged)?;
    }
    Ok(Some(key))
}

/// The key at `path`, made (random, with `comment` above it) when there is none;
/// true when it was made now. Two processes at once end with the same key.
pub fn read_or_create(path: &Path, comment: &str) -> Result<([u8; 32], bool), KeyFileError> {
    if let Some(key) = read(path)? {
        return Ok((key, false));
    }
    let mut key = [0u8; 32];
    getrandom::fill(&mut key).map_err(|e| KeyFileError::Io(std::io::Error::other(e.to_string())))?;
    let lines: String = comment.lines().map(|l| format!("# {l}\n")).collect();
    let text = format!("{lines}{}\n", crate::state::hex(&key));
    if crate::state::create_private_file(path, text.as_bytes()).map_err(KeyFileError::Io)? {
        return Ok((key, true));
    }
    // Another process made it first: that key is the one.
    read(path)?.map(|key| (key, false)).ok_or(KeyFileError::Damaged)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_made_once_private_and_read_back_and_a_damaged_one_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data").join("some.key");
        assert!(read(&path).unwrap().is_none());
        let (made, new) = read_or_create(&path, "first line\nsecond line").unwrap();
        assert!(new);
        assert_eq!(read_or_create(&path, "ignored").unwrap(), (made, false));
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("# first line\n# second line\n"), "{text}");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        for damaged in ["", "# only a comment\n", "zz\n", &"g".repeat(64)] {
            std::fs::write(&path, damaged).unwrap();
            assert!(matches!(read(&path), Err(KeyFileError::Damaged)), "{damaged:?}");
        }
    }
}
