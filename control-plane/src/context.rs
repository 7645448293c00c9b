//! What the services, the deployments and their rollouts share.

use slipway_proto::revocation::Revocations;

use crate::{
    agents::Agents, events::EventHub, observe::Metrics, running::Running, sources::Sources,
    store::Store,
};

/// What the services and rollouts share.
#[derive(Clone)]
pub struct Context {
    /// Durable state.
    pub store: Store,
    /// Live event notifications.
    pub events: EventHub,
    /// Agent dialer.
    pub agents: Agents,
    /// Deployments running in this process, for cancel and lock release.
    pub running: Running,
    /// Revoked certificates, enforced on every handshake and call.
    pub revocations: Revocations,
    /// The CA key that signs agents' certificates (enrollment, renewal);
    /// none when the control plane does not hold it.
    pub signer: Option<std::sync::Arc<crate::signing::Signer>>,
    /// Apps' git sources: trusted directories, mirrors of remotes.
    pub sources: Sources,
    /// This control plane's metrics.
    pub metrics: std::sync::Arc<Metrics>,
    /// Hosts' health as sampled: the interval, each host's state and the
    /// changes.
    pub health: std::sync::Arc<crate::observe::health::Health>,
    /// The notifiers of the webhook subscriptions.
    pub notifiers: crate::notify::Notifiers,
    /// The deployments that wait before they start: their gate and the
    /// admission task's wake-up.
    pub waiting: crate::waiting::Waiting,
    /// Agent binaries staged for upgrades.
    pub agent_binaries: crate::upgrades::Staging,
    /// The key that seals secrets at rest, if configured.
    pub secret_keys: crate::secrets::SecretKeys,
    /// This replica of the control plane and which one leads.
    pub cluster: crate::cluster::Cluster,
}
