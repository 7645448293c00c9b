//! Deploy gate flags of `env create|update`: what a deployment to the
//! environment waits for before it starts. Each flag given replaces one
//! field of the environment's gates.

use clap::Args;
use slipway_proto::control::v1::DeployGates;

/// Deploy gate flags.
#[derive(Clone, Debug, Default, Args)]
#[command(next_help_heading = "Deploy gates")]
pub struct GatesArgs {
    /// A deploy or rollback while another holds the lock waits in a FIFO queue instead of
    /// being refused
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub queue: Option<bool>,
    /// A newer queued deployment skips the older queued ones of the same app
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub latest_wins: Option<bool>,
    /// Approvals a deployment needs from operators other than its requester (0: none)
    #[arg(long, value_name = "N")]
    pub approvals: Option<u32>,
    /// Seconds a request for approval stays open (0: a day)
    #[arg(long, value_name = "SECONDS")]
    pub approval_expiry: Option<u32>,
}

impl GatesArgs {
    /// `base` with every given flag applied.
    pub fn apply(&self, base: DeployGates) -> DeployGates {
        DeployGates {
            queue: self.queue.unwrap_or(base.queue),
            latest_wins: self.latest_wins.unwrap_or(base.latest_wins),
            approvals_required: self.approvals.unwrap_or(base.approvals_required),
            approval_expiry_seconds: self.approval_expiry.unwrap_or(base.approval_expiry_seconds),
        }
    }
}

/// The gates in words: "queue (latest wins)", or "none".
pub fn describe(gates: &DeployGates) -> String {
    let mut parts = Vec::new();
    if gates.queue {
        parts.push(if gates.latest_wins {
            "queue (latest wins)".to_owned()
        } else {
            "queue".to_owned()
        });
    } else if gates.latest_wins {
        parts.push("latest wins for --queue deploys".to_owned());
    }
    if gates.approvals_required > 0 {
        let expiry = match gates.approval_expiry_seconds {
            0 => "a day".to_owned(),
            s => format!("{s} s"),
        };
        parts.push(format!(
            "{} approvals (requests expire after {expiry})",
            gates.approvals_required
        ));
    }
    if parts.is_empty() {
        return "none".to_owned();
    }
    parts.join(", ")
}
