//! The agent's Prometheus metrics: one registry per agent (no global one,
//! so agents in one process count apart), fed where each thing happens:
//! an operation's end, an upload's summary, each hook and health check,
//! the gRPC layer, and the content stores' sizes read at scrape time.

use std::{sync::Arc, time::Duration};

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::{Registry, Unit},
};
use slipway_proto::observe::{GrpcCalls, Histograms, KnownMethods, histograms, register};

/// An operation by kind and outcome.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperationLabels {
    kind: String,
    outcome: String,
}

/// One hook of an app.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HookLabels {
    app: String,
    point: String,
    hook: String,
    outcome: String,
}

/// A health check's result for an app.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HealthLabels {
    app: String,
    result: String,
}

/// One app.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AppLabels {
    app: String,
}

/// Every metric of one agent, and the registry that serves them.
#[derive(Debug)]
pub struct Metrics {
    registry: Arc<Registry>,
    operations: Family<OperationLabels, Counter>,
    operation_seconds: Histograms<OperationLabels>,
    bytes: Counter,
    objects: Counter,
    store_bytes: Family<AppLabels, Gauge>,
    hook_seconds: Histograms<HookLabels>,
    health_checks: Family<HealthLabels, Counter>,
    health_seconds: Histograms<HealthLabels>,
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
        let operations = register(
            r,
            "slipway_agent_operations",
            "Operations finished (deploy, prepare, rollback), by outcome",
            None,
        );
        let operation_seconds = histograms(
            r,
            "slipway_agent_operation_duration",
            "Time from an operation's start to its final event",
            Unit::Seconds,
            seconds,
        );
        let bytes = register(
            r,
            "slipway_agent_received",
            "Content bytes received in uploads",
            Some(Unit::Bytes),
        );
        let objects = register(
            r,
            "slipway_agent_received_objects",
            "Content objects received completely in uploads",
            None,
        );
        let store_bytes = register(
            r,
            "slipway_agent_store_size",
            "Bytes in each app's content store",
            Some(Unit::Bytes),
        );
        let hook_seconds = histograms(
            r,
            "slipway_agent_hook_duration",
            "Time a hook ran, by app, point, hook and outcome",
            Unit::Seconds,
            seconds,
        );
        let health_checks = register(
            r,
            "slipway_agent_health_checks",
            "Health checks after a switch, by app and result (passed, failed, cancelled)",
            None,
        );
        let health_seconds = histograms(
            r,
            "slipway_agent_health_check_duration",
            "Time a health check took, every attempt included",
            Unit::Seconds,
            seconds,
        );
        let grpc = GrpcCalls::register(r, known_methods());
        Self {
            registry: Arc::new(std::mem::take(r)),
            operations,
            operation_seconds,
            bytes,
            objects,
            store_bytes,
            hook_seconds,
            health_checks,
            health_seconds,
            grpc,
        }
    }

    /// The registry, for the metrics listener.
    pub fn registry(&self) -> Arc<Registry> {
        self.registry.clone()
    }

    /// The gRPC call metrics, whose layer wraps the AgentService.
    pub fn grpc(&self) -> &GrpcCalls {
        &self.grpc
    }

    /// An operation of `kind` (deploy, prepare, rollback) ended.
    pub fn operation_finished(&self, kind: &str, succeeded: bool, took: Duration) {
        let labels = OperationLabels {
            kind: kind.to_owned(),
            outcome: if succeeded { "succeeded" } else { "failed" }.to_owned(),
        };
        self.operations.get_or_create(&labels).inc();
        self.operation_seconds
            .get_or_create(&labels)
            .observe(took.as_secs_f64());
    }

    /// An upload ended with `objects` received, `bytes` in all.
    pub fn received(&self, objects: u64, bytes: u64) {
        self.bytes.inc_by(bytes);
        self.objects.inc_by(objects);
    }

    /// A hook of `app` at `point` ran to `outcome`.
    pub fn hook_ran(&self, app: &str, point: &str, hook: &str, outcome: &str, took: Duration) {
        let labels = HookLabels {
            app: app.to_owned(),
            point: point.to_owned(),
            hook: hook.to_owned(),
            outcome: outcome.to_owned(),
        };
        self.hook_seconds
            .get_or_create(&labels)
            .observe(took.as_secs_f64());
    }

    /// A health check of `app` ended with `result`.
    pub fn health_checked(&self, app: &str, result: &str, took: Duration) {
        let labels = HealthLabels {
            app: app.to_owned(),
            result: result.to_owned(),
        };
        self.health_checks.get_or_create(&labels).inc();
        self.health_seconds
            .get_or_create(&labels)
            .observe(took.as_secs_f64());
    }

    /// Sets the content store size of each app (and forgets the others).
    pub fn set_store_sizes(&self, sizes: impl IntoIterator<Item = (String, u64)>) {
        self.store_bytes.clear();
        for (app, bytes) in sizes {
            let bytes = i64::try_from(bytes).unwrap_or(i64::MAX);
            self.store_bytes
                .get_or_create(&AppLabels { app })
                .set(bytes);
        }
    }
}

/// The agent's own gRPC methods, health and reflection.
fn known_methods() -> KnownMethods {
    KnownMethods::from_descriptor_sets(&[
        slipway_proto::FILE_DESCRIPTOR_SET,
        tonic_health::pb::FILE_DESCRIPTOR_SET,
        tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET,
        tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
    ])
}

/// Buckets from 10 ms to 10 minutes.
fn seconds() -> Histogram {
    Histogram::new([
        0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 600.0,
    ])
}
