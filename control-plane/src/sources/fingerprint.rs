//! `SHA256:` fingerprints of SSH public keys, as OpenSSH prints them.

use ssh_key::{HashAlg, PublicKey};

/// `SHA256:...` of a public key.
pub fn fingerprint(key: &PublicKey) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

/// `SHA256:...` of a public key in wire format.
pub fn blob_fingerprint(blob: &[u8]) -> String {
    match PublicKey::from_bytes(blob) {
        Ok(key) => fingerprint(&key),
        Err(_) => "(an unreadable key)".to_owned(),
    }
}
