//! One subscription's notifier: it follows the feed from the
//! subscription's stored cursor, POSTs each wanted item in order, and moves
//! the cursor past an item only once its notification was taken (2xx) or
//! the item is not wanted. A refused or failed attempt is retried, with
//! jittered exponential backoff up to a cap, until it is taken or the
//! subscription is removed: a receiver that was down gets everything once
//! it is back, in order.

use std::{convert::Infallible, time::Duration};

use slipway_proto::control::v1::{Delivery, FeedItem, Subscription};
use tokio_util::sync::CancellationToken;

use super::{
    render,
    send::{Outgoing, Sender},
};
use crate::{
    feed::Feed,
    store::{self, Op, Store, StoreError},
};

/// Feed items read at once.
const PAGE: usize = 64;
/// The first retry's delay.
const FIRST_RETRY: Duration = Duration::from_millis(100);

/// What a notifier needs.
pub struct Notifier {
    pub store: Store,
    pub feed: Feed,
    pub sender: Sender,
    pub retry_max: Duration,
    pub sub: Subscription,
    pub secret: Vec<u8>,
    pub stop: CancellationToken,
}

/// Why a notifier stopped.
enum Ended {
    /// Told to, or its subscription is gone.
    Stopped,
}

impl Notifier {
    /// Runs until stopped or the subscription is removed.
    pub async fn run(self) {
        let id = self.sub.id.clone();
        let Err(Ended::Stopped) = self.follow().await;
        tracing::debug!(subscription = %id, "notifier stopped");
    }

    async fn follow(&self) -> Result<Infallible, Ended> {
        let mut head = self.feed.head();
        let mut cursor = self
            .read(|s| store::notify::cursor(s, &self.sub.id))
            .await?;
        loop {
            head.borrow_and_update();
            let page = self.read(|s| store::feed::after(s, cursor, PAGE)).await?;
            if page.is_empty() {
                tokio::select! {
                    () = self.stop.cancelled() => return Err(Ended::Stopped),
                    changed = head.changed() => changed.map_err(|_| Ended::Stopped)?,
                }
                continue;
            }
            let mut saved = true;
            for item in page {
                match render::wanted(&self.sub, &item) {
                    Some(event) => {
                        self.deliver(&item, event).await?;
                        saved = true;
                    }
                    None => saved = false,
                }
                cursor = item.cursor;
            }
            if !saved {
                self.commit(vec![store::notify::set_cursor(&self.sub.id, cursor)])
                    .await?;
            }
        }
    }

    /// Sends `item` until it is taken; records every attempt, and with the
    /// one that was taken, the cursor past it.
    async fn deliver(&self, item: &FeedItem, event: &str) -> Result<(), Ended> {
        let key = format!("{}:{}", self.sub.id, item.cursor);
        let body = render::body(&self.sub, item, event, &key);
        let out = Outgoing {
            url: &self.sub.url,
            secret: &self.secret,
            event,
            key: &key,
            body: &body,
        };
        let mut delay = FIRST_RETRY.min(self.retry_max);
        let mut attempt = 0u32;
        loop {
            attempt = attempt.saturating_add(1);
            let delivery = tokio::select! {
                () = self.stop.cancelled() => return Err(Ended::Stopped),
                delivery = self.sender.post(&out, attempt) => delivery,
            };
            let taken = delivery.delivered;
            self.record(&delivery, taken.then_some(item.cursor)).await?;
            if taken {
                return Ok(());
            }
            tracing::debug!(subscription = %self.sub.name, key, error = %delivery.error, "delivery failed; retrying");
            let jittered = delay.mul_f64(rand::random_range(0.5..=1.0));
            tokio::select! {
                () = self.stop.cancelled() => return Err(Ended::Stopped),
                () = tokio::time::sleep(jittered) => {}
            }
            delay = (delay * 2).min(self.retry_max);
        }
    }

    /// Records `delivery`, and the cursor past a taken one.
    async fn record(&self, delivery: &Delivery, past: Option<u64>) -> Result<(), Ended> {
        let mut ops = self
            .read(|s| store::notify::record(s, &self.sub.id, delivery))
            .await?;
        if let Some(cursor) = past {
            ops.push(store::notify::set_cursor(&self.sub.id, cursor));
        }
        self.commit(ops).await
    }

    /// Commits `ops` if the subscription is still there.
    async fn commit(&self, mut ops: Vec<Op>) -> Result<(), Ended> {
        ops.push(store::notify::unchanged(&self.sub));
        loop {
            match self.store.commit(ops.clone()).await {
                Ok(()) => return Ok(()),
                Err(StoreError::Conflict { .. }) => return Err(Ended::Stopped),
                Err(err) => {
                    tracing::error!(error = %err, subscription = %self.sub.name, "recording a delivery failed");
                    self.pause().await?;
                }
            }
        }
    }

    /// Reads the store, retrying a failed read after a pause.
    async fn read<T>(&self, f: impl Fn(&Store) -> Result<T, StoreError>) -> Result<T, Ended> {
        loop {
            match f(&self.store) {
                Ok(value) => return Ok(value),
                Err(err) => {
                    tracing::error!(error = %err, subscription = %self.sub.name, "reading the store failed");
                    self.pause().await?;
                }
            }
        }
    }

    async fn pause(&self) -> Result<(), Ended> {
        tokio::select! {
            () = self.stop.cancelled() => Err(Ended::Stopped),
            () = tokio::time::sleep(self.retry_max) => Ok(()),
        }
    }
}
