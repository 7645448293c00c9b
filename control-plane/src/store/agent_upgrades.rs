//! The agent-upgrades repository: each upgrade under its id, with its
//! events (bounded by the upgrade itself).

use slipway_proto::control::v1::AgentUpgrade;

use super::{Op, Store, StoreError, Tree, encode_proto};

/// The write that records `upgrade`.
pub fn put(upgrade: &AgentUpgrade) -> Op {
    Op::Put(
        Tree::AgentUpgrades,
        upgrade.id.as_bytes().to_vec(),
        encode_proto(upgrade),
    )
}

/// The upgrade `id`, if recorded.
pub fn get(store: &Store, id: &str) -> Result<Option<AgentUpgrade>, StoreError> {
    store.get(Tree::AgentUpgrades, id.as_bytes())
}
