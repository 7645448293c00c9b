//! The drift repository: the latest drift finding of each host for each app
//! in its environment (keyed `app\0environment\0host`, overwritten by every
//! check that reaches the host), and the deployments that repair drift, so
//! that one resumed after a restart repairs as it began.

use slipway_proto::control::v1::HostDrift;

use super::{Op, Store, StoreError, Tree, encode_proto, key2};

fn key(finding: &HostDrift) -> Vec<u8> {
    let mut key = key2(&finding.app, &finding.environment);
    key.push(0);
    key.extend_from_slice(finding.host.as_bytes());
    key
}

/// The write that keeps `finding` as its host's latest for its app.
pub fn put(finding: &HostDrift) -> Op {
    Op::Put(Tree::DriftFindings, key(finding), encode_proto(finding))
}

/// The finding kept for `finding`'s host and app, if any.
pub fn latest(store: &Store, finding: &HostDrift) -> Result<Option<HostDrift>, StoreError> {
    store.get(Tree::DriftFindings, &key(finding))
}

/// The latest findings, by app, environment and host; of one app when
/// `app` is not empty.
pub fn findings(store: &Store, app: &str) -> Result<Vec<HostDrift>, StoreError> {
    let prefix = if app.is_empty() {
        Vec::new()
    } else {
        key2(app, "")
    };
    store.list(Tree::DriftFindings, &prefix)
}

/// The write that marks deployment `id` as a drift repair.
pub fn mark_repair(id: &str) -> Op {
    Op::Create(Tree::DriftRepairs, id.as_bytes().to_vec(), Vec::new())
}

/// Whether deployment `id` repairs drift.
pub fn is_repair(store: &Store, id: &str) -> Result<bool, StoreError> {
    Ok(store.get_raw(Tree::DriftRepairs, id.as_bytes())?.is_some())
}
