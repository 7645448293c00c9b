//! The control plane's domain error and its one mapping to gRPC status codes.

use slipway_proto::validate::InvalidField;
use tonic::Status;

use crate::{git::GitError, store::StoreError};

/// What a control-plane operation can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A request field is malformed.
    #[error(transparent)]
    Invalid(#[from] InvalidField),
    /// A named thing does not exist.
    #[error("{what} {name:?} not found")]
    NotFound {
        /// "app", "environment", "host", "release", "deployment".
        what: &'static str,
        /// Its name or id.
        name: String,
    },
    /// A thing with that name exists already.
    #[error("{what} {name:?} already exists")]
    AlreadyExists {
        /// Kind of thing.
        what: &'static str,
        /// Its name.
        name: String,
    },
    /// Another deployment holds the (app, environment) lock.
    #[error("deployment {holder} is running for app {app} in environment {environment}")]
    Locked {
        /// App.
        app: String,
        /// Environment.
        environment: String,
        /// Deployment id holding the lock.
        holder: String,
    },
    /// The system is not in a state that allows the operation.
    #[error("{0}")]
    Precondition(String),
    /// A credential (a join token) was refused.
    #[error("{0}")]
    Unauthenticated(String),
    /// The caller may not do this (its role or identity does not allow it).
    #[error("{0}")]
    Denied(String),
    /// Git could not produce the release.
    #[error(transparent)]
    Git(#[from] GitError),
    /// The store failed.
    #[error("the control plane's store failed")]
    Store(#[from] StoreError),
    /// An agent asked directly (not in a deployment) refused or could not
    /// be reached; its code is kept.
    #[error("host {host}: {message}")]
    Agent {
        /// The host.
        host: String,
        /// The agent's code (UNAVAILABLE when it could not be reached).
        code: tonic::Code,
        /// For a person.
        message: String,
    },
}

impl Error {
    /// A missing thing.
    pub fn not_found(what: &'static str, name: impl Into<String>) -> Self {
        Error::NotFound {
            what,
            name: name.into(),
        }
    }
}

impl From<Error> for Status {
    fn from(err: Error) -> Self {
        match &err {
            Error::Invalid(_) => Status::invalid_argument(err.to_string()),
            Error::NotFound { .. } => Status::not_found(err.to_string()),
            Error::AlreadyExists { .. } => Status::already_exists(err.to_string()),
            Error::Locked { .. } | Error::Precondition(_) => {
                Status::failed_precondition(err.to_string())
            }
            Error::Unauthenticated(_) => Status::unauthenticated(err.to_string()),
            Error::Denied(_) => Status::permission_denied(err.to_string()),
            Error::Git(git) => match git {
                GitError::UnsupportedSource(_) => Status::invalid_argument(err.to_string()),
                GitError::UnknownRef { .. } => Status::not_found(err.to_string()),
                GitError::Open { .. } | GitError::Unreleasable { .. } => {
                    Status::failed_precondition(err.to_string())
                }
                GitError::Read(_) | GitError::Stream { .. } => {
                    tracing::error!(error = ?err, "git read failed");
                    Status::unavailable(
                        "reading the app's git repository failed; see the control plane's log",
                    )
                }
            },
            Error::Agent { code, .. } => Status::new(*code, err.to_string()),
            Error::Store(store @ StoreError::Fenced) => Status::unavailable(store.to_string()),
            Error::Store(
                store @ (StoreError::BatchTooLarge { .. } | StoreError::ValueTooLarge { .. }),
            ) => {
                tracing::error!(error = ?err, "store refused a batch");
                Status::failed_precondition(store.to_string())
            }
            Error::Store(_) => {
                tracing::error!(error = ?err, "store failure");
                Status::unavailable("the control plane's store failed; see its log")
            }
        }
    }
}
