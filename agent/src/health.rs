//! The health check after a switch: an HTTP GET expecting 2xx, or a command
//! expecting exit 0, retried until it passes, the attempts run out, the
//! deadline passes or the operation is cancelled.

use std::time::Instant;

use slipway_proto::agent::v1::LogLevel;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::{
    activation::{HealthCheck, Probe},
    cancel::Cancel,
    hooks::{self, Command, Output, Tracker},
    operations::Event,
};

/// Bytes of an HTTP answer read at most.
const MAX_RESPONSE: usize = 64 * 1024;
/// Bytes of a body quoted in messages at most.
const MAX_QUOTE: usize = 512;

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

/// Probes until one attempt passes. `cmd` carries the directory and the
/// environment a command probe runs with. A cancel stops the attempt in
/// flight (a command's process group is terminated) and makes no more.
pub async fn check(
    check: &HealthCheck,
    cmd: &Command,
    out: &Output,
    tracker: Option<&Tracker>,
    cancel: &Cancel,
) -> Result<(), HealthError> {
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
        let result = match &check.probe {
            Probe::Http(url) => tokio::select! {
                answer = tokio::time::timeout(remaining, get(url)) => answer
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
                return Ok(());
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

/// One GET over a fresh connection; Ok with the status line for 2xx.
async fn get(url: &str) -> Result<String, String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("{url:?} is not an http:// URL"))?;
    let (authority, path) = match rest.find('/') {
        Some(cut) => (&rest[..cut], &rest[cut..]),
        None => (rest, "/"),
    };
    // Port given unless the authority ends in an IPv6 literal or has no ':'.
    let has_port = !authority.ends_with(']') && authority.contains(':');
    let addr = if has_port {
        authority.to_owned()
    } else {
        format!("{authority}:80")
    };
    let mut stream = tokio::net::TcpStream::connect(&addr)
        .await
        .map_err(|err| format!("cannot connect to {addr}: {err}"))?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: slipway-agent/{}\r\n\
         Accept: */*\r\nConnection: close\r\n\r\n",
        env!("CARGO_PKG_VERSION")
    );
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|err| format!("cannot send the request: {err}"))?;
    let mut answer = Vec::new();
    (&mut stream)
        .take(MAX_RESPONSE as u64)
        .read_to_end(&mut answer)
        .await
        .map_err(|err| format!("cannot read the answer: {err}"))?;
    let text = String::from_utf8_lossy(&answer);
    let status_line = text.lines().next().unwrap_or_default().trim();
    let code = status_line
        .strip_prefix("HTTP/1.")
        .and_then(|r| r.get(2..5))
        .and_then(|c| c.parse::<u16>().ok())
        .ok_or_else(|| format!("not an HTTP answer: {:?}", quote(status_line)))?;
    if (200..300).contains(&code) {
        return Ok(status_line.to_owned());
    }
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b).trim();
    if body.is_empty() {
        Err(format!("answered {status_line}"))
    } else {
        Err(format!("answered {status_line}: {}", quote(body)))
    }
}

fn quote(text: &str) -> &str {
    match text.char_indices().nth(MAX_QUOTE) {
        Some((cut, _)) => &text[..cut],
        None => text,
    }
}

#[cfg(test)]
mod tests;
