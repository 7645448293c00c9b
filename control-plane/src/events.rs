//! A deployment's event log as clients see it: events are persisted first,
//! then a per-deployment watch channel wakes the streams, which replay from the
//! store. So every stream is a replay plus live events, in order, without gaps.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use slipway_proto::control::v1::DeploymentEvent;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;

use crate::{domain::event::is_final, feed::Feed, store::Store};

/// Events a stream reads from the store at once.
const PAGE: usize = 256;

/// The live deployments' watch channels, carrying the last persisted sequence.
#[derive(Clone, Default)]
pub struct EventHub {
    live: Arc<Mutex<HashMap<String, watch::Sender<u64>>>>,
    feed: Feed,
}

impl EventHub {
    /// The live feed of state changes across deployments.
    pub fn feed(&self) -> &Feed {
        &self.feed
    }

    /// Registers a deployment that is about to record events; one already
    /// registered (a queued deployment that starts) keeps its streams.
    pub fn open(&self, deployment: &str) {
        self.live
            .lock()
            .expect("hub lock")
            .entry(deployment.to_owned())
            .or_insert_with(|| watch::channel(0).0);
    }

    /// Tells the streams that events up to `sequence` are persisted.
    pub fn published(&self, deployment: &str, sequence: u64) {
        if let Some(tx) = self.live.lock().expect("hub lock").get(deployment) {
            tx.send_replace(sequence);
        }
    }

    /// Forgets a finished deployment; its streams read the rest from the store.
    pub fn close(&self, deployment: &str) {
        self.live.lock().expect("hub lock").remove(deployment);
    }

    /// Subscribes to a deployment's channel, registering it if its writer
    /// has not yet (the writer then keeps it).
    fn join(&self, deployment: &str) -> watch::Receiver<u64> {
        self.live
            .lock()
            .expect("hub lock")
            .entry(deployment.to_owned())
            .or_insert_with(|| watch::channel(0).0)
            .subscribe()
    }

    /// A stream of the deployment's events after `after`, following live ones
    /// until the final one. A client that goes away only ends its stream.
    ///
    /// A stream may start before the deployment's writer registers it (a
    /// new deployment is visible from its first event, before its writer
    /// announces it), or after it ended: it registers the deployment itself
    /// and ends only once the record says the deployment ended and every
    /// event it recorded was sent.
    pub fn stream<T: Send + 'static>(
        &self,
        store: Store,
        deployment: String,
        after: u64,
        wrap: fn(DeploymentEvent) -> T,
    ) -> ReceiverStream<Result<T, Status>> {
        let (tx, rx) = mpsc::channel(64);
        let hub = self.clone();
        tokio::spawn(async move {
            hub.follow(&store, &deployment, after, wrap, &tx).await;
            hub.leave(&deployment);
        });
        ReceiverStream::new(rx)
    }

    async fn follow<T>(
        &self,
        store: &Store,
        deployment: &str,
        after: u64,
        wrap: fn(DeploymentEvent) -> T,
        tx: &mpsc::Sender<Result<T, Status>>,
    ) {
        let mut cursor = after;
        let mut live: Option<watch::Receiver<u64>> = None;
        loop {
            // Subscribed before the read: nothing persisted after the read
            // can be missed.
            let rx = live.get_or_insert_with(|| self.join(deployment));
            rx.borrow_and_update();
            let Page {
                events,
                full,
                ended,
            } = match read(store, deployment, cursor) {
                Ok(page) => page,
                Err(err) => {
                    tracing::error!(error = ?err, %deployment, "reading events failed");
                    let _ = tx
                        .send(Err(Status::unavailable("reading the event log failed")))
                        .await;
                    return;
                }
            };
            for event in events {
                cursor = event.sequence;
                let last = is_final(&event);
                if tx.send(Ok(wrap(event))).await.is_err() {
                    return; // The client left; the deployment goes on.
                }
                if last {
                    return;
                }
            }
            if full {
                continue;
            }
            if ended {
                return;
            }
            if rx.changed().await.is_err() {
                // Closed by its writer: read again, and register again if
                // it goes on (a start that lost the number gave it up).
                live = None;
            }
        }
    }

    /// Forgets a deployment's channel once no stream follows it; its writer
    /// finds a new one if a stream joins again.
    fn leave(&self, deployment: &str) {
        let mut live = self.live.lock().expect("hub lock");
        if live
            .get(deployment)
            .is_some_and(|tx| tx.receiver_count() == 0)
        {
            live.remove(deployment);
        }
    }
}

/// Events read at once, and whether the deployment had ended when they were.
struct Page {
    events: Vec<DeploymentEvent>,
    full: bool,
    /// The record is final and nothing it recorded follows these events.
    ended: bool,
}

fn read(store: &Store, deployment: &str, cursor: u64) -> Result<Page, crate::store::StoreError> {
    // The record first: an event recorded after it is still read below.
    let record = crate::store::deployments::get(store, deployment)?;
    let events = crate::store::events::after(store, deployment, cursor, PAGE)?;
    let full = events.len() == PAGE;
    let sent = events.last().map_or(cursor, |e| e.sequence);
    let ended = record
        .is_none_or(|d| crate::domain::event::is_final_status(d.status()) && d.last_event <= sent);
    Ok(Page {
        events,
        full,
        ended,
    })
}
