//! The change watch of one tree: the store key of every put, in revision
//! order, from an etcd watch that is opened again after a lost connection
//! at the revision after the last one seen, so nothing is missed (unless
//! etcd compacted that history away: the gap is logged).

use etcd_client::{Client, EventType, GetOptions, WatchOptions};
use tokio::sync::mpsc;

use super::{EtcdBackend, commit::Backoff};
use crate::store::Tree;

/// Keys buffered for a slow receiver before the watch waits for it.
pub const WATCH_BUFFER: usize = 1024;

impl EtcdBackend {
    /// The key (without the prefix and tree) of every put in `tree` from now
    /// on, in revision order, until the receiver is dropped or the backend
    /// closes. Survives the loss of a member or of the connection.
    pub fn watch(&self, tree: Tree) -> mpsc::Receiver<Vec<u8>> {
        let (tx, rx) = mpsc::channel(WATCH_BUFFER);
        let follow = Follow {
            client: self.client.clone(),
            prefix: self.tree_prefix(tree),
            tree,
            tx,
        };
        // The starting revision is taken before returning, so every put
        // committed after this call is seen.
        let start = self.run(follow.now());
        if let Ok(start) = start {
            self.handle.spawn(follow.run(start));
        }
        rx
    }
}

struct Follow {
    client: Client,
    prefix: Vec<u8>,
    tree: Tree,
    tx: mpsc::Sender<Vec<u8>>,
}

impl Follow {
    /// The revision after the current one.
    fn now(&self) -> impl Future<Output = Result<i64, crate::store::StoreError>> + use<> {
        let (client, key) = (self.client.clone(), self.prefix.clone());
        async move {
            let options = GetOptions::new().with_prefix().with_count_only();
            let resp = super::scan::retrying(&client, key, Some(options)).await?;
            Ok(resp.header().map_or(0, |h| h.revision()) + 1)
        }
    }

    async fn run(mut self, mut next: i64) {
        let mut backoff = Backoff::default();
        loop {
            match self.follow(&mut next).await {
                Ended::ReceiverGone => return,
                Ended::Lost(why) => {
                    tracing::debug!(tree = ?self.tree, next, %why, "etcd watch lost; opening it again");
                    backoff.wait().await;
                }
            }
        }
    }

    /// Follows one watch stream until it ends.
    async fn follow(&mut self, next: &mut i64) -> Ended {
        let options = WatchOptions::new().with_prefix().with_start_revision(*next);
        let mut stream = match self.client.watch(self.prefix.clone(), Some(options)).await {
            Ok(stream) => stream,
            Err(err) => return Ended::Lost(err.to_string()),
        };
        loop {
            let message = tokio::select! {
                message = stream.message() => message,
                () = self.tx.closed() => return Ended::ReceiverGone,
            };
            let resp = match message {
                Ok(Some(resp)) => resp,
                Ok(None) => return Ended::Lost("stream closed".into()),
                Err(err) => return Ended::Lost(err.to_string()),
            };
            if resp.compact_revision() > *next {
                tracing::warn!(
                    tree = ?self.tree,
                    from = *next,
                    to = resp.compact_revision(),
                    "etcd compacted changes this watch had not seen; they are skipped"
                );
                *next = resp.compact_revision();
            }
            if resp.canceled() {
                return Ended::Lost(format!("canceled: {}", resp.cancel_reason()));
            }
            for event in resp.events() {
                let Some(kv) = event.kv() else { continue };
                *next = kv.mod_revision() + 1;
                if event.event_type() != EventType::Put {
                    continue;
                }
                let key = kv.key().get(self.prefix.len()..).unwrap_or_default();
                if self.tx.send(key.to_vec()).await.is_err() {
                    return Ended::ReceiverGone;
                }
            }
        }
    }
}

enum Ended {
    ReceiverGone,
    Lost(String),
}
