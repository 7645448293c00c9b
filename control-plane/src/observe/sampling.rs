//! Health sampling: the task that runs a round every interval and the
//! aggregation and retention of samples every 5 minutes (see
//! `maintenance.rs`), and one round: every registered host's agent asked
//! for its health in parallel (at most [`PARALLEL`] at once, each within
//! [`SAMPLE_TIMEOUT`]), an agent that does not answer recorded as
//! unreachable, every sample stored in one batch with the live feed's
//! items for the hosts whose health changed, then each host's state and the
//! metrics brought up to date.

use std::{
    collections::{BTreeMap, HashSet},
    sync::Arc,
    time::{Duration, Instant, SystemTime},
};

use slipway_proto::{
    agent::v1::{AppHealth, AppHealthState, GetStatusRequest, HostInfo},
    control::v1::{AppHealthSample, FeedItem, FeedKind, HealthSample, Host, HostHealthState},
    limits,
};
use tokio::{sync::Semaphore, task::JoinSet};
use tokio_util::sync::CancellationToken;

use super::{
    AppHostLabels, HostStateLabels, Metrics,
    health::{Health, HostHealthChange},
    maintenance,
};
use crate::{
    agents::Agents,
    catalog,
    domain::health::{BUCKET, state_of},
    error::Error,
    feed::Feed,
    store::Store,
};

/// Agents asked at once.
pub const PARALLEL: usize = 64;
/// How long one agent may take to answer.
pub const SAMPLE_TIMEOUT: Duration = Duration::from_secs(10);
/// Apps of one host recorded at most.
const MAX_APPS: usize = 64;
/// Bytes of an error recorded at most.
const MAX_ERROR: usize = 512;

/// What a sampling round works with.
#[derive(Clone)]
pub struct Sampler {
    /// Where samples go.
    pub store: Store,
    /// The agents, dialed over their kept connections.
    pub agents: Agents,
    /// Where app health and hosts by health are exported.
    pub metrics: Arc<Metrics>,
    /// Each host's state and the changes.
    pub health: Arc<Health>,
    /// The live feed, which records every change.
    pub feed: Feed,
}

/// What one round found.
#[derive(Debug, Default)]
pub struct Round {
    /// Hosts sampled.
    pub hosts: usize,
    /// Of which the agent answered.
    pub reachable: usize,
    /// Hosts whose state changed.
    pub changes: Vec<HostHealthChange>,
}

impl Sampler {
    /// Samples every registered host, stamping the samples `at`.
    pub async fn round(&self, at: SystemTime) -> Result<Round, Error> {
        let started = Instant::now();
        let sampled = self.ask_all(at).await?;
        let changes = self.record(&sampled).await?;
        for (host, sample) in &sampled {
            self.agents.contacts().set(&host.name, sample.reachable);
        }
        export(&self.metrics, &sampled, started.elapsed());
        Ok(Round {
            hosts: sampled.len(),
            reachable: sampled.iter().filter(|(_, s)| s.reachable).count(),
            changes,
        })
    }

    /// Every registered host with its sample, by name.
    async fn ask_all(&self, at: SystemTime) -> Result<Vec<(Host, HealthSample)>, Error> {
        let hosts = catalog::hosts(&self.store, "")?;
        let limit = Arc::new(Semaphore::new(PARALLEL));
        let mut tasks = JoinSet::new();
        for host in hosts {
            let (agents, limit) = (self.agents.clone(), limit.clone());
            tasks.spawn(async move {
                let _permit = limit.acquire_owned().await;
                let sample = sample(&agents, &host, at).await;
                (host, sample)
            });
        }
        let mut sampled = tasks.join_all().await;
        sampled.sort_by(|a, b| a.0.name.cmp(&b.0.name));
        Ok(sampled)
    }

    /// Stores the samples with the feed's items of the changes they show,
    /// then takes the changes as the hosts' states.
    async fn record(
        &self,
        sampled: &[(Host, HealthSample)],
    ) -> Result<Vec<HostHealthChange>, Error> {
        let ops = sampled
            .iter()
            .map(|(host, sample)| crate::store::health::put_sample(&host.name, sample))
            .collect();
        let changes: Vec<HostHealthChange> = sampled
            .iter()
            .filter_map(|(host, sample)| self.health.change(&host.name, &host.environment, sample))
            .collect();
        let items = changes.iter().map(feed_item).collect();
        self.feed.commit(&self.store, items, ops).await?;
        let names: HashSet<&str> = sampled.iter().map(|(h, _)| h.name.as_str()).collect();
        self.health.retain(|host| names.contains(host));
        for change in &changes {
            self.health.apply(change);
        }
        Ok(changes)
    }
}

/// The live feed's item of a change: for a host degraded by a failing app,
/// that app's.
fn feed_item(change: &HostHealthChange) -> FeedItem {
    let failing: Vec<&AppHealthSample> = change
        .sample
        .apps
        .iter()
        .filter(|a| a.state == AppHealthState::Failing as i32)
        .collect();
    let state = state_name(change.to);
    let message = match change.to {
        HostHealthState::Down => format!("{} is down: {}", change.host, change.sample.error),
        HostHealthState::Degraded => {
            let apps: Vec<String> = failing
                .iter()
                .map(|a| format!("app {} failing: {}", a.app, a.error))
                .collect();
            format!("{} is degraded: {}", change.host, apps.join("; "))
        }
        _ => format!(
            "{} is {state} (was {})",
            change.host,
            state_name(change.from)
        ),
    };
    FeedItem {
        kind: FeedKind::Health as i32,
        app: failing.first().map(|a| a.app.clone()).unwrap_or_default(),
        environment: change.environment.clone(),
        host: change.host.clone(),
        message: limits::cut(&message, limits::MESSAGE).into_owned(),
        time: change.sample.time,
        health: change.to as i32,
        previous_health: change.from as i32,
        ..FeedItem::default()
    }
}

/// A host health state in lowercase words.
pub fn state_name(state: HostHealthState) -> String {
    state
        .as_str_name()
        .trim_start_matches("HOST_HEALTH_STATE_")
        .to_lowercase()
}

/// Samples every host each interval, and aggregates and expires samples
/// every 5 minutes, until `stop`; the first round comes one interval after
/// the start.
pub async fn run(sampler: Sampler, stop: CancellationToken) {
    let every = sampler.health.every();
    let start = tokio::time::Instant::now() + every;
    let mut ticks = tokio::time::interval_at(start, every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut maintained = tokio::time::Instant::now();
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            () = stop.cancelled() => return,
        }
        let now = SystemTime::now();
        // A round waits on agents for up to the sampling timeout: a
        // shutdown does not.
        let sampled = tokio::select! {
            sampled = sampler.round(now) => sampled,
            () = stop.cancelled() => return,
        };
        if let Err(err) = sampled {
            tracing::warn!(error = %slipway_proto::daemon::chain(&err), "cannot record health samples");
        }
        if maintained.elapsed() >= BUCKET {
            maintained = tokio::time::Instant::now();
            if let Err(err) = maintenance::maintain(&sampler.store, now).await {
                tracing::warn!(error = %slipway_proto::daemon::chain(&err), "cannot aggregate or expire health samples");
            }
        }
    }
}

/// `host`'s sample: what its agent answered, or why it did not.
async fn sample(agents: &Agents, host: &Host, at: SystemTime) -> HealthSample {
    let asked = tokio::time::timeout(SAMPLE_TIMEOUT, ask(agents, host)).await;
    let error = match asked {
        Ok(Ok(sample)) => {
            return HealthSample {
                time: Some(slipway_proto::timestamp(at)),
                ..sample
            };
        }
        Ok(Err(error)) => error,
        Err(_) => format!("no answer within {} s", SAMPLE_TIMEOUT.as_secs()),
    };
    // The next round dials afresh.
    agents.forget(host);
    HealthSample {
        time: Some(slipway_proto::timestamp(at)),
        reachable: false,
        error: limits::cut(&error, MAX_ERROR).into_owned(),
        ..HealthSample::default()
    }
}

async fn ask(agents: &Agents, host: &Host) -> Result<HealthSample, String> {
    let client = agents.connect_once(host).await.map_err(|e| e.to_string())?;
    match client.get_health().await {
        Ok(answer) => Ok(facts(answer.host.unwrap_or_default(), &answer.apps)),
        // An agent older than contract 4 probes nothing: its facts only.
        Err(status) if status.code() == tonic::Code::Unimplemented => {
            let request = GetStatusRequest {
                apps: Vec::new(),
                omit_sizes: true,
            };
            let status = client
                .get_status(request)
                .await
                .map_err(|s| format!("agent: {}", s.message()))?;
            Ok(facts(status.host.unwrap_or_default(), &[]))
        }
        Err(status) => Err(format!("agent: {}", status.message())),
    }
}

/// A reachable host's sample, every string cut to its bound.
fn facts(host: HostInfo, apps: &[AppHealth]) -> HealthSample {
    let apps = apps
        .iter()
        .take(MAX_APPS)
        .map(|app| AppHealthSample {
            app: limits::cut(&app.name, limits::NAME).into_owned(),
            state: app.state,
            response_ms: app.response_ms,
            error: limits::cut(&app.error, MAX_ERROR).into_owned(),
            release_id: limits::cut(&app.release_id, limits::RELEASE_ID).into_owned(),
            checked_at: app.checked_at,
        })
        .collect();
    HealthSample {
        time: None,
        reachable: true,
        error: String::new(),
        agent_version: limits::cut(&host.agent_version, limits::NAME).into_owned(),
        uptime_seconds: host.uptime_seconds,
        load_average: host.load_average,
        memory_total_bytes: host.memory_total_bytes,
        memory_available_bytes: host.memory_available_bytes,
        disk_free_bytes: host.disk_free_bytes,
        apps,
    }
}

/// Each app's health and response time per host, and the hosts of each
/// environment by health, as this round found them.
fn export(metrics: &Metrics, sampled: &[(Host, HealthSample)], took: Duration) {
    metrics.sampling_seconds.observe(took.as_secs_f64());
    metrics.app_health.clear();
    metrics.app_response.clear();
    let mut counts: BTreeMap<(String, HostHealthState), i64> = BTreeMap::new();
    for (host, sample) in sampled {
        for state in HOST_STATES {
            counts.entry((host.environment.clone(), state)).or_default();
        }
        *counts
            .entry((host.environment.clone(), state_of(sample)))
            .or_default() += 1;
        for app in &sample.apps {
            let passed = match AppHealthState::try_from(app.state) {
                Ok(AppHealthState::Healthy) => 1,
                Ok(AppHealthState::Failing) => 0,
                _ => continue,
            };
            let labels = AppHostLabels {
                app: app.app.clone(),
                environment: host.environment.clone(),
                host: host.name.clone(),
            };
            metrics.app_health.get_or_create(&labels).set(passed);
            (metrics.app_response.get_or_create(&labels)).set(app.response_ms / 1000.0);
        }
    }
    metrics.hosts_health.clear();
    for ((environment, state), n) in counts {
        let labels = HostStateLabels {
            environment,
            state: state_name(state),
        };
        metrics.hosts_health.get_or_create(&labels).set(n);
    }
}

/// The states hosts are counted in.
const HOST_STATES: [HostHealthState; 4] = [
    HostHealthState::Healthy,
    HostHealthState::Degraded,
    HostHealthState::Down,
    HostHealthState::Unknown,
];

#[cfg(test)]
mod tests;
