//! Simulated agents that speak the real agent contract: N of them in one
//! process, each on its own loopback port with its own certificate (the
//! CA, SAN and CN conventions of `slipctl pki issue agent`), served by one
//! tonic server that tells them apart by the port a connection came to.
//! Behind each is the control plane's in-memory [`SimHost`] state machine
//! (scriptable: fail, hang, lose the connection); in front, what a real
//! agent adds on the wire: mutual TLS that admits only the control plane,
//! revocation lists, fencing tokens, the real progress stages, hash checks
//! of uploads, and latency or failures to inject.
//!
//! ```ignore
//! let sims = SimAgents::start(pki.dir(), SimOptions::new(50)).await?;
//! sims.register(&mut cluster.hosts(Role::Admin).await, "prod").await?;
//! sims.node("sim-0003").unwrap().host.on_prepare(Behaviour::Fail("disk full".into()));
//! ```

use std::{collections::HashMap, net::SocketAddr, path::Path, sync::Arc, time::Duration};

use anyhow::Context as _;
use futures_util::StreamExt;
use rand::{Rng, SeedableRng, rngs::StdRng};
use slipway_control_plane::agents::{
    Dial,
    simulated::{Fleet, SimHost},
};
use slipway_proto::{
    control::v1::{AddHostRequest, Host, host_service_client::HostServiceClient},
    revocation::Revocations,
    tls::{self, Incoming, Peer, TlsMaterial},
};
use tokio::{net::TcpListener, task::JoinHandle};
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

pub use node::{MAX_APPS, Node};

mod fields;
mod node;
mod serve;
mod service;
mod stages;
mod upload;

/// How a simulated fleet is made.
#[derive(Clone, Debug)]
pub struct SimOptions {
    /// How many agents.
    pub agents: usize,
    /// Host names are this followed by a 4-digit number from 1.
    pub prefix: String,
    /// Every call waits this long first.
    pub latency: Duration,
    /// ... plus up to this much more, drawn per call.
    pub jitter: Duration,
    /// Chance (0-1) that a prepare fails.
    pub fail_rate: f64,
    /// Seed of the draws, so a run can be repeated.
    pub seed: u64,
    /// Validity of the agents' certificates in days.
    pub validity_days: u32,
}

impl SimOptions {
    /// `agents` agents named `sim-0001` ..., answering at once, never
    /// failing unless scripted to.
    pub fn new(agents: usize) -> Self {
        Self {
            agents,
            prefix: "sim-".into(),
            latency: Duration::ZERO,
            jitter: Duration::ZERO,
            fail_rate: 0.0,
            seed: 1,
            validity_days: 2,
        }
    }
}

/// Latency and random failures, drawn from one seeded generator.
pub(crate) struct Chaos {
    latency: Duration,
    jitter: Duration,
    fail_rate: f64,
    rng: std::sync::Mutex<StdRng>,
}

impl Chaos {
    fn draw(&self) -> f64 {
        self.rng
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .random::<f64>()
    }

    pub(crate) fn latency(&self) -> Duration {
        if self.jitter.is_zero() {
            return self.latency;
        }
        node::latency(self.latency, self.jitter, self.draw())
    }

    pub(crate) fn fails(&self) -> bool {
        self.fail_rate > 0.0 && self.draw() < self.fail_rate
    }
}

/// A running fleet of simulated agents; stopped when dropped.
pub struct SimAgents {
    nodes: Vec<Arc<Node>>,
    by_name: HashMap<String, Arc<Node>>,
    stop: CancellationToken,
    server: Option<JoinHandle<anyhow::Result<()>>>,
}

impl SimAgents {
    /// Starts `options.agents` agents with certificates signed by the CA of
    /// the PKI directory `pki_dir` (as `slipctl pki init` makes it).
    pub async fn start(pki_dir: &Path, options: SimOptions) -> anyhow::Result<Self> {
        slipway_proto::daemon::install_crypto_provider();
        let signer = slipctl::pki::AgentSigner::open(pki_dir)?;
        let ca_path = pki_dir.join(slipctl::pki::CA_CERT);
        let ca = std::fs::read(&ca_path).with_context(|| format!("read {}", ca_path.display()))?;
        let fleet = Fleet::new();
        let chaos = Arc::new(Chaos {
            latency: options.latency,
            jitter: options.jitter,
            fail_rate: options.fail_rate,
            rng: std::sync::Mutex::new(StdRng::seed_from_u64(options.seed)),
        });
        let mut nodes = Vec::with_capacity(options.agents);
        let mut incoming = Vec::with_capacity(options.agents);
        for i in 1..=options.agents {
            let name = format!("{}{i:04}", options.prefix);
            let listener = TcpListener::bind("127.0.0.1:0").await?;
            let addr = listener.local_addr()?;
            let (cert, key) =
                signer.sign(&name, &["127.0.0.1".to_owned()], options.validity_days)?;
            let material = TlsMaterial::from_pem(&ca, cert, key)?;
            let revocations = Revocations::default();
            let config = tls::server_config(&material, Peer::ControlPlane, revocations.clone());
            incoming.push(Incoming::new(listener, config));
            let host = Host {
                name: name.clone(),
                address: addr.to_string(),
                ..Default::default()
            };
            let client = fleet
                .dial(&host)
                .await
                .map_err(|err| anyhow::anyhow!("{err}"))?;
            let node = Node::new(
                name,
                addr,
                fleet.host(&host.name),
                client,
                revocations,
                chaos.clone(),
            );
            nodes.push(Arc::new(node));
        }
        let by_port = nodes.iter().map(|n| (n.addr.port(), n.clone())).collect();
        let stop = CancellationToken::new();
        let connections = futures_util::stream::select_all(incoming);
        let server = tokio::spawn(serve::serve(by_port, connections, stop.clone()));
        let by_name = nodes.iter().map(|n| (n.name.clone(), n.clone())).collect();
        Ok(Self {
            nodes,
            by_name,
            stop,
            server: Some(server),
        })
    }

    /// Every agent, in name order.
    pub fn nodes(&self) -> &[Arc<Node>] {
        &self.nodes
    }

    /// The agent named `name`.
    pub fn node(&self, name: &str) -> Option<&Arc<Node>> {
        self.by_name.get(name)
    }

    /// `<name> <address>` per line, for `slipctl host add` or a seed.
    pub fn hosts_file(&self) -> String {
        let lines = self
            .nodes
            .iter()
            .map(|n| format!("{} {}\n", n.name, n.addr));
        lines.collect()
    }

    /// Adds every agent to `environment` through the control plane's
    /// HostService (as an admin), 16 requests at a time.
    pub async fn register(
        &self,
        hosts: &HostServiceClient<Channel>,
        environment: &str,
    ) -> anyhow::Result<()> {
        let adds = self.nodes.iter().map(|node| {
            let mut hosts = hosts.clone();
            let request = AddHostRequest {
                host: Some(Host {
                    name: node.name.clone(),
                    address: node.addr.to_string(),
                    environment: environment.to_owned(),
                    ..Default::default()
                }),
                enroll: false,
            };
            async move { hosts.add_host(request).await }
        });
        let mut results = futures_util::stream::iter(adds).buffer_unordered(16);
        while let Some(result) = results.next().await {
            result.context("add host")?;
        }
        Ok(())
    }

    /// Where each agent listens, by name.
    pub fn addresses(&self) -> Vec<(String, SocketAddr)> {
        self.nodes
            .iter()
            .map(|n| (n.name.clone(), n.addr))
            .collect()
    }

    /// The host state machine of `name`, for scripting and assertions.
    pub fn host(&self, name: &str) -> Arc<SimHost> {
        self.node(name)
            .unwrap_or_else(|| panic!("no simulated agent {name}"))
            .host
            .clone()
    }

    /// Stops serving and waits for the server, re-raising its panic.
    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        self.stop.cancel();
        match self.server.take() {
            Some(server) => match server.await {
                Ok(result) => result,
                Err(err) if err.is_panic() => std::panic::resume_unwind(err.into_panic()),
                Err(err) => Err(err.into()),
            },
            None => Ok(()),
        }
    }
}

impl Drop for SimAgents {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}
