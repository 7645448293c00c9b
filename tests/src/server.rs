//! Real servers on ephemeral loopback ports, stopped with a drain and with the
//! server task's panic re-raised.

use std::{net::SocketAddr, path::PathBuf};

use slipway_control_plane::server::Listeners;
use slipway_proto::tls::TlsPaths;
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};

/// A running server.
pub struct Running {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Where it serves `/metrics`, `/healthz` and `/readyz`.
    pub metrics: SocketAddr,
    /// Where a control plane serves its web listener (HTTPS: webhooks).
    pub web: Option<SocketAddr>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), String>>>,
}

/// An API listener and a metrics listener on ephemeral loopback ports.
async fn bind_two() -> (TcpListener, TcpListener) {
    let bind = || TcpListener::bind("127.0.0.1:0");
    let api = bind().await.expect("bind loopback");
    let metrics = bind().await.expect("bind loopback");
    (api, metrics)
}

impl Running {
    async fn spawn<F, Fut, E>(serve: F) -> Self
    where
        F: FnOnce(TcpListener, TcpListener, oneshot::Receiver<()>) -> Fut,
        Fut: std::future::Future<Output = Result<(), E>> + Send + 'static,
        E: std::fmt::Display,
    {
        let (listener, metrics) = bind_two().await;
        let addr = listener.local_addr().expect("local addr");
        let metrics_addr = metrics.local_addr().expect("local addr");
        let (stop, stopped) = oneshot::channel();
        let fut = serve(listener, metrics, stopped);
        let task = tokio::spawn(async move { fut.await.map_err(|e| e.to_string()) });
        Self {
            addr,
            metrics: metrics_addr,
            web: None,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Stops the server, waits for the drain and re-raises its panic.
    pub async fn shutdown(mut self) {
        self.stop_and_join().await;
    }

    async fn stop_and_join(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            match task.await {
                Ok(Ok(())) => {}
                Ok(Err(err)) => panic!("server failed: {err}"),
                Err(join) if join.is_panic() => std::panic::resume_unwind(join.into_panic()),
                Err(join) => panic!("server task: {join}"),
            }
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Starts a control plane on `127.0.0.1:0`.
pub async fn control_plane(tls: TlsPaths, agent_tls: TlsPaths, data_dir: PathBuf) -> Running {
    serve_control_plane(control_plane_config(tls, agent_tls, data_dir)).await
}

/// The configuration [`control_plane`] uses, for a test to change.
pub fn control_plane_config(
    tls: TlsPaths,
    agent_tls: TlsPaths,
    data_dir: PathBuf,
) -> slipway_control_plane::Config {
    slipway_control_plane::Config {
        listen: "127.0.0.1:0".parse().expect("addr"),
        data_dir,
        etcd: None,
        tls,
        agent_tls,
        cache_capacity_bytes: 8 << 20,
        log_json: false,
        // Quick, so tests see an unknown host settled soon after it answers.
        recheck_every: std::time::Duration::from_millis(200),
        // Health samples only where a test asks for them
        // (`Builder::health_sample_every`): they add agent calls and feed
        // items.
        health_sample_every: std::time::Duration::from_secs(3600),
        // Checked on demand: a test decides when.
        drift_every: None,
        history_retention: None,
        // Short, so a receiver that comes back is retried soon.
        notify_retry_max: std::time::Duration::from_millis(200),
        source_roots: Default::default(),
        // Fetched on demand: a test decides when.
        sources: slipway_control_plane::sources::FetchSettings {
            poll_every: None,
            ..Default::default()
        },
        signing: None,
        enroll_listen: None,
        // The fixtures bind the metrics and web listeners themselves.
        metrics_listen: None,
        web_listen: None,
        // Builds run as `nobody` (the tests run as root).
        builds: Default::default(),
        secrets_key_file: None,
        secrets_previous_key_file: None,
        cluster: Default::default(),
    }
}

/// Starts a control plane with `config` on `127.0.0.1:0`, with its metrics
/// and its web listener on other ephemeral ports.
pub async fn serve_control_plane(config: slipway_control_plane::Config) -> Running {
    let web = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let web_addr = web.local_addr().expect("local addr");
    let mut running = Running::spawn(move |api, metrics, stopped| {
        let listeners = Listeners {
            api,
            enroll: None,
            metrics: Some(metrics),
            web: Some(web),
        };
        slipway_control_plane::server::serve_with(config, listeners, async move {
            let _ = stopped.await;
        })
    })
    .await;
    running.web = Some(web_addr);
    running
}

/// Starts a control plane that holds the CA key in `pki_dir` (signing
/// agents' certificates) with its enrollment listener; returns it and the
/// enrollment address.
pub async fn control_plane_enrolling(
    tls: TlsPaths,
    agent_tls: TlsPaths,
    data_dir: PathBuf,
    pki_dir: &std::path::Path,
) -> (Running, SocketAddr) {
    let mut config = control_plane_config(tls, agent_tls, data_dir);
    config.signing = Some(slipway_control_plane::signing::SigningPaths {
        ca_cert: pki_dir.join("ca.crt"),
        ca_key: pki_dir.join("ca.key"),
    });
    let enroll = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let enroll_addr = enroll.local_addr().expect("local addr");
    let running = Running::spawn(move |api, metrics, stopped| {
        let listeners = Listeners {
            api,
            enroll: Some(enroll),
            metrics: Some(metrics),
            web: None,
        };
        slipway_control_plane::server::serve_with(config, listeners, async move {
            let _ = stopped.await;
        })
    })
    .await;
    (running, enroll_addr)
}

/// Starts an agent for `host` on an already-bound `listener`.
pub async fn agent_on(
    listener: TcpListener,
    host: &str,
    tls: TlsPaths,
    apps_dir: PathBuf,
    data_dir: PathBuf,
) -> Running {
    let config = agent_config(host, tls, apps_dir, data_dir);
    let addr = listener.local_addr().expect("local addr");
    let metrics = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let metrics_addr = metrics.local_addr().expect("local addr");
    let (stop, stopped) = oneshot::channel();
    let serve = slipway_agent::serve_with(config, listener, Some(metrics), async move {
        let _ = stopped.await;
    });
    let task = tokio::spawn(async move { serve.await.map_err(|e| e.to_string()) });
    Running {
        addr,
        metrics: metrics_addr,
        web: None,
        stop: Some(stop),
        task: Some(task),
    }
}

fn agent_config(
    host: &str,
    tls: TlsPaths,
    apps_dir: PathBuf,
    data_dir: PathBuf,
) -> slipway_agent::Config {
    slipway_agent::Config {
        listen: "127.0.0.1:0".parse().expect("addr"),
        host_name: host.to_owned(),
        apps_dir,
        allowed_roots: Vec::new(),
        data_dir,
        tls,
        log_json: false,
        prestage: true,
        prestage_idle: std::time::Duration::from_secs(1),
        hooks: slipway_agent::config::HookConfig::default(),
        // The fixtures bind the metrics listener themselves.
        metrics_listen: None,
    }
}

/// Starts an agent for `host` on `127.0.0.1:0`, with its metrics on another
/// ephemeral port.
pub async fn agent(host: &str, tls: TlsPaths, apps_dir: PathBuf, data_dir: PathBuf) -> Running {
    let config = agent_config(host, tls, apps_dir, data_dir);
    Running::spawn(move |api, metrics, stopped| {
        slipway_agent::serve_with(config, api, Some(metrics), async move {
            let _ = stopped.await;
        })
    })
    .await
}
