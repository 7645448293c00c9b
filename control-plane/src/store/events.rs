//! The event-log repository: each deployment's events keyed by the
//! deployment and a big-endian sequence, so a range read returns them in
//! order from any point.

use slipway_proto::control::v1::DeploymentEvent;

use super::{Op, Store, StoreError, Tree, encode_proto, event_key, key2};

/// The write that appends `event` (numbered already) to its deployment's log.
pub fn append(event: &DeploymentEvent) -> Op {
    Op::Put(
        Tree::Events,
        event_key(&event.deployment_id, event.sequence),
        encode_proto(event),
    )
}

/// The deployment and sequence of an event's key, as a store watch reports
/// it.
pub fn parse_key(key: &[u8]) -> Option<(String, u64)> {
    let nul = key.iter().position(|b| *b == 0)?;
    let id = std::str::from_utf8(&key[..nul]).ok()?;
    let sequence = <[u8; 8]>::try_from(&key[nul + 1..]).ok()?;
    Some((id.to_owned(), u64::from_be_bytes(sequence)))
}

/// The events of deployment `id` after sequence `after`, in order, at most
/// `limit`.
pub fn after(
    store: &Store,
    id: &str,
    after: u64,
    limit: usize,
) -> Result<Vec<DeploymentEvent>, StoreError> {
    store.list_after(Tree::Events, &key2(id, ""), &event_key(id, after), limit)
}

/// The writes that drop up to `limit` of deployment `id`'s events, oldest
/// first; none once its log is empty.
pub fn removal(store: &Store, id: &str, limit: usize) -> Result<Vec<Op>, StoreError> {
    let prefix = key2(id, "");
    Ok(store
        .backend
        .scan_after(Tree::Events, &prefix, &prefix, limit)?
        .into_iter()
        .map(|(key, _)| Op::Delete(Tree::Events, key))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_key_parses_back() {
        let key = super::super::event_key("dep-0000000042", 7);
        assert_eq!(parse_key(&key), Some(("dep-0000000042".to_owned(), 7)));
        assert_eq!(parse_key(b"dep-1"), None);
    }
}
