//! Agent identity keys (decision 0029): each agent signs the manifests it offers
//! with an Ed25519 key that never leaves its server, and the hub, which keeps the
//! public key of each agent id, tells that agent's uploads from anyone else's.
//!
//! `POST /v1/snapshots` carries `Ledgerlink-Agent-Key: ed25519:<base64url public key>`,
//! `Ledgerlink-Agent-Signed-At: <RFC 3339 time>` and `Ledgerlink-Agent-Signature:
//! <base64url signature>` over the domain label [`SIGNED_LABEL`], the signing time,
//! a newline and the exact request body. The hub accepts a signature for
//! [`SIGNATURE_LIFETIME_HOURS`] around its own time, so a captured request
//! cannot be offered again later.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

/// The header with the agent's public key.
pub const AGENT_KEY_HEADER: &str = "ledgerlink-agent-key";

/// The header with the signature of the request body.
pub const AGENT_SIGNATURE_HEADER: &str = "ledgerlink-agent-signature";

/// The header with the time the agent signed (RFC 3339, UTC); it is signed too.
pub const AGENT_SIGNED_AT_HEADER: &str = "ledgerlink-agent-signed-at";

/// How many hours before or after the hub's time a signature is accepted: wide
/// enough for a server clock that is off, narrow enough that an old request
/// captured somewhere cannot roll an agent's data back later.
pub const SIGNATURE_LIFETIME_HOURS: i64 = 24;

/// Signed before an offer's body (`POST /v1/snapshots`), so a signature made for
/// anything else never verifies as an offer.
pub const SIGNED_LABEL: &[u8] = b"ledgerlink manifest v1\n";

/// Signed before a hello's body (`POST /v1/agents/hello`), which registers the key early.
pub const HELLO_LABEL: &[u8] = b"ledgerlink hello v1\n";

const KEY_PREFIX: &str = "ed25519:";

/// Why a key or a signature is not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    /// The public key is not `ed25519:` and 32 bytes in base64url.
    #[error("not an agent key (expected ed25519: and 43 base64url characters)")]
    BadKey,
    /// The signature is not 64 bytes in base64url.
    #[error("not a signature (expected 86 base64url characters)")]
    BadSignature,
    /// The signature does not match the body and the key.
    #[error("the signature does not match the manifest and the agent's key")]
    Mismatch,
}

/// An agent's private key: it signs manifests.
pub struct AgentSigner(SigningKey);

impl AgentSigner {
    /// The signer of a 32-byte secret seed.
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        AgentSigner(SigningKey::from_bytes(seed))
    }

    /// The public key as sent: `ed25519:<base64url>`.
    pub fn public_key(&self) -> String {
        format!("{KEY_PREFIX}{}", URL_SAFE_NO_PAD.encode(self.0.verifying_key().as_bytes()))
    }

    /// The signature, in base64url, of `body` after `label` and `signed_at` (the
    /// [`AGENT_SIGNED_AT_HEADER`] value).
    pub fn sign_labelled(&self, label: &[u8], signed_at: &str, body: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(self.0.sign(&signed_message(label, signed_at, body)).to_bytes())
    }
}

impl std::fmt::Debug for AgentSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AgentSigner({})", fingerprint(&self.public_key()))
    }
}

fn signed_message(label: &[u8], signed_at: &str, body: &[u8]) -> Vec<u8> {
    let mut message = Vec::with_capacity(label.len() + signed_at.len() + 1 + body.len());
    message.extend_from_slice(label);
    message.extend_from_slice(signed_at.as_bytes());
    message.push(b'\n');
    message.extend_from_slice(body);
    message
}

fn parse_key(public_key: &str) -> Result<VerifyingKey, IdentityError> {
    let encoded = public_key.trim().strip_prefix(KEY_PREFIX).ok_or(IdentityError::BadKey)?;
    let bytes: [u8; 32] =
        URL_SAFE_NO_PAD.decode(encoded).ok().and_then(|b| b.try_into().ok()).ok_or(IdentityError::BadKey)?;
    VerifyingKey::from_bytes(&bytes).map_err(|_| IdentityError::BadKey)
}

/// The canonical text of a public key (`ed25519:<base64url>`), checked.
pub fn normalize_key(public_key: &str) -> Result<String, IdentityError> {
    let key = parse_key(public_key)?;
    Ok(format!("{KEY_PREFIX}{}", URL_SAFE_NO_PAD.encode(key.as_bytes())))
}

/// Checks that `signature` signs `body` after `label` and `signed_at` with `public_key`.
pub fn verify_labelled(
    label: &[u8],
    public_key: &str,
    signed_at: &str,
    body: &[u8],
    signature: &str,
) -> Result<(), IdentityError> {
    let key = parse_key(public_key)?;
    let bytes: [u8; 64] = URL_SAFE_NO_PAD
        .decode(signature.trim())
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or(IdentityError::BadSignature)?;
    key.verify_strict(&signed_message(label, signed_at, body), &Signature::from_bytes(&bytes))
        .map_err(|_| IdentityError::Mismatch)
}

/// A short, readable name of a public key: 16 hex digits of its SHA-256, in groups of four.
pub fn fingerprint(public_key: &str) -> String {
    let digest = Sha256::digest(public_key.trim().as_bytes());
    let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    hex.as_bytes().chunks(4).map(|c| std::str::from_utf8(c).unwrap_or("")).collect::<Vec<_>>().join(":")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_verifies_for_its_label_time_body_and_key_only() {
        let signer = AgentSigner::from_seed(&[7; 32]);
        let other = AgentSigner::from_seed(&[8; 32]);
        let (at, body) = ("2026-12-07T20:00:00.000Z", br#"{"agent_id":"agent-1"}"#.as_slice());
        let signature = signer.sign_labelled(SIGNED_LABEL, at, body);
        let key = signer.public_key();
        assert_eq!(verify_labelled(SIGNED_LABEL, &key, at, body, &signature), Ok(()));
        let mismatch = Err(IdentityError::Mismatch);
        assert_eq!(verify_labelled(SIGNED_LABEL, &other.public_key(), at, body, &signature), mismatch);
        assert_eq!(
            verify_labelled(SIGNED_LABEL, &key, at, br#"{"agent_id":"agent-2"}"#, &signature),
            mismatch
        );
        assert_eq!(
            verify_labelled(SIGNED_LABEL, &key, "2026-12-08T20:00:00.000Z", body, &signature),
            mismatch
        );
        assert_eq!(
            verify_labelled(HELLO_LABEL, &key, at, body, &signature),
            mismatch,
            "an offer is no hello"
        );
        assert_eq!(
            verify_labelled(SIGNED_LABEL, "ed25519:short", at, body, &signature),
            Err(IdentityError::BadKey)
        );
        assert_eq!(verify_labelled(SIGNED_LABEL, &key, at, body, "AAAA"), Err(IdentityError::BadSignature));
        assert_eq!(normalize_key(&format!(" {key} ")), Ok(key.clone()));
        assert_eq!(fingerprint(&key).len(), 19);
        assert_ne!(fingerprint(&key), fingerprint(&other.public_key()));
    }
}
