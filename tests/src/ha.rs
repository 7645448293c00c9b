//! A highly available control plane for tests: a real 3-member etcd
//! cluster, and control-plane processes on it as replicas, each reaching
//! etcd through its own fault proxies (one per member) so that a test can
//! cut one replica off from etcd and from nothing else. The first replica
//! is the [`Cluster`]'s control plane: it leads, and registers the app, the
//! environment and the agents' hosts.
//!
//! ```ignore
//! let (mut cluster, mut ha) = Ha::start(Cluster::builder().agents(3), 3).await;
//! ha.kill(0);                    // SIGKILL the leader
//! let leader = ha.wait_for_leader_other_than("r0").await;
//! cluster.use_control_plane(ha.take(leader));
//! ```

use std::{net::SocketAddr, time::Duration};

use slipway_proto::{
    control::v1::{GetLeaderRequest, Replica, cluster_service_client::ClusterServiceClient},
    identity::Role,
    tls::{self, Peer},
};
use tokio::time::Instant;
use tonic::transport::Channel;

use crate::{
    Cluster, TestPki, cluster::Builder, control_process::ControlPlaneProcess, etcd::EtcdCluster,
    faults::FaultProxy,
};

/// The leases of test replicas: a dead leader is replaced after this.
pub const LEASE_TTL_SECONDS: u64 = 2;

/// How long an election may take in a test.
const ELECTION: Duration = Duration::from_secs(30);

/// One replica: its process (None once taken or killed) and its proxies to
/// the etcd members.
pub struct HaReplica {
    /// `r0`, `r1`, ...
    pub id: String,
    /// The process, while the fixture holds it.
    pub process: Option<ControlPlaneProcess>,
    /// Its way to each etcd member.
    pub proxies: Vec<FaultProxy>,
    /// Where it serves (the same while it runs).
    pub addr: SocketAddr,
}

/// etcd and the replicas besides the cluster's own control plane.
pub struct Ha {
    /// The etcd cluster.
    pub etcd: EtcdCluster,
    /// Every replica, `r0` (the cluster's control plane, its process held
    /// by the cluster) first.
    pub replicas: Vec<HaReplica>,
    pki_operator: slipway_proto::tls::TlsMaterial,
    #[allow(dead_code)]
    dirs: tempfile::TempDir,
}

/// The proxies to every member of `etcd`.
async fn proxies(etcd: &EtcdCluster) -> Vec<FaultProxy> {
    let mut out = Vec::new();
    for endpoint in etcd.endpoints() {
        let addr = endpoint
            .trim_start_matches("https://")
            .trim_start_matches("http://")
            .parse()
            .expect("an etcd member's address");
        out.push(FaultProxy::start(addr).await);
    }
    out
}

/// The environment of replica `id` reaching etcd through `proxies`.
fn replica_env(etcd: &EtcdCluster, id: &str, proxies: &[FaultProxy]) -> Vec<(String, String)> {
    let endpoints: Vec<String> = proxies
        .iter()
        .map(|p| format!("https://{}", p.addr))
        .collect();
    let mut env: Vec<(String, String)> = etcd
        .control_plane_env("slipway")
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
    for (key, value) in &mut env {
        if key == "SLIPWAY_CP_ETCD_ENDPOINTS" {
            *value = endpoints.join(",");
        }
    }
    env.push(("SLIPWAY_CP_CLUSTER_REPLICA_ID".into(), id.to_owned()));
    env.push((
        "SLIPWAY_CP_CLUSTER_LEASE_TTL_SECONDS".into(),
        LEASE_TTL_SECONDS.to_string(),
    ));
    env
}

impl Ha {
    /// A 3-member etcd cluster, the cluster of `builder` with its control
    /// plane as replica `r0` on it (it leads), and `replicas - 1` more
    /// replicas that follow.
    pub async fn start(builder: Builder, replicas: usize) -> (Cluster, Ha) {
        let etcd = tokio::task::spawn_blocking(|| EtcdCluster::start(3))
            .await
            .expect("etcd starts");
        let first = proxies(&etcd).await;
        let mut builder = builder.process_control_plane();
        for (key, value) in replica_env(&etcd, "r0", &first) {
            builder = builder.control_plane_env(&key, &value);
        }
        let mut cluster = builder.start().await;
        let addr = cluster.control_plane_process().addr;
        let mut ha = Ha {
            pki_operator: TestPki::material(&cluster.pki.operator(Role::Viewer)),
            etcd,
            replicas: vec![HaReplica {
                id: "r0".into(),
                process: None,
                proxies: first,
                addr,
            }],
            dirs: tempfile::tempdir().expect("temp dir"),
        };
        for i in 1..replicas {
            let id = format!("r{i}");
            let proxies = proxies(&ha.etcd).await;
            let env = replica_env(&ha.etcd, &id, &proxies);
            let dir = ha.dirs.path().join(&id);
            let process = ControlPlaneProcess::start_with(&cluster.pki, dir, env).await;
            ha.replicas.push(HaReplica {
                id,
                addr: process.addr,
                process: Some(process),
                proxies,
            });
        }
        (cluster, ha)
    }

    /// A channel to replica `i` as a viewer.
    pub fn channel(&self, i: usize) -> Channel {
        tls::endpoint(
            &self.replicas[i].addr.to_string(),
            Peer::ControlPlane,
            &self.pki_operator,
        )
        .expect("endpoint")
        .timeout(Duration::from_secs(5))
        .connect_lazy()
    }

    /// The leader as replica `i` sees it, if it answers and knows one.
    pub async fn leader_seen_by(&self, i: usize) -> Option<Replica> {
        ClusterServiceClient::new(self.channel(i))
            .get_leader(GetLeaderRequest {})
            .await
            .ok()
            .and_then(|answer| answer.into_inner().leader)
    }

    /// Waits until replica `i` names a leader that is not `old` (by id);
    /// returns it and when it was seen. Polls: an election is seen only
    /// through the replicas' answers.
    pub async fn wait_for_new_leader(&self, i: usize, old: &str) -> (Replica, Instant) {
        let deadline = Instant::now() + ELECTION;
        loop {
            if let Some(leader) = self.leader_seen_by(i).await
                && leader.id != old
            {
                return (leader, Instant::now());
            }
            assert!(
                Instant::now() < deadline,
                "no new leader within {ELECTION:?} (replica {i} asked)"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The index of the replica with `id`.
    pub fn index(&self, id: &str) -> usize {
        self.replicas
            .iter()
            .position(|r| r.id == id)
            .unwrap_or_else(|| panic!("no replica {id}"))
    }

    /// Cuts replica `i` off from every etcd member (its connections go
    /// silent, as in a network partition), or heals it.
    pub fn partition(&self, i: usize, on: bool) {
        for proxy in &self.replicas[i].proxies {
            proxy.blackhole(on);
        }
    }
}
