//! Outgoing notifications: webhook subscriptions on the live feed. The
//! durable outbox is the feed itself plus each subscription's stored cursor;
//! one notifier task per subscription (see [`deliver`]) turns the items it
//! wants into signed POSTs ([`sign`], [`render`], [`send`]) and records
//! every attempt in a bounded delivery log.

pub mod deliver;
pub mod render;
pub mod send;
pub mod sign;
pub mod spec;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use rand::RngCore;
use slipway_proto::control::v1::{Delivery, FeedItem, Subscription};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use self::{deliver::Notifier, send::Sender, spec::NewSubscription};
use crate::{
    error::Error,
    feed::Feed,
    store::{self, Store, StoreError},
};

/// The longest pause between two attempts unless configured.
pub const DEFAULT_RETRY_MAX: Duration = Duration::from_secs(60);

/// The running notifiers, by subscription id.
#[derive(Clone)]
pub struct Notifiers {
    running: Arc<Mutex<HashMap<String, CancellationToken>>>,
    /// Cancels every notifier.
    root: CancellationToken,
    tasks: TaskTracker,
    sender: Sender,
    retry_max: Duration,
}

impl Default for Notifiers {
    fn default() -> Self {
        Self::new(DEFAULT_RETRY_MAX)
    }
}

impl Notifiers {
    /// Notifiers that wait at most `retry_max` between two attempts.
    pub fn new(retry_max: Duration) -> Self {
        Self {
            running: Arc::default(),
            root: CancellationToken::new(),
            tasks: TaskTracker::new(),
            sender: Sender::default(),
            retry_max,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, CancellationToken>> {
        self.running.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn start(&self, store: &Store, feed: &Feed, sub: Subscription, secret: Vec<u8>) {
        let stop = self.root.child_token();
        if let Some(old) = self.lock().insert(sub.id.clone(), stop.clone()) {
            old.cancel();
        }
        let notifier = Notifier {
            store: store.clone(),
            feed: feed.clone(),
            sender: self.sender.clone(),
            retry_max: self.retry_max,
            sub,
            secret,
            stop,
        };
        self.tasks.spawn(notifier.run());
    }

    fn stop(&self, id: &str) {
        if let Some(stop) = self.lock().remove(id) {
            stop.cancel();
        }
    }

    /// Starts a notifier for every stored subscription; how many.
    pub fn start_all(&self, store: &Store, feed: &Feed) -> Result<usize, StoreError> {
        let all = store::notify::list(store)?;
        for sub in &all {
            let secret = store::notify::secret(store, &sub.id)?.unwrap_or_default();
            self.start(store, feed, sub.clone(), secret);
        }
        Ok(all.len())
    }

    /// Stops every notifier and waits until they have let go of the store.
    pub async fn shutdown(&self) {
        self.root.cancel();
        self.lock().clear();
        self.tasks.close();
        self.tasks.wait().await;
    }

    /// Creates a subscription that starts after the newest feed item and
    /// starts its notifier; the subscription and its secret.
    pub async fn create(
        &self,
        store: &Store,
        feed: &Feed,
        new: NewSubscription,
    ) -> Result<(Subscription, String), Error> {
        let sub = Subscription {
            id: random_hex(8),
            cursor: store::feed::newest(store)?,
            created: Some(slipway_proto::now()),
            format: new.format as i32,
            name: new.name,
            url: new.url,
            app: new.app,
            environment: new.environment,
            events: new.events,
        };
        let secret = random_hex(32);
        match store
            .commit(store::notify::create(&sub, secret.as_bytes()))
            .await
        {
            Err(StoreError::Exists { .. }) => Err(Error::AlreadyExists {
                what: "subscription",
                name: sub.name,
            }),
            Err(err) => Err(err.into()),
            Ok(()) => {
                self.start(store, feed, sub.clone(), secret.clone().into_bytes());
                Ok((sub, secret))
            }
        }
    }

    /// Removes subscription `name` and stops its notifier.
    pub async fn remove(&self, store: &Store, name: &str) -> Result<Subscription, Error> {
        let sub = get(store, name)?;
        store.commit(store::notify::delete(store, &sub)?).await?;
        self.stop(&sub.id);
        Ok(sub)
    }

    /// Sends subscription `name` a signed test notification now and records
    /// the attempt.
    pub async fn test(&self, store: &Store, name: &str) -> Result<Delivery, Error> {
        let sub = get(store, name)?;
        let secret = store::notify::secret(store, &sub.id)?.unwrap_or_default();
        let now = slipway_proto::now();
        let key = format!("{}:test-{}{:09}", sub.id, now.seconds, now.nanos);
        let item = FeedItem {
            time: Some(now),
            app: sub.app.clone(),
            environment: sub.environment.clone(),
            message: format!("a test notification for subscription {}", sub.name),
            ..Default::default()
        };
        let body = render::body(&sub, &item, render::TEST_EVENT, &key);
        let out = send::Outgoing {
            url: &sub.url,
            secret: &secret,
            event: render::TEST_EVENT,
            key: &key,
            body: &body,
        };
        let delivery = self.sender.post(&out, 1).await;
        let mut ops = store::notify::record(store, &sub.id, &delivery)?;
        ops.push(store::notify::unchanged(&sub));
        store.commit(ops).await?;
        Ok(delivery)
    }
}

/// Subscription `name`, or NOT_FOUND.
pub fn get(store: &Store, name: &str) -> Result<Subscription, Error> {
    store::notify::get(store, name)?.ok_or_else(|| Error::not_found("subscription", name))
}

/// `bytes` random bytes as hex: secrets and ids.
pub fn random_hex(bytes: usize) -> String {
    let mut raw = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut raw);
    hex::encode(raw)
}
