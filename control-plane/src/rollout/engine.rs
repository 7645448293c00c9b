//! The batch engine: announces the rollout, checks a rollback's target on
//! every host first, runs the batches in two phases with the canary gate and
//! the failure budget between them, skips what it never reached, and sums up.

use std::{collections::HashSet, sync::Arc};

use slipway_proto::{
    control::v1::{DeploymentKind, DeploymentStatus, Host, LogLevel},
    words,
};
use tokio::{
    sync::{Semaphore, mpsc},
    task::JoinSet,
};
use tracing::Instrument as _;

use super::{
    Outcome, Plan, Update,
    host::{HostResult, HostRun, Phase, Shared},
};
use crate::{
    agents::Agents,
    blobs::{self, BlobCache},
    domain::event::{batch_event, deployment_event, host_status},
    policy::Policy,
    running::Control,
};

/// Hosts worked on at once within a batch.
const PARALLEL_HOSTS: usize = 32;

/// The rollout itself; it only talks to the owner through `shared.tx`.
pub(super) struct Engine {
    shared: Arc<Shared>,
    plan: Arc<Plan>,
    control: Arc<Control>,
}

/// What the batches have done so far.
#[derive(Default)]
struct Tally {
    /// `host: why` of every host that failed.
    failed: Vec<String>,
    /// Hosts that took the release.
    switched: Vec<Host>,
    /// `host: why` of every host whose switch's outcome is not known.
    unknown: Vec<String>,
    /// Why the rollout stopped early, if it did.
    stop: Option<String>,
    /// Hosts where a rollback's target cannot be activated.
    unusable: HashSet<String>,
}

impl Tally {
    /// Hosts that did not take the release, or may not have.
    fn missed(&self) -> usize {
        self.failed.len() + self.unknown.len()
    }
}

impl Engine {
    pub(super) fn new(
        agents: Agents,
        plan: Arc<Plan>,
        control: Arc<Control>,
        tx: mpsc::Sender<Update>,
    ) -> Self {
        let shared = Shared {
            agents,
            plan: plan.clone(),
            control: control.clone(),
            tx,
            blobs: Arc::new(BlobCache::new(blobs::DEFAULT_BUDGET)),
        };
        Self {
            shared: Arc::new(shared),
            plan,
            control,
        }
    }

    async fn emit(&self, event: slipway_proto::control::v1::DeploymentEvent) {
        let _ = self.shared.tx.send(Update::Event(event)).await;
    }

    fn cancelled(&self) -> bool {
        self.control.is_cancelled()
    }

    fn policy(&self) -> &Policy {
        &self.plan.policy
    }

    pub(super) async fn run(self, hosts: Vec<Host>) -> Outcome {
        let done = &self.plan.done;
        let total = hosts.len() + done.switched.len() + done.failed.len();
        let batches = self.policy().batches(hosts);
        let count = batches.len();
        self.emit(deployment_event(
            DeploymentStatus::Running,
            "rollout",
            LogLevel::Info,
            format!(
                "rolling out {} to {} in {}: {}",
                self.plan.release.id,
                words::count(total, "host"),
                words::count(count, "batch"),
                self.policy().describe(total)
            ),
        ))
        .await;
        let mut tally = Tally {
            switched: done.switched.clone(),
            failed: done.failed.clone(),
            ..Tally::default()
        };
        // A resumed deployment whose failures before the restart already
        // spent the budget goes no further.
        let max_failed = self.policy().spec.max_failed_hosts as usize;
        if tally.missed() > max_failed {
            tally.stop = Some(format!(
                "{} failed, more than the {max_failed} tolerated",
                words::count(tally.missed(), "host")
            ));
        }
        if self.plan.kind == DeploymentKind::Rollback {
            self.check_rollback_target(&batches, &mut tally).await;
        }
        let reached = self.run_batches(&batches, &mut tally).await;
        self.skip_unreached(&batches[reached..], &tally).await;
        self.summarise(total, tally)
    }

    /// A rollback's target is the same everywhere: it is checked (or shipped
    /// again) on every host before any host switches.
    async fn check_rollback_target(&self, batches: &[Vec<Host>], tally: &mut Tally) {
        let all: Vec<Host> = batches.concat();
        for (host, result) in self.on_hosts(&all, Phase::Prepare, 0).await {
            if let HostResult::Failed(message) | HostResult::Unknown(message) = result {
                tally.failed.push(format!("{}: {message}", host.name));
                tally.unusable.insert(host.name);
            }
        }
        let max_failed = self.policy().spec.max_failed_hosts as usize;
        if tally.failed.len() > max_failed {
            tally.stop = Some(format!(
                "{} is not usable on {}, more than the {max_failed} tolerated; no host switched",
                self.plan.release.id,
                words::count(tally.failed.len(), "host")
            ));
        }
    }

    /// Runs batches until the end, a stop or a cancel; returns how many were
    /// started.
    async fn run_batches(&self, batches: &[Vec<Host>], tally: &mut Tally) -> usize {
        let mut reached = 0;
        for (index, batch) in batches.iter().enumerate() {
            if tally.stop.is_some() || self.cancelled() {
                break;
            }
            if index > 0 && !self.pause_before(index as u32 + 1).await {
                break;
            }
            reached = index + 1;
            self.run_batch(index, batches.len(), batch, tally).await;
        }
        reached
    }

    /// Waits the policy's pause before a batch; false when cancelled meanwhile.
    async fn pause_before(&self, number: u32) -> bool {
        let pause = self.policy().pause;
        if pause.is_zero() {
            return true;
        }
        self.emit(batch_event(
            number,
            format!("pausing {} s before batch {number}", pause.as_secs()),
        ))
        .await;
        tokio::select! {
            _ = tokio::time::sleep(pause) => true,
            _ = self.control.token().cancelled() => false,
        }
    }

    /// One batch: every host prepared, then every prepared host switched,
    /// with the failure budget checked after each phase.
    async fn run_batch(&self, index: usize, count: usize, batch: &[Host], tally: &mut Tally) {
        let number = index as u32 + 1;
        let canary = self.policy().spec.canary && index == 0;
        let names: Vec<&str> = batch.iter().map(|h| h.name.as_str()).collect();
        self.emit(batch_event(
            number,
            format!(
                "batch {number} of {count}{}: {}",
                if canary { " (canary)" } else { "" },
                names.join(", ")
            ),
        ))
        .await;
        let mut batch_failed = 0;
        let prepared: Vec<Host> = if self.plan.kind == DeploymentKind::Deploy {
            let mut ready = Vec::new();
            for (host, result) in self.on_hosts(batch, Phase::Prepare, number).await {
                match result {
                    HostResult::Done => ready.push(host),
                    HostResult::Failed(message) | HostResult::Unknown(message) => {
                        tally.failed.push(format!("{}: {message}", host.name));
                        batch_failed += 1;
                    }
                }
            }
            ready
        } else {
            let usable = |h: &&Host| !tally.unusable.contains(&h.name);
            batch.iter().filter(usable).cloned().collect()
        };
        if self.cancelled() {
            // An operator's cancel ends these hosts here; a shutdown leaves
            // them for the resumed deployment.
            if let Some(request) = self.control.stop_request() {
                let why = format!("cancelled: {}", request.reason);
                self.not_switched(&prepared, &why).await;
            }
            return;
        }
        let spent = budget_spent(
            self.policy(),
            index,
            batch_failed,
            batch.len(),
            tally.missed(),
        );
        if let Some(why) = spent {
            let why = format!("{why}; batch {number} did not switch");
            self.not_switched(&prepared, &why).await;
            tally.stop = Some(why);
            return;
        }
        for (host, result) in self.on_hosts(&prepared, Phase::Activate, number).await {
            match result {
                HostResult::Done => tally.switched.push(host),
                HostResult::Failed(message) => {
                    tally.failed.push(format!("{}: {message}", host.name));
                    batch_failed += 1;
                }
                // Counted against the budget like a failure; recorded as
                // what it is.
                HostResult::Unknown(message) => {
                    tally.unknown.push(format!("{}: {message}", host.name));
                    batch_failed += 1;
                }
            }
        }
        tally.stop = budget_spent(
            self.policy(),
            index,
            batch_failed,
            batch.len(),
            tally.missed(),
        );
    }

    /// Hosts that prepared the release but will not switch to it end as
    /// that: their record says prepared and not switched, never running.
    async fn not_switched(&self, hosts: &[Host], why: &str) {
        for host in hosts {
            self.emit(host_status(
                &host.name,
                DeploymentStatus::Cancelled,
                "not switched",
                0,
                LogLevel::Warn,
                format!("prepared, not switched: {why}"),
            ))
            .await;
        }
    }

    /// Hosts of batches never started are recorded as skipped, so no host is
    /// left pending.
    async fn skip_unreached(&self, rest: &[Vec<Host>], tally: &Tally) {
        let why = match (&tally.stop, self.control.stop_request()) {
            (_, Some(request)) => format!("cancelled: {}", request.reason),
            (Some(stop), None) => stop.clone(),
            (None, None) => String::new(),
        };
        for host in rest.iter().flatten() {
            if !tally.unusable.contains(&host.name) {
                self.emit(host_status(
                    &host.name,
                    DeploymentStatus::Cancelled,
                    "skipped",
                    0,
                    LogLevel::Warn,
                    format!("not deployed: {why}"),
                ))
                .await;
            }
        }
    }

    fn summarise(&self, total: usize, mut tally: Tally) -> Outcome {
        tally.failed.sort();
        tally.unknown.sort();
        let release = &self.plan.release.id;
        let switched = tally.switched.len();
        let mut failed = tally.failed.clone();
        if !tally.unknown.is_empty() {
            let count = tally.unknown.len();
            failed.push(format!("{count} unknown: {}", tally.unknown.join("; ")));
        }
        let failed = failed.join("; ");
        let max_failed = self.policy().spec.max_failed_hosts;
        let (status, message) = if let Some(request) = self.control.stop_request() {
            (
                DeploymentStatus::Cancelled,
                format!(
                    "cancelled by {}: {}; {switched} of {} on {release}",
                    request.by,
                    request.reason,
                    words::count(total, "host"),
                ),
            )
        } else if let Some(stop) = tally.stop {
            (DeploymentStatus::Failed, format!("{stop}: {failed}"))
        } else if tally.missed() == 0 {
            (
                DeploymentStatus::Succeeded,
                format!(
                    "{release} is current on all {}",
                    words::count(total, "host")
                ),
            )
        } else {
            (
                DeploymentStatus::Succeeded,
                format!(
                    "{release} is current on {switched} of {}; {} not (at most {max_failed} tolerated): {failed}",
                    words::count(total, "host"),
                    tally.missed(),
                ),
            )
        };
        Outcome {
            status,
            message,
            switched: tally.switched,
        }
    }

    /// Runs one phase on `hosts` in parallel (bounded) and reports each
    /// host's result, in host order.
    async fn on_hosts(&self, hosts: &[Host], phase: Phase, batch: u32) -> Vec<(Host, HostResult)> {
        let limit = Arc::new(Semaphore::new(PARALLEL_HOSTS));
        let mut tasks = JoinSet::new();
        for (index, host) in hosts.iter().enumerate() {
            let run = HostRun::new(self.shared.clone(), host.clone(), batch);
            let limit = limit.clone();
            // A child of the deployment's span: a host's lines name both.
            let span = tracing::info_span!("host", host = %host.name);
            tasks.spawn(
                async move {
                    let _permit = limit.acquire_owned().await;
                    let result = run.phase(phase).await;
                    (index, run.into_host(), result)
                }
                .instrument(span),
            );
        }
        let mut results = Vec::with_capacity(hosts.len());
        while let Some(joined) = tasks.join_next().await {
            match joined {
                Ok(result) => results.push(result),
                Err(err) => tracing::error!(error = %err, "a host task panicked"),
            }
        }
        results.sort_by_key(|(index, _, _)| *index);
        results
            .into_iter()
            .map(|(_, host, result)| (host, result))
            .collect()
    }
}

/// Why the rollout stops after a phase of batch `index`, if it does: a
/// failure in the canary batch, or more failed hosts than the policy
/// tolerates.
fn budget_spent(
    policy: &Policy,
    index: usize,
    batch_failed: usize,
    batch_len: usize,
    failed: usize,
) -> Option<String> {
    let max_failed = policy.spec.max_failed_hosts as usize;
    if policy.spec.canary && index == 0 && batch_failed > 0 {
        Some(format!(
            "the canary batch failed on {batch_failed} of {}",
            words::count(batch_len, "host")
        ))
    } else if failed > max_failed {
        Some(format!(
            "{} failed, more than the {max_failed} tolerated",
            words::count(failed, "host")
        ))
    } else {
        None
    }
}
