//! slipctl's exit codes: 0 only when the command did what it says, and a
//! distinct code for each way it can fail, so a script can tell "cannot
//! reach the control plane" from "the deployment failed".

use std::process::ExitCode;

use tonic::Code;

use crate::{
    commands::{StreamLost, Unsuccessful},
    confirm::NotConfirmed,
    connection::{self, RpcError},
    contexts::ContextError,
};

/// How a command ended. The README's exit-code table lists these.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// The command did what it says.
    Success,
    /// It ran and found a problem (drift, a broken audit chain, a key that
    /// does not work), the operator answered no to a confirmation, or it
    /// failed in a way not listed below.
    Failure,
    /// The command line is wrong (clap's own code), or a step that needs
    /// confirming was run without a terminal and without `--yes`.
    Usage,
    /// The control plane could not be reached or trusted: network,
    /// certificates, a wrong port or daemon.
    Connection,
    /// The control plane refused the request: role, bad input, something
    /// that does not exist, a lock held by another deployment.
    Refused,
    /// A deployment or rollback finished without succeeding (failed,
    /// cancelled, interrupted), or its outcome is unknown.
    DeploymentFailed,
    /// Only part of the answer: some hosts did not answer.
    Partial,
    /// Stopped by Ctrl-C while following; the deployment goes on.
    Interrupted,
}

impl Exit {
    /// The process exit code.
    pub fn code(self) -> u8 {
        match self {
            Exit::Success => 0,
            Exit::Failure => 1,
            Exit::Usage => 2,
            Exit::Connection => 3,
            Exit::Refused => 4,
            Exit::DeploymentFailed => 5,
            Exit::Partial => 6,
            Exit::Interrupted => 130,
        }
    }

    /// Success when `ok`, otherwise [`Exit::Failure`].
    pub fn success_if(ok: bool) -> Self {
        if ok { Exit::Success } else { Exit::Failure }
    }

    /// The exit of a command that failed with `err`.
    pub fn of_error(err: &anyhow::Error) -> Self {
        for cause in err.chain() {
            if cause.is::<Unsuccessful>() || cause.is::<StreamLost>() {
                return Exit::DeploymentFailed;
            }
            if let Some(RpcError(status)) = cause.downcast_ref::<RpcError>() {
                return Self::of_status(status);
            }
            if let Some(status) = cause.downcast_ref::<tonic::Status>() {
                return Self::of_status(status);
            }
            if let Some(ContextError::Unknown { .. } | ContextError::Refused(_)) =
                cause.downcast_ref::<ContextError>()
            {
                return Exit::Usage;
            }
            match cause.downcast_ref::<NotConfirmed>() {
                Some(NotConfirmed::NoTerminal { .. }) => return Exit::Usage,
                Some(NotConfirmed::Declined { .. }) => return Exit::Failure,
                None => {}
            }
            if connection::is_connection_error(cause) {
                return Exit::Connection;
            }
        }
        Exit::Failure
    }

    fn of_status(status: &tonic::Status) -> Self {
        match status.code() {
            Code::Unavailable => Exit::Connection,
            // A connection torn down mid-call (a refused certificate).
            Code::Unknown | Code::Cancelled if std::error::Error::source(status).is_some() => {
                Exit::Connection
            }
            Code::InvalidArgument
            | Code::NotFound
            | Code::AlreadyExists
            | Code::PermissionDenied
            | Code::Unauthenticated
            | Code::FailedPrecondition
            | Code::ResourceExhausted
            | Code::OutOfRange
            | Code::Aborted
            | Code::Unimplemented => Exit::Refused,
            _ => Exit::Failure,
        }
    }
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> Self {
        ExitCode::from(exit.code())
    }
}

#[cfg(test)]
mod tests {
    use tonic::Status;

    use super::*;

    #[test]
    fn refusals_connections_and_the_rest_have_their_codes() {
        let refused = anyhow::Error::from(RpcError(Status::permission_denied("viewer")));
        assert_eq!(Exit::of_error(&refused), Exit::Refused);
        let locked = anyhow::Error::from(RpcError(Status::failed_precondition("locked")));
        assert_eq!(Exit::of_error(&locked), Exit::Refused);
        let down = anyhow::Error::from(RpcError(Status::unavailable("refused")));
        assert_eq!(Exit::of_error(&down), Exit::Connection);
        let internal = anyhow::Error::from(RpcError(Status::internal("boom")));
        assert_eq!(Exit::of_error(&internal), Exit::Failure);
        let other = anyhow::anyhow!("cannot write the file");
        assert_eq!(Exit::of_error(&other), Exit::Failure);
        let codes: Vec<u8> = [
            Exit::Success,
            Exit::Failure,
            Exit::Usage,
            Exit::Connection,
            Exit::Refused,
            Exit::DeploymentFailed,
            Exit::Partial,
            Exit::Interrupted,
        ]
        .iter()
        .map(|e| e.code())
        .collect();
        assert_eq!(codes, [0, 1, 2, 3, 4, 5, 6, 130]);
    }
}
