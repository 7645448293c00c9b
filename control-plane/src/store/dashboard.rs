//! The dashboard's records: one-time login links (stored under the SHA-256
//! of their token, never as themselves) and the sessions they open (by id,
//! with the SHA-256 of the cookie's secret). A link is used up by the same
//! batch that creates its session, so it opens at most one. The key links
//! are signed with is kept here too.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{Op, Store, StoreError, Tree, decode_json, encode_json};

/// A login link not used yet.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginLink {
    /// Operator name from the certificate that asked for it.
    pub name: String,
    /// Its role (`viewer`, `deployer`, `admin`).
    pub role: String,
    /// Lower-case hex SHA-256 of that certificate.
    pub certificate_sha256: String,
    /// That certificate (DER, hex), checked against the revocations on
    /// every request of the session it opens.
    #[serde(default)]
    pub certificate_der: String,
    /// When it stops working, in seconds since the Unix epoch.
    pub expires_unix: u64,
}

/// A dashboard session.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DashboardSession {
    /// Public id (listed, revoked by it).
    pub id: String,
    /// Operator name.
    pub name: String,
    /// Role name.
    pub role: String,
    /// Lower-case hex SHA-256 of the certificate the link was asked with.
    pub certificate_sha256: String,
    /// That certificate (DER, hex); empty when none was presented.
    #[serde(default)]
    pub certificate_der: String,
    /// Lower-case hex SHA-256 of the cookie's secret.
    pub secret_sha256: String,
    /// The token every write form carries.
    pub csrf: String,
    /// When it started, in seconds since the Unix epoch.
    pub created_unix: u64,
    /// When it ends, in seconds since the Unix epoch.
    pub expires_unix: u64,
}

/// A link as read, with the stored bytes its use is compared against.
#[derive(Clone, Debug)]
pub struct HeldLink {
    /// The record.
    pub link: LoginLink,
    key: Vec<u8>,
    stored: Vec<u8>,
}

/// Lower-case hex SHA-256 of `secret`.
pub fn digest(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// The write that records a link for `token`.
pub fn put_link(token: &str, link: &LoginLink) -> Op {
    Op::Put(
        Tree::LoginLinks,
        digest(token).into_bytes(),
        encode_json(link),
    )
}

/// The stored link of `token`, if any.
pub fn get_link(store: &Store, token: &str) -> Result<Option<HeldLink>, StoreError> {
    let key = digest(token).into_bytes();
    let Some(stored) = store.get_raw(Tree::LoginLinks, &key)? else {
        return Ok(None);
    };
    let link = decode_json(Tree::LoginLinks, &key, &stored)?;
    Ok(Some(HeldLink { link, key, stored }))
}

/// The writes that use a link up; they fail their batch with
/// [`StoreError::Conflict`] if another request used it first.
pub fn use_up(held: &HeldLink) -> Vec<Op> {
    vec![
        Op::Expect(
            Tree::LoginLinks,
            held.key.clone(),
            Some(held.stored.clone()),
        ),
        Op::Delete(Tree::LoginLinks, held.key.clone()),
    ]
}

/// Every stored link with its key, for expiry and bounds.
pub fn links(store: &Store) -> Result<Vec<(Vec<u8>, LoginLink)>, StoreError> {
    store
        .scan_raw(Tree::LoginLinks, b"")?
        .into_iter()
        .map(|(k, v)| decode_json(Tree::LoginLinks, &k, &v).map(|link| (k, link)))
        .collect()
}

/// The write that removes the link stored at `key`.
pub fn delete_link(key: Vec<u8>) -> Op {
    Op::Delete(Tree::LoginLinks, key)
}

/// The write that creates `session`; its batch fails if the id is taken.
pub fn create_session(session: &DashboardSession) -> Op {
    Op::Create(
        Tree::DashboardSessions,
        session.id.as_bytes().to_vec(),
        encode_json(session),
    )
}

/// The session `id`, if stored.
pub fn session(store: &Store, id: &str) -> Result<Option<DashboardSession>, StoreError> {
    store.get_json(Tree::DashboardSessions, id.as_bytes())
}

/// Every stored session, in id order.
pub fn sessions(store: &Store) -> Result<Vec<DashboardSession>, StoreError> {
    store
        .scan_raw(Tree::DashboardSessions, b"")?
        .into_iter()
        .map(|(k, v)| decode_json(Tree::DashboardSessions, &k, &v))
        .collect()
}

/// The write that ends session `id`.
pub fn delete_session(id: &str) -> Op {
    Op::Delete(Tree::DashboardSessions, id.as_bytes().to_vec())
}

/// The key in [`Tree::Meta`] of the key login links are signed with.
const LINK_KEY: &[u8] = b"dashboard_link_key";

/// The key login links are signed with: the stored one, else `fresh()`
/// stored now (two first uses at once: the second reads what the first
/// stored).
pub async fn link_key(
    store: &Store,
    fresh: impl FnOnce() -> Vec<u8>,
) -> Result<Vec<u8>, StoreError> {
    if let Some(key) = store.get_raw(Tree::Meta, LINK_KEY)? {
        return Ok(key);
    }
    let fresh = fresh();
    let create = Op::Create(Tree::Meta, LINK_KEY.to_vec(), fresh.clone());
    match store.commit(vec![create]).await {
        Ok(()) => Ok(fresh),
        Err(StoreError::Conflict { .. }) => {
            Ok(store.get_raw(Tree::Meta, LINK_KEY)?.unwrap_or(fresh))
        }
        Err(err) => Err(err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tests::scratch;

    #[tokio::test]
    async fn a_link_is_stored_hashed_and_used_up_once() {
        let (_dir, s) = scratch();
        let link = LoginLink {
            name: "alice".into(),
            role: "viewer".into(),
            certificate_sha256: "ab".into(),
            certificate_der: String::new(),
            expires_unix: 9,
        };
        s.commit(vec![put_link("secret-token", &link)])
            .await
            .unwrap();
        let stored = s.scan_raw(Tree::LoginLinks, b"").unwrap();
        assert!(!String::from_utf8_lossy(&stored[0].0).contains("secret-token"));
        let held = get_link(&s, "secret-token").unwrap().unwrap();
        assert_eq!(held.link, link);
        s.commit(use_up(&held)).await.unwrap();
        let late = s.commit(use_up(&held)).await.unwrap_err();
        assert!(matches!(late, StoreError::Conflict { .. }));
    }
}
