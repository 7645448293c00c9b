//! Settling a host whose switch's connection died and whose retries ran
//! out: the agent is asked (redialled, with backoff, until the step's
//! deadline) what is current, and followed if the operation still runs.
//! What it reports is recorded; silence is recorded as unknown, never as
//! failed.

use std::sync::atomic::Ordering;

use slipway_proto::{
    agent::v1::{AppStatus, GetStatusRequest},
    control::v1::LogLevel,
};

use super::host::{Failure, HostResult, HostRun, Seen};
use crate::{domain::event::host_log, policy};

impl HostRun {
    /// After the switch's connection died and retries ran out: asks the
    /// agent (redialling, with backoff, until the step's deadline) what is
    /// current, and follows the operation if it still runs. Unreachable
    /// until the deadline: unknown, never failed.
    pub(super) async fn settle(&self, why: String, seen: &mut Seen) -> HostResult {
        let deadline = tokio::time::Instant::now() + self.step_timeout();
        let release = &self.plan().release.id;
        let mut attempt = 1;
        loop {
            self.redial.store(true, Ordering::Relaxed);
            match self.ask_status().await {
                Ok(app) if app.running_deployment == self.plan().deployment_id => {
                    // Still switching: follow it to its result.
                    match self.activate(seen).await {
                        Ok(()) => return HostResult::Done,
                        Err(Failure::Transient(_) | Failure::Later(..)) => {}
                        Err(failure) => return HostResult::Failed(failure.message()),
                    }
                }
                Ok(app) if &app.current_release == release => {
                    let note = format!("{why}; asked again, the agent reports {release} current");
                    self.emit(host_log(&self.host.name, "switch", LogLevel::Warn, note))
                        .await;
                    return HostResult::Done;
                }
                Ok(app) => {
                    let current = match app.current_release.as_str() {
                        "" => "(none)",
                        current => current,
                    };
                    return HostResult::Failed(format!(
                        "{why}; asked again, the agent reports {current} current"
                    ));
                }
                Err(_) => {}
            }
            attempt += 1;
            let wait = policy::backoff(attempt);
            if tokio::time::Instant::now() + wait >= deadline || self.control().is_cancelled() {
                return HostResult::Unknown(format!(
                    "{why}; the agent has not answered since, so whether it switched to {release} is unknown until it is asked again"
                ));
            }
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = self.control().token().cancelled() => {}
            }
        }
    }

    /// The app's status on the host.
    async fn ask_status(&self) -> Result<AppStatus, Failure> {
        let client = self.connect().await?;
        let request = GetStatusRequest {
            apps: vec![self.target()],
            omit_sizes: true,
        };
        let status = self.call("GetStatus", client.get_status(request)).await?;
        Ok(status.apps.into_iter().next().unwrap_or_default())
    }
}
