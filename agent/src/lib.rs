//! slipway-agent: the daemon on every target host. It keeps a content store
//! per app, materialises `releases/<id>/` from it, links shared paths, runs
//! hooks, switches `current` atomically, checks health (switching back on
//! failure), journals release states and prunes old releases, answering
//! only the control plane over mutual TLS.
#![forbid(unsafe_code)]

mod activation;
mod agent;
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
mod objects;
mod operations;
mod pause;
mod plans;
mod recovery;
mod registry;
mod release;
mod retention;
mod run_id;
mod server;
mod service;
mod shared;
mod steps;
mod trust;
mod upload;

use std::future::Future;

use slipway_proto::tls::{Reloader, TlsMaterial};
use tokio::net::TcpListener;

pub use crate::{
    config::{Config, ConfigError, ConfigFile},
    error::Error,
    pause::{FINISHED_LINE as PAUSE_FINISHED_LINE, VAR as PAUSE_VAR},
};

/// Validates `config`, binds `config.listen` and serves until `shutdown`
/// resolves.
pub async fn run(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    config.validate()?;
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| Error::Bind {
            addr: config.listen,
            source,
        })?;
    serve(config, listener, shutdown).await
}

/// Serves on an already-bound listener until `shutdown` resolves, then lets
/// in-flight calls and running operations finish. Bound the whole drain
/// with a timeout if it must end (the binary uses `DRAIN_TIMEOUT`).
pub async fn serve(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    config.validate()?;
    let tls = TlsMaterial::load(&config.tls)?;
    let agent = agent::Agent::open(&config).await?;
    let addr = listener
        .local_addr()
        .map_or_else(|_| "?".to_owned(), |a| a.to_string());
    tracing::info!(
        %addr,
        host = %config.host_name,
        apps_dir = %config.apps_dir.display(),
        version = env!("CARGO_PKG_VERSION"),
        "slipway-agent listening"
    );
    let trust = trust::Trust::open(&config.data_dir)?.with_material(&config.host_name, tls.clone());
    let trust = std::sync::Arc::new(trust);
    let reload = tokio::spawn(Reloader::new([("listener", tls.clone())]).run(|_| {}));
    let served = server::serve(agent.clone(), trust, &tls, listener, shutdown).await;
    reload.abort();
    served?;
    // A deploy outlives its client's stream; do not cut it off mid-way.
    agent.wait_idle().await;
    tracing::info!("slipway-agent stopped");
    Ok(())
}
