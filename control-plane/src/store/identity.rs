//! The store's identity: a random id made once, when the store is first
//! opened by a control plane that knows about it, and kept in
//! [`Tree::Meta`]. It is the epoch of every fencing token this control plane
//! sends: an agent that sees another epoch knows the deployment numbers
//! (its tokens) start from another store and does not compare them.

use super::{Op, Store, StoreError, Tree};

/// The key in [`Tree::Meta`].
const KEY: &[u8] = b"store-id";

/// The store's id, made and recorded (durably) when it has none yet.
pub async fn ensure(store: &Store) -> Result<String, StoreError> {
    if let Some(id) = read(store)? {
        return Ok(id);
    }
    let id = format!("{:032x}", rand::random::<u128>());
    let made = store
        .commit(vec![Op::Create(
            Tree::Meta,
            KEY.to_vec(),
            id.clone().into_bytes(),
        )])
        .await;
    match made {
        Ok(()) => Ok(id),
        // Another start made one first: that one is the store's.
        Err(StoreError::Exists { .. }) => {
            read(store)?.ok_or_else(|| super::corrupt(Tree::Meta, KEY))
        }
        Err(err) => Err(err),
    }
}

fn read(store: &Store) -> Result<Option<String>, StoreError> {
    store
        .get_raw(Tree::Meta, KEY)?
        .map(|raw| String::from_utf8(raw).map_err(|_| super::corrupt(Tree::Meta, KEY)))
        .transpose()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::store::SledBackend;

    #[tokio::test]
    async fn the_id_is_made_once_and_kept_across_reopens() {
        let dir = tempfile::tempdir().unwrap();
        let first = {
            let store = Store::new(Arc::new(SledBackend::open(dir.path(), 1 << 20).unwrap()));
            let id = ensure(&store).await.unwrap();
            assert_eq!(ensure(&store).await.unwrap(), id);
            id
        };
        assert_eq!(first.len(), 32);
        let store = Store::new(Arc::new(SledBackend::open(dir.path(), 1 << 20).unwrap()));
        assert_eq!(ensure(&store).await.unwrap(), first, "kept");
        let other = tempfile::tempdir().unwrap();
        let fresh = Store::new(Arc::new(SledBackend::open(other.path(), 1 << 20).unwrap()));
        assert_ne!(
            ensure(&fresh).await.unwrap(),
            first,
            "another store, another id"
        );
    }
}
