//! slipway-agent: the daemon on every target host. It keeps a content store
//! per app, materialises `releases/<id>/` from it, links shared paths, runs
//! hooks, switches `current` atomically, checks health (switching back on
//! failure), journals release states and prunes old releases, answering
//! only the control plane over mutual TLS.
#![forbid(unsafe_code)]

mod activation;
mod agent;
mod binaries;
mod cancel;
pub mod certificate;
pub mod config;
mod deploy;
mod drift;
pub mod enroll;
pub mod error;
mod event_log;
pub mod fencing;
mod fsutil;
#[doc(hidden)]
pub mod fuzzing;
#[cfg(test)]
mod fuzzing_tests;
mod health;
mod hook_env;
mod hook_output;
mod hooks;
mod host;
mod journal;
mod layout;
mod manifest;
mod manifests;
pub mod metrics;
mod objects;
mod operations;
mod pause;
mod plans;
mod prestage;
mod probes;
mod recovery;
mod registry;
mod release;
mod retention;
mod run_id;
mod runtime;
mod runtime_steps;
mod secrets;
mod server;
mod service;
mod shared;
pub mod stamp;
mod steps;
mod trust;
pub mod upgrade;
mod upload;

use std::{future::Future, sync::Arc};

use slipway_proto::{
    observe::{self, Endpoint, Readiness},
    tls::{Reloader, TlsMaterial},
};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use crate::{
    config::{Config, ConfigError, ConfigFile},
    error::Error,
    pause::{FINISHED_LINE as PAUSE_FINISHED_LINE, VAR as PAUSE_VAR},
    server::authorize,
};

/// Validates `config`, binds `config.listen` (and `config.metrics_listen`)
/// and serves until `shutdown` resolves.
pub async fn run(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    config.validate()?;
    let listener = bind(config.listen).await?;
    serve(config, listener, shutdown).await
}

async fn bind(addr: std::net::SocketAddr) -> Result<TcpListener, Error> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| Error::Bind { addr, source })
}

/// Serves on an already-bound listener, and metrics on
/// `config.metrics_listen`, until `shutdown` resolves.
pub async fn serve(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    config.validate()?;
    let metrics = match config.metrics_listen {
        Some(addr) => Some(bind(addr).await?),
        None => None,
    };
    serve_with(config, listener, metrics, shutdown).await
}

/// Serves on already-bound listeners (the API, and metrics when given)
/// until `shutdown` resolves, then lets in-flight calls and running
/// operations finish. Bound the whole drain with a timeout if it must end
/// (the binary uses `DRAIN_TIMEOUT`).
pub async fn serve_with(
    config: Config,
    listener: TcpListener,
    metrics_listener: Option<TcpListener>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    config.validate()?;
    let tls = TlsMaterial::load(&config.tls)?;
    let metrics = Arc::new(metrics::Metrics::new());
    let readiness = Readiness::default();
    let stop = CancellationToken::new();
    let _stop_on_return = stop.clone().drop_guard();
    let agent = agent::Agent::open(&config, metrics.clone()).await?;
    let exporter = metrics_listener.map(|l| spawn_metrics(&agent, l, &readiness, &stop));
    let addr = listener
        .local_addr()
        .map_or_else(|_| "?".to_owned(), |a| a.to_string());
    tracing::info!(
        %addr,
        host = %config.host_name,
        apps_dir = %config.apps_dir.display(),
        version = stamp::version(),
        "slipway-agent listening"
    );
    let trust = trust::Trust::open(&config.data_dir)?.with_material(&config.host_name, tls.clone());
    let trust = Arc::new(trust);
    let reload = tokio::spawn(Reloader::new([("listener", tls.clone())]).run(|_| {}));
    let shutdown = {
        let readiness = readiness.clone();
        async move {
            shutdown.await;
            readiness.set_stopping();
        }
    };
    if let Ok(addr) = listener.local_addr() {
        agent.upgrades().set_listen(addr);
    }
    let restart = agent.upgrades().restart_requested();
    let shutdown = async move {
        tokio::select! {
            () = shutdown => {}
            () = restart.cancelled() => tracing::info!("stopping to restart into the new agent binary"),
        }
    };
    readiness.set_ready();
    agent.started_serving(&config.data_dir).await;
    let served = server::serve(agent.clone(), trust, &tls, listener, shutdown).await;
    readiness.set_stopping();
    reload.abort();
    served?;
    // A deploy outlives its client's stream; do not cut it off mid-way.
    agent.wait_idle().await;
    agent.stop_probes();
    stop.cancel();
    if let Some(exporter) = exporter {
        let _ = exporter.await;
    }
    tracing::info!("slipway-agent stopped");
    Ok(())
}

/// Serves `/metrics`, `/healthz` and `/readyz` on `listener` until `stop`
/// is cancelled; each scrape first sizes the apps' content stores.
fn spawn_metrics(
    agent: &Arc<agent::Agent>,
    listener: TcpListener,
    readiness: &Readiness,
    stop: &CancellationToken,
) -> tokio::task::JoinHandle<()> {
    let registry = agent.metrics().registry();
    let scraped = agent.clone();
    let endpoint = Endpoint::new(registry, readiness.clone())
        .refresh_with(Arc::new(move || scraped.refresh_metrics()));
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "metrics listening");
    }
    tokio::spawn(observe::serve(
        listener,
        endpoint,
        stop.clone().cancelled_owned(),
    ))
}
