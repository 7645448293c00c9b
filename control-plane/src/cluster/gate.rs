//! What a replica that does not lead answers: reads and streams itself,
//! every other call refused with UNAVAILABLE and reason NOT_LEADER, the
//! leader's address in the ErrorInfo metadata, so that a client follows it.

use std::{
    collections::HashMap,
    future::Ready,
    task::{Context, Poll},
};

use futures_util::future::Either;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use super::Cluster;

/// The `ErrorInfo.domain` of the control plane's own reasons.
pub const DOMAIN: &str = "slipway.control.v1";

/// The reason a follower refuses a call that changes something.
pub const NOT_LEADER: &str = "NOT_LEADER";

/// The operator package; only its methods are gated.
const PACKAGE: &str = "/slipway.control.v1.";

/// Methods that only read, by the verb they start with: a follower serves
/// them from the shared store.
const READS: [&str; 5] = ["Get", "List", "Watch", "Plan", "Verify"];

/// Whether `path` (`/package.Service/Method`) may be served by a follower.
pub fn follower_serves(path: &str) -> bool {
    let Some(rest) = path.strip_prefix(PACKAGE) else {
        return true; // health, reflection
    };
    let Some((service, method)) = rest.split_once('/') else {
        return true;
    };
    service == "ClusterService" || READS.iter().any(|verb| method.starts_with(verb))
}

/// The refusal of a follower.
pub fn not_leader(cluster: &Cluster) -> Status {
    let leader = cluster.leader();
    let message = match &leader {
        Some(leader) => format!(
            "this replica ({}) does not lead; the leader is {} at {}",
            cluster.me().id,
            leader.id,
            leader.address
        ),
        None => format!(
            "this replica ({}) does not lead and no leader is elected yet; try again shortly",
            cluster.me().id
        ),
    };
    let metadata: HashMap<String, String> = leader
        .map(|l| HashMap::from([("leader_address".to_owned(), l.address)]))
        .unwrap_or_default();
    let details = ErrorDetails::with_error_info(NOT_LEADER, DOMAIN, metadata);
    Status::with_error_details(Code::Unavailable, message, details)
}

/// The leader's address a NOT_LEADER refusal names, if it is one.
pub fn leader_address(status: &Status) -> Option<Option<String>> {
    let info = status.get_details_error_info()?;
    (info.domain == DOMAIN && info.reason == NOT_LEADER)
        .then(|| info.metadata.get("leader_address").cloned())
}

/// The tower layer of [`Gate`].
#[derive(Clone)]
pub struct GateLayer(pub Cluster);

impl<S> tower::Layer<S> for GateLayer {
    type Service = Gate<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Gate {
            inner,
            cluster: self.0.clone(),
        }
    }
}

/// Refuses what a follower must not serve; passes the rest on.
#[derive(Clone)]
pub struct Gate<S> {
    inner: S,
    cluster: Cluster,
}

impl<S, B> tower::Service<http::Request<B>> for Gate<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<tonic::body::Body>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Either<Ready<Result<S::Response, S::Error>>, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        if !self.cluster.is_leader() && !follower_serves(request.uri().path()) {
            let refusal = not_leader(&self.cluster).into_http();
            return Either::Left(std::future::ready(Ok(refusal)));
        }
        Either::Right(self.inner.call(request))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_foreign_services_pass_and_writes_do_not() {
        for path in [
            "/slipway.control.v1.DeploymentService/GetDeployment",
            "/slipway.control.v1.DeploymentService/WatchDeployment",
            "/slipway.control.v1.DeploymentService/ListDeployments",
            "/slipway.control.v1.DeploymentService/PlanDeployment",
            "/slipway.control.v1.AuditService/VerifyAuditTrail",
            "/slipway.control.v1.ClusterService/GetClusterStatus",
            "/grpc.health.v1.Health/Check",
            "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
        ] {
            assert!(follower_serves(path), "{path}");
        }
        for path in [
            "/slipway.control.v1.DeploymentService/Deploy",
            "/slipway.control.v1.DeploymentService/CancelDeployment",
            "/slipway.control.v1.AppService/CreateApp",
            "/slipway.control.v1.LockService/ReleaseLock",
        ] {
            assert!(!follower_serves(path), "{path}");
        }
    }

    #[test]
    fn a_refusal_names_the_leader() {
        use super::super::{Leader, ReplicaInfo, Role, StoreView};
        let cluster = Cluster::replicated(
            ReplicaInfo::this_process("b", "10.0.0.2:7443"),
            StoreView::Sled,
        );
        assert_eq!(leader_address(&not_leader(&cluster)), Some(None));
        cluster.set_role(Role::Follower {
            leader: Some(Leader {
                replica: ReplicaInfo::this_process("a", "10.0.0.1:7443"),
                term: 3,
            }),
        });
        let refusal = not_leader(&cluster);
        assert_eq!(refusal.code(), Code::Unavailable);
        assert_eq!(leader_address(&refusal), Some(Some("10.0.0.1:7443".into())));
        assert!(
            refusal
                .message()
                .contains("the leader is a at 10.0.0.1:7443")
        );
        assert_eq!(leader_address(&Status::unavailable("x")), None);
    }
}
