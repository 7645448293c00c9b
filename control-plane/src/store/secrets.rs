//! The secrets repository: per (app, environment, name) the latest version
//! of a secret, its value sealed (see `crate::secrets::keys`), never in
//! clear. An unset secret stays as a tombstone without a value, so its next
//! set continues its version numbers.

use serde::{Deserialize, Serialize};

use super::{Op, Store, StoreError, Tree, decode_json, encode_json, key2};

/// One secret as stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredSecret {
    /// Its name.
    pub name: String,
    /// Its version, from 1.
    pub version: u64,
    /// Who set this version.
    pub set_by: String,
    /// When, in Unix seconds.
    pub set_at: i64,
    /// Id of the key that sealed it (empty for a tombstone).
    #[serde(default)]
    pub key_id: String,
    /// The nonce, hex.
    #[serde(default)]
    pub nonce: String,
    /// Ciphertext and tag, hex.
    #[serde(default)]
    pub ciphertext: String,
    /// Unset: no value, kept for its version.
    #[serde(default)]
    pub removed: bool,
}

fn key(app: &str, environment: &str, name: &str) -> Vec<u8> {
    let mut key = key2(app, environment);
    key.push(0);
    key.extend_from_slice(name.as_bytes());
    key
}

/// Every record of (app, environment), tombstones included, by name.
pub fn all(store: &Store, app: &str, environment: &str) -> Result<Vec<StoredSecret>, StoreError> {
    let mut prefix = key2(app, environment);
    prefix.push(0);
    store
        .scan_raw(Tree::Secrets, &prefix)?
        .into_iter()
        .map(|(k, v)| decode_json(Tree::Secrets, &k, &v))
        .collect()
}

/// Every record of every environment, for a rotation of the key:
/// `(app, environment, secret)`.
pub fn everything(store: &Store) -> Result<Vec<(String, String, StoredSecret)>, StoreError> {
    store
        .scan_raw(Tree::Secrets, b"")?
        .into_iter()
        .map(|(k, v)| {
            let secret: StoredSecret = decode_json(Tree::Secrets, &k, &v)?;
            let mut parts = k.split(|b| *b == 0);
            let mut part =
                || String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
            let (app, environment) = (part(), part());
            Ok((app, environment, secret))
        })
        .collect()
}

/// The record of one name, tombstone or not.
pub fn get(
    store: &Store,
    app: &str,
    environment: &str,
    name: &str,
) -> Result<Option<StoredSecret>, StoreError> {
    store.get_json(Tree::Secrets, &key(app, environment, name))
}

/// The write that replaces the record of `secret.name`, failing the batch
/// with a conflict unless the record is still `was` (None: absent).
pub fn replace(
    app: &str,
    environment: &str,
    was: Option<&StoredSecret>,
    secret: &StoredSecret,
) -> Vec<Op> {
    let key = key(app, environment, &secret.name);
    vec![
        Op::Expect(Tree::Secrets, key.clone(), was.map(encode_json)),
        Op::Put(Tree::Secrets, key, encode_json(secret)),
    ]
}
