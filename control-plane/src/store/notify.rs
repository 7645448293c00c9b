//! The notifications repository: subscriptions by name, and by their id the
//! signing secret, the feed cursor handled last (the durable outbox is the
//! feed after that cursor) and the latest delivery attempts, of which the
//! newest [`KEEP_DELIVERIES`] are kept.

use slipway_proto::control::v1::{Delivery, Subscription};

use super::{Op, Store, StoreError, Tree, decode_proto, encode_proto};

/// Delivery attempts kept per subscription.
pub const KEEP_DELIVERIES: u64 = 100;

fn delivery_key(id: &str, sequence: u64) -> Vec<u8> {
    let mut key = id.as_bytes().to_vec();
    key.push(0);
    key.extend_from_slice(&sequence.to_be_bytes());
    key
}

fn prefix(id: &str) -> Vec<u8> {
    let mut key = id.as_bytes().to_vec();
    key.push(0);
    key
}

/// The subscription named `name`.
pub fn get(store: &Store, name: &str) -> Result<Option<Subscription>, StoreError> {
    store.get(Tree::Subscriptions, name.as_bytes())
}

/// Every subscription, in name order, with its cursor.
pub fn list(store: &Store) -> Result<Vec<Subscription>, StoreError> {
    let mut all: Vec<Subscription> = store.list(Tree::Subscriptions, b"")?;
    for sub in &mut all {
        sub.cursor = cursor(store, &sub.id)?;
    }
    Ok(all)
}

/// The stored form of `sub`: without its cursor, which moves apart.
fn stored(sub: &Subscription) -> Vec<u8> {
    encode_proto(&Subscription {
        cursor: 0,
        ..sub.clone()
    })
}

/// The write that fails the batch with `Conflict` unless `sub` is still
/// there as it was.
pub fn unchanged(sub: &Subscription) -> Op {
    Op::Expect(
        Tree::Subscriptions,
        sub.name.as_bytes().to_vec(),
        Some(stored(sub)),
    )
}

/// The writes that create `sub` (fails with `Exists` when its name is
/// taken) with its secret, starting after feed cursor `sub.cursor`.
pub fn create(sub: &Subscription, secret: &[u8]) -> Vec<Op> {
    vec![
        Op::Create(
            Tree::Subscriptions,
            sub.name.as_bytes().to_vec(),
            stored(sub),
        ),
        Op::Put(
            Tree::SubscriptionSecrets,
            sub.id.as_bytes().to_vec(),
            secret.to_vec(),
        ),
        set_cursor(&sub.id, sub.cursor),
    ]
}

/// The writes that remove `sub` with its secret, cursor and deliveries.
pub fn delete(store: &Store, sub: &Subscription) -> Result<Vec<Op>, StoreError> {
    let mut ops = vec![
        Op::DeleteIf(
            Tree::Subscriptions,
            sub.name.as_bytes().to_vec(),
            stored(sub),
        ),
        Op::Delete(Tree::SubscriptionSecrets, sub.id.as_bytes().to_vec()),
        Op::Delete(Tree::SubscriptionCursors, sub.id.as_bytes().to_vec()),
    ];
    for (key, _) in store.scan_raw(Tree::Deliveries, &prefix(&sub.id))? {
        ops.push(Op::Delete(Tree::Deliveries, key));
    }
    Ok(ops)
}

/// The signing secret of subscription `id`.
pub fn secret(store: &Store, id: &str) -> Result<Option<Vec<u8>>, StoreError> {
    store.get_raw(Tree::SubscriptionSecrets, id.as_bytes())
}

/// The feed cursor subscription `id` handled last (0: none).
pub fn cursor(store: &Store, id: &str) -> Result<u64, StoreError> {
    let raw = store.get_raw(Tree::SubscriptionCursors, id.as_bytes())?;
    Ok(raw
        .and_then(|r| r.as_slice().try_into().ok())
        .map_or(0, u64::from_be_bytes))
}

/// The write that moves subscription `id` past feed cursor `cursor`.
pub fn set_cursor(id: &str, cursor: u64) -> Op {
    Op::Put(
        Tree::SubscriptionCursors,
        id.as_bytes().to_vec(),
        cursor.to_be_bytes().to_vec(),
    )
}

/// The writes that record `delivery` for subscription `id`, dropping the
/// oldest beyond [`KEEP_DELIVERIES`].
pub fn record(store: &Store, id: &str, delivery: &Delivery) -> Result<Vec<Op>, StoreError> {
    let last = store.scan_rev_raw(Tree::Deliveries, &prefix(id), None, 1)?;
    let sequence = last
        .first()
        .and_then(|(k, _)| k.get(k.len().saturating_sub(8)..))
        .and_then(|b| b.try_into().ok())
        .map_or(0, u64::from_be_bytes)
        + 1;
    let mut ops = vec![Op::Create(
        Tree::Deliveries,
        delivery_key(id, sequence),
        encode_proto(delivery),
    )];
    if sequence > KEEP_DELIVERIES {
        let doomed = delivery_key(id, sequence - KEEP_DELIVERIES);
        ops.push(Op::Delete(Tree::Deliveries, doomed));
    }
    Ok(ops)
}

/// The latest deliveries of subscription `id`, newest first.
pub fn deliveries(store: &Store, id: &str) -> Result<Vec<Delivery>, StoreError> {
    let limit = usize::try_from(KEEP_DELIVERIES).unwrap_or(usize::MAX);
    store
        .scan_rev_raw(Tree::Deliveries, &prefix(id), None, limit)?
        .into_iter()
        .map(|(k, v)| decode_proto(Tree::Deliveries, &k, &v))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tests::scratch;

    #[tokio::test]
    async fn the_delivery_log_keeps_the_newest_and_goes_with_its_subscription() {
        let (_dir, store) = scratch();
        let sub = Subscription {
            name: "ops".into(),
            id: "s1".into(),
            cursor: 7,
            ..Default::default()
        };
        store.commit(create(&sub, b"key")).await.unwrap();
        assert!(store.commit(create(&sub, b"key")).await.is_err());
        assert_eq!(cursor(&store, "s1").unwrap(), 7);
        for attempt in 1..=KEEP_DELIVERIES as u32 + 5 {
            let delivery = Delivery {
                attempt,
                ..Default::default()
            };
            store
                .commit(record(&store, "s1", &delivery).unwrap())
                .await
                .unwrap();
        }
        let kept = deliveries(&store, "s1").unwrap();
        assert_eq!(kept.len() as u64, KEEP_DELIVERIES);
        assert_eq!(kept[0].attempt, KEEP_DELIVERIES as u32 + 5, "newest first");
        store.commit(delete(&store, &sub).unwrap()).await.unwrap();
        assert!(get(&store, "ops").unwrap().is_none());
        assert!(deliveries(&store, "s1").unwrap().is_empty());
        assert!(secret(&store, "s1").unwrap().is_none());
    }
}
