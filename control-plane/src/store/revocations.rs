//! The revocations repository: one record per revoked fingerprint or
//! identity, keyed `fp\0<fingerprint>` or `id\0<identity>`.

use slipway_proto::{control::v1::Revocation, revocation::RevocationList};

use super::{Op, Store, StoreError, Tree, encode_proto, key2};

fn key(revocation: &Revocation) -> Vec<u8> {
    if revocation.fingerprint.is_empty() {
        key2("id", &revocation.identity)
    } else {
        key2("fp", &revocation.fingerprint)
    }
}

/// The write that records `revocation` (a later revocation of the same
/// identity moves its cut-off forward).
pub fn put(revocation: &Revocation) -> Op {
    Op::Put(Tree::Revocations, key(revocation), encode_proto(revocation))
}

/// The revocation that goes with removing host `name`: every certificate
/// of its agent issued up to now.
pub fn host_removed(name: &str) -> Op {
    put(&Revocation {
        identity: format!("agent/{name}"),
        reason: "host removed".into(),
        revoked_by: "control-plane".into(),
        revoked_at: Some(slipway_proto::now()),
        ..Default::default()
    })
}

/// Every revocation, oldest first.
pub fn list(store: &Store) -> Result<Vec<Revocation>, StoreError> {
    let mut all: Vec<Revocation> = store.list(Tree::Revocations, b"")?;
    all.sort_by_key(|r| {
        r.revoked_at
            .as_ref()
            .map_or((0, 0), |t| (t.seconds, t.nanos))
    });
    Ok(all)
}

/// The list the verifiers and interceptors enforce.
pub fn load(store: &Store) -> Result<RevocationList, StoreError> {
    let mut list = RevocationList::default();
    for revocation in list_raw(store)? {
        list.revision += 1;
        if revocation.fingerprint.is_empty() {
            let up_to = revocation.revoked_at.as_ref().map_or(0, |t| t.seconds);
            list.identities
                .insert(revocation.identity, (up_to, revocation.reason));
        } else {
            list.fingerprints
                .insert(revocation.fingerprint, revocation.reason);
        }
    }
    Ok(list)
}

fn list_raw(store: &Store) -> Result<Vec<Revocation>, StoreError> {
    store.list(Tree::Revocations, b"")
}
