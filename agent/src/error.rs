//! The crate's error type and the one place it becomes a gRPC status, with
//! the machine-readable reason the contract defines.

use std::{error::Error as StdError, io, net::SocketAddr, path::PathBuf};

use slipway_proto::{
    daemon::chain,
    reason::{self, Reason},
    tls::TlsError,
    validate::InvalidField,
};
use tonic::{Code, Status};

use crate::{
    config::ConfigError,
    fencing::{FenceError, StaleToken},
    health::HealthError,
    hooks::HookError,
    journal::JournalError,
    objects::ObjectError,
    operations::OperationError,
    registry::{RegistryError, RootOverlap},
    release::ReleaseError,
    shared::SharedError,
};

/// Everything that can go wrong in the agent, at startup or in a request.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration is unusable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The TLS files could not be loaded.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A directory the agent needs could not be created.
    #[error("cannot create {}", path.display())]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The app registry could not be read or written.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// The revocation list could not be read or written.
    #[error(transparent)]
    Trust(#[from] crate::trust::TrustError),
    /// The app's deploy root overlaps another app's.
    #[error(transparent)]
    Overlap(#[from] RootOverlap),
    /// The reflection service rejected the descriptor set (a build bug).
    #[error("cannot build the reflection service")]
    Reflection(#[from] tonic_reflection::server::Error),
    /// The gRPC server failed.
    #[error("the gRPC server failed")]
    Serve(#[source] tonic::transport::Error),
    /// A request field is invalid.
    #[error(transparent)]
    Invalid(#[from] InvalidField),
    /// The app is busy or the deployment id is reused.
    #[error(transparent)]
    Operation(#[from] OperationError),
    /// A release could not be built, switched or found.
    #[error(transparent)]
    Release(#[from] ReleaseError),
    /// The content store failed or an upload broke its rules.
    #[error(transparent)]
    Object(#[from] ObjectError),
    /// An agent upgrade was refused or failed before its restart.
    #[error(transparent)]
    Upgrade(#[from] crate::upgrade::UpgradeError),
    /// An agent binary upload failed.
    #[error(transparent)]
    Binary(#[from] crate::binaries::BinaryError),
    /// An app's journal could not be read or written.
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// A shared path is missing or cannot be created.
    #[error(transparent)]
    Shared(#[from] SharedError),
    /// A hook failed or timed out.
    #[error(transparent)]
    Hook(#[from] HookError),
    /// The health check did not pass.
    #[error(transparent)]
    Health(#[from] HealthError),
    /// A deploy named a base release whose manifest this host does not keep.
    #[error("base release {release_id} is not known on this host; send the whole manifest")]
    UnknownBase {
        /// The base release named.
        release_id: String,
    },
    /// A hook or the health check failed after the switch, and `current`
    /// was switched back (or that was attempted).
    #[error("{failure}; {outcome}")]
    Reverted {
        /// What failed, with its causes.
        failure: String,
        /// What became of `current`.
        outcome: String,
        /// The last lines of output of what failed.
        output: Option<String>,
    },
    /// A runtime action, drain or restore that is not a command failed
    /// (a signal that could not be sent, an HTTP call without a 2xx).
    #[error("{what} failed: {reason}")]
    Runtime {
        /// What ran, e.g. `drain POST http://lb/out`.
        what: String,
        /// What went wrong.
        reason: String,
    },
    /// The request's fencing token is lower than one the app has seen.
    #[error(transparent)]
    Stale(#[from] StaleToken),
    /// CancelOperation stopped the operation.
    #[error("cancelled {during}")]
    Cancelled {
        /// Where it stopped, e.g. `during before-activate hook "migrate"`.
        during: String,
    },
    /// The client's request stream failed (it went away or sent garbage).
    #[error("the request stream failed")]
    Client(#[source] Status),
    /// A blocking task panicked or was cancelled (a bug).
    #[error("a background task failed")]
    Task(#[from] tokio::task::JoinError),
}

/// The status code for a failed filesystem call: full disks and missing
/// permissions need an operator; other I/O errors may pass on retry.
fn io_code(err: &(dyn StdError + 'static)) -> Code {
    let mut source = Some(err);
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<io::Error>() {
            return match io.kind() {
                io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded => {
                    Code::ResourceExhausted
                }
                io::ErrorKind::PermissionDenied | io::ErrorKind::ReadOnlyFilesystem => {
                    Code::FailedPrecondition
                }
                _ => Code::Unavailable,
            };
        }
        source = cause.source();
    }
    Code::Internal
}

impl Error {
    /// The last lines of output of a failed hook or check, kept apart from
    /// the message so an operation's error can end with them.
    pub fn output(&self) -> Option<&str> {
        match self {
            Error::Hook(err) => err.output(),
            Error::Health(err) => Some(err.output.as_str()).filter(|o| !o.is_empty()),
            Error::Reverted { output, .. } => output.as_deref(),
            _ => None,
        }
    }

    /// The gRPC code this error is reported with.
    pub fn code(&self) -> Code {
        match self {
            Error::Invalid(_) => Code::InvalidArgument,
            Error::Object(ObjectError::HashMismatch { .. } | ObjectError::Protocol { .. }) => {
                Code::InvalidArgument
            }
            Error::Release(ReleaseError::Invalid(_)) => Code::InvalidArgument,
            Error::Operation(OperationError::Upgrading { .. }) => Code::Unavailable,
            Error::Upgrade(crate::upgrade::UpgradeError::Io(_))
            | Error::Binary(crate::binaries::BinaryError::Io(_)) => Code::Internal,
            Error::Upgrade(_) => Code::FailedPrecondition,
            Error::Binary(crate::binaries::BinaryError::Invalid(_)) => Code::InvalidArgument,
            Error::Binary(crate::binaries::BinaryError::Mismatch { .. }) => Code::InvalidArgument,
            Error::Operation(_) | Error::UnknownBase { .. } | Error::Stale(_) => {
                Code::FailedPrecondition
            }
            // Reported in an operation's final event, not as a status.
            Error::Cancelled { .. } => Code::Cancelled,
            // Only the builds of prestaged trees stop; none is an operation.
            Error::Release(ReleaseError::Stopped) => Code::Aborted,
            Error::Release(
                ReleaseError::ObjectsMissing { .. }
                | ReleaseError::NotOnHost { .. }
                | ReleaseError::NotCurrent { .. }
                | ReleaseError::CurrentNotSymlink { .. }
                | ReleaseError::Shared(
                    SharedError::RequiredMissing { .. }
                    | SharedError::WrongKind { .. }
                    | SharedError::ThroughSymlink { .. },
                ),
            ) => Code::FailedPrecondition,
            Error::Shared(
                SharedError::RequiredMissing { .. }
                | SharedError::WrongKind { .. }
                | SharedError::ThroughSymlink { .. },
            ) => Code::FailedPrecondition,
            // Reported in an operation's final event, not as a status; an
            // operator fixes the app, then deploys again.
            Error::Hook(_) | Error::Health(_) | Error::Reverted { .. } | Error::Runtime { .. } => {
                Code::FailedPrecondition
            }
            Error::Journal(JournalError::Corrupt { .. } | JournalError::Version { .. }) => {
                Code::FailedPrecondition
            }
            Error::Release(ReleaseError::Object(ObjectError::Protocol { .. })) => {
                Code::InvalidArgument
            }
            Error::Client(status) => status.code(),
            Error::Object(ObjectError::Io { .. })
            | Error::Release(
                ReleaseError::Io { .. } | ReleaseError::Object(_) | ReleaseError::Shared(_),
            )
            | Error::Shared(SharedError::Io { .. })
            | Error::Journal(JournalError::Io { .. })
            | Error::CreateDir { .. }
            | Error::Registry(_)
            | Error::Trust(_)
            | Error::Bind { .. } => io_code(self),
            Error::Config(_) | Error::Tls(_) | Error::Overlap(_) => Code::FailedPrecondition,
            Error::Reflection(_)
            | Error::Serve(_)
            | Error::Task(_)
            | Error::Journal(JournalError::Task(_)) => Code::Internal,
        }
    }
}

/// Facts a caller may act on, sent with the reason as `ErrorInfo.metadata`.
type Metadata = Vec<(&'static str, String)>;

impl Error {
    /// The reason this error is reported with, and its metadata; the list
    /// is documented in `agent.proto`.
    pub fn reason(&self) -> (Reason, Metadata) {
        match self {
            Error::UnknownBase { release_id } => (
                Reason::BaseReleaseUnknown,
                vec![("base_release", release_id.clone())],
            ),
            Error::Stale(stale) => (
                Reason::StaleFencingToken,
                vec![
                    ("token", stale.token.to_string()),
                    ("seen", stale.seen.to_string()),
                ],
            ),
            Error::Operation(OperationError::Busy { running, .. }) => (
                Reason::OperationRunning,
                vec![("running_deployment", running.clone())],
            ),
            Error::Operation(OperationError::Reused { .. }) => {
                (Reason::DeploymentIdReused, Vec::new())
            }
            Error::Operation(OperationError::Upgrading { retry_after_ms }) => (
                Reason::AgentUpgrading,
                vec![("retry_after_ms", retry_after_ms.to_string())],
            ),
            Error::Operation(OperationError::NotPrepared { release_id, .. }) => (
                Reason::ReleaseNotPrepared,
                vec![("release_id", release_id.clone())],
            ),
            Error::Release(
                ReleaseError::NotOnHost { release_id }
                | ReleaseError::NotCurrent { release_id, .. },
            ) => (
                Reason::ReleaseNotOnHost,
                vec![("release_id", release_id.clone())],
            ),
            Error::Release(ReleaseError::ObjectsMissing { count }) => {
                (Reason::ObjectsMissing, vec![("count", count.to_string())])
            }
            Error::Invalid(invalid) | Error::Release(ReleaseError::Invalid(invalid)) => (
                Reason::InvalidRequest,
                vec![("field", invalid.field.clone())],
            ),
            Error::Overlap(overlap) => (
                Reason::DeployRootOverlaps,
                vec![("other_app", overlap.other.clone())],
            ),
            // Every other INVALID_ARGUMENT (a broken upload) is the
            // request's fault too.
            _ if self.code() == Code::InvalidArgument => (Reason::InvalidRequest, Vec::new()),
            _ => (Reason::Unclassified, Vec::new()),
        }
    }
}

impl From<FenceError> for Error {
    fn from(err: FenceError) -> Self {
        match err {
            FenceError::Stale(stale) => Error::Stale(stale),
            FenceError::Journal(journal) => Error::Journal(journal),
        }
    }
}

impl From<Error> for Status {
    fn from(err: Error) -> Self {
        let err = match err {
            // The client's own stream status goes back as it came, with
            // the reason every agent error carries.
            Error::Client(status) => {
                tracing::debug!(%status, "request stream failed");
                return reason::status(status.code(), status.message(), Reason::Unclassified, []);
            }
            other => other,
        };
        let code = err.code();
        let full = chain(&err);
        let (reason, metadata) = err.reason();
        if code == Code::Internal {
            tracing::error!(error = %full, "request failed");
            let message = "internal error in the agent; see its log";
            return reason::status(code, message, reason, metadata);
        }
        tracing::warn!(error = %full, ?code, %reason, "request failed");
        reason::status(code, full, reason, metadata)
    }
}

/// Runs blocking filesystem work off the async workers.
pub async fn blocking<T, E>(
    work: impl FnOnce() -> Result<T, E> + Send + 'static,
) -> Result<T, Error>
where
    T: Send + 'static,
    E: Into<Error> + Send + 'static,
{
    tokio::task::spawn_blocking(work).await?.map_err(Into::into)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_can_cross_threads_and_wrap_in_anyhow() {
        fn check<T: StdError + Send + Sync + 'static>() {}
        check::<Error>();
    }

    #[test]
    fn codes_are_chosen_deliberately() {
        let status = Status::from(Error::from(ReleaseError::ObjectsMissing { count: 3 }));
        assert_eq!(status.code(), Code::FailedPrecondition);
        assert_eq!(status.message(), "3 objects are missing; upload them first");

        let status = Status::from(Error::from(InvalidField::new("files[3].path", "bad")));
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(status.message(), "invalid files[3].path: bad");

        let full = ReleaseError::Io {
            action: "create",
            path: "/srv/web/releases".into(),
            source: io::Error::from(io::ErrorKind::StorageFull),
        };
        let status = Status::from(Error::from(full));
        assert_eq!(status.code(), Code::ResourceExhausted);
        assert!(
            status
                .message()
                .starts_with("cannot create /srv/web/releases: ")
        );

        let denied = ObjectError::Io {
            action: "write",
            path: "/srv/web/.slipway/tmp/x".into(),
            source: io::Error::from(io::ErrorKind::PermissionDenied),
        };
        assert_eq!(Error::from(denied).code(), Code::FailedPrecondition);
        let missing = SharedError::RequiredMissing {
            path: ".env".into(),
            expected: "/srv/web/shared/.env".into(),
        };
        let status = Status::from(Error::from(missing));
        assert_eq!(status.code(), Code::FailedPrecondition);
        assert!(status.message().contains("create /srv/web/shared/.env"));
        let corrupt = JournalError::Corrupt {
            path: "/srv/web/.slipway/journal.log".into(),
            source: serde_json::from_slice::<u8>(b"{").unwrap_err(),
        };
        let status = Status::from(Error::from(corrupt));
        assert_eq!(status.code(), Code::FailedPrecondition);
        assert!(
            status.message().contains("move it away"),
            "{}",
            status.message()
        );
        let gone = Error::Client(Status::cancelled("client went away"));
        assert_eq!(Status::from(gone).code(), Code::Cancelled);
    }

    #[test]
    fn every_status_carries_a_reason_and_keeps_its_message() {
        let reason_of = |err: Error| {
            let (code, message) = (err.code(), chain(&err));
            let status = Status::from(err);
            assert_eq!((status.code(), status.message()), (code, message.as_str()));
            reason::reason(&status).expect("an ErrorInfo of the agent's domain")
        };
        let base = Error::UnknownBase {
            release_id: "r1".into(),
        };
        assert_eq!(reason_of(base), Reason::BaseReleaseUnknown);
        let stale = StaleToken {
            token: 3,
            app: "web".into(),
            seen: 4,
        };
        let status = Status::from(Error::from(stale));
        assert_eq!(
            reason::reason(&status),
            Some(Reason::StaleFencingToken),
            "{status:?}"
        );
        let (_, metadata) = reason::error_info(&status).unwrap();
        assert_eq!(
            (metadata["token"].as_str(), metadata["seen"].as_str()),
            ("3", "4")
        );
        let busy = OperationError::Busy {
            running: "d1".into(),
            app: "web".into(),
        };
        assert_eq!(reason_of(busy.into()), Reason::OperationRunning);
        let reused = OperationError::Reused {
            deployment_id: "d1".into(),
            existing: "a deploy".into(),
        };
        assert_eq!(reason_of(reused.into()), Reason::DeploymentIdReused);
        let not_prepared = OperationError::NotPrepared {
            deployment_id: "d1".into(),
            release_id: "r1".into(),
            why: "its prepare failed".into(),
        };
        assert_eq!(reason_of(not_prepared.into()), Reason::ReleaseNotPrepared);
        let gone = ReleaseError::NotOnHost {
            release_id: "r0".into(),
        };
        assert_eq!(reason_of(gone.into()), Reason::ReleaseNotOnHost);
        let missing = ReleaseError::ObjectsMissing { count: 2 };
        assert_eq!(reason_of(missing.into()), Reason::ObjectsMissing);
        let invalid = InvalidField::new("release_id", "bad");
        assert_eq!(reason_of(invalid.into()), Reason::InvalidRequest);
        let protocol = ObjectError::Protocol {
            sha256: "ab".repeat(32),
            problem: "is longer than 3 bytes".into(),
        };
        assert_eq!(reason_of(protocol.into()), Reason::InvalidRequest);
        let corrupt = JournalError::Corrupt {
            path: "/srv/web/.slipway/journal.log".into(),
            source: serde_json::from_slice::<u8>(b"{").unwrap_err(),
        };
        assert_eq!(reason_of(corrupt.into()), Reason::Unclassified);
        let aborted = tokio::runtime::Runtime::new().unwrap().block_on(async {
            let task = tokio::spawn(std::future::pending::<()>());
            task.abort();
            task.await.unwrap_err()
        });
        let bug = Status::from(Error::Task(aborted));
        assert_eq!(bug.code(), Code::Internal);
        assert_eq!(reason::reason(&bug), Some(Reason::Unclassified));
        let client = Status::from(Error::Client(Status::cancelled("client went away")));
        assert_eq!(client.message(), "client went away");
        assert_eq!(reason::reason(&client), Some(Reason::Unclassified));
    }
}
