//! Why a host's step failed, and whether trying again may help.

use std::time::Duration;

use slipway_proto::reason::{self, Reason};

use crate::policy;

/// Why a step failed, and whether trying again may help.
#[derive(Debug)]
pub(super) enum Failure {
    /// The agent or the network was unavailable, slow or broke the
    /// connection.
    Transient(String),
    /// The agent refused or the operation failed.
    Final(String),
    /// The agent does not have the base release of a delta.
    NoBase(String),
    /// The agent asked to be asked again after a while (it is being
    /// upgraded): retried after its hint, within the step's deadline,
    /// whatever the policy's attempts.
    Later(String, Duration),
}

impl Failure {
    pub(super) fn from_status(status: &tonic::Status) -> Self {
        let message = format!("agent: {} ({:?})", status.message(), status.code());
        if let Some(after) = policy::retry_hint(status) {
            Failure::Later(message, after)
        } else if policy::is_transient(status) {
            Failure::Transient(message)
        } else if reason::reason(status) == Some(Reason::BaseReleaseUnknown) {
            Failure::NoBase(message)
        } else if status.code() == tonic::Code::Unimplemented {
            Failure::Final(format!(
                "{message}: the agent predates agent contract {}, which this control plane ({}) speaks; upgrade the agent",
                slipway_proto::AGENT_CONTRACT_VERSION,
                env!("CARGO_PKG_VERSION"),
            ))
        } else {
            Failure::Final(message)
        }
    }

    pub(super) fn message(self) -> String {
        match self {
            Failure::Transient(m)
            | Failure::Final(m)
            | Failure::NoBase(m)
            | Failure::Later(m, _) => m,
        }
    }
}
