//! What the health sampler shares: its interval, each host's state as its
//! latest sample shows it, and the changes of state, which go out through
//! [`Health::subscribe`] once the live feed has recorded them with the
//! samples (see `sampling.rs`).

use std::{
    collections::HashMap,
    sync::{Mutex, MutexGuard},
    time::Duration,
};

use slipway_proto::control::v1::{HealthSample, HostHealthState};
use tokio::sync::broadcast;

/// How often each host is sampled unless configured.
pub const DEFAULT_SAMPLE_EVERY: Duration = Duration::from_secs(30);
/// Changes a subscriber may fall behind by before it misses the oldest.
const CHANGES_KEPT: usize = 1024;

/// A host whose health state changed between two samples.
#[derive(Clone, Debug, PartialEq)]
pub struct HostHealthChange {
    /// The host.
    pub host: String,
    /// Its environment.
    pub environment: String,
    /// The state before (unknown for a host not sampled yet).
    pub from: HostHealthState,
    /// The state now.
    pub to: HostHealthState,
    /// The sample that shows it.
    pub sample: HealthSample,
}

/// What the sampler shares: its interval, each host's state as last
/// sampled, and the changes of state.
#[derive(Debug)]
pub struct Health {
    every: Duration,
    states: Mutex<HashMap<String, HostHealthState>>,
    changes: broadcast::Sender<HostHealthChange>,
}

impl Default for Health {
    fn default() -> Self {
        Self::new(DEFAULT_SAMPLE_EVERY)
    }
}

impl Health {
    /// Sampling every `every`.
    pub fn new(every: Duration) -> Self {
        Self {
            every,
            states: Mutex::default(),
            changes: broadcast::Sender::new(CHANGES_KEPT),
        }
    }

    /// How often each host is sampled.
    pub fn every(&self) -> Duration {
        self.every
    }

    /// Every change of a host's health state from now on. This is the one
    /// place such a change goes out: notifications and live feeds
    /// subscribe here. A receiver that falls more than 1,024 changes behind
    /// is told it lagged and misses the oldest.
    pub fn subscribe(&self) -> broadcast::Receiver<HostHealthChange> {
        self.changes.subscribe()
    }

    fn states(&self) -> MutexGuard<'_, HashMap<String, HostHealthState>> {
        self.states.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The change `host`'s new sample makes, if it is one.
    pub(super) fn change(
        &self,
        host: &str,
        environment: &str,
        sample: &HealthSample,
    ) -> Option<HostHealthChange> {
        let to = crate::domain::health::state_of(sample);
        let from = self
            .states()
            .get(host)
            .copied()
            .unwrap_or(HostHealthState::Unknown);
        (from != to).then(|| HostHealthChange {
            host: host.to_owned(),
            environment: environment.to_owned(),
            from,
            to,
            sample: sample.clone(),
        })
    }

    /// Takes a change as the host's state, once it is recorded: logs it and
    /// sends it out.
    pub(super) fn apply(&self, change: &HostHealthChange) {
        self.states().insert(change.host.clone(), change.to);
        announce(change);
        // Nobody listening is fine: the change is logged anyway.
        let _ = self.changes.send(change.clone());
    }

    /// Forgets the hosts for which `keep` is false (removed ones).
    pub(super) fn retain(&self, mut keep: impl FnMut(&str) -> bool) {
        self.states().retain(|host, _| keep(host));
    }
}

/// Logs a change: a host that went down or degraded is a warning.
fn announce(change: &HostHealthChange) {
    let (from, to) = (change.from.as_str_name(), change.to.as_str_name());
    let failing: Vec<&str> = change
        .sample
        .apps
        .iter()
        .filter(|a| a.state == slipway_proto::agent::v1::AppHealthState::Failing as i32)
        .map(|a| a.app.as_str())
        .collect();
    let (host, environment) = (&change.host, &change.environment);
    match change.to {
        HostHealthState::Down => {
            let error = &change.sample.error;
            tracing::warn!(%host, %environment, from, to, %error, "host health changed: agent not answering");
        }
        HostHealthState::Degraded => {
            tracing::warn!(%host, %environment, from, to, ?failing, "host health changed: app health failing");
        }
        _ => tracing::info!(%host, %environment, from, to, "host health changed"),
    }
}
