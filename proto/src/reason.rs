//! Machine-readable reasons on the agent's error statuses: each carries a
//! `google.rpc.ErrorInfo` with [`DOMAIN`] and one [`Reason`], so a caller
//! decides on the reason and the status code, never on the message text.

use std::{collections::HashMap, fmt};

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// The `ErrorInfo.domain` of every agent error.
pub const DOMAIN: &str = "slipway.agent.v1";

/// Why the agent refused or failed a request. The list in
/// `proto/slipway/agent/v1/agent.proto` documents each for other languages;
/// a test keeps the two in step.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Reason {
    /// The `base_release` of a delta manifest is not known on the host: send
    /// the whole manifest.
    BaseReleaseUnknown,
    /// A higher fencing token was seen for the app: another control plane
    /// holds its lock.
    StaleFencingToken,
    /// Another deployment's operation runs for the app.
    OperationRunning,
    /// The deployment id already names a different operation on the host.
    DeploymentIdReused,
    /// An activation of a release the deployment id did not prepare
    /// successfully on the host.
    ReleaseNotPrepared,
    /// The release to switch to is not on the host.
    ReleaseNotOnHost,
    /// The host's object store lacks content the manifest needs.
    ObjectsMissing,
    /// A request field or an upload broke the rules (INVALID_ARGUMENT).
    InvalidRequest,
    /// The app's deploy root lies inside another app's root (its releases
    /// or `.slipway` included), contains one, or is another app's.
    DeployRootOverlaps,
    /// The agent is being upgraded and starts no new operation until it is
    /// back; try again after `retry_after_ms`.
    AgentUpgrading,
    /// Nothing more specific: act on the status code.
    Unclassified,
}

impl Reason {
    /// Every reason, in the order the proto documents them.
    pub const ALL: [Reason; 11] = [
        Reason::BaseReleaseUnknown,
        Reason::StaleFencingToken,
        Reason::OperationRunning,
        Reason::DeploymentIdReused,
        Reason::ReleaseNotPrepared,
        Reason::ReleaseNotOnHost,
        Reason::ObjectsMissing,
        Reason::InvalidRequest,
        Reason::DeployRootOverlaps,
        Reason::AgentUpgrading,
        Reason::Unclassified,
    ];

    /// The `ErrorInfo.reason` string.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::BaseReleaseUnknown => "BASE_RELEASE_UNKNOWN",
            Reason::StaleFencingToken => "STALE_FENCING_TOKEN",
            Reason::OperationRunning => "OPERATION_RUNNING",
            Reason::DeploymentIdReused => "DEPLOYMENT_ID_REUSED",
            Reason::ReleaseNotPrepared => "RELEASE_NOT_PREPARED",
            Reason::ReleaseNotOnHost => "RELEASE_NOT_ON_HOST",
            Reason::ObjectsMissing => "OBJECTS_MISSING",
            Reason::InvalidRequest => "INVALID_REQUEST",
            Reason::DeployRootOverlaps => "DEPLOY_ROOT_OVERLAPS",
            Reason::AgentUpgrading => "AGENT_UPGRADING",
            Reason::Unclassified => "UNCLASSIFIED",
        }
    }

    /// The reason a string names; None for one this build does not know
    /// (a newer agent's).
    pub fn parse(reason: &str) -> Option<Self> {
        Reason::ALL.into_iter().find(|r| r.as_str() == reason)
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A status with `code` and `message` that carries an `ErrorInfo` of
/// [`DOMAIN`] with `reason` and `metadata` (facts a caller may act on, such
/// as the token seen).
pub fn status<'a>(
    code: Code,
    message: impl Into<String>,
    reason: Reason,
    metadata: impl IntoIterator<Item = (&'a str, String)>,
) -> Status {
    let metadata: HashMap<String, String> = metadata
        .into_iter()
        .map(|(key, value)| (key.to_owned(), value))
        .collect();
    let details = ErrorDetails::with_error_info(reason.as_str(), DOMAIN, metadata);
    Status::with_error_details(code, message, details)
}

/// The reason an agent's error status carries: None when it carries no
/// `ErrorInfo` of [`DOMAIN`] (an agent before contract version 2, or a
/// status made by the transport) or a reason this build does not know.
pub fn reason(status: &Status) -> Option<Reason> {
    error_info(status).and_then(|(reason, _)| Reason::parse(&reason))
}

/// The raw reason string and metadata of a status's `ErrorInfo` of
/// [`DOMAIN`], including reasons this build does not know.
pub fn error_info(status: &Status) -> Option<(String, HashMap<String, String>)> {
    let info = status.get_details_error_info()?;
    (info.domain == DOMAIN).then_some((info.reason, info.metadata))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reason_survives_the_round_trip_and_the_message_stays() {
        let sent = status(
            Code::FailedPrecondition,
            "stale fencing token 3: app web has seen 4",
            Reason::StaleFencingToken,
            [("token", "3".to_owned()), ("seen", "4".to_owned())],
        );
        // What a client decodes from the trailers.
        let mut trailers = tonic::codegen::http::HeaderMap::new();
        sent.add_header(&mut trailers).unwrap();
        let received = Status::from_header_map(&trailers).unwrap();
        assert_eq!(received.code(), Code::FailedPrecondition);
        assert_eq!(
            received.message(),
            "stale fencing token 3: app web has seen 4"
        );
        assert_eq!(reason(&received), Some(Reason::StaleFencingToken));
        let (_, metadata) = error_info(&received).unwrap();
        assert_eq!(metadata["seen"], "4");
    }

    #[test]
    fn statuses_without_an_agent_error_info_have_no_reason() {
        assert_eq!(reason(&Status::unavailable("connection refused")), None);
        let foreign = Status::with_error_details(
            Code::FailedPrecondition,
            "x",
            ErrorDetails::with_error_info("STALE_FENCING_TOKEN", "example.com", HashMap::new()),
        );
        assert_eq!(reason(&foreign), None);
        let newer = status(Code::Aborted, "x", Reason::Unclassified, []);
        assert_eq!(reason(&newer), Some(Reason::Unclassified));
    }

    #[test]
    fn the_proto_documents_every_reason() {
        let proto = include_str!("../slipway/agent/v1/agent.proto");
        for reason in Reason::ALL {
            assert_eq!(Reason::parse(reason.as_str()), Some(reason));
            assert!(
                proto.contains(&format!("//   {reason} ")),
                "{reason} is missing from the error list in agent.proto"
            );
        }
    }
}
