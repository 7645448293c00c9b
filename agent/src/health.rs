//! The health check after a switch: an HTTP GET expecting 2xx, or a command
//! expecting exit 0, retried until it passes, the attempts run out, the
//! deadline passes or the operation is cancelled. The GET itself is in
//! [`http`]; the same check keeps probing the live release in
//! [`crate::probes`].

pub mod http;

use std::time::{Duration, Instant};

use slipway_proto::agent::v1::LogLevel;

use crate::{
    activation::{HealthCheck, Probe},
    cancel::Cancel,
    hooks::{self, Command, Output, Tracker},
    operations::Event,
};

/// A health check that did not pass.
#[derive(Debug, thiserror::Error)]
#[error("health check {what} failed after {attempts} attempts: {last}")]
pub struct HealthError {
    /// The probe, e.g. `GET http://127.0.0.1:8080/health`.
    pub what: String,
    /// Attempts made.
    pub attempts: u32,
    /// Why the last attempt failed.
    pub last: String,
    /// The last attempt's output (a command's last lines).
    pub output: String,
    /// It stopped because the operation was cancelled.
    pub cancelled: bool,
}

/// Probes until one attempt passes; returns how long that attempt took.
/// `cmd` carries the directory and the environment a command probe runs
/// with. A cancel stops the attempt in flight (a command's process group is
/// terminated) and makes no more.
pub async fn check(
    check: &HealthCheck,
    cmd: &Command,
    out: &Output,
    tracker: Option<&Tracker>,
    cancel: &Cancel,
) -> Result<Duration, HealthError> {
    let what = match &check.probe {
        Probe::Http(url) => format!("GET {url}"),
        Probe::Command(command) => format!("command {command:?}"),
    };
    let say = |level, message: String| {
        out.log.push_event(Event {
            stage: out.stage,
            percent: out.percent,
            level,
            message,
            step: out.step.clone(),
            output: String::new(),
        });
    };
    let deadline = Instant::now() + check.deadline;
    let (mut made, mut last, mut output) = (0, String::from("no attempt was made"), String::new());
    let cancelled = |what: String, attempts, output| HealthError {
        what,
        attempts,
        last: "cancelled".to_owned(),
        output,
        cancelled: true,
    };
    for attempt in 1..=check.attempts {
        if cancel.is_cancelled() {
            return Err(cancelled(what, made, output));
        }
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            last = format!(
                "{last} (deadline of {} s passed)",
                check.deadline.as_secs_f32()
            );
            break;
        }
        made = attempt;
        let started = Instant::now();
        let result = match &check.probe {
            Probe::Http(url) => tokio::select! {
                answer = tokio::time::timeout(remaining, get(url, remaining)) => answer
                    .unwrap_or_else(|_| Err("no answer before the deadline".to_owned())),
                () = cancel.cancelled() => return Err(cancelled(what, made, output)),
            },
            Probe::Command(command) => {
                let cmd = Command {
                    what: "health check command".to_owned(),
                    command: command.clone(),
                    timeout: remaining,
                    ..cmd.clone()
                };
                match hooks::run(&cmd, out, tracker, cancel).await {
                    Ok(_) => Ok("exit 0".to_owned()),
                    Err(err) => {
                        output = err.output().unwrap_or_default().to_owned();
                        if matches!(err, hooks::HookError::Cancelled { .. }) {
                            return Err(cancelled(what, made, output));
                        }
                        Err(err.to_string())
                    }
                }
            }
        };
        let n = check.attempts;
        match result {
            Ok(answer) => {
                say(
                    LogLevel::Info,
                    format!("health check attempt {attempt}/{n} passed: {what}: {answer}"),
                );
                return Ok(started.elapsed());
            }
            Err(why) => {
                say(
                    LogLevel::Warn,
                    format!("health check attempt {attempt}/{n} failed: {what}: {why}"),
                );
                last = why;
            }
        }
        if attempt < check.attempts {
            let pause = check
                .interval
                .min(deadline.saturating_duration_since(Instant::now()));
            tokio::select! {
                () = tokio::time::sleep(pause) => {}
                () = cancel.cancelled() => return Err(cancelled(what, made, output)),
            }
        }
    }
    Err(HealthError {
        what,
        attempts: made,
        last,
        output,
        cancelled: false,
    })
}

/// One GET with the shared client.
pub async fn get(url: &str, timeout: Duration) -> Result<String, String> {
    http::get(http::shared()?, url, timeout).await
}

#[cfg(test)]
mod tests;
