//! The cluster as one replica sees it: the replicas registered in the store,
//! the leader, and each etcd member's health.

use std::time::Duration;

use etcd_client::{Client, ConnectOptions, GetOptions};
use slipway_proto::control::v1::{GetClusterStatusResponse, Replica, StoreMember};

use super::{Cluster, Leader, ReplicaInfo, keys};

/// How long one etcd member may take to answer a status request.
const MEMBER_TIMEOUT: Duration = Duration::from_secs(2);

/// The store a replica runs on, as the cluster status needs it.
#[derive(Clone)]
pub enum StoreView {
    /// sled, embedded: one replica.
    Sled,
    /// etcd, shared by the replicas.
    Etcd(Box<EtcdView>),
}

/// How to reach etcd: the client, the key prefix, and the options to dial
/// one member on its own.
#[derive(Clone)]
pub struct EtcdView {
    /// A client of the whole cluster.
    pub client: Client,
    /// The store's key prefix (`slipway`).
    pub prefix: String,
    /// TLS and timeouts, to dial one member.
    pub options: ConnectOptions,
}

impl Cluster {
    /// The replicas, the leader and the store's members.
    pub async fn status(&self) -> GetClusterStatusResponse {
        let answered_by = Some(self.me_proto());
        match self.store() {
            StoreView::Sled => GetClusterStatusResponse {
                store: "sled".into(),
                replicas: vec![self.me_proto()],
                leader: self.leader_proto(),
                store_members: Vec::new(),
                answered_by,
            },
            StoreView::Etcd(etcd) => {
                let leader = self.leader_proto();
                let mut replicas = registered(etcd).await.unwrap_or_default();
                let leader_id = leader.as_ref().map(|l| l.id.clone()).unwrap_or_default();
                for replica in &mut replicas {
                    if replica.id == leader_id {
                        replica.leader = true;
                        replica.term = leader.as_ref().map_or(0, |l| l.term);
                    }
                }
                GetClusterStatusResponse {
                    store: "etcd".into(),
                    replicas,
                    leader,
                    store_members: members(etcd).await,
                    answered_by,
                }
            }
        }
    }
}

/// The replicas registered (each under its own lease: a dead one drops out
/// when its lease expires), in id order.
async fn registered(etcd: &EtcdView) -> Result<Vec<Replica>, etcd_client::Error> {
    let prefix = keys::replicas(&etcd.prefix);
    let answer = etcd
        .client
        .clone()
        .get(prefix, Some(GetOptions::new().with_prefix()))
        .await?;
    Ok(answer
        .kvs()
        .iter()
        .filter_map(|kv| serde_json::from_slice::<ReplicaInfo>(kv.value()).ok())
        .map(|r| r.to_proto(false, 0))
        .collect())
}

/// The leader key's value, if a replica leads.
pub(super) fn decode_leader(raw: &[u8]) -> Option<Leader> {
    serde_json::from_slice(raw).ok()
}

/// Every etcd member with its health, asked one by one.
async fn members(etcd: &EtcdView) -> Vec<StoreMember> {
    let list = match etcd.client.clone().member_list().await {
        Ok(list) => list,
        Err(err) => {
            return vec![StoreMember {
                healthy: false,
                error: format!("listing the members failed: {err}"),
                ..Default::default()
            }];
        }
    };
    let mut out = Vec::new();
    for member in list.members() {
        let endpoint = member.client_urls().first().cloned().unwrap_or_default();
        let mut row = StoreMember {
            name: member.name().to_owned(),
            endpoint: endpoint.clone(),
            ..Default::default()
        };
        match tokio::time::timeout(MEMBER_TIMEOUT, status(&endpoint, &etcd.options)).await {
            Ok(Ok(status)) => {
                row.healthy = true;
                row.version = status.version().to_owned();
                row.db_size_bytes = u64::try_from(status.db_size()).unwrap_or(0);
                row.leader = status.leader() == member.id();
                row.raft_term = status.raft_term();
                row.raft_index = status.raft_index();
            }
            Ok(Err(err)) => row.error = err.to_string(),
            Err(_) => row.error = format!("no answer within {MEMBER_TIMEOUT:?}"),
        }
        out.push(row);
    }
    out
}

async fn status(
    endpoint: &str,
    options: &ConnectOptions,
) -> Result<etcd_client::StatusResponse, etcd_client::Error> {
    let mut one = Client::connect([endpoint], Some(options.clone())).await?;
    one.status().await
}
