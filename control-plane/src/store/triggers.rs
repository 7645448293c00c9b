//! The triggers repository: each app's webhook and auto-deploy settings, its
//! webhook secret apart from them (never read back into an answer), and the
//! authenticated deliveries handled, by delivery id, so that a redelivery is
//! recognised; the newest [`KEEP_DELIVERIES`] per app are kept.

use slipway_proto::control::v1::{Triggers, WebhookDelivery};

use super::{Op, Store, StoreError, Tree, encode_proto, key2};

/// Deliveries kept per app: a redelivery older than the newest this many is
/// not recognised.
pub const KEEP_DELIVERIES: usize = 1_000;

/// The triggers of `app`, if any were set.
pub fn get(store: &Store, app: &str) -> Result<Option<Triggers>, StoreError> {
    store.get(Tree::Triggers, app.as_bytes())
}

/// The write that keeps `triggers`.
pub fn put(triggers: &Triggers) -> Op {
    Op::Put(
        Tree::Triggers,
        triggers.app.as_bytes().to_vec(),
        encode_proto(triggers),
    )
}

/// The webhook secret of `app`, if set.
pub fn secret(store: &Store, app: &str) -> Result<Option<Vec<u8>>, StoreError> {
    store.get_raw(Tree::WebhookSecrets, app.as_bytes())
}

/// The write that sets the webhook secret of `app`.
pub fn set_secret(app: &str, secret: &[u8]) -> Op {
    Op::Put(
        Tree::WebhookSecrets,
        app.as_bytes().to_vec(),
        secret.to_vec(),
    )
}

/// The write that forgets the webhook secret of `app`.
pub fn forget_secret(app: &str) -> Op {
    Op::Delete(Tree::WebhookSecrets, app.as_bytes().to_vec())
}

/// The delivery of `app` with id `delivery_id`, if handled.
pub fn delivery(
    store: &Store,
    app: &str,
    delivery_id: &str,
) -> Result<Option<WebhookDelivery>, StoreError> {
    store.get(Tree::WebhookDeliveries, &key2(app, delivery_id))
}

/// The deliveries of `app`, newest first.
pub fn deliveries(store: &Store, app: &str) -> Result<Vec<WebhookDelivery>, StoreError> {
    let mut all: Vec<WebhookDelivery> = store.list(Tree::WebhookDeliveries, &key2(app, ""))?;
    all.sort_by_key(|d| {
        std::cmp::Reverse(
            d.time
                .as_ref()
                .map(|t| (t.seconds, t.nanos))
                .unwrap_or_default(),
        )
    });
    Ok(all)
}

/// The writes that record `delivery` of `app` (failing the batch with
/// `Exists` when its id was recorded meanwhile) and drop the oldest beyond
/// [`KEEP_DELIVERIES`].
pub fn record(store: &Store, app: &str, delivery: &WebhookDelivery) -> Result<Vec<Op>, StoreError> {
    let mut ops = vec![Op::Create(
        Tree::WebhookDeliveries,
        key2(app, &delivery.delivery_id),
        encode_proto(delivery),
    )];
    let kept = deliveries(store, app)?;
    for old in kept.iter().skip(KEEP_DELIVERIES.saturating_sub(1)) {
        ops.push(Op::Delete(
            Tree::WebhookDeliveries,
            key2(app, &old.delivery_id),
        ));
    }
    Ok(ops)
}

/// The write that keeps what was done with `delivery` of `app`.
pub fn update(app: &str, delivery: &WebhookDelivery) -> Op {
    Op::Put(
        Tree::WebhookDeliveries,
        key2(app, &delivery.delivery_id),
        encode_proto(delivery),
    )
}
