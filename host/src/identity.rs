//! This agent's identity key (decision 0029): an Ed25519 key made on this server
//! the first time it is needed, kept in `<data_dir>/agent-key` (0600), never sent
//! anywhere. It signs every manifest the agent offers the hub.

use ledgerlink_protocol::identity::AgentSigner;
use std::path::{Path, PathBuf};

/// The key file's name in the data directory.
pub const AGENT_KEY_FILE: &str = "agent-key";

/// The path of the identity key of the agent whose data directory is `data_dir`.
pub fn key_path(data_dir: &Path) -> PathBuf {
    data_dir.join(AGENT_KEY_FILE)
}

/// This agent's signer, its key created when there is none; the error says what to do.
pub fn load_or_create(data_dir: &Path) -> Result<AgentSigner, String> {
    let path = key_path(data_dir);
    if let Some(signer) = read(&path)? {
        return Ok(signer);
    }
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| format!("the OS random number generator failed: {e}"))?;
    let hex: String = seed.iter().map(|b| format!("{b:02x}")).collect();
    let text = format!(
        "# This agent's identity key: the hub knows this installation by it. Keep it with the data\n\
         # directory; never copy it to another server. Lost: support resets the agent's key on the hub.\n{hex}\n"
    );
    match crate::state::create_private_file(&path, text.as_bytes()) {
        Ok(true) => Ok(AgentSigner::from_seed(&seed)),
        // Another process made it first: that key is this agent's.
        Ok(false) => read(&path)?.ok_or_else(|| format!("{} vanished while it was read", path.display())),
        Err(e) => Err(format!(
            "cannot create the agent's identity key {}: {e}. Resolution: make the data directory writable by \
             the account the agent runs as",
            path.display()
        )),
    }
}

/// The fingerprint of this agent's identity key as the hub shows it; `Ok(None)`
/// before the first hello or upload made the key.
pub fn fingerprint(data_dir: &Path) -> Result<Option<String>, String> {
    Ok(read(&key_path(data_dir))?.map(|s| ledgerlink_protocol::identity::fingerprint(&s.public_key())))
}

fn read(path: &Path) -> Result<Option<AgentSigner>, String> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(format!(
            "cannot read the agent's identity key {}: {e}. Resolution: make it readable by the account the \
                 agent runs as, and by it only (`chown <service account> {0}; chmod 600 {0}`)",
            path.display()
        ))
        }
    };
    let hex = text.lines().map(str::trim).find(|l| !l.is_empty() && !l.starts_with('#')).unwrap_or("");
    let mut seed = [0u8; 32];
    let parsed = hex.len() == 64
        && seed
            .iter_mut()
            .enumerate()
            .all(|(i, b)| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map(|v| *b = v).is_ok());
    if !parsed {
        return Err(format!(
            "the agent's identity key {} is damaged (not 64 hex digits). Resolution: restore it from a backup \
             of the data directory; or delete it and ask support to reset this agent's key on the hub \
             (`ledgerlink-hub admin agent-key reset`)",
            path.display()
        ));
    }
    Ok(Some(AgentSigner::from_seed(&seed)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_is_made_once_private_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let first = load_or_create(dir.path()).unwrap();
        let again = load_or_create(dir.path()).unwrap();
        assert_eq!(first.public_key(), again.public_key());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(key_path(dir.path())).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        std::fs::write(key_path(dir.path()), "zz\n").unwrap();
        let damaged = load_or_create(dir.path()).unwrap_err();
        assert!(damaged.contains("damaged") && damaged.contains("agent-key reset"), "{damaged}");
    }
}
