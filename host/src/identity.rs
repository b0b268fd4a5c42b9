//! This agent's identity key (decision 0029): an Ed25519 key made on this server
//! the first time it is needed, kept in `<data_dir>/agent-key` (0600), never sent
//! anywhere. It signs every manifest the agent offers the hub.

use crate::key_file::{self, KeyFileError};
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
    let comment = "This agent's identity key: the hub knows this installation by it. Keep it with the data\n\
                   directory; never copy it to another server. Lost: support resets the agent's key on the hub.";
    let (seed, _) = key_file::read_or_create(&path, comment).map_err(|e| explain(&path, e))?;
    Ok(AgentSigner::from_seed(&seed))
}

/// The fingerprint of this agent's identity key as the hub shows it; `Ok(None)`
/// before the first hello or upload made the key.
pub fn fingerprint(data_dir: &Path) -> Result<Option<String>, String> {
    let path = key_path(data_dir);
    let seed = key_file::read(&path).map_err(|e| explain(&path, e))?;
    Ok(seed
        .map(|seed| ledgerlink_protocol::identity::fingerprint(&AgentSigner::from_seed(&seed).public_key())))
}

/// What is wrong with the key file at `path`, and what to do.
fn explain(path: &Path, error: KeyFileError) -> String {
    let shown = path.display();
    match error {
        KeyFileError::Damaged => format!(
            "the agent's identity key {shown} is damaged (not 64 hex digits). Resolution: restore it from a backup \
             of the data directory; or delete it and ask support to reset this agent's key on the hub \
             (`ledgerlink-hub admin agent-key reset`)"
        ),
        KeyFileError::Unreadable(e) => format!(
            "cannot read the agent's identity key {shown}: {e}. Resolution: make it readable by the account the \
             agent runs as, and by it only (`chown <service account> {shown}; chmod 600 {shown}`)"
        ),
        KeyFileError::Io(e) => format!(
            "cannot read or create the agent's identity key {shown}: {e}. Resolution: make the data directory \
             writable by the account the agent runs as"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_is_made_once_and_a_damaged_one_says_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let first = load_or_create(dir.path()).unwrap();
        let again = load_or_create(dir.path()).unwrap();
        assert_eq!(first.public_key(), again.public_key());
        std::fs::write(key_path(dir.path()), "zz\n").unwrap();
        let damaged = load_or_create(dir.path()).unwrap_err();
        assert!(damaged.contains("damaged") && damaged.contains("agent-key reset"), "{damaged}");
    }
}
