//! The control plane's Prometheus metrics: one registry per control plane
//! (no global one, so control planes in one process count apart), fed at
//! the natural single points: each deployment's recorder, the store's
//! commits, the gRPC layer, each health sampling round, and a refresh at
//! scrape time for what is read rather than counted (store size, hosts by
//! state, agents up). Health over time lives here too: sampling, the
//! aggregation and retention of samples, and the series read back.

mod deployment;
pub mod health;
pub mod maintenance;
pub mod sampling;
mod scrape;
pub mod series;
pub mod summary;

use std::sync::{Arc, atomic::AtomicU64};

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::{Registry, Unit},
};
use slipway_proto::observe::{
    self, Endpoint, GrpcCalls, Histograms, KnownMethods, Readiness, histograms, register,
};
use tokio::{net::TcpListener, task::JoinHandle};
use tokio_util::sync::CancellationToken;

pub use deployment::DeploymentObserver;
pub use scrape::refresh;

use crate::{agents::Contacts, store::Store};

/// Labels of a finished deployment.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DeploymentLabels {
    app: String,
    environment: String,
    kind: String,
    status: String,
}

/// Labels of a finished rollback.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RollbackLabels {
    app: String,
    environment: String,
    automatic: String,
    status: String,
}

/// An app in an environment.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TargetLabels {
    app: String,
    environment: String,
}

/// A stage of a host's operation.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StepLabels {
    kind: String,
    stage: String,
}

/// A health check on a host at switch time.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CheckLabels {
    app: String,
    environment: String,
    host: String,
    result: String,
}

/// Hosts of an environment in one state.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HostStateLabels {
    environment: String,
    state: String,
}

/// One host.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HostLabels {
    host: String,
    environment: String,
}

/// An app on a host.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AppHostLabels {
    app: String,
    environment: String,
    host: String,
}

/// Every metric of one control plane, and the registry that serves them.
#[derive(Debug)]
pub struct Metrics {
    registry: Arc<Registry>,
    deployments: Family<DeploymentLabels, Counter>,
    deployment_seconds: Histograms<DeploymentLabels>,
    step_seconds: Histograms<StepLabels>,
    rollbacks: Family<RollbackLabels, Counter>,
    recovery_seconds: Histograms<TargetLabels>,
    health_checks: Family<CheckLabels, Counter>,
    events: Counter,
    commit_seconds: Histogram,
    store_bytes: Gauge,
    hosts: Family<HostStateLabels, Gauge>,
    agent_up: Family<HostLabels, Gauge>,
    app_health: Family<AppHostLabels, Gauge>,
    app_response: Family<AppHostLabels, Gauge<f64, AtomicU64>>,
    hosts_health: Family<HostStateLabels, Gauge>,
    drifted: Family<TargetLabels, Gauge>,
    sampling_seconds: Histogram,
    grpc: GrpcCalls,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Every family registered, all at zero.
    pub fn new() -> Self {
        let r = &mut Registry::default();
        let deployments = register(
            r,
            "slipway_deployments",
            "Deployments finished, by app, environment, kind and final status",
            None,
        );
        let deployment_seconds = histograms(
            r,
            "slipway_deployment_duration",
            "Time from a deployment's start to its final status",
            Unit::Seconds,
            long,
        );
        let step_seconds = histograms(
            r,
            "slipway_host_step_duration",
            "Time a host spent in one stage of a deployment, by kind and stage",
            Unit::Seconds,
            short,
        );
        let rollbacks = register(
            r,
            "slipway_rollbacks",
            "Rollbacks finished, automatic or asked for, by final status",
            None,
        );
        let recovery_seconds = histograms(
            r,
            "slipway_time_to_recovery",
            "From the bad release's deployment to the end of the rollback that undid it",
            Unit::Seconds,
            long,
        );
        let health_checks = register(
            r,
            "slipway_health_checks",
            "Health checks at switch time as hosts report them, by host and result",
            None,
        );
        let events = register(
            r,
            "slipway_events_recorded",
            "Deployment events recorded durably",
            None,
        );
        let commit_seconds = Histogram::new([
            0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
        ]);
        r.register_with_unit(
            "slipway_store_commit_duration",
            "Time of one durable store commit (transaction and flush)",
            Unit::Seconds,
            commit_seconds.clone(),
        );
        let store_bytes = register(
            r,
            "slipway_store_size",
            "Bytes the store takes on disk",
            Some(Unit::Bytes),
        );
        let hosts = register(
            r,
            "slipway_hosts",
            "Registered hosts by environment and state (up, down, unknown: not dialed yet)",
            None,
        );
        let agent_up = register(
            r,
            "slipway_agent_up",
            "1 when the host's agent answered the last time it was dialed, else 0",
            None,
        );
        let app_health = register(
            r,
            "slipway_app_health",
            "1 when the app's latest health probe on the host passed, 0 when it failed, as last sampled",
            None,
        );
        let app_response = register(
            r,
            "slipway_app_response_time",
            "Response time of the app's latest health probe on the host, as last sampled",
            Some(Unit::Seconds),
        );
        let hosts_health = register(
            r,
            "slipway_hosts_by_health",
            "Hosts by environment and health as last sampled (healthy, degraded, down, unknown)",
            None,
        );
        let drifted = register(
            r,
            "slipway_hosts_drifted",
            "Hosts whose latest drift finding for the app drifted from the record",
            None,
        );
        let sampling_seconds = short();
        r.register_with_unit(
            "slipway_health_sampling_duration",
            "Time of one health sampling round over every host, stored durably",
            Unit::Seconds,
            sampling_seconds.clone(),
        );
        let grpc = GrpcCalls::register(r, known_methods());
        Self {
            registry: Arc::new(std::mem::take(r)),
            deployments,
            deployment_seconds,
            step_seconds,
            rollbacks,
            recovery_seconds,
            health_checks,
            events,
            commit_seconds,
            store_bytes,
            hosts,
            agent_up,
            app_health,
            app_response,
            hosts_health,
            drifted,
            sampling_seconds,
            grpc,
        }
    }

    /// The registry, for the metrics listener.
    pub fn registry(&self) -> Arc<Registry> {
        self.registry.clone()
    }

    /// The gRPC call metrics, whose layer wraps the operator API.
    pub fn grpc(&self) -> &GrpcCalls {
        &self.grpc
    }

    /// Where the store puts the time of each commit.
    pub fn commit_timer(&self) -> Histogram {
        self.commit_seconds.clone()
    }

    /// Counts events recorded in the deployments' logs.
    pub fn events_recorded(&self, n: u64) {
        self.events.inc_by(n);
    }
}

/// Serves `/metrics`, `/healthz`, `/readyz` and `/leaderz` on `listener` until `stop`
/// is cancelled; each scrape first refreshes the gauges read from `store`
/// and `contacts`.
pub fn spawn_listener(
    metrics: Arc<Metrics>,
    (store, contacts, cluster): (Store, Contacts, crate::cluster::Cluster),
    listener: TcpListener,
    readiness: Readiness,
    stop: CancellationToken,
) -> JoinHandle<()> {
    let registry = metrics.registry();
    let endpoint = Endpoint::new(registry, readiness)
        .refresh_with(Arc::new(move || refresh(&metrics, &store, &contacts)))
        .leader_with(Arc::new(move || cluster.is_leader()));
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "metrics listening");
    }
    tokio::spawn(observe::serve(listener, endpoint, stop.cancelled_owned()))
}

/// The control plane's own gRPC methods, health and reflection.
fn known_methods() -> KnownMethods {
    KnownMethods::from_descriptor_sets(&[
        slipway_proto::FILE_DESCRIPTOR_SET,
        tonic_health::pb::FILE_DESCRIPTOR_SET,
        tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET,
        tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
    ])
}

/// Buckets for deployments and recoveries: a second to an hour.
fn long() -> Histogram {
    Histogram::new([
        1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0,
    ])
}

/// Buckets for one stage on one host: 10 ms to 10 minutes.
fn short() -> Histogram {
    Histogram::new([
        0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 600.0,
    ])
}

/// A status or kind enum's name as a label value: `DEPLOYMENT_STATUS_FAILED`
/// with prefix `DEPLOYMENT_STATUS_` is `failed`.
fn label(name: &str, prefix: &str) -> String {
    name.trim_start_matches(prefix).to_lowercase()
}
