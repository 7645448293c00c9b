//! Rollout policies: defaults, batches, which agent failures are worth a
//! retry, and the backoff between attempts.

use std::time::Duration;

use slipway_proto::control::v1::{Host, RolloutPolicy, RolloutStrategy};
use tonic::Code;

/// Attempts at most, whatever the policy says.
const MAX_ATTEMPTS: u32 = 10;
/// A step's deadline when the policy says 0.
pub const DEFAULT_STEP_TIMEOUT: Duration = Duration::from_secs(120);
/// First backoff; each retry doubles it up to [`BACKOFF_CAP`].
const BACKOFF_BASE: Duration = Duration::from_millis(200);
/// Longest backoff.
const BACKOFF_CAP: Duration = Duration::from_secs(10);

/// A policy with its defaults applied, as a deployment runs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    /// The policy as recorded.
    pub spec: RolloutPolicy,
    /// Attempts per agent call at most; None (the default): as many as fit
    /// in the step's deadline. Retries are always within the deadline.
    pub attempts: Option<u32>,
    /// Deadline of one step.
    pub step_timeout: Duration,
    /// Pause between batches.
    pub pause: Duration,
}

impl Policy {
    /// Applies defaults to a recorded policy.
    pub fn new(spec: RolloutPolicy) -> Self {
        let attempts = match spec.retry_attempts {
            0 => None,
            n => Some(n.min(MAX_ATTEMPTS)),
        };
        let step_timeout = match spec.step_timeout_seconds {
            0 => DEFAULT_STEP_TIMEOUT,
            s => Duration::from_secs(u64::from(s)),
        };
        let pause = Duration::from_secs(u64::from(spec.pause_seconds));
        Self {
            spec,
            attempts,
            step_timeout,
            pause,
        }
    }

    /// Hosts per batch for `total` hosts.
    pub fn batch_size(&self, total: usize) -> usize {
        let total = total.max(1);
        if self.spec.strategy() != RolloutStrategy::Rolling {
            return total;
        }
        let size = match (self.spec.batch_size, self.spec.batch_percent) {
            (0, 0) => 1,
            (0, percent) => (total * percent.min(100) as usize).div_ceil(100),
            (n, _) => n as usize,
        };
        size.clamp(1, total)
    }

    /// The hosts in batches, in host-name order.
    pub fn batches(&self, hosts: Vec<Host>) -> Vec<Vec<Host>> {
        let size = self.batch_size(hosts.len());
        let mut hosts = hosts;
        hosts.sort_by(|a, b| a.name.cmp(&b.name));
        hosts.chunks(size).map(<[Host]>::to_vec).collect()
    }

    /// One line for people: "rolling, 2 hosts per batch, canary, ...".
    pub fn describe(&self, total: usize) -> String {
        let mut parts = vec![if self.spec.strategy() == RolloutStrategy::Rolling {
            format!("rolling, {} hosts per batch", self.batch_size(total))
        } else {
            "all at once".to_owned()
        }];
        if self.spec.canary {
            parts.push("first batch is a canary".into());
        }
        parts.push(format!(
            "{} failed hosts tolerated",
            self.spec.max_failed_hosts
        ));
        if !self.pause.is_zero() {
            parts.push(format!("{} s between batches", self.pause.as_secs()));
        }
        if self.spec.auto_rollback {
            parts.push("auto-rollback".into());
        }
        let step = self.step_timeout.as_secs();
        parts.push(match self.attempts {
            Some(attempts) => format!("{attempts} attempts per call, {step} s per step"),
            None => format!("retries for up to {step} s per step"),
        });
        parts.join(", ")
    }
}

/// Checks a policy from a request; `field` names it in errors.
pub fn validate(
    field: &str,
    spec: &RolloutPolicy,
) -> Result<(), slipway_proto::validate::InvalidField> {
    use slipway_proto::validate::InvalidField;
    if RolloutStrategy::try_from(spec.strategy).is_err() {
        return Err(InvalidField::new(
            format!("{field}.strategy"),
            "is not a known strategy",
        ));
    }
    if spec.batch_percent > 100 {
        return Err(InvalidField::new(
            format!("{field}.batch_percent"),
            "must be at most 100",
        ));
    }
    if spec.retry_attempts > MAX_ATTEMPTS {
        return Err(InvalidField::new(
            format!("{field}.retry_attempts"),
            format!("must be at most {MAX_ATTEMPTS}"),
        ));
    }
    if spec.pause_seconds > 86_400 || spec.step_timeout_seconds > 86_400 {
        return Err(InvalidField::new(
            field,
            "pauses and timeouts must be at most a day",
        ));
    }
    Ok(())
}

/// The wait an agent asked for before the next attempt (reason
/// AGENT_UPGRADING, metadata retry_after_ms), kept within 50 ms and
/// [`BACKOFF_CAP`]; None when it asked for none.
pub fn retry_hint(status: &tonic::Status) -> Option<Duration> {
    use slipway_proto::reason::{self, Reason};
    if reason::reason(status) != Some(Reason::AgentUpgrading) {
        return None;
    }
    let (_, metadata) = reason::error_info(status)?;
    let millis = metadata.get("retry_after_ms")?.parse::<u64>().ok()?;
    Some(Duration::from_millis(millis).clamp(Duration::from_millis(50), BACKOFF_CAP))
}

/// Whether a failed agent call may succeed when tried again: the agent or
/// the network was unavailable, slow, or the connection broke. Refusals
/// (invalid argument, failed precondition, permission denied, ...) are final.
pub fn is_transient(status: &tonic::Status) -> bool {
    match status.code() {
        Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled | Code::Aborted => true,
        Code::Unknown | Code::Internal => {
            let text = status.message().to_lowercase();
            [
                "transport",
                "connection",
                "reset",
                "broken pipe",
                "stream closed",
                "h2 protocol",
                "error reading a body",
            ]
            .iter()
            .any(|needle| text.contains(needle))
        }
        _ => false,
    }
}

/// The wait before attempt `attempt` (from 2): capped exponential backoff
/// with full jitter, so retries from many hosts do not arrive together.
pub fn backoff(attempt: u32) -> Duration {
    let exp = BACKOFF_BASE.saturating_mul(1 << attempt.saturating_sub(2).min(16));
    let cap = exp.min(BACKOFF_CAP);
    let millis = cap.as_millis() as u64;
    Duration::from_millis(rand::random_range(millis / 2..=millis))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts(n: usize) -> Vec<Host> {
        (0..n)
            .map(|i| Host {
                name: format!("h{i:02}"),
                ..Default::default()
            })
            .collect()
    }

    fn rolling(batch_size: u32, batch_percent: u32) -> Policy {
        Policy::new(RolloutPolicy {
            strategy: RolloutStrategy::Rolling as i32,
            batch_size,
            batch_percent,
            ..Default::default()
        })
    }

    #[test]
    fn batches_by_count_percent_or_all() {
        let sizes = |p: &Policy, n| p.batches(hosts(n)).iter().map(Vec::len).collect::<Vec<_>>();
        assert_eq!(sizes(&Policy::new(RolloutPolicy::default()), 5), [5]);
        assert_eq!(sizes(&rolling(2, 0), 5), [2, 2, 1]);
        assert_eq!(sizes(&rolling(0, 25), 10), [3, 3, 3, 1]);
        assert_eq!(sizes(&rolling(0, 0), 3), [1, 1, 1]);
        assert_eq!(sizes(&rolling(9, 50), 4), [4]);
        let names: Vec<String> = rolling(2, 0).batches(hosts(3))[1]
            .iter()
            .map(|h| h.name.clone())
            .collect();
        assert_eq!(names, ["h02"]);
    }

    #[test]
    fn defaults_and_validation() {
        let p = Policy::new(RolloutPolicy::default());
        assert_eq!(p.attempts, None, "retries until the step's deadline");
        assert_eq!(p.step_timeout, DEFAULT_STEP_TIMEOUT);
        let bad = RolloutPolicy {
            batch_percent: 101,
            ..Default::default()
        };
        assert!(validate("policy", &bad).is_err());
        assert!(validate("policy", &RolloutPolicy::default()).is_ok());
    }

    #[test]
    fn transient_failures_are_retried_refusals_are_not() {
        assert!(is_transient(&tonic::Status::unavailable("down")));
        assert!(is_transient(&tonic::Status::deadline_exceeded("slow")));
        assert!(is_transient(&tonic::Status::unknown(
            "transport error: connection reset by peer"
        )));
        assert!(!is_transient(&tonic::Status::invalid_argument("bad")));
        assert!(!is_transient(&tonic::Status::failed_precondition("busy")));
        assert!(!is_transient(&tonic::Status::permission_denied("no")));
    }

    #[test]
    fn backoff_grows_and_stays_capped() {
        for attempt in 2..20 {
            let wait = backoff(attempt);
            assert!(wait <= BACKOFF_CAP, "{wait:?}");
            assert!(wait >= BACKOFF_BASE / 2, "{wait:?}");
        }
        assert!(backoff(8) >= Duration::from_millis(6_400).min(BACKOFF_CAP) / 2);
    }
}
