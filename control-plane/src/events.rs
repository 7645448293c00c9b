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

    fn subscribe(&self, deployment: &str) -> Option<watch::Receiver<u64>> {
        self.live
            .lock()
            .expect("hub lock")
            .get(deployment)
            .map(|tx| tx.subscribe())
    }

    /// A stream of the deployment's events after `after`, following live ones
    /// until the final one. A client that goes away only ends its stream.
    pub fn stream<T: Send + 'static>(
        &self,
        store: Store,
        deployment: String,
        after: u64,
        wrap: fn(DeploymentEvent) -> T,
    ) -> ReceiverStream<Result<T, Status>> {
        let (tx, rx) = mpsc::channel(64);
        // Subscribe before the first read so that nothing persisted after the
        // read can be missed.
        let mut live = self.subscribe(&deployment);
        tokio::spawn(async move {
            let mut cursor = after;
            loop {
                if let Some(live) = live.as_mut() {
                    live.borrow_and_update();
                }
                let page = match crate::store::events::after(&store, &deployment, cursor, PAGE) {
                    Ok(page) => page,
                    Err(err) => {
                        tracing::error!(error = ?err, %deployment, "reading events failed");
                        let _ = tx
                            .send(Err(Status::unavailable("reading the event log failed")))
                            .await;
                        return;
                    }
                };
                let full = page.len() == PAGE;
                for event in page {
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
                match live.as_mut() {
                    Some(rx) => {
                        if rx.changed().await.is_err() {
                            // Closed after its final event was persisted:
                            // one more read delivers it.
                            live = None;
                        }
                    }
                    None => return,
                }
            }
        });
        ReceiverStream::new(rx)
    }
}
