//! Continuous health probes: every app whose live release has a health
//! check is probed on the check's interval, one attempt at a time, by a
//! task of its own, and the latest outcomes are kept in memory for
//! GetHealth. The check comes from the app's journal ([`ProbeRecord`]),
//! written when a switch passes it, so probing resumes after a restart;
//! that switch-time check is the first outcome known.

mod run;

use std::{
    collections::{BTreeMap, VecDeque},
    sync::{Arc, Mutex, MutexGuard},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use slipway_proto::agent::v1::{AppHealth, AppHealthState, ProbeResult};
use tokio::sync::watch;

use crate::{
    activation::{HealthCheck, Probe},
    cancel::Cancel,
    hook_env::HookHost,
    journal::ProbeRecord,
    layout::AppRoot,
    metrics::Metrics,
};

/// Outcomes kept per app, the latest included.
pub const RECENT: usize = 20;
/// The shortest pause between two probes an app may ask for, and the
/// shortest bound of one.
pub const MIN_INTERVAL: Duration = Duration::from_secs(1);
/// Below anything a journal could hold by mistake: never a busy loop.
const FLOOR: Duration = Duration::from_millis(10);
/// Time a probe command stopped with its app's probes gets between SIGTERM
/// and SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(1);

/// The record of `check` for the release `release_id`, whose switch just
/// passed it in `took`: one probe is bounded by the smaller of the check's
/// deadline and the interval between probes.
pub fn record(
    check: &HealthCheck,
    environment: &str,
    variables: &[(String, String)],
    release_id: &str,
    took: Duration,
) -> ProbeRecord {
    let (http_url, command) = match &check.probe {
        Probe::Http(url) => (url.clone(), String::new()),
        Probe::Command(command) => (String::new(), command.clone()),
    };
    let interval = check.probe_interval.max(MIN_INTERVAL);
    ProbeRecord {
        http_url,
        command,
        timeout_ms: millis(check.deadline.min(interval).max(MIN_INTERVAL)),
        interval_ms: millis(interval),
        environment: environment.to_owned(),
        variables: variables.to_vec(),
        release_id: release_id.to_owned(),
        passed_unix_ms: millis(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default(),
        ),
        response_ms: took.as_secs_f64() * 1000.0,
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// One probe's outcome.
#[derive(Clone, Debug, PartialEq)]
pub struct Outcome {
    /// When it finished.
    pub at: SystemTime,
    /// Whether it passed.
    pub ok: bool,
    /// How long it took.
    pub took: Duration,
    /// Why it failed (bounded).
    pub error: String,
    /// The release `current` pointed to.
    pub release: String,
}

/// The outcomes of one app's probes: the latest [`RECENT`], and how many
/// failed in a row.
#[derive(Debug, Default)]
pub struct History {
    recent: VecDeque<Outcome>,
    failures: u32,
}

impl History {
    fn push(&mut self, outcome: Outcome) {
        self.failures = if outcome.ok {
            0
        } else {
            self.failures.saturating_add(1)
        };
        if self.recent.len() == RECENT {
            self.recent.pop_front();
        }
        self.recent.push_back(outcome);
    }
}

type Shared = Arc<Mutex<History>>;

fn lock(history: &Shared) -> MutexGuard<'_, History> {
    history.lock().unwrap_or_else(|e| e.into_inner())
}

/// One app's running probes; dropping it stops them.
#[derive(Debug)]
struct Prober {
    record: ProbeRecord,
    history: Shared,
    cancel: Cancel,
}

impl Drop for Prober {
    fn drop(&mut self) {
        self.cancel.cancel(STOP_GRACE);
    }
}

/// The probes of every app of this agent.
#[derive(Debug)]
pub struct Probes {
    host: HookHost,
    metrics: Arc<Metrics>,
    apps: Mutex<BTreeMap<String, Prober>>,
    // Counts the outcomes recorded, for whoever waits for the next one.
    recorded: watch::Sender<u64>,
}

/// Whether two records probe the same way (their switch-time outcomes
/// aside).
fn same_check(a: &ProbeRecord, b: &ProbeRecord) -> bool {
    let strip = |r: &ProbeRecord| ProbeRecord {
        release_id: String::new(),
        passed_unix_ms: 0,
        response_ms: 0.0,
        ..r.clone()
    };
    strip(a) == strip(b)
}

/// The switch-time check of `record` as an outcome.
fn passed(record: &ProbeRecord) -> Outcome {
    Outcome {
        at: UNIX_EPOCH + Duration::from_millis(record.passed_unix_ms),
        ok: true,
        took: Duration::from_secs_f64(record.response_ms.max(0.0) / 1000.0),
        error: String::new(),
        release: record.release_id.clone(),
    }
}

impl Probes {
    /// No app probed yet; commands run with `host`'s settings and outcomes
    /// are counted in `metrics`.
    pub fn new(host: HookHost, metrics: Arc<Metrics>) -> Self {
        Self {
            host,
            metrics,
            apps: Mutex::default(),
            recorded: watch::Sender::new(0),
        }
    }

    /// The count of outcomes probes have recorded, changing with each.
    #[cfg(test)]
    pub fn recorded(&self) -> watch::Receiver<u64> {
        self.recorded.subscribe()
    }

    fn apps(&self) -> MutexGuard<'_, BTreeMap<String, Prober>> {
        self.apps.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Probes `app` as `record` says from now on, or stops probing it
    /// (None). The same check keeps its probes and history, a newer
    /// switch-time outcome added; another one starts afresh. The first
    /// probe comes one interval after the switch-time check passed.
    pub fn set(&self, app: &AppRoot, record: Option<ProbeRecord>) {
        let mut apps = self.apps();
        let Some(record) = record else {
            if apps.remove(app.name()).is_some() {
                self.metrics.forget_probes(app.name());
            }
            return;
        };
        if let Some(prober) = apps.get_mut(app.name())
            && same_check(&prober.record, &record)
        {
            if record.passed_unix_ms > prober.record.passed_unix_ms {
                lock(&prober.history).push(passed(&record));
                self.metrics.app_healthy(app.name(), true);
                prober.record = record;
            }
            return;
        }
        let history = Shared::default();
        let seed = passed(&record);
        lock(&history).push(seed.clone());
        self.metrics.app_healthy(app.name(), true);
        let interval = Duration::from_millis(record.interval_ms).max(FLOOR);
        let first = (seed.at + interval)
            .duration_since(SystemTime::now())
            .unwrap_or_default();
        let cancel = Cancel::default();
        let job = run::Job {
            app: app.clone(),
            record: record.clone(),
            host: self.host.clone(),
            metrics: self.metrics.clone(),
            history: history.clone(),
            cancel: cancel.clone(),
            recorded: self.recorded.clone(),
        };
        tokio::spawn(job.run(first, interval));
        // The prober it replaces, if any, stops as it is dropped.
        apps.insert(
            app.name().to_owned(),
            Prober {
                record,
                history,
                cancel,
            },
        );
    }

    /// Stops every app's probes (at shutdown).
    pub fn stop_all(&self) {
        self.apps().clear();
    }

    /// Each probed app's latest outcomes, by name.
    pub fn snapshot(&self) -> Vec<AppHealth> {
        let apps = self.apps();
        apps.iter()
            .map(|(name, prober)| {
                let history = lock(&prober.history);
                report(name, &prober.record, &history)
            })
            .collect()
    }
}

/// One app's probes on the wire.
fn report(name: &str, record: &ProbeRecord, history: &History) -> AppHealth {
    let latest = history.recent.back();
    let state = match latest {
        None => AppHealthState::Unknown,
        Some(outcome) if outcome.ok => AppHealthState::Healthy,
        Some(_) => AppHealthState::Failing,
    };
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    AppHealth {
        name: name.to_owned(),
        release_id: latest.map(|o| o.release.clone()).unwrap_or_default(),
        state: state as i32,
        checked_at: latest.map(|o| slipway_proto::timestamp(o.at)),
        response_ms: latest.map_or(0.0, |o| ms(o.took)),
        error: latest.map(|o| o.error.clone()).unwrap_or_default(),
        interval_seconds: u32::try_from(record.interval_ms / 1000).unwrap_or(u32::MAX),
        consecutive_failures: history.failures,
        recent: history
            .recent
            .iter()
            .map(|o| ProbeResult {
                time: Some(slipway_proto::timestamp(o.at)),
                ok: o.ok,
                response_ms: ms(o.took),
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests;
