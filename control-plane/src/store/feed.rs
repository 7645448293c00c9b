//! The feed repository: every item keyed by its big-endian cursor, so a
//! range read returns them in order after any cursor, and the oldest are
//! dropped first when the feed passes its size.

use slipway_proto::control::v1::FeedItem;

use super::{Op, Store, StoreError, Tree, encode_proto};

fn key(cursor: u64) -> Vec<u8> {
    cursor.to_be_bytes().to_vec()
}

/// The cursor of an item's key (a store watch reports keys).
pub fn cursor_of(key: &[u8]) -> u64 {
    key.try_into().map(u64::from_be_bytes).unwrap_or_default()
}

/// The write that appends `item` (its cursor set already).
pub fn append(item: &FeedItem) -> Op {
    Op::Create(Tree::Feed, key(item.cursor), encode_proto(item))
}

/// The items after cursor `after`, oldest first, at most `limit`.
pub fn after(store: &Store, after: u64, limit: usize) -> Result<Vec<FeedItem>, StoreError> {
    store.list_after(Tree::Feed, b"", &key(after), limit)
}

/// The newest cursor; 0 for an empty feed.
pub fn newest(store: &Store) -> Result<u64, StoreError> {
    let newest = store.scan_rev_raw(Tree::Feed, b"", None, 1)?;
    Ok(newest.first().map_or(0, |(k, _)| cursor_of(k)))
}

/// The oldest cursor kept; None for an empty feed.
pub fn oldest(store: &Store) -> Result<Option<u64>, StoreError> {
    let oldest = store.backend.scan_after(Tree::Feed, b"", b"", 1)?;
    Ok(oldest.first().map(|(k, _)| cursor_of(k)))
}

/// The writes that drop the oldest items so that at most `keep` remain,
/// at most `limit` of them at once.
pub fn trim(store: &Store, keep: u64, limit: usize) -> Result<Vec<Op>, StoreError> {
    let (Some(oldest), newest) = (oldest(store)?, newest(store)?) else {
        return Ok(Vec::new());
    };
    let excess = (newest + 1).saturating_sub(oldest).saturating_sub(keep);
    let count = usize::try_from(excess).unwrap_or(usize::MAX).min(limit);
    let doomed = store.backend.scan_after(Tree::Feed, b"", b"", count)?;
    Ok(doomed
        .into_iter()
        .map(|(k, _)| Op::Delete(Tree::Feed, k))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tests::scratch;

    fn item(cursor: u64) -> FeedItem {
        FeedItem {
            cursor,
            message: format!("item {cursor}"),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn items_read_in_cursor_order_and_the_oldest_are_trimmed() {
        let (_dir, store) = scratch();
        assert_eq!(
            (newest(&store).unwrap(), oldest(&store).unwrap()),
            (0, None)
        );
        let ops: Vec<Op> = (1..=300).map(|c| append(&item(c))).collect();
        store.commit(ops).await.unwrap();
        assert_eq!(
            (newest(&store).unwrap(), oldest(&store).unwrap()),
            (300, Some(1))
        );
        let page: Vec<u64> = after(&store, 255, 3)
            .unwrap()
            .iter()
            .map(|i| i.cursor)
            .collect();
        assert_eq!(page, [256, 257, 258], "big-endian keys sort as numbers");
        // A cursor is written once.
        assert!(store.commit(vec![append(&item(300))]).await.is_err());

        let ops = trim(&store, 100, 150).unwrap();
        assert_eq!(ops.len(), 150, "bounded per call");
        store.commit(ops).await.unwrap();
        store.commit(trim(&store, 100, 150).unwrap()).await.unwrap();
        assert_eq!(oldest(&store).unwrap(), Some(201));
        assert!(trim(&store, 100, 150).unwrap().is_empty());
    }
}
