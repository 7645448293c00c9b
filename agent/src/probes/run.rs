//! One app's probe task: a probe every interval until it is stopped, each
//! one attempt of the app's health check against the release `current`
//! points to then, recorded with how long it took.

use std::{
    sync::Arc,
    time::{Duration, Instant, SystemTime},
};

use slipway_proto::agent::v1::Stage;
use tokio::sync::watch;

use super::{FLOOR, Outcome, Shared, lock};
use crate::{
    cancel::Cancel,
    health::{self, http::quote},
    hook_env::HookHost,
    hook_output::{OutputBudget, OutputLimits},
    hooks::{self, Command, Output},
    journal::ProbeRecord,
    layout::AppRoot,
    metrics::Metrics,
    operations::EventLog,
    release,
};

/// Bytes of one line of a probe command's output kept for its error.
const LINE_BYTES: usize = 1024;

/// What a probe task works with.
pub(super) struct Job {
    pub app: AppRoot,
    pub record: ProbeRecord,
    pub host: HookHost,
    pub metrics: Arc<Metrics>,
    pub history: Shared,
    pub cancel: Cancel,
    pub recorded: watch::Sender<u64>,
}

impl Job {
    /// Probes after `first`, then every `interval` (counted from one probe's
    /// start to the next: a probe never takes longer than its bound, which
    /// is at most the interval), until cancelled.
    pub async fn run(self, first: Duration, interval: Duration) {
        let mut next = tokio::time::Instant::now() + first;
        loop {
            tokio::select! {
                () = tokio::time::sleep_until(next) => {}
                () = self.cancel.cancelled() => return,
            }
            let outcome = self.probe().await;
            if self.cancel.is_cancelled() {
                return;
            }
            record(&self.metrics, self.app.name(), &outcome);
            lock(&self.history).push(outcome);
            self.recorded.send_modify(|n| *n += 1);
            next = (next + interval).max(tokio::time::Instant::now());
        }
    }

    /// One probe of the release `current` points to now.
    async fn probe(&self) -> Outcome {
        let started = Instant::now();
        let app = self.app.clone();
        let current = tokio::task::spawn_blocking(move || release::current_release(&app))
            .await
            .map_err(|err| err.to_string())
            .and_then(|read| read.map_err(|err| slipway_proto::daemon::chain(&err)));
        let (result, release) = match current {
            Ok(Some(id)) => (self.attempt(&id).await, id),
            Ok(None) => (Err("no release is current".to_owned()), String::new()),
            Err(why) => (Err(format!("cannot read current: {why}")), String::new()),
        };
        Outcome {
            at: SystemTime::now(),
            ok: result.is_ok(),
            took: started.elapsed(),
            error: result
                .err()
                .map(|e| quote(&e).to_owned())
                .unwrap_or_default(),
            release,
        }
    }

    /// One attempt of the check against `release`, bounded by the record's
    /// timeout.
    async fn attempt(&self, release: &str) -> Result<(), String> {
        let timeout = Duration::from_millis(self.record.timeout_ms).max(FLOOR);
        if !self.record.http_url.is_empty() {
            let get = health::get(&self.record.http_url, timeout);
            return tokio::select! {
                answer = tokio::time::timeout(timeout, get) => answer
                    .unwrap_or_else(|_| Err("no answer before the deadline".to_owned()))
                    .map(drop),
                () = self.cancel.cancelled() => Err("stopped".to_owned()),
            };
        }
        let dir = self.app.release(release);
        let operation = vec![
            ("SLIPWAY_APP", self.app.name().to_owned()),
            ("SLIPWAY_ENVIRONMENT", self.record.environment.clone()),
            ("SLIPWAY_RELEASE_ID", release.to_owned()),
            ("SLIPWAY_RELEASE_DIR", dir.display().to_string()),
        ];
        let env = (self.host).environment(self.app.root(), &self.record.variables, operation);
        let cmd = Command {
            what: "health probe command".to_owned(),
            command: self.record.command.clone(),
            dir,
            env,
            timeout,
        };
        // Nothing of a probe's output is recorded as events, and its log is
        // dropped with the probe: only the error's last lines are kept.
        let out = Output {
            log: EventLog::new(String::new()),
            stage: Stage::HealthCheck,
            percent: 0,
            step: health_step(),
            budget: OutputBudget::new(OutputLimits {
                max_lines: 0,
                max_bytes: 0,
                line_bytes: LINE_BYTES,
            }),
        };
        match hooks::run(&cmd, &out, None, &self.cancel).await {
            Ok(_) => Ok(()),
            Err(err) => Err(match err.output() {
                Some(output) => format!("{err}: {output}"),
                None => err.to_string(),
            }),
        }
    }
}

fn health_step() -> String {
    slipway_proto::HEALTH_CHECK_STEP.to_owned()
}

/// Counts one probe's outcome.
fn record(metrics: &Metrics, app: &str, outcome: &Outcome) {
    metrics.probed(app, outcome.ok, outcome.took);
}
