//! The dashboard reads and writes through the operator API's own services,
//! called in-process as the session's operator: the same role checks,
//! validation, audit entries and domain functions as a gRPC call, so the
//! dashboard has no second source of truth.

use axum::response::Response;
use tonic::Request;

use super::{session::failed, viewer::Viewer};
use crate::{Context, api, audit::SessionCertificate};

/// `message` as a request of `viewer`'s operator (its certificate's
/// fingerprint goes to the audit trail as a gRPC call's would).
pub fn request<T>(viewer: &Viewer, message: T) -> Request<T> {
    let mut request = Request::new(message);
    let extensions = request.extensions_mut();
    extensions.insert(viewer.caller.clone());
    extensions.insert(SessionCertificate(
        viewer.session.certificate_sha256.clone(),
    ));
    request
}

/// The services, on the listener's context.
pub struct Services {
    /// `DeploymentService`.
    pub deployments: api::Deployments,
    /// `EnvironmentService`.
    pub environments: api::Environments,
    /// `HostService`.
    pub hosts: api::Hosts,
    /// `ReleaseService`.
    pub releases: api::Releases,
    /// `AuditService`.
    pub audit: api::AuditTrail,
    /// `ApprovalService`.
    pub approvals: api::Approvals,
    /// `DriftService`.
    pub drift: api::Drift,
}

impl Services {
    /// The services over `ctx`.
    pub fn new(ctx: &Context) -> Self {
        Self {
            deployments: api::Deployments(ctx.clone()),
            environments: api::Environments(ctx.clone()),
            hosts: api::Hosts(ctx.clone()),
            releases: api::Releases(ctx.clone()),
            audit: api::AuditTrail(ctx.clone()),
            approvals: api::Approvals(ctx.clone()),
            drift: api::Drift(ctx.clone()),
        }
    }
}

/// Calls `$service.$method` as `$viewer` with `$message`; the answer's
/// body, or returns the refusal page from the handler.
macro_rules! call {
    ($viewer:expr, $service:expr, $method:ident, $message:expr) => {
        match $service
            .$method($crate::web::calls::request($viewer, $message))
            .await
        {
            Ok(answer) => answer.into_inner(),
            Err(status) => return $crate::web::calls::refused($viewer, &status),
        }
    };
}
pub(crate) use call;

/// The page for a refused call (logged at debug: the audit trail has the
/// writes).
pub fn refused(viewer: &Viewer, status: &tonic::Status) -> Response {
    tracing::debug!(code = ?status.code(), message = status.message(), "dashboard call refused");
    failed(viewer.lang, status)
}
