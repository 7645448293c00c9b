//! The queue repository: the deployments that wait before they start, one
//! FIFO per (app, environment) in deployment-number order. An entry is
//! added in the transaction of the deployment's first event and removed in
//! the transaction of the event that starts or ends it; removing one
//! expects it present, so of two concurrent removals (a start and a
//! cancel) one fails and writes nothing.

use super::{Op, Store, StoreError, Tree, key2};

/// One waiting deployment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The app.
    pub app: String,
    /// The environment.
    pub environment: String,
    /// The deployment.
    pub deployment_id: String,
}

fn prefix(app: &str, environment: &str) -> Vec<u8> {
    let mut key = key2(app, environment);
    key.push(0);
    key
}

fn key(app: &str, environment: &str, deployment_id: &str) -> Vec<u8> {
    let mut key = prefix(app, environment);
    let number = super::deployments::number(deployment_id);
    key.extend_from_slice(&number.to_be_bytes());
    key
}

/// The write that queues a deployment.
pub fn add(app: &str, environment: &str, deployment_id: &str) -> Op {
    Op::Put(
        Tree::Queue,
        key(app, environment, deployment_id),
        deployment_id.as_bytes().to_vec(),
    )
}

/// The writes that take a deployment out of its queue; they fail their
/// batch with [`StoreError::Conflict`] when it is no longer there.
pub fn remove(app: &str, environment: &str, deployment_id: &str) -> Vec<Op> {
    let key = key(app, environment, deployment_id);
    vec![
        Op::Expect(
            Tree::Queue,
            key.clone(),
            Some(deployment_id.as_bytes().to_vec()),
        ),
        Op::Delete(Tree::Queue, key),
    ]
}

/// The deployments waiting for an app in an environment, oldest first.
pub fn of_target(store: &Store, app: &str, environment: &str) -> Result<Vec<String>, StoreError> {
    Ok(store
        .scan_raw(Tree::Queue, &prefix(app, environment))?
        .into_iter()
        .map(|(_, id)| String::from_utf8_lossy(&id).into_owned())
        .collect())
}

/// Every waiting deployment, by app and environment, oldest first.
pub fn all(store: &Store) -> Result<Vec<Entry>, StoreError> {
    Ok(store
        .scan_raw(Tree::Queue, b"")?
        .into_iter()
        .map(|(key, id)| {
            let mut parts = key.splitn(3, |b| *b == 0);
            let mut part =
                || String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
            Entry {
                app: part(),
                environment: part(),
                deployment_id: String::from_utf8_lossy(&id).into_owned(),
            }
        })
        .collect())
}
