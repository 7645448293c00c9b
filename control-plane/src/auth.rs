//! Who may call the operator API: only operator certificates, and each method
//! checks the role it needs (viewer < deployer < admin).

use slipway_proto::{
    identity::{Identity, Role},
    revocation::Revocations,
    tls::fingerprint,
};
use std::sync::Arc;

use tonic::{Request, Status, codegen::http, service::Interceptor};

/// The authenticated operator behind a request, or the webhook of an app
/// (a git server or CI that proved the app's secret).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    /// Operator name from the certificate; the app, for a webhook.
    pub name: String,
    /// Operator role from the certificate; deployer, for a webhook.
    pub role: Role,
    /// True for an app's webhook.
    pub webhook: bool,
}

impl Caller {
    /// The operator `name` with `role`.
    pub fn operator(name: impl Into<String>, role: Role) -> Self {
        Self {
            name: name.into(),
            role,
            webhook: false,
        }
    }

    /// The webhook of `app`: it may deploy that app.
    pub fn webhook(app: &str) -> Self {
        Self {
            name: app.to_owned(),
            role: Role::Deployer,
            webhook: true,
        }
    }

    /// How the caller is recorded as an author: `role/name`, or
    /// `webhook/<app>`.
    pub fn principal(&self) -> String {
        if self.webhook {
            format!("webhook/{}", self.name)
        } else {
            format!("{}/{}", self.role, self.name)
        }
    }
}

/// Interceptor for every operator service: the peer's certificate must carry
/// an operator identity and not be revoked (checked on every call, so a
/// certificate revoked while its connection is open is refused from its
/// next call). The caller is stored in the request's extensions; a refusal
/// is logged with the peer's address and certificate fingerprint.
#[derive(Clone)]
pub struct Authenticate {
    revocations: Revocations,
    on_refusal: Option<Arc<dyn Fn(Refusal) + Send + Sync>>,
}

impl std::fmt::Debug for Authenticate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticate").finish_non_exhaustive()
    }
}

impl Authenticate {
    /// Refuses the certificates in `revocations`.
    pub fn new(revocations: Revocations) -> Self {
        Self {
            revocations,
            on_refusal: None,
        }
    }

    /// Also hands every refusal to `record` (the server writes it to the
    /// audit trail).
    pub fn on_refusal(mut self, record: Arc<dyn Fn(Refusal) + Send + Sync>) -> Self {
        self.on_refusal = Some(record);
        self
    }
}

/// The gRPC method of a request (`/slipway.control.v1.AppService/ListApps`),
/// put in its extensions by [`tag_method`] so that a refusal names it.
#[derive(Clone, Debug)]
pub struct MethodPath(pub String);

/// Tags a request with its method path; the server applies it to every
/// request before the interceptors run.
pub fn tag_method<B>(mut request: http::Request<B>) -> http::Request<B> {
    let path = MethodPath(request.uri().path().to_owned());
    request.extensions_mut().insert(path);
    request
}

/// A call the interceptor refused, as the audit trail records it.
#[derive(Clone, Debug)]
pub struct Refusal {
    /// The peer's address.
    pub peer: String,
    /// The identity in its certificate, or `(no identity)`.
    pub identity: String,
    /// Lower-case hex SHA-256 of its certificate; empty without one.
    pub fingerprint: String,
    /// `/package.Service/Method`.
    pub method: String,
    /// The code it got.
    pub code: tonic::Code,
    /// Why.
    pub reason: String,
}

impl Interceptor for Authenticate {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        let peer = request
            .remote_addr()
            .map_or_else(|| "?".to_owned(), |addr| addr.to_string());
        let leaf = request
            .peer_certs()
            .and_then(|certs| certs.first().map(|c| c.as_ref().to_vec()));
        let method = request
            .extensions()
            .get::<MethodPath>()
            .map(|m| m.0.clone())
            .unwrap_or_default();
        let identity = Identity::from_request(&request)
            .map_or_else(|_| "(no identity)".to_owned(), |i| i.principal());
        authenticate(request, leaf.as_deref(), &self.revocations).inspect_err(|status| {
            let fingerprint = leaf.as_deref().map(fingerprint).unwrap_or_default();
            tracing::warn!(
                %peer,
                %method,
                fingerprint,
                reason = status.message(),
                "refused a caller"
            );
            if let Some(record) = &self.on_refusal {
                let refusal = Refusal {
                    peer: peer.clone(),
                    identity: identity.clone(),
                    fingerprint: fingerprint.trim_start_matches("SHA256:").to_owned(),
                    method: method.clone(),
                    code: status.code(),
                    reason: status.message().to_owned(),
                };
                record(refusal);
            }
        })
    }
}

fn authenticate(
    mut request: Request<()>,
    leaf: Option<&[u8]>,
    revocations: &Revocations,
) -> Result<Request<()>, Status> {
    if let Some(why) = leaf.and_then(|der| revocations.check(der)) {
        return Err(Status::unauthenticated(why));
    }
    match Identity::from_request(&request) {
        Ok(Identity::Operator { name, role }) => {
            request
                .extensions_mut()
                .insert(Caller::operator(name, role));
            Ok(request)
        }
        Ok(other) => Err(Status::permission_denied(format!(
            "only operator certificates may call the control plane API; caller is {other}"
        ))),
        Err(err) => Err(Status::unauthenticated(format!(
            "no operator identity in the client certificate: {err}"
        ))),
    }
}

/// The caller of a request, if its role is at least `needed`.
pub fn require<T>(request: &Request<T>, needed: Role) -> Result<Caller, Status> {
    let caller = request
        .extensions()
        .get::<Caller>()
        .cloned()
        .ok_or_else(|| Status::unauthenticated("request was not authenticated"))?;
    if caller.role < needed {
        return Err(Status::permission_denied(format!(
            "{} may not do this: it needs the {needed} role",
            caller.principal()
        )));
    }
    Ok(caller)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request_as(role: Role) -> Request<()> {
        let mut request = Request::new(());
        request
            .extensions_mut()
            .insert(Caller::operator("alice", role));
        request
    }

    #[test]
    fn roles_are_checked() {
        assert!(require(&request_as(Role::Viewer), Role::Viewer).is_ok());
        let denied = require(&request_as(Role::Viewer), Role::Deployer).unwrap_err();
        assert_eq!(denied.code(), tonic::Code::PermissionDenied);
        assert!(require(&request_as(Role::Admin), Role::Deployer).is_ok());
        let denied = require(&request_as(Role::Deployer), Role::Admin).unwrap_err();
        assert!(denied.message().contains("admin role"));
    }

    #[test]
    fn unauthenticated_without_certificate() {
        let status = authenticate(Request::new(()), None, &Revocations::default()).unwrap_err();
        assert_eq!(status.code(), tonic::Code::Unauthenticated);
    }
}
