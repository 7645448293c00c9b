//! The join-tokens repository: each token stored under its SHA-256, never
//! as itself, with the host it enrolls and when it expires. A redeemer
//! compares the stored bytes it read, so a token is used up once.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{Op, Store, StoreError, Tree, decode_json, encode_json};

/// A stored token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinToken {
    /// The host it enrolls.
    pub host: String,
    /// When it stops working, in seconds since the Unix epoch.
    pub expires_unix: u64,
}

/// A token as read, with the stored bytes its removal is compared against.
#[derive(Clone, Debug)]
pub struct Held {
    /// The record.
    pub token: JoinToken,
    key: Vec<u8>,
    stored: Vec<u8>,
}

fn key(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// The write that records `token` as `record`.
pub fn put(token: &str, record: &JoinToken) -> Op {
    Op::Put(Tree::JoinTokens, key(token), encode_json(record))
}

/// The stored record of `token`, if any.
pub fn get(store: &Store, token: &str) -> Result<Option<Held>, StoreError> {
    let key = key(token);
    let Some(stored) = store.get_raw(Tree::JoinTokens, &key)? else {
        return Ok(None);
    };
    let token = decode_json(Tree::JoinTokens, &key, &stored)?;
    Ok(Some(Held { token, key, stored }))
}

/// The write that removes a token if it is still as `held` was read.
pub fn remove_if_unchanged(held: &Held) -> Op {
    Op::DeleteIf(Tree::JoinTokens, held.key.clone(), held.stored.clone())
}

/// The writes that use a token up; they fail their batch with
/// [`StoreError::Conflict`] unless it is still as `held` was read (another
/// redeemer used it first).
pub fn use_up(held: &Held) -> Vec<Op> {
    vec![
        Op::Expect(
            Tree::JoinTokens,
            held.key.clone(),
            Some(held.stored.clone()),
        ),
        Op::Delete(Tree::JoinTokens, held.key.clone()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tests::scratch;

    #[tokio::test]
    async fn tokens_are_stored_hashed_and_used_up_once() {
        let (_dir, s) = scratch();
        let record = JoinToken {
            host: "web-1".into(),
            expires_unix: 7,
        };
        s.commit(vec![put("sjt_a", &record)]).await.unwrap();
        let stored = s.scan_raw(Tree::JoinTokens, b"").unwrap();
        assert_eq!(stored.len(), 1);
        assert_eq!(stored[0].0.len(), 32, "the key is the token's SHA-256");
        assert!(!String::from_utf8_lossy(&stored[0].1).contains("sjt_a"));
        let held = get(&s, "sjt_a").unwrap().unwrap();
        assert_eq!(held.token, record);
        s.commit(use_up(&held)).await.unwrap();
        let late = s.commit(use_up(&held)).await.unwrap_err();
        assert!(matches!(late, StoreError::Conflict { .. }));
        assert!(get(&s, "sjt_a").unwrap().is_none());
    }
}
