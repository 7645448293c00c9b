//! The control plane's durable state: a small key-value backend trait (sled is
//! the embedded implementation), and one repository per record kind on top,
//! which alone knows its trees, keys and encoding. Callers read through a
//! repository and write by committing the [`Op`]s repositories return, several
//! records in one batch when they change together. Every state change is one
//! atomic batch, flushed to disk before the call returns.

pub mod agent_upgrades;
pub mod audit;
pub mod builds;
pub mod catalog;
pub mod dashboard;
pub mod deployment_text;
pub mod deployments;
pub mod drift;
pub mod etcd;
pub mod events;
pub mod feed;
pub mod health;
pub mod identity;
pub mod join_tokens;
pub mod locks;
pub mod migrate;
pub mod notify;
pub mod queue;
pub mod releases;
pub mod retention;
pub mod revocations;
pub mod secrets;
mod sled_backend;
mod tree;
pub mod triggers;
mod writers;

use std::sync::Arc;

use prometheus_client::metrics::histogram::Histogram;
use prost::Message;
use serde::{Serialize, de::DeserializeOwned};

pub use etcd::{
    EtcdBackend, EtcdOpenError, EtcdSettings, EtcdTls, Fence,
    connect_options as etcd_connect_options,
};
pub use sled_backend::{OpenError, SledBackend};
pub use tree::Tree;

/// Key-value pairs in key order.
pub type Entries = Vec<(Vec<u8>, Vec<u8>)>;

/// One write of a batch.
#[derive(Clone, Debug)]
pub enum Op {
    /// Write the value whatever was there.
    Put(Tree, Vec<u8>, Vec<u8>),
    /// Write the value; the whole batch fails with [`StoreError::Exists`] if
    /// the key is present.
    Create(Tree, Vec<u8>, Vec<u8>),
    /// Remove the key if its value is exactly the given one.
    DeleteIf(Tree, Vec<u8>, Vec<u8>),
    /// Remove the key.
    Delete(Tree, Vec<u8>),
    /// Write nothing; the whole batch fails with [`StoreError::Conflict`]
    /// unless the key holds exactly this value (None: is absent). A
    /// compare-and-set is an `Expect` and a `Put` of the same key.
    Expect(Tree, Vec<u8>, Option<Vec<u8>>),
}

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A `Create` found its key present; nothing of the batch was written.
    #[error("{tree:?} already holds key {key:?}")]
    Exists {
        /// The tree.
        tree: Tree,
        /// The key, lossily as text.
        key: String,
    },
    /// An `Expect` found another value; nothing of the batch was written.
    #[error("{tree:?} changed at key {key:?}")]
    Conflict {
        /// The tree.
        tree: Tree,
        /// The key, lossily as text.
        key: String,
    },
    /// The backend failed.
    #[error("storage backend failed")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// This process lost the leadership its commits are fenced on (etcd
    /// store); nothing of the batch was written.
    #[error("this control plane is no longer the leader; nothing was written")]
    Fenced,
    /// A batch has more operations (or bytes) than the backend takes in one
    /// transaction; nothing of it was written.
    #[error(
        "a batch of {ops} operations is over the store's limit of {limit} per transaction; raise etcd's --max-txn-ops and store.etcd.max_txn_ops together"
    )]
    BatchTooLarge {
        /// Operations in the batch.
        ops: usize,
        /// Operations the backend takes.
        limit: usize,
    },
    /// A value over the backend's size budget; nothing was written.
    #[error(
        "a value of {bytes} bytes in {tree:?} at {key:?} is over the store's limit of {limit} bytes"
    )]
    ValueTooLarge {
        /// The tree.
        tree: Tree,
        /// The key, lossily as text.
        key: String,
        /// Size of the value.
        bytes: usize,
        /// The budget.
        limit: usize,
    },
    /// A stored value could not be decoded.
    #[error("stored value in {tree:?} at {key:?} is unreadable")]
    Corrupt {
        /// The tree.
        tree: Tree,
        /// The key, lossily as text.
        key: String,
    },
}

/// The storage the control plane needs: point reads, ordered prefix scans in
/// both directions, and atomic durable batches with compare-and-set. Small on
/// purpose, so another backend (an etcd store is planned) can replace sled.
pub trait Backend: Send + Sync + 'static {
    /// The value at `key`.
    fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;
    /// Every entry whose key starts with `prefix`, in key order.
    fn scan(&self, tree: Tree, prefix: &[u8]) -> Result<Entries, StoreError>;
    /// Entries with keys starting with `prefix` and greater than `after`, in
    /// key order, at most `limit`.
    fn scan_after(
        &self,
        tree: Tree,
        prefix: &[u8],
        after: &[u8],
        limit: usize,
    ) -> Result<Entries, StoreError>;
    /// Entries with keys starting with `prefix` and less than `before`
    /// (anywhere under the prefix when None), newest key first, at most
    /// `limit`.
    fn scan_rev(
        &self,
        tree: Tree,
        prefix: &[u8],
        before: Option<&[u8]>,
        limit: usize,
    ) -> Result<Entries, StoreError>;
    /// Applies every op atomically and makes it durable before returning.
    fn commit(&self, ops: &[Op]) -> Result<(), StoreError>;
    /// Bytes the store takes on disk, when the backend knows.
    fn size_on_disk(&self) -> Option<u64> {
        None
    }
    /// The most ops one batch may hold; writers that split their work in
    /// batches (backfills, expiry) stay under it.
    fn max_batch_ops(&self) -> usize {
        usize::MAX
    }
    /// Batches worth committing at once: a few where a commit is a local
    /// flush (the next flush carries what was applied meanwhile), more
    /// where it is a round trip to a remote store.
    fn concurrent_commits(&self) -> usize {
        4
    }
}

pub(crate) fn backend_err(err: impl std::error::Error + Send + Sync + 'static) -> StoreError {
    StoreError::Backend(Box::new(err))
}

/// Stored values start with a format version so that a later layout can be
/// read next to this one.
const FORMAT_V1: u8 = 1;

/// Encodes a protobuf record.
fn encode_proto(msg: &impl Message) -> Vec<u8> {
    let mut buf = Vec::with_capacity(1 + msg.encoded_len());
    buf.push(FORMAT_V1);
    msg.encode(&mut buf).expect("Vec grows as needed");
    buf
}

/// Encodes a JSON record.
fn encode_json(value: &impl Serialize) -> Vec<u8> {
    let mut buf = vec![FORMAT_V1];
    serde_json::to_writer(&mut buf, value).expect("records serialise");
    buf
}

fn corrupt(tree: Tree, key: &[u8]) -> StoreError {
    StoreError::Corrupt {
        tree,
        key: String::from_utf8_lossy(key).into_owned(),
    }
}

/// The backend, shared. Its reads are the repositories' own; a caller
/// outside `store` only commits the writes a repository returns.
#[derive(Clone)]
pub struct Store {
    backend: Arc<dyn Backend>,
    /// The leadership term of this replica's writes (0 on the embedded
    /// store): fencing tokens carry it.
    term: Arc<std::sync::atomic::AtomicU64>,
    /// Where the time of each durable commit goes, if anywhere.
    commit_seconds: Option<Histogram>,
    writers: Arc<writers::Writers>,
}

impl Store {
    /// Wraps a backend.
    pub fn new(backend: Arc<dyn Backend>) -> Self {
        Self {
            writers: Arc::new(writers::Writers::new(backend.concurrent_commits())),
            backend,
            term: Default::default(),
            commit_seconds: None,
        }
    }

    /// The leadership term this replica writes in.
    pub fn term(&self) -> u64 {
        self.term.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Sets the leadership term, when this replica becomes leader.
    pub fn set_term(&self, term: u64) {
        self.term.store(term, std::sync::atomic::Ordering::SeqCst);
    }

    /// Observes the seconds of every commit (transaction and flush) in
    /// `histogram`.
    pub fn timed(mut self, histogram: Histogram) -> Self {
        self.commit_seconds = Some(histogram);
        self
    }

    /// Bytes the store takes on disk, when the backend knows. Blocking.
    pub fn size_on_disk(&self) -> Option<u64> {
        self.backend.size_on_disk()
    }

    /// The most ops one batch may hold (see [`Backend::max_batch_ops`]).
    pub fn max_batch_ops(&self) -> usize {
        self.backend.max_batch_ops()
    }

    /// Reads one protobuf record.
    fn get<M: Message + Default>(&self, tree: Tree, key: &[u8]) -> Result<Option<M>, StoreError> {
        self.backend
            .get(tree, key)?
            .map(|raw| decode_proto(tree, key, &raw))
            .transpose()
    }

    /// Reads one JSON record.
    fn get_json<T: DeserializeOwned>(
        &self,
        tree: Tree,
        key: &[u8],
    ) -> Result<Option<T>, StoreError> {
        self.backend
            .get(tree, key)?
            .map(|raw| decode_json(tree, key, &raw))
            .transpose()
    }

    /// Every protobuf record under `prefix`, in key order.
    fn list<M: Message + Default>(&self, tree: Tree, prefix: &[u8]) -> Result<Vec<M>, StoreError> {
        self.backend
            .scan(tree, prefix)?
            .into_iter()
            .map(|(k, v)| decode_proto(tree, &k, &v))
            .collect()
    }

    /// Protobuf records under `prefix` with keys after `after`, at most `limit`.
    fn list_after<M: Message + Default>(
        &self,
        tree: Tree,
        prefix: &[u8],
        after: &[u8],
        limit: usize,
    ) -> Result<Vec<M>, StoreError> {
        self.backend
            .scan_after(tree, prefix, after, limit)?
            .into_iter()
            .map(|(k, v)| decode_proto(tree, &k, &v))
            .collect()
    }

    /// Raw key-value pairs under `prefix`, in key order.
    fn scan_raw(&self, tree: Tree, prefix: &[u8]) -> Result<Entries, StoreError> {
        self.backend.scan(tree, prefix)
    }

    /// Raw value, for lock holders.
    fn get_raw(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.backend.get(tree, key)
    }

    /// Applies a batch atomically and durably, off the async runtime.
    pub async fn commit(&self, ops: Vec<Op>) -> Result<(), StoreError> {
        let (backend, timer) = (self.backend.clone(), self.commit_seconds.clone());
        let committed = self.writers.run(move || {
            let started = std::time::Instant::now();
            let committed = backend.commit(&ops);
            if let Some(timer) = timer {
                timer.observe(started.elapsed().as_secs_f64());
            }
            committed
        });
        committed
            .await
            .unwrap_or_else(|| Err(StoreError::Backend("the store's commit panicked".into())))
    }

    /// Raw pairs under `prefix` with keys before `before`, newest key first,
    /// at most `limit`.
    fn scan_rev_raw(
        &self,
        tree: Tree,
        prefix: &[u8],
        before: Option<&[u8]>,
        limit: usize,
    ) -> Result<Entries, StoreError> {
        self.backend.scan_rev(tree, prefix, before, limit)
    }
}

fn decode_proto<M: Message + Default>(tree: Tree, key: &[u8], raw: &[u8]) -> Result<M, StoreError> {
    match raw.split_first() {
        Some((&FORMAT_V1, body)) => M::decode(body).map_err(|_| corrupt(tree, key)),
        _ => Err(corrupt(tree, key)),
    }
}

fn decode_json<T: DeserializeOwned>(tree: Tree, key: &[u8], raw: &[u8]) -> Result<T, StoreError> {
    match raw.split_first() {
        Some((&FORMAT_V1, body)) => serde_json::from_slice(body).map_err(|_| corrupt(tree, key)),
        _ => Err(corrupt(tree, key)),
    }
}

/// The least key greater than every key that starts with `prefix`; None
/// when there is none (an empty prefix, or one of 0xFF bytes only).
fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// `a \0 b`: a composite key whose parts sort correctly (names never hold NUL).
fn key2(a: &str, b: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(a.len() + b.len() + 1);
    key.extend_from_slice(a.as_bytes());
    key.push(0);
    key.extend_from_slice(b.as_bytes());
    key
}

/// The key of one event: deployment id, NUL, big-endian sequence.
fn event_key(deployment: &str, sequence: u64) -> Vec<u8> {
    let mut key = key2(deployment, "");
    key.extend_from_slice(&sequence.to_be_bytes());
    key
}

#[cfg(test)]
pub(crate) mod tests;
