//! The control plane's durable state: a small key-value backend trait, its sled
//! implementation, and the typed records on top. Every state change is one
//! atomic batch, flushed to disk before the call returns.

use std::{path::Path, sync::Arc};

use prost::Message;
use serde::{Serialize, de::DeserializeOwned};

/// The trees (tables) of the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tree {
    /// name -> `App`
    Apps,
    /// name -> `Environment`
    Environments,
    /// name -> `Host`
    Hosts,
    /// app \0 id -> `Release`
    Releases,
    /// app \0 id -> `Manifest` (JSON)
    Manifests,
    /// id -> `Deployment`
    Deployments,
    /// id \0 be64(sequence) -> `DeploymentEvent`
    Events,
    /// app \0 environment -> deployment id holding the lock
    Locks,
    /// be64(u64::MAX - sequence) -> `AuditEvent`: key order is newest first
    Audit,
}

impl Tree {
    const ALL: [Tree; 9] = [
        Tree::Apps,
        Tree::Environments,
        Tree::Hosts,
        Tree::Releases,
        Tree::Manifests,
        Tree::Deployments,
        Tree::Events,
        Tree::Locks,
        Tree::Audit,
    ];

    fn name(self) -> &'static str {
        match self {
            Tree::Apps => "apps",
            Tree::Environments => "environments",
            Tree::Hosts => "hosts",
            Tree::Releases => "releases",
            Tree::Manifests => "manifests",
            Tree::Deployments => "deployments",
            Tree::Events => "events",
            Tree::Locks => "locks",
            Tree::Audit => "audit",
        }
    }

    fn index(self) -> usize {
        Tree::ALL
            .iter()
            .position(|t| *t == self)
            .unwrap_or_default()
    }
}

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
    /// The backend failed.
    #[error("storage backend failed")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// A stored value could not be decoded.
    #[error("stored value in {tree:?} at {key:?} is unreadable")]
    Corrupt {
        /// The tree.
        tree: Tree,
        /// The key, lossily as text.
        key: String,
    },
}

/// The storage the control plane needs: point reads, ordered prefix scans,
/// atomic durable batches and an id sequence. Small on purpose, so another
/// backend can replace sled.
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
    /// Applies every op atomically and makes it durable before returning.
    fn commit(&self, ops: &[Op]) -> Result<(), StoreError>;
    /// A number never returned before, even across restarts.
    fn next_id(&self) -> Result<u64, StoreError>;
}

/// sled 0.34, the embedded default.
pub struct SledBackend {
    db: sled::Db,
    trees: Vec<sled::Tree>,
}

fn backend_err(err: impl std::error::Error + Send + Sync + 'static) -> StoreError {
    StoreError::Backend(Box::new(err))
}

/// Opening the data directory failed.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// sled reported corruption.
    #[error(
        "the store in {path} is corrupt; restore the directory from a backup, or move it aside to start empty"
    )]
    Corrupt {
        /// Data directory.
        path: String,
        /// The cause.
        #[source]
        source: sled::Error,
    },
    /// Anything else, most often another process holding the directory.
    #[error("cannot open the store in {path} (is another control plane using it?)")]
    Io {
        /// Data directory.
        path: String,
        /// The cause.
        #[source]
        source: sled::Error,
    },
}

impl SledBackend {
    /// Opens (or creates) the store in `dir`.
    pub fn open(dir: &Path, cache_bytes: u64) -> Result<Self, OpenError> {
        let path = dir.display().to_string();
        let classify = |source: sled::Error| match source {
            sled::Error::Corruption { .. } => OpenError::Corrupt {
                path: path.clone(),
                source,
            },
            source => OpenError::Io {
                path: path.clone(),
                source,
            },
        };
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(cache_bytes)
            .mode(sled::Mode::HighThroughput)
            .open()
            .map_err(classify)?;
        let trees = Tree::ALL
            .iter()
            .map(|t| db.open_tree(t.name()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(classify)?;
        Ok(Self { db, trees })
    }

    fn tree(&self, tree: Tree) -> &sled::Tree {
        &self.trees[tree.index()]
    }
}

fn pairs(
    iter: impl Iterator<Item = sled::Result<(sled::IVec, sled::IVec)>>,
) -> Result<Entries, StoreError> {
    iter.map(|r| {
        r.map(|(k, v)| (k.to_vec(), v.to_vec()))
            .map_err(backend_err)
    })
    .collect()
}

impl Backend for SledBackend {
    fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .tree(tree)
            .get(key)
            .map_err(backend_err)?
            .map(|v| v.to_vec()))
    }

    fn scan(&self, tree: Tree, prefix: &[u8]) -> Result<Entries, StoreError> {
        pairs(self.tree(tree).scan_prefix(prefix))
    }

    fn scan_after(
        &self,
        tree: Tree,
        prefix: &[u8],
        after: &[u8],
        limit: usize,
    ) -> Result<Entries, StoreError> {
        use std::ops::Bound;
        let range = self
            .tree(tree)
            .range::<&[u8], _>((Bound::Excluded(after), Bound::Unbounded))
            .take_while(|r| r.as_ref().map_or(true, |(k, _)| k.starts_with(prefix)))
            .take(limit);
        pairs(range)
    }

    fn commit(&self, ops: &[Op]) -> Result<(), StoreError> {
        use sled::{
            Transactional,
            transaction::{ConflictableTransactionError, TransactionError},
        };
        // Only the transactional handles are used inside the closure: a plain
        // tree or db call there deadlocks. The closure may re-run on conflict,
        // so it has no side effects.
        let result = self.trees.as_slice().transaction(|trees| {
            for op in ops {
                match op {
                    Op::Put(tree, key, value) => {
                        trees[tree.index()].insert(key.as_slice(), value.as_slice())?;
                    }
                    Op::Create(tree, key, value) => {
                        let t = &trees[tree.index()];
                        if t.get(key.as_slice())?.is_some() {
                            return Err(ConflictableTransactionError::Abort((
                                *tree,
                                String::from_utf8_lossy(key).into_owned(),
                            )));
                        }
                        t.insert(key.as_slice(), value.as_slice())?;
                    }
                    Op::DeleteIf(tree, key, expected) => {
                        let t = &trees[tree.index()];
                        if t.get(key.as_slice())?.as_deref() == Some(expected.as_slice()) {
                            t.remove(key.as_slice())?;
                        }
                    }
                    Op::Delete(tree, key) => {
                        trees[tree.index()].remove(key.as_slice())?;
                    }
                }
            }
            Ok(())
        });
        match result {
            Ok(()) => {}
            Err(TransactionError::Abort((tree, key))) => {
                return Err(StoreError::Exists { tree, key });
            }
            Err(TransactionError::Storage(err)) => return Err(backend_err(err)),
        }
        // Durable before anyone is told.
        self.db.flush().map_err(backend_err)?;
        Ok(())
    }

    fn next_id(&self) -> Result<u64, StoreError> {
        self.db.generate_id().map_err(backend_err)
    }
}

/// Stored values start with a format version so that a later layout can be
/// read next to this one.
const FORMAT_V1: u8 = 1;

/// Encodes a protobuf record.
pub fn encode_proto(msg: &impl Message) -> Vec<u8> {
    let mut buf = Vec::with_capacity(1 + msg.encoded_len());
    buf.push(FORMAT_V1);
    msg.encode(&mut buf).expect("Vec grows as needed");
    buf
}

/// Encodes a JSON record.
pub fn encode_json(value: &impl Serialize) -> Vec<u8> {
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

/// Typed access to the backend.
#[derive(Clone)]
pub struct Store {
    backend: Arc<dyn Backend>,
}

impl Store {
    /// Wraps a backend.
    pub fn new(backend: Arc<dyn Backend>) -> Self {
        Self { backend }
    }

    /// Reads one protobuf record.
    pub fn get<M: Message + Default>(
        &self,
        tree: Tree,
        key: &[u8],
    ) -> Result<Option<M>, StoreError> {
        self.backend
            .get(tree, key)?
            .map(|raw| decode_proto(tree, key, &raw))
            .transpose()
    }

    /// Reads one JSON record.
    pub fn get_json<T: DeserializeOwned>(
        &self,
        tree: Tree,
        key: &[u8],
    ) -> Result<Option<T>, StoreError> {
        self.backend
            .get(tree, key)?
            .map(|raw| match raw.split_first() {
                Some((&FORMAT_V1, body)) => {
                    serde_json::from_slice(body).map_err(|_| corrupt(tree, key))
                }
                _ => Err(corrupt(tree, key)),
            })
            .transpose()
    }

    /// Every protobuf record under `prefix`, in key order.
    pub fn list<M: Message + Default>(
        &self,
        tree: Tree,
        prefix: &[u8],
    ) -> Result<Vec<M>, StoreError> {
        self.backend
            .scan(tree, prefix)?
            .into_iter()
            .map(|(k, v)| decode_proto(tree, &k, &v))
            .collect()
    }

    /// Protobuf records under `prefix` with keys after `after`, at most `limit`.
    pub fn list_after<M: Message + Default>(
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
    pub fn scan_raw(&self, tree: Tree, prefix: &[u8]) -> Result<Entries, StoreError> {
        self.backend.scan(tree, prefix)
    }

    /// Raw value, for lock holders.
    pub fn get_raw(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.backend.get(tree, key)
    }

    /// Applies a batch atomically and durably, off the async runtime.
    pub async fn commit(&self, ops: Vec<Op>) -> Result<(), StoreError> {
        let backend = self.backend.clone();
        tokio::task::spawn_blocking(move || backend.commit(&ops))
            .await
            .map_err(backend_err)?
    }

    /// A fresh number, unique across restarts.
    pub fn next_id(&self) -> Result<u64, StoreError> {
        self.backend.next_id()
    }
}

pub(crate) fn decode_proto<M: Message + Default>(
    tree: Tree,
    key: &[u8],
    raw: &[u8],
) -> Result<M, StoreError> {
    match raw.split_first() {
        Some((&FORMAT_V1, body)) => M::decode(body).map_err(|_| corrupt(tree, key)),
        _ => Err(corrupt(tree, key)),
    }
}

/// `a \0 b`: a composite key whose parts sort correctly (names never hold NUL).
pub fn key2(a: &str, b: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(a.len() + b.len() + 1);
    key.extend_from_slice(a.as_bytes());
    key.push(0);
    key.extend_from_slice(b.as_bytes());
    key
}

/// The key of one event: deployment id, NUL, big-endian sequence.
pub fn event_key(deployment: &str, sequence: u64) -> Vec<u8> {
    let mut key = key2(deployment, "");
    key.extend_from_slice(&sequence.to_be_bytes());
    key
}

#[cfg(test)]
mod tests {
    use super::*;
    use slipway_proto::control::v1::App;

    fn store(dir: &Path) -> Store {
        Store::new(Arc::new(SledBackend::open(dir, 8 << 20).unwrap()))
    }

    #[tokio::test]
    async fn batches_are_atomic_and_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = store(dir.path());
            let app = App {
                name: "web".into(),
                ..Default::default()
            };
            s.commit(vec![Op::Create(
                Tree::Apps,
                b"web".to_vec(),
                encode_proto(&app),
            )])
            .await
            .unwrap();
            // A batch with a conflicting create writes nothing at all.
            let err = s
                .commit(vec![
                    Op::Put(Tree::Hosts, b"h1".to_vec(), encode_proto(&app)),
                    Op::Create(Tree::Apps, b"web".to_vec(), encode_proto(&app)),
                ])
                .await
                .unwrap_err();
            assert!(matches!(
                err,
                StoreError::Exists {
                    tree: Tree::Apps,
                    ..
                }
            ));
            assert!(s.get_raw(Tree::Hosts, b"h1").unwrap().is_none());
        }
        let s = store(dir.path());
        let app: App = s.get(Tree::Apps, b"web").unwrap().unwrap();
        assert_eq!(app.name, "web");
    }

    #[test]
    fn event_keys_sort_by_sequence() {
        assert!(event_key("d1", 2) < event_key("d1", 10));
        assert!(event_key("d1", 255) < event_key("d1", 256));
    }
}
