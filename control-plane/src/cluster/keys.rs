//! The cluster's keys in etcd, beside the store's trees under the same
//! prefix (no tree is named `cluster`).

/// The leader key: held under the leader's lease, its value a [`super::Leader`].
pub fn leader(prefix: &str) -> String {
    format!("{prefix}/cluster/leader")
}

/// The last leadership term, a decimal number, raised by each new leader in
/// the transaction that makes it leader.
pub fn term(prefix: &str) -> String {
    format!("{prefix}/cluster/term")
}

/// Where the replicas register, each under its own lease.
pub fn replicas(prefix: &str) -> String {
    format!("{prefix}/cluster/replicas/")
}

/// One replica's registration.
pub fn replica(prefix: &str, id: &str) -> String {
    format!("{}{id}", replicas(prefix))
}
