//! The metrics listener: plain HTTP/1.1 on its own address with three
//! routes, `/metrics` (OpenMetrics text of the daemon's registry),
//! `/healthz` (200 while the process serves HTTP at all) and `/readyz` (200
//! only once the daemon is ready, 503 before and while it stops). At most
//! [`MAX_CONNECTIONS`] connections are served at once; the rest wait in
//! the listener's backlog.

use std::{
    future::Future,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU8, Ordering},
    },
    time::Duration,
};

use axum::{
    Router,
    extract::State,
    http::{StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use futures_util::{Stream, StreamExt};
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    service::TowerToHyperService,
};
use prometheus_client::registry::Registry;
use tokio::{
    io::{AsyncRead, AsyncWrite},
    net::TcpListener,
    sync::Semaphore,
    task::JoinSet,
};

/// Connections served at once.
pub const MAX_CONNECTIONS: usize = 64;

/// How long a client may take to send a request's headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// How long accepting pauses after an accept error (out of descriptors).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// The media type of the OpenMetrics text format.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

const STARTING: u8 = 0;
const READY: u8 = 1;
const STOPPING: u8 = 2;

/// Whether the daemon is ready for traffic: starting, ready, then stopping.
/// Clones share the state.
#[derive(Clone, Debug, Default)]
pub struct Readiness(Arc<AtomicU8>);

impl Readiness {
    /// The daemon serves its API: `/readyz` answers 200. Under systemd, the unit is ready from now on too.
    pub fn set_ready(&self) {
        let first = self
            .0
            .compare_exchange(STARTING, READY, Ordering::SeqCst, Ordering::SeqCst);
        if first.is_ok() {
            crate::daemon::systemd::ready();
        }
    }

    /// The daemon drains: `/readyz` answers 503 from now on (and systemd is
    /// told it stops).
    pub fn set_stopping(&self) {
        if self.0.swap(STOPPING, Ordering::SeqCst) != STOPPING {
            crate::daemon::systemd::stopping();
        }
    }

    /// Whether `/readyz` answers 200.
    pub fn is_ready(&self) -> bool {
        self.0.load(Ordering::SeqCst) == READY
    }

    fn describe(&self) -> &'static str {
        match self.0.load(Ordering::SeqCst) {
            STARTING => "starting",
            READY => "ready",
            _ => "stopping",
        }
    }
}

/// Brings gauges up to date just before a scrape encodes them (store and
/// directory sizes, hosts by state); it runs on a blocking thread.
pub type Refresh = Arc<dyn Fn() + Send + Sync>;

/// Whether this process leads its cluster (`/leaderz`).
pub type Leads = Arc<dyn Fn() -> bool + Send + Sync>;

/// What the metrics listener serves.
#[derive(Clone)]
pub struct Endpoint {
    registry: Arc<Registry>,
    readiness: Readiness,
    refresh: Option<Refresh>,
    leads: Option<Leads>,
    /// One refresh and encoding at a time, so that a scrape never sees
    /// gauges another one is rewriting.
    rendering: Arc<Mutex<()>>,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("readiness", &self.readiness)
            .finish_non_exhaustive()
    }
}

impl Endpoint {
    /// Serves `registry`, and `readiness` on `/readyz`.
    pub fn new(registry: Arc<Registry>, readiness: Readiness) -> Self {
        Self {
            registry,
            readiness,
            refresh: None,
            leads: None,
            rendering: Arc::default(),
        }
    }

    /// Calls `refresh` before each scrape is encoded.
    pub fn refresh_with(mut self, refresh: Refresh) -> Self {
        self.refresh = Some(refresh);
        self
    }

    /// Serves `/leaderz`: 200 while `leads` says so, 503 otherwise (a load
    /// balancer sends what only the leader serves there).
    pub fn leader_with(mut self, leads: Leads) -> Self {
        self.leads = Some(leads);
        self
    }

    /// The registry as OpenMetrics text, after a refresh. Blocking.
    pub fn render(&self) -> String {
        let _one_at_a_time = self.rendering.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(refresh) = &self.refresh {
            refresh();
        }
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)
            .expect("writing to a String cannot fail");
        text
    }
}

async fn metrics(State(endpoint): State<Endpoint>) -> Response {
    match tokio::task::spawn_blocking(move || endpoint.render()).await {
        Ok(text) => ([(header::CONTENT_TYPE, OPENMETRICS)], text).into_response(),
        Err(err) => {
            tracing::error!(error = %err, "encoding the metrics failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "encoding the metrics failed\n",
            )
                .into_response()
        }
    }
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(endpoint): State<Endpoint>) -> (StatusCode, String) {
    let state = endpoint.readiness.describe();
    let code = if endpoint.readiness.is_ready() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, format!("{state}\n"))
}

async fn leaderz(State(endpoint): State<Endpoint>) -> (StatusCode, &'static str) {
    match &endpoint.leads {
        Some(leads) if leads() => (StatusCode::OK, "leader\n"),
        Some(_) => (StatusCode::SERVICE_UNAVAILABLE, "follower\n"),
        None => (StatusCode::NOT_FOUND, "no cluster here\n"),
    }
}

fn router(endpoint: Endpoint) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/leaderz", get(leaderz))
        .with_state(endpoint)
}

/// Serves `endpoint` on `listener` until `shutdown` resolves; open
/// connections are closed then.
pub async fn serve(
    listener: TcpListener,
    endpoint: Endpoint,
    shutdown: impl Future<Output = ()> + Send,
) {
    let accepted = futures_util::stream::unfold(listener, |listener| async move {
        let accepted = listener.accept().await.map(|(stream, _)| stream);
        if accepted.is_err() {
            tokio::time::sleep(ACCEPT_BACKOFF).await;
        }
        Some((accepted, listener))
    });
    serve_router("metrics", accepted, router(endpoint), shutdown).await;
}

/// Serves `router` over HTTP/1.1 on each connection `accepted` yields
/// (plain TCP or TLS), at most [`MAX_CONNECTIONS`] at once, until
/// `shutdown` resolves; open connections are closed then. `name` names the
/// listener in logs.
pub async fn serve_router<S>(
    name: &'static str,
    accepted: impl Stream<Item = std::io::Result<S>>,
    router: Router,
    shutdown: impl Future<Output = ()> + Send,
) where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    serve_per_connection(name, accepted, move |_| router.clone(), shutdown).await;
}

/// [`serve_router`] with the router of each connection made from the
/// connection (for example, to hand its handlers the peer's TLS
/// certificate).
pub async fn serve_per_connection<S>(
    name: &'static str,
    accepted: impl Stream<Item = std::io::Result<S>>,
    router: impl Fn(&S) -> Router,
    shutdown: impl Future<Output = ()> + Send,
) where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    tokio::pin!(accepted);
    loop {
        let permit = tokio::select! {
            _ = &mut shutdown => break,
            permit = permits.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
        };
        let stream = tokio::select! {
            _ = &mut shutdown => break,
            next = accepted.next() => match next {
                Some(Ok(stream)) => stream,
                Some(Err(err)) => {
                    tracing::warn!(listener = name, error = %err, "cannot accept");
                    continue;
                }
                None => break,
            },
        };
        let service = TowerToHyperService::new(router(&stream));
        connections.spawn(async move {
            let served = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service)
                .await;
            if let Err(err) = served {
                tracing::debug!(listener = name, error = %err, "a connection failed");
            }
            drop(permit);
        });
        while connections.try_join_next().is_some() {}
    }
    connections.shutdown().await;
}

#[cfg(test)]
mod tests;
