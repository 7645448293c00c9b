//! The locks repository: the lock of each (app, environment), stored as
//! bytes that a holder compares against before it renews or frees it, so a
//! lock taken over by another deployment is never touched.

use slipway_proto::control::v1::Lock;

use super::{Op, Store, StoreError, Tree, decode_proto, deployments, encode_proto, key2};

fn key(app: &str, environment: &str) -> Vec<u8> {
    key2(app, environment)
}

/// The stored form of a lock.
pub fn encode(lock: &Lock) -> Vec<u8> {
    encode_proto(lock)
}

/// Reads a stored lock; a lock written before leases existed is the bare
/// deployment id.
fn decode(key: &[u8], raw: &[u8]) -> Lock {
    decode_proto::<Lock>(Tree::Locks, key, raw).unwrap_or_else(|_| {
        let id = String::from_utf8_lossy(raw).into_owned();
        Lock {
            fencing_token: deployments::number(&id),
            deployment_id: id,
            ..Default::default()
        }
    })
}

/// The lock of an app in an environment and its stored bytes, if held.
pub fn get(
    store: &Store,
    app: &str,
    environment: &str,
) -> Result<Option<(Lock, Vec<u8>)>, StoreError> {
    let key = key(app, environment);
    Ok(store.get_raw(Tree::Locks, &key)?.map(|raw| {
        let mut lock = decode(&key, &raw);
        lock.app = app.to_owned();
        lock.environment = environment.to_owned();
        (lock, raw)
    }))
}

/// Every held lock.
pub fn list(store: &Store) -> Result<Vec<Lock>, StoreError> {
    Ok(store
        .scan_raw(Tree::Locks, b"")?
        .into_iter()
        .map(|(key, raw)| {
            let mut lock = decode(&key, &raw);
            let mut parts = key.split(|b| *b == 0);
            lock.app = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
            lock.environment =
                String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
            lock
        })
        .collect())
}

/// The write that takes `lock` (stored as `held`); it fails its batch with
/// [`StoreError::Exists`] while the lock is held.
pub fn take(lock: &Lock, held: &[u8]) -> Op {
    Op::Create(
        Tree::Locks,
        key(&lock.app, &lock.environment),
        held.to_vec(),
    )
}

/// The write that frees `lock` if it is still stored as `held`.
pub fn release(lock: &Lock, held: &[u8]) -> Op {
    Op::DeleteIf(
        Tree::Locks,
        key(&lock.app, &lock.environment),
        held.to_vec(),
    )
}

/// Whether `lock` is still stored as `held`.
pub fn still_held(store: &Store, lock: &Lock, held: &[u8]) -> Result<bool, StoreError> {
    let stored = store.get_raw(Tree::Locks, &key(&lock.app, &lock.environment))?;
    Ok(stored.as_deref() == Some(held))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lock_from_before_leases_is_its_deployment_id() {
        let lock = Lock {
            deployment_id: "dep-0000000007".into(),
            fencing_token: 7,
            ..Default::default()
        };
        assert_eq!(decode(b"k", &encode(&lock)), lock);
        assert_eq!(decode(b"k", b"dep-0000000009").fencing_token, 9);
    }
}
