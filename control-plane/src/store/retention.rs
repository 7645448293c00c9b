//! History retention's place in the store: how far it got, and the
//! deployments after that, oldest first.

use slipway_proto::control::v1::Deployment;

use super::{
    Op, Store, StoreError, Tree,
    deployments::{be64, id},
};

/// The key in [`Tree::Meta`] of history retention's cursor: every
/// deployment up to this number is compacted or inside the retention.
const RETENTION: &[u8] = b"retention";

/// The deployments numbered above `after` (0: from the first), oldest
/// first, at most `limit`.
pub fn oldest_after(
    store: &Store,
    after: u64,
    limit: usize,
) -> Result<Vec<Deployment>, StoreError> {
    store.list_after(Tree::Deployments, b"", id(after).as_bytes(), limit)
}

/// History retention's cursor: the last deployment number it is done with.
pub fn cursor(store: &Store) -> Result<u64, StoreError> {
    match store.get_raw(Tree::Meta, RETENTION)? {
        Some(raw) => be64(&raw).ok_or_else(|| super::corrupt(Tree::Meta, RETENTION)),
        None => Ok(0),
    }
}

/// The write that moves history retention's cursor to `number`.
pub fn set_cursor(number: u64) -> Op {
    Op::Put(
        Tree::Meta,
        RETENTION.to_vec(),
        number.to_be_bytes().to_vec(),
    )
}
