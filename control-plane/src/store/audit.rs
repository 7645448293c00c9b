//! The audit repository: the trail's entries keyed by
//! `be64(u64::MAX - sequence)`, so key order is newest first: the newest
//! entry is the first key, and a page resumes below the last entry it read.

use slipway_proto::control::v1::AuditEvent;

use super::{Op, Store, StoreError, Tree, encode_proto};

fn key(sequence: u64) -> Vec<u8> {
    (u64::MAX - sequence).to_be_bytes().to_vec()
}

/// The newest entry.
pub fn newest(store: &Store) -> Result<Option<AuditEvent>, StoreError> {
    Ok(newest_first(store, None, 1)?.into_iter().next())
}

/// Entries newest first, below sequence `below` (from the newest when
/// None), at most `limit`.
pub fn newest_first(
    store: &Store,
    below: Option<u64>,
    limit: usize,
) -> Result<Vec<AuditEvent>, StoreError> {
    let after = below.map(key).unwrap_or_default();
    store.list_after(Tree::Audit, b"", &after, limit)
}

/// The entry numbered `sequence`.
pub fn get(store: &Store, sequence: u64) -> Result<Option<AuditEvent>, StoreError> {
    store.get(Tree::Audit, &key(sequence))
}

/// The write that appends `entry` (numbered already); it fails its batch
/// with [`StoreError::Exists`] when that number is taken.
pub fn append(entry: &AuditEvent) -> Op {
    Op::Create(Tree::Audit, key(entry.sequence), encode_proto(entry))
}

/// The write that replaces an entry whatever it held. The trail never
/// rewrites an entry: this is what someone with write access to the store's
/// files can do, for the tests that show the hash chain finds it.
pub fn overwrite(entry: &AuditEvent) -> Op {
    Op::Put(Tree::Audit, key(entry.sequence), encode_proto(entry))
}

/// The write that removes entry `sequence`; like [`overwrite`], only for
/// showing that the hash chain finds it.
pub fn erase(sequence: u64) -> Op {
    Op::Delete(Tree::Audit, key(sequence))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tests::scratch;

    #[test]
    fn keys_sort_newest_first() {
        assert!(key(2) < key(1));
        assert!(key(256) < key(255));
    }

    #[tokio::test]
    async fn pages_run_newest_first_below_a_sequence() {
        let (_dir, s) = scratch();
        assert_eq!(newest(&s).unwrap(), None);
        let entry = |sequence| AuditEvent {
            sequence,
            ..Default::default()
        };
        s.commit((1..=5).map(|n| append(&entry(n))).collect())
            .await
            .unwrap();
        let sequences = |below, limit| -> Vec<u64> {
            let page = newest_first(&s, below, limit).unwrap();
            page.into_iter().map(|e| e.sequence).collect()
        };
        assert_eq!(sequences(None, 2), [5, 4]);
        assert_eq!(sequences(Some(4), 10), [3, 2, 1]);
        assert_eq!(newest(&s).unwrap().map(|e| e.sequence), Some(5));
        let taken = s.commit(vec![append(&entry(3))]).await.unwrap_err();
        assert!(matches!(taken, StoreError::Exists { .. }));
    }
}
