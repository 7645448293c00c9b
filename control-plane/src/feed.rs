//! The live feed: items are given dense cursors and made durable in the
//! same transaction as the record they come from, in cursor order (one
//! writer at a time); a watch channel carrying the newest cursor then wakes
//! the streams, which read from the store. So a stream is a replay plus
//! live items, in order, without gaps, and a watcher that lags holds no
//! memory here: it is told it fell behind and resumes from its cursor.

use std::{sync::Arc, time::Duration};

use slipway_proto::control::v1::{FeedItem, FeedKind, FellBehind, WatchEventsResponse};
use tokio::sync::{Mutex, mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;

use crate::store::{self, Op, Store, StoreError};

/// Items a stream reads from the store at once.
const PAGE: usize = 256;
/// Items kept; older ones are dropped as new ones arrive.
pub const KEEP: u64 = 100_000;
/// Items dropped at once when trimming.
const TRIM: usize = 1024;
/// How long a watcher's queue may stay full (it took nothing) before its
/// stream ends with `fell_behind`.
pub const MAX_WAIT: Duration = Duration::from_secs(30);
/// Items queued for one watcher.
const QUEUE: usize = 64;

/// The feed's writer lock and its newest cursor.
#[derive(Clone)]
pub struct Feed {
    /// The newest cursor written, once known; held while writing so that
    /// cursors are made durable in order.
    last: Arc<Mutex<Option<u64>>>,
    head: watch::Sender<u64>,
}

impl Default for Feed {
    fn default() -> Self {
        Self {
            last: Arc::default(),
            head: watch::Sender::new(0),
        }
    }
}

/// Which items a watcher wants.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    /// Only this app's.
    pub app: Option<String>,
    /// Only this environment's.
    pub environment: Option<String>,
    /// Only these kinds (empty: all).
    pub kinds: Vec<FeedKind>,
}

impl Filter {
    fn matches(&self, item: &FeedItem) -> bool {
        self.app.as_ref().is_none_or(|a| *a == item.app)
            && self
                .environment
                .as_ref()
                .is_none_or(|e| *e == item.environment)
            && (self.kinds.is_empty() || self.kinds.contains(&item.kind()))
    }
}

/// Where a stream starts.
#[derive(Clone, Copy, Debug)]
pub enum Start {
    /// After this cursor (0: from the oldest item kept).
    After(u64),
    /// After the newest item.
    Now,
}

impl Feed {
    /// Commits `ops` with `items` appended to the feed, all or nothing;
    /// gives the items their cursors and times, then wakes the streams.
    pub async fn commit(
        &self,
        store: &Store,
        mut items: Vec<FeedItem>,
        mut ops: Vec<Op>,
    ) -> Result<(), StoreError> {
        if items.is_empty() {
            return store.commit(ops).await;
        }
        let mut last = self.last.lock().await;
        let base = match *last {
            Some(cursor) => cursor,
            None => store::feed::newest(store)?,
        };
        let now = slipway_proto::now();
        for (cursor, item) in (base + 1..).zip(&mut items) {
            item.cursor = cursor;
            item.time.get_or_insert(now);
            ops.push(store::feed::append(item));
        }
        let newest = base + items.len() as u64;
        if let Err(err) = store.commit(ops).await {
            // Read the newest cursor again next time: the commit may or may
            // not have landed.
            *last = None;
            return Err(err);
        }
        *last = Some(newest);
        self.head.send_replace(newest);
        if base / TRIM as u64 != newest / TRIM as u64 {
            let trim = store::feed::trim(store, KEEP, TRIM)?;
            store.commit(trim).await?;
        }
        Ok(())
    }

    /// Wakes the streams for an item another replica made durable at
    /// `cursor` (a follower learns of them from the store's watch).
    pub fn observed(&self, cursor: u64) {
        self.head.send_if_modified(|head| {
            let newer = cursor > *head;
            if newer {
                *head = cursor;
            }
            newer
        });
    }

    /// The newest cursor, which changes whenever items are made durable.
    pub fn head(&self) -> watch::Receiver<u64> {
        self.head.subscribe()
    }

    /// The items after `start` that pass `filter`; with `follow`, then live
    /// ones. A watcher that takes nothing from its full queue for
    /// `max_wait` gets `fell_behind` and its stream ends; so does one whose
    /// cursor is older than the oldest item kept.
    pub fn watch(
        &self,
        store: Store,
        filter: Filter,
        start: Start,
        follow: bool,
        max_wait: Duration,
    ) -> ReceiverStream<Result<WatchEventsResponse, Status>> {
        let (tx, rx) = mpsc::channel(QUEUE);
        // Subscribed before the first read: nothing made durable after the
        // read can be missed.
        let head = self.head.subscribe();
        tokio::spawn(async move {
            let mut watcher = Watcher {
                store,
                filter,
                follow,
                max_wait,
                head,
                tx,
            };
            if let Err(err) = watcher.run(start).await {
                tracing::error!(error = ?err, "reading the feed failed");
                let status = Status::unavailable(format!("reading the feed failed: {err}"));
                let _ = watcher.tx.send(Err(status)).await;
            }
        });
        ReceiverStream::new(rx)
    }
}

struct Watcher {
    store: Store,
    filter: Filter,
    follow: bool,
    max_wait: Duration,
    head: watch::Receiver<u64>,
    tx: mpsc::Sender<Result<WatchEventsResponse, Status>>,
}

impl Watcher {
    async fn run(&mut self, start: Start) -> Result<(), StoreError> {
        let mut cursor = match start {
            Start::After(cursor) => cursor,
            Start::Now => store::feed::newest(&self.store)?,
        };
        if let Some(oldest) = store::feed::oldest(&self.store)?
            && cursor + 1 < oldest
        {
            let reason = format!(
                "items {} to {} were dropped (the feed keeps the newest {KEEP})",
                cursor + 1,
                oldest - 1
            );
            self.fell_behind(oldest - 1, reason).await;
            return Ok(());
        }
        loop {
            self.head.borrow_and_update();
            let page = store::feed::after(&self.store, cursor, PAGE)?;
            if page.is_empty() {
                if !self.follow || self.head.changed().await.is_err() {
                    return Ok(());
                }
                continue;
            }
            for item in page {
                let at = item.cursor;
                if self.filter.matches(&item) && !self.send(item).await {
                    return Ok(());
                }
                cursor = at;
            }
        }
    }

    /// Queues `item`; false when the stream is over (the watcher left, or
    /// took nothing for too long and was told so).
    async fn send(&mut self, item: FeedItem) -> bool {
        let at = item.cursor;
        let response = WatchEventsResponse {
            item: Some(item),
            fell_behind: None,
        };
        match tokio::time::timeout(self.max_wait, self.tx.reserve()).await {
            Ok(Ok(permit)) => {
                permit.send(Ok(response));
                true
            }
            Ok(Err(_)) => false,
            Err(_) => {
                let newest = (*self.head.borrow()).max(at);
                let reason = format!(
                    "took nothing for {} s, {} items behind the newest",
                    self.max_wait.as_secs(),
                    newest - at + 1
                );
                self.fell_behind(at - 1, reason).await;
                false
            }
        }
    }

    async fn fell_behind(&self, resume_after: u64, reason: String) {
        let response = WatchEventsResponse {
            item: None,
            fell_behind: Some(FellBehind {
                resume_after,
                reason,
            }),
        };
        let _ = self.tx.send(Ok(response)).await;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::store::SledBackend;

    fn scratch() -> (tempfile::TempDir, Store, Feed) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(Arc::new(SledBackend::open(dir.path(), 8 << 20).unwrap()));
        (dir, store, Feed::default())
    }

    fn items(n: usize) -> Vec<FeedItem> {
        (0..n)
            .map(|i| FeedItem {
                message: format!("item {i}"),
                ..FeedItem::default()
            })
            .collect()
    }

    #[tokio::test(start_paused = true)]
    async fn a_watcher_that_stops_reading_is_told_where_to_resume() {
        let (_dir, store, feed) = scratch();
        feed.commit(&store, items(300), Vec::new()).await.unwrap();
        let wait = Duration::from_secs(5);
        let mut rx = feed
            .watch(
                store.clone(),
                Filter::default(),
                Start::After(0),
                true,
                wait,
            )
            .into_inner();
        // It takes nothing for longer than it may (on the paused clock).
        tokio::time::sleep(wait * 2).await;
        let mut cursors = Vec::new();
        let behind = loop {
            let message = rx.recv().await.expect("a message").expect("ok");
            match (message.item, message.fell_behind) {
                (Some(item), None) => cursors.push(item.cursor),
                (None, Some(behind)) => break behind,
                other => panic!("{other:?}"),
            }
        };
        let expected: Vec<u64> = (1..=QUEUE as u64).collect();
        assert_eq!(cursors, expected);
        assert_eq!(behind.resume_after, QUEUE as u64, "{}", behind.reason);
        assert!(rx.recv().await.is_none(), "the stream ended");

        // Resumed there, it gets the rest; new items follow live.
        let mut rx = feed
            .watch(
                store.clone(),
                Filter::default(),
                Start::After(64),
                true,
                wait,
            )
            .into_inner();
        for cursor in 65..=300 {
            let item = rx.recv().await.unwrap().unwrap().item.unwrap();
            assert_eq!(item.cursor, cursor);
        }
        feed.commit(&store, items(1), Vec::new()).await.unwrap();
        assert_eq!(rx.recv().await.unwrap().unwrap().item.unwrap().cursor, 301);
    }

    #[tokio::test]
    async fn a_cursor_older_than_the_feed_keeps_is_told_so() {
        let (_dir, store, feed) = scratch();
        feed.commit(&store, items(10), Vec::new()).await.unwrap();
        store
            .commit(store::feed::trim(&store, 5, 100).unwrap())
            .await
            .unwrap();
        let mut rx = feed
            .watch(
                store.clone(),
                Filter::default(),
                Start::After(2),
                false,
                MAX_WAIT,
            )
            .into_inner();
        let behind = rx.recv().await.unwrap().unwrap().fell_behind.unwrap();
        assert_eq!(behind.resume_after, 5, "{}", behind.reason);
        assert!(rx.recv().await.is_none());
    }
}
