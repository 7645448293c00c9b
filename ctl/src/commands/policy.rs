//! Rollout policy flags, shared by `env create|update`, `deploy` and
//! `rollback`: each flag given replaces one field of the policy it starts
//! from (the environment's, for a deploy).

use clap::{Args, ValueEnum};
use slipway_proto::control::v1::{RolloutPolicy, RolloutStrategy};

/// How many hosts switch at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Strategy {
    /// Every host in one batch
    All,
    /// Batches of --batch-size hosts or --batch-percent of them
    Rolling,
}

/// Rollout policy flags.
#[derive(Clone, Debug, Default, Args)]
pub struct PolicyArgs {
    /// All hosts at once, or rolling batches
    #[arg(long, value_enum)]
    pub strategy: Option<Strategy>,
    /// Hosts per batch (implies --strategy rolling)
    #[arg(long, value_name = "N")]
    pub batch_size: Option<u32>,
    /// Percent of the hosts per batch, rounded up (implies --strategy rolling)
    #[arg(long, value_name = "PERCENT", value_parser = clap::value_parser!(u32).range(1..=100))]
    pub batch_percent: Option<u32>,
    /// The first batch is a canary: if it fails, no other host goes beyond preparation
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub canary: Option<bool>,
    /// Failed hosts tolerated before the deployment stops
    #[arg(long, value_name = "N")]
    pub max_failed: Option<u32>,
    /// Seconds to wait between batches
    #[arg(long, value_name = "SECONDS")]
    pub pause: Option<u32>,
    /// Switch the hosts that took the release back when the deployment fails
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub auto_rollback: Option<bool>,
    /// At most N attempts of an agent call that failed transiently (default: as many as
    /// fit in the step deadline)
    #[arg(long, value_name = "N")]
    pub retries: Option<u32>,
    /// Deadline of one step on one host, in seconds (default 120)
    #[arg(long, value_name = "SECONDS")]
    pub step_timeout: Option<u32>,
}

impl PolicyArgs {
    /// Whether no policy flag was given.
    pub fn is_empty(&self) -> bool {
        self.apply(RolloutPolicy::default()) == RolloutPolicy::default()
            && self.strategy.is_none()
            && self.canary.is_none()
            && self.auto_rollback.is_none()
    }

    /// `base` with every given flag applied.
    pub fn apply(&self, base: RolloutPolicy) -> RolloutPolicy {
        let mut policy = base;
        if let Some(strategy) = self.strategy {
            policy.strategy = match strategy {
                Strategy::All => RolloutStrategy::AllAtOnce,
                Strategy::Rolling => RolloutStrategy::Rolling,
            } as i32;
        }
        if let Some(n) = self.batch_size {
            policy.batch_size = n;
            policy.strategy = RolloutStrategy::Rolling as i32;
        }
        if let Some(p) = self.batch_percent {
            policy.batch_percent = p;
            policy.batch_size = self.batch_size.unwrap_or(0);
            policy.strategy = RolloutStrategy::Rolling as i32;
        }
        if let Some(canary) = self.canary {
            policy.canary = canary;
        }
        if let Some(n) = self.max_failed {
            policy.max_failed_hosts = n;
        }
        if let Some(s) = self.pause {
            policy.pause_seconds = s;
        }
        if let Some(on) = self.auto_rollback {
            policy.auto_rollback = on;
        }
        if let Some(n) = self.retries {
            policy.retry_attempts = n;
        }
        if let Some(s) = self.step_timeout {
            policy.step_timeout_seconds = s;
        }
        policy
    }
}

/// A policy in one line for people.
pub fn describe(policy: &RolloutPolicy) -> String {
    let mut parts = vec![if policy.strategy == RolloutStrategy::Rolling as i32 {
        match (policy.batch_size, policy.batch_percent) {
            (0, 0) => "rolling, 1 host per batch".to_owned(),
            (0, p) => format!("rolling, {p}% per batch"),
            (n, _) => format!("rolling, {n} hosts per batch"),
        }
    } else {
        "all at once".to_owned()
    }];
    if policy.canary {
        parts.push("canary first batch".into());
    }
    parts.push(format!("max {} failed", policy.max_failed_hosts));
    if policy.pause_seconds > 0 {
        parts.push(format!("pause {} s", policy.pause_seconds));
    }
    if policy.auto_rollback {
        parts.push("auto-rollback".into());
    }
    if policy.retry_attempts > 0 {
        parts.push(format!("{} attempts", policy.retry_attempts));
    }
    if policy.step_timeout_seconds > 0 {
        parts.push(format!("{} s per step", policy.step_timeout_seconds));
    }
    parts.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_replace_only_what_they_name() {
        let base = RolloutPolicy {
            max_failed_hosts: 2,
            pause_seconds: 5,
            ..Default::default()
        };
        let args = PolicyArgs {
            batch_size: Some(3),
            canary: Some(true),
            ..Default::default()
        };
        let policy = args.apply(base);
        assert_eq!(policy.strategy, RolloutStrategy::Rolling as i32);
        assert_eq!((policy.batch_size, policy.max_failed_hosts), (3, 2));
        assert!(policy.canary);
        assert!(!args.is_empty());
        assert!(PolicyArgs::default().is_empty());
        assert_eq!(
            describe(&policy),
            "rolling, 3 hosts per batch, canary first batch, max 2 failed, pause 5 s"
        );
    }
}
