//! Relaying an agent operation's progress stream into the deployment's
//! events until the operation's result, under a deadline on silence, with a
//! cancel passed on to the agent.

use std::time::Duration;

use slipway_proto::{
    agent::v1::{self as agent, ProgressEvent},
    control::v1::{DeploymentEvent, DeploymentStatus, EventKind, LogLevel},
};
use tokio_stream::{Stream, StreamExt};

use super::host::{Failure, HostRun, PREPARE_SHARE, Phase, Seen};
use crate::agents::AgentClient;

impl HostRun {
    /// How long an agent operation may stay silent: a step's deadline plus
    /// every hook's and the health check's own limits, which the agent
    /// enforces.
    fn operation_silence(&self) -> Duration {
        let spec = self.plan().app.activation.clone().unwrap_or_default();
        let hooks: u64 = spec
            .hooks
            .iter()
            .map(|h| match h.timeout_seconds {
                0 => 300,
                s => u64::from(s),
            })
            .sum();
        let health = spec.health_check.map_or(0, |c| match c.timeout_seconds {
            0 => 60,
            s => u64::from(s),
        });
        self.step_timeout() + Duration::from_secs(hooks + health)
    }

    /// Relays the agent's progress until its final result. Events the
    /// agent replays after a retry (same run of the operation) are not
    /// relayed twice; a new run's are all relayed. A cancel asks the agent to stop and keeps following until the
    /// agent says the operation ended.
    pub(super) async fn follow(
        &self,
        client: &AgentClient,
        mut events: impl Stream<Item = Result<ProgressEvent, tonic::Status>> + Unpin,
        phase: Phase,
        seen: &mut Seen,
    ) -> Result<(), Failure> {
        let silence = self.operation_silence();
        let mut cancel_sent = false;
        loop {
            let next = tokio::select! {
                next = tokio::time::timeout(silence, events.next()) => next,
                () = self.control().token().cancelled(), if !cancel_sent => {
                    cancel_sent = true;
                    self.cancel_on_agent(client.clone());
                    continue;
                }
            };
            let item = match next {
                Ok(Some(item)) => item,
                Ok(None) => {
                    return Err(Failure::Transient(
                        "the agent's stream ended without a result".into(),
                    ));
                }
                Err(_) => {
                    return Err(Failure::Transient(format!(
                        "the agent said nothing for {} s",
                        silence.as_secs()
                    )));
                }
            };
            let event = item.map_err(|s| Failure::from_status(&s))?;
            let last = seen.runs.entry(event.run_id.clone()).or_default();
            if event.sequence != 0 && event.sequence <= *last {
                continue; // Relayed before.
            }
            *last = event.sequence;
            let run = event.run_id.clone();
            if let Some(result) = event.result {
                return match (result.success, result.error.is_empty()) {
                    (true, _) => Ok(()),
                    (false, true) => Err(Failure::Final(event.message)),
                    (false, false) => Err(Failure::Final(result.error)),
                };
            }
            self.emit(self.relayed(event, phase, &run)).await;
        }
    }

    /// An agent's progress event as an event of the deployment.
    fn relayed(&self, event: ProgressEvent, phase: Phase, run: &str) -> DeploymentEvent {
        let stage = agent::Stage::try_from(event.stage)
            .map(crate::domain::event::agent_stage)
            .unwrap_or_default();
        let span = event.percent.min(100) * PREPARE_SHARE / 100;
        let percent = match phase {
            Phase::Prepare => span.max(1),
            Phase::Activate => PREPARE_SHARE + span,
        };
        // A line of hook output is a log line; everything else is progress.
        let kind = if event.output.is_empty() {
            EventKind::Progress
        } else {
            EventKind::Log
        };
        DeploymentEvent {
            kind: kind as i32,
            step: event.step,
            output: event.output,
            host: self.host.name.clone(),
            status: DeploymentStatus::Running as i32,
            stage,
            percent: percent.min(99),
            level: level_from_agent(event.level) as i32,
            message: event.message,
            agent_run_id: run.to_owned(),
            agent_sequence: event.sequence,
            ..Default::default()
        }
    }
}

fn level_from_agent(level: i32) -> LogLevel {
    match agent::LogLevel::try_from(level) {
        Ok(agent::LogLevel::Debug) => LogLevel::Debug,
        Ok(agent::LogLevel::Warn) => LogLevel::Warn,
        Ok(agent::LogLevel::Error) => LogLevel::Error,
        _ => LogLevel::Info,
    }
}
