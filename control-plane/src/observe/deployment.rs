//! What one deployment's recorder tells the metrics: each event as it is
//! folded (how long each host spent in each stage, the outcome of each
//! host's health check at switch time), the events of each commit, and the final status
//! (deployments and rollbacks by outcome, durations, time to recovery).

use std::{collections::HashMap, sync::Arc, time::Instant};

use slipway_proto::{
    agent::v1::Stage,
    control::v1::{Deployment, DeploymentEvent, DeploymentKind, DeploymentStatus, EventKind},
};

use super::{CheckLabels, DeploymentLabels, Metrics, RollbackLabels, StepLabels, TargetLabels};
use crate::{domain::event::agent_stage, store::Store};

/// The metrics side of one deployment's recorder.
#[derive(Debug)]
pub struct DeploymentObserver {
    metrics: Arc<Metrics>,
    kind: String,
    /// The stage names of the health check and of the switch back after a
    /// failed one.
    health_check: String,
    revert: String,
    /// Host -> the stage it is in and since when; one entry per host of the
    /// deployment at most.
    stages: HashMap<String, (String, Instant)>,
}

impl DeploymentObserver {
    /// Observes `deployment` into `metrics`.
    pub fn new(metrics: Arc<Metrics>, deployment: &Deployment) -> Self {
        let kind = super::label(deployment.kind().as_str_name(), "DEPLOYMENT_KIND_");
        Self {
            metrics,
            kind,
            health_check: agent_stage(Stage::HealthCheck),
            revert: agent_stage(Stage::Revert),
            stages: HashMap::new(),
        }
    }

    /// An event folded into `deployment` (not yet durable: a commit that
    /// fails ends the deployment's recording altogether).
    pub fn recorded(&mut self, deployment: &Deployment, event: &DeploymentEvent) {
        if event.host.is_empty() {
            return;
        }
        if event.kind() == EventKind::Status && host_done(event.status()) {
            if self.in_health_check(&event.host) {
                let passed = event.status() == DeploymentStatus::Succeeded;
                self.checked(deployment, &event.host, passed);
            }
            self.leave(&event.host);
        } else if !event.stage.is_empty() {
            self.enter(deployment, &event.host, &event.stage);
        }
    }

    /// `n` events were committed.
    pub fn committed(&self, n: usize) {
        self.metrics.events_recorded(n as u64);
    }

    /// The deployment reached its final status.
    pub fn finished(&mut self, store: &Store, d: &Deployment) {
        let hosts: Vec<String> = self.stages.keys().cloned().collect();
        for host in hosts {
            self.leave(&host);
        }
        let status = super::label(d.status().as_str_name(), "DEPLOYMENT_STATUS_");
        let labels = DeploymentLabels {
            app: d.app.clone(),
            environment: d.environment.clone(),
            kind: self.kind.clone(),
            status: status.clone(),
        };
        let m = &self.metrics;
        m.deployments.get_or_create(&labels).inc();
        m.deployment_seconds
            .get_or_create(&labels)
            .observe(d.duration_ms as f64 / 1000.0);
        if d.kind() != DeploymentKind::Rollback {
            return;
        }
        let automatic = (!d.rollback_of.is_empty()).to_string();
        m.rollbacks
            .get_or_create(&RollbackLabels {
                app: d.app.clone(),
                environment: d.environment.clone(),
                automatic,
                status,
            })
            .inc();
        match crate::history::time_to_recovery(store, d) {
            Ok(Some(time)) => m
                .recovery_seconds
                .get_or_create(&TargetLabels {
                    app: d.app.clone(),
                    environment: d.environment.clone(),
                })
                .observe(time.as_secs_f64()),
            Ok(None) => {}
            Err(err) => {
                tracing::warn!(deployment = %d.id, error = %err, "cannot read what the rollback undid")
            }
        }
    }

    fn in_health_check(&self, host: &str) -> bool {
        self.stages
            .get(host)
            .is_some_and(|(stage, _)| *stage == self.health_check)
    }

    /// A host's health check ended.
    fn checked(&self, d: &Deployment, host: &str, passed: bool) {
        let result = if passed { "passed" } else { "failed" };
        self.metrics
            .health_checks
            .get_or_create(&CheckLabels {
                app: d.app.clone(),
                environment: d.environment.clone(),
                host: host.to_owned(),
                result: result.to_owned(),
            })
            .inc();
    }

    /// `host` is in `stage` now: the time in the stage before is observed.
    fn enter(&mut self, d: &Deployment, host: &str, stage: &str) {
        match self.stages.get(host) {
            Some((current, _)) if current == stage => return,
            Some(_) => {
                // After a check that did not pass, the agent switches back.
                if self.in_health_check(host) {
                    self.checked(d, host, stage != self.revert);
                }
                self.leave(host);
            }
            // Only the deployment's hosts: the map stays bounded.
            None if !d.hosts.iter().any(|h| h.host == host) => return,
            None => {}
        }
        self.stages
            .insert(host.to_owned(), (stage.to_owned(), Instant::now()));
    }

    /// `host` left its stage.
    fn leave(&mut self, host: &str) {
        if let Some((stage, since)) = self.stages.remove(host) {
            self.metrics
                .step_seconds
                .get_or_create(&StepLabels {
                    kind: self.kind.clone(),
                    stage,
                })
                .observe(since.elapsed().as_secs_f64());
        }
    }
}

/// Whether a host's status ends its part (for now: unknown may settle).
fn host_done(status: DeploymentStatus) -> bool {
    matches!(
        status,
        DeploymentStatus::Succeeded
            | DeploymentStatus::Failed
            | DeploymentStatus::Cancelled
            | DeploymentStatus::Unknown
    )
}
