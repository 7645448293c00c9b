//! The rollout of one deployment under its policy: the hosts in batches,
//! each batch in two phases (every host prepared, then every prepared host
//! switched), transient agent failures retried with backoff, every step
//! under a deadline, a canary gate and a failure budget between batches, and
//! cancel. The engine records nothing itself: it reports every event to its
//! owner (the deployment's supervisor) through a channel and returns how
//! the rollout ended.

mod contract;
mod delta;
mod engine;
mod failure;
mod follow;
mod host;
mod repair;
mod settle;
mod transfer;

use std::{collections::HashMap, sync::Arc};

use slipway_proto::control::v1::{App, DeploymentEvent, DeploymentKind, Host, Release};
use tokio::sync::mpsc;

pub use contract::require as require_runtime_contract;
pub use delta::Delta;

use crate::{agents::Agents, domain::manifest::Manifest, policy::Policy, running::Control};

/// What one deployment activates.
#[derive(Clone)]
pub struct Plan {
    /// Deployment id, sent to agents for idempotency.
    pub deployment_id: String,
    /// Deploy or rollback.
    pub kind: DeploymentKind,
    /// The app.
    pub app: App,
    /// The environment's name.
    pub environment: String,
    /// The release.
    pub release: Release,
    /// Its files.
    pub manifest: Arc<Manifest>,
    /// The release the hosts should have (the last good one) and its files,
    /// to send only the difference against it.
    pub base: Option<(String, Arc<Manifest>)>,
    /// How it rolls out.
    pub policy: Policy,
    /// The lock's fencing token, sent with every agent call.
    pub fencing_token: u64,
    /// Hosts that finished before this run: a deployment resumed after a
    /// restart of the control plane goes on with the others.
    pub done: Done,
    /// A drift repair: each host discards the contents a hand edit reached,
    /// is sent what it lacks and builds the release afresh (RepairRelease)
    /// before the switch.
    pub repair: bool,
    /// The environment's secrets, opened when the rollout starts (see
    /// `deployment::supervisor`); empty before, and when it has none.
    pub secrets: Arc<crate::secrets::Shipment>,
}

/// Hosts of a deployment that finished before the engine runs.
#[derive(Clone, Debug, Default)]
pub struct Done {
    /// Hosts on the release.
    pub switched: Vec<Host>,
    /// `host: why` of hosts that failed.
    pub failed: Vec<String>,
    /// Per host still to go: per operation run of its agent, the sequence
    /// of the last event relayed, so that nothing is relayed twice.
    pub relayed: HashMap<String, HashMap<String, u64>>,
}

/// What the engine and its host tasks tell the owner, in order.
pub enum Update {
    /// An event for the deployment's log.
    Event(DeploymentEvent),
    /// Contents sent to a host.
    Transfer {
        /// The host.
        host: String,
        /// Objects sent.
        objects: u64,
        /// Bytes sent.
        bytes: u64,
    },
}

/// How the rollout ended, before any automatic rollback.
pub struct Outcome {
    /// Succeeded, failed or cancelled.
    pub status: slipway_proto::control::v1::DeploymentStatus,
    /// The summary for the record.
    pub message: String,
    /// Hosts that took the release.
    pub switched: Vec<Host>,
}

/// Runs the rollout of `plan` on `hosts` to its end, reporting through
/// `updates`; the channel closes when the engine and its host tasks are done.
pub async fn run(
    agents: Agents,
    plan: Arc<Plan>,
    hosts: Vec<Host>,
    control: Arc<Control>,
    updates: mpsc::Sender<Update>,
) -> Outcome {
    engine::Engine::new(agents, plan, control, updates)
        .run(hosts)
        .await
}

#[cfg(test)]
mod tests;
