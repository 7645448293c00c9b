//! The replicas of the control plane and which one leads. On the embedded
//! store there is one replica and it always leads (term 0). On etcd every
//! replica campaigns ([`election`]): the leader runs rollouts,
//! reconciliation, sampling and notifications; the others serve reads and
//! streams and refuse the rest with the leader's address ([`gate`]).

pub mod election;
pub mod gate;
mod keys;
mod status;

use std::{sync::Arc, time::SystemTime};

use serde::{Deserialize, Serialize};
use slipway_proto::control::v1::Replica;
use tokio::sync::watch;

pub use status::{EtcdView, StoreView};

/// One control-plane process, as it registers itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaInfo {
    /// Its id.
    pub id: String,
    /// Where clients reach its operator API (host:port).
    pub address: String,
    /// Its version.
    pub version: String,
    /// When it started, in Unix milliseconds.
    pub started_ms: u64,
}

impl ReplicaInfo {
    /// This process, reachable at `address`, known as `id` (or, when
    /// empty, as `<host name>:<port of address>`).
    pub fn this_process(id: &str, address: &str) -> Self {
        let id = if id.is_empty() {
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_owned())
                .unwrap_or_else(|_| "localhost".to_owned());
            let port = address.rsplit_once(':').map_or("", |(_, port)| port);
            format!("{host}:{port}")
        } else {
            id.to_owned()
        };
        let started_ms = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        Self {
            id,
            address: address.to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            started_ms,
        }
    }

    /// As the API shows it.
    pub fn to_proto(&self, leader: bool, term: u64) -> Replica {
        let started = SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(self.started_ms);
        Replica {
            id: self.id.clone(),
            address: self.address.clone(),
            version: self.version.clone(),
            started_at: Some(slipway_proto::timestamp(started)),
            leader,
            term,
        }
    }
}

/// What this replica is doing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Role {
    /// It leads in this term and accepts every call.
    Leader {
        /// The leadership term (0 on the embedded store).
        term: u64,
    },
    /// It serves reads; `leader` is the replica that leads, when known.
    Follower {
        /// The leader, None while an election is in progress.
        leader: Option<Leader>,
    },
}

/// The replica that leads and its term, as the leader key in the store
/// says.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Leader {
    /// The replica.
    pub replica: ReplicaInfo,
    /// Its leadership term.
    pub term: u64,
}

/// This replica's place in the cluster, shared by the services.
#[derive(Clone)]
pub struct Cluster {
    inner: Arc<Inner>,
}

struct Inner {
    me: ReplicaInfo,
    role: watch::Sender<Role>,
    store: StoreView,
}

impl Default for Cluster {
    /// The only replica of an embedded store, its address unknown.
    fn default() -> Self {
        Self::single(ReplicaInfo::this_process("", ""))
    }
}

impl Cluster {
    /// The only replica, on the embedded store: it leads.
    pub fn single(me: ReplicaInfo) -> Self {
        Self::new(me, Role::Leader { term: 0 }, StoreView::Sled)
    }

    /// A replica on a shared store: it follows until it wins an election.
    pub fn replicated(me: ReplicaInfo, store: StoreView) -> Self {
        Self::new(me, Role::Follower { leader: None }, store)
    }

    fn new(me: ReplicaInfo, role: Role, store: StoreView) -> Self {
        Self {
            inner: Arc::new(Inner {
                me,
                role: watch::channel(role).0,
                store,
            }),
        }
    }

    /// This replica.
    pub fn me(&self) -> &ReplicaInfo {
        &self.inner.me
    }

    /// What it does now.
    pub fn role(&self) -> Role {
        self.inner.role.borrow().clone()
    }

    /// Whether it leads (and has finished taking over).
    pub fn is_leader(&self) -> bool {
        matches!(*self.inner.role.borrow(), Role::Leader { .. })
    }

    /// The leader as this replica knows it: itself when it leads.
    pub fn leader(&self) -> Option<ReplicaInfo> {
        match self.role() {
            Role::Leader { .. } => Some(self.inner.me.clone()),
            Role::Follower { leader } => leader.map(|l| l.replica),
        }
    }

    /// The leader as the API shows it.
    pub fn leader_proto(&self) -> Option<Replica> {
        match self.role() {
            Role::Leader { term } => Some(self.inner.me.to_proto(true, term)),
            Role::Follower { leader } => leader.map(|l| l.replica.to_proto(true, l.term)),
        }
    }

    /// This replica as the API shows it.
    pub fn me_proto(&self) -> Replica {
        match self.role() {
            Role::Leader { term } => self.inner.me.to_proto(true, term),
            Role::Follower { .. } => self.inner.me.to_proto(false, 0),
        }
    }

    /// Changes of role.
    pub fn subscribe(&self) -> watch::Receiver<Role> {
        self.inner.role.subscribe()
    }

    /// Records a new role.
    pub(crate) fn set_role(&self, role: Role) {
        self.inner.role.send_replace(role);
    }

    /// The store this replica runs on.
    pub fn store(&self) -> &StoreView {
        &self.inner.store
    }
}
