//! etcd v3, the replicated backend: every store tree is a key range
//! `<prefix>/<tree>/`, every batch one etcd transaction. The [`Backend`]
//! trait is synchronous and called from async tasks too (current-thread
//! runtimes included), so the backend runs its client on a small runtime of
//! its own and blocks the caller on a channel, never on the caller's
//! runtime. Two hooks serve the HA control plane: a [`Fence`] every commit
//! is conditional on, and a change [`watch`](EtcdBackend::watch) per tree.

mod commit;
mod plan;
mod scan;
mod watch;

use std::{
    future::Future,
    path::PathBuf,
    sync::{Arc, Mutex},
    time::Duration,
};

use etcd_client::{Certificate, Client, ConnectOptions, Identity, TlsOptions};

use super::{Backend, Entries, Op, StoreError, Tree, backend_err};

/// The prefix of every key unless configured.
pub const DEFAULT_PREFIX: &str = "slipway";
/// Operations per transaction unless configured: etcd's own default
/// `--max-txn-ops`.
pub const DEFAULT_MAX_TXN_OPS: usize = 128;
/// How long connecting may take unless configured.
pub const DEFAULT_DIAL_TIMEOUT: Duration = Duration::from_secs(5);
/// The largest value the store writes to etcd: nothing the control plane
/// keeps should come near it, and etcd refuses requests over
/// `--max-request-bytes` (1.5 MiB by default).
pub const MAX_VALUE_BYTES: usize = 1 << 20;
/// The largest transaction, in bytes of keys and values, under etcd's
/// default `--max-request-bytes` with room for framing.
pub const MAX_REQUEST_BYTES: usize = 1_400_000;

/// Where and how to reach etcd.
#[derive(Clone, Debug)]
pub struct EtcdSettings {
    /// Client URLs of the members (`https://` with `tls`, else `http://`).
    pub endpoints: Vec<String>,
    /// The prefix of every key (no trailing `/`).
    pub prefix: String,
    /// The most operations one transaction carries; must not exceed the
    /// members' `--max-txn-ops`.
    pub max_txn_ops: usize,
    /// Mutual TLS to etcd; None: plain http.
    pub tls: Option<EtcdTls>,
    /// How long connecting (and the first request) may take.
    pub dial_timeout: Duration,
}

impl EtcdSettings {
    /// Settings with the defaults for everything but the endpoints.
    pub fn new(endpoints: Vec<String>) -> Self {
        Self {
            endpoints,
            prefix: DEFAULT_PREFIX.to_owned(),
            max_txn_ops: DEFAULT_MAX_TXN_OPS,
            tls: None,
            dial_timeout: DEFAULT_DIAL_TIMEOUT,
        }
    }
}

/// PEM files of the client's mutual TLS to etcd.
#[derive(Clone, Debug)]
pub struct EtcdTls {
    /// The CA that signed the members' certificates.
    pub ca: PathBuf,
    /// The client certificate.
    pub cert: PathBuf,
    /// Its key.
    pub key: PathBuf,
}

/// Connecting to etcd failed.
#[derive(Debug, thiserror::Error)]
pub enum EtcdOpenError {
    /// A TLS file could not be read.
    #[error("cannot read {path}")]
    Read {
        /// The file.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The settings are unusable.
    #[error("invalid etcd settings: {0}")]
    Invalid(String),
    /// No member answered.
    #[error("cannot reach etcd at {endpoints}")]
    Unreachable {
        /// The endpoints, comma-separated.
        endpoints: String,
        /// The cause.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// The condition that this process still leads: while set, every commit
/// also requires `create_revision(key) == create_revision` and fails with
/// [`StoreError::Fenced`] otherwise.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fence {
    /// The full etcd key (prefix included) of the leadership record.
    pub key: Vec<u8>,
    /// Its create revision when this process won it.
    pub create_revision: i64,
}

/// etcd v3 over the `etcd-client` crate.
pub struct EtcdBackend {
    client: Client,
    prefix: String,
    max_txn_ops: usize,
    fence: Arc<Mutex<Option<Fence>>>,
    /// The key this backend writes in every commit, with the commit's token,
    /// so that a commit whose reply was lost can tell whether it applied.
    writer_key: Vec<u8>,
    runtime: Option<tokio::runtime::Runtime>,
    handle: tokio::runtime::Handle,
}

impl EtcdBackend {
    /// Connects to etcd and checks that a member answers.
    pub fn open(settings: &EtcdSettings) -> Result<Self, EtcdOpenError> {
        check(settings)?;
        let options = connect_options(settings)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("slipway-etcd")
            .enable_all()
            .build()
            .map_err(|err| EtcdOpenError::Invalid(format!("cannot start a runtime: {err}")))?;
        let endpoints = settings.endpoints.clone();
        let timeout = settings.dial_timeout;
        let connected = runtime.block_on_detached(async move {
            tokio::time::timeout(timeout, async move {
                let mut client = Client::connect(endpoints, Some(options)).await?;
                client.status().await?;
                Ok::<_, etcd_client::Error>(client)
            })
            .await
        });
        let client = match connected {
            Ok(Ok(client)) => client,
            failed => {
                // Not a plain drop, which panics inside an async task.
                runtime.shutdown_background();
                return Err(match failed {
                    Ok(Err(err)) => unreachable(settings, Box::new(err)),
                    _ => unreachable(settings, "no member answered in time".into()),
                });
            }
        };
        let handle = runtime.handle().clone();
        let writer_key = format!(
            "{}/.writers/{:032x}",
            settings.prefix,
            rand::random::<u128>()
        );
        Ok(Self {
            client,
            prefix: settings.prefix.clone(),
            max_txn_ops: settings.max_txn_ops,
            fence: Arc::new(Mutex::new(None)),
            writer_key: writer_key.into_bytes(),
            runtime: Some(runtime),
            handle,
        })
    }

    /// A clone of the client (for the election code).
    pub fn client(&self) -> Client {
        self.client.clone()
    }

    /// The prefix of every key.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Sets (or clears) the fence every later commit is conditional on.
    pub fn set_fence(&self, fence: Option<Fence>) {
        *self.fence.lock().unwrap_or_else(|e| e.into_inner()) = fence;
    }

    fn current_fence(&self) -> Option<Fence> {
        self.fence.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The etcd key of `key` in `tree`.
    pub fn full_key(&self, tree: Tree, key: &[u8]) -> Vec<u8> {
        let mut full = self.tree_prefix(tree);
        full.extend_from_slice(key);
        full
    }

    fn tree_prefix(&self, tree: Tree) -> Vec<u8> {
        format!("{}/{}/", self.prefix, tree.name()).into_bytes()
    }

    /// Runs `fut` on the backend's runtime and waits for it on this thread
    /// (which may belong to another runtime: only a channel is waited on).
    fn run<T: Send + 'static>(
        &self,
        fut: impl Future<Output = Result<T, StoreError>> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.handle.spawn(async move {
            let _ = tx.send(fut.await);
        });
        rx.recv()
            .unwrap_or_else(|_| Err(StoreError::Backend("the etcd backend stopped".into())))
    }
}

impl Drop for EtcdBackend {
    fn drop(&mut self) {
        // Not a plain drop: that panics when the last handle goes inside an
        // async task.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// Waits for a future on a fresh thread, so opening works from inside an
/// async task as well as from plain code.
trait BlockOnDetached {
    fn block_on_detached<T: Send + 'static>(
        &self,
        fut: impl Future<Output = T> + Send + 'static,
    ) -> T;
}

impl BlockOnDetached for tokio::runtime::Runtime {
    fn block_on_detached<T: Send + 'static>(
        &self,
        fut: impl Future<Output = T> + Send + 'static,
    ) -> T {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.spawn(async move {
            let _ = tx.send(fut.await);
        });
        rx.recv().expect("the backend's runtime runs the task")
    }
}

fn unreachable(
    settings: &EtcdSettings,
    source: Box<dyn std::error::Error + Send + Sync>,
) -> EtcdOpenError {
    EtcdOpenError::Unreachable {
        endpoints: settings.endpoints.join(","),
        source,
    }
}

/// Refuses settings that cannot work, before connecting.
pub fn check(settings: &EtcdSettings) -> Result<(), EtcdOpenError> {
    let invalid = |m: &str| Err(EtcdOpenError::Invalid(m.to_owned()));
    if settings.endpoints.is_empty() {
        return invalid("no endpoints");
    }
    let scheme = if settings.tls.is_some() {
        "https://"
    } else {
        "http://"
    };
    if let Some(bad) = settings.endpoints.iter().find(|e| !e.starts_with(scheme)) {
        let why = if settings.tls.is_some() {
            "with tls every endpoint must be https://"
        } else {
            "without tls every endpoint must be http:// (give tls to use https://)"
        };
        return Err(EtcdOpenError::Invalid(format!("endpoint {bad}: {why}")));
    }
    if settings.prefix.is_empty() || settings.prefix.ends_with('/') {
        return invalid("the prefix must be non-empty without a trailing /");
    }
    if settings.max_txn_ops < 8 {
        return invalid("max_txn_ops must be at least 8");
    }
    Ok(())
}

pub fn connect_options(settings: &EtcdSettings) -> Result<ConnectOptions, EtcdOpenError> {
    let mut options = ConnectOptions::new()
        .with_connect_timeout(settings.dial_timeout)
        .with_keep_alive(Duration::from_secs(5), Duration::from_secs(5))
        // A member cut off from the others ends its watches instead of
        // going quiet.
        .with_require_leader(true);
    if let Some(tls) = &settings.tls {
        let read = |path: &PathBuf| {
            std::fs::read(path).map_err(|source| EtcdOpenError::Read {
                path: path.display().to_string(),
                source,
            })
        };
        let config = TlsOptions::new()
            .ca_certificate(Certificate::from_pem(read(&tls.ca)?))
            .identity(Identity::from_pem(read(&tls.cert)?, read(&tls.key)?));
        options = options.with_tls(config);
    }
    Ok(options)
}

impl Backend for EtcdBackend {
    fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let (client, full) = (self.client.clone(), self.full_key(tree, key));
        self.run(async move {
            let resp = scan::retrying(&client, full, None).await?;
            Ok(resp.kvs().first().map(|kv| kv.value().to_vec()))
        })
    }

    fn scan(&self, tree: Tree, prefix: &[u8]) -> Result<Entries, StoreError> {
        let start = self.full_key(tree, prefix);
        let end = super::prefix_end(&start).ok_or_else(|| backend_err(scan::NoEnd))?;
        let range = scan::Range::forward(self.tree_prefix(tree).len(), start, end, usize::MAX);
        self.run(range.read(self.client.clone()))
    }

    fn scan_after(
        &self,
        tree: Tree,
        prefix: &[u8],
        after: &[u8],
        limit: usize,
    ) -> Result<Entries, StoreError> {
        let floor = self.full_key(tree, prefix);
        let end = super::prefix_end(&floor).ok_or_else(|| backend_err(scan::NoEnd))?;
        let mut start = self.full_key(tree, after);
        start.push(0);
        let start = start.max(floor);
        if start >= end || limit == 0 {
            return Ok(Vec::new());
        }
        let range = scan::Range::forward(self.tree_prefix(tree).len(), start, end, limit);
        self.run(range.read(self.client.clone()))
    }

    fn scan_rev(
        &self,
        tree: Tree,
        prefix: &[u8],
        before: Option<&[u8]>,
        limit: usize,
    ) -> Result<Entries, StoreError> {
        let start = self.full_key(tree, prefix);
        let mut end = super::prefix_end(&start).ok_or_else(|| backend_err(scan::NoEnd))?;
        if let Some(before) = before {
            end = end.min(self.full_key(tree, before));
        }
        if start >= end || limit == 0 {
            return Ok(Vec::new());
        }
        let range = scan::Range::backward(self.tree_prefix(tree).len(), start, end, limit);
        self.run(range.read(self.client.clone()))
    }

    fn commit(&self, ops: &[Op]) -> Result<(), StoreError> {
        let batch = commit::Batch {
            client: self.client.clone(),
            ops: ops
                .iter()
                .map(|op| plan::FullOp::new(op, |t, k| self.full_key(t, k)))
                .collect(),
            fence: self.current_fence(),
            writer_key: self.writer_key.clone(),
            max_txn_ops: self.max_txn_ops,
        };
        batch.check()?;
        self.run(batch.apply())
    }

    fn size_on_disk(&self) -> Option<u64> {
        let mut client = self.client.clone();
        self.run(async move {
            let status = client.status().await.map_err(backend_err)?;
            Ok(u64::try_from(status.db_size()).ok())
        })
        .ok()
        .flatten()
    }

    fn max_batch_ops(&self) -> usize {
        // Room for the writer token and the fence.
        self.max_txn_ops.saturating_sub(2)
    }

    fn concurrent_commits(&self) -> usize {
        // A commit waits on a round trip and the members' WAL sync; the
        // threads only wait, the client's work runs on its own runtime.
        32
    }
}
