//! The tonic server: mutual TLS, the control-plane-only interceptor in front
//! of the AgentService, health and reflection.

use std::{future::Future, sync::Arc, time::Duration};

use slipway_proto::{
    MAX_MESSAGE_BYTES,
    agent::v1::agent_service_server::{AgentServiceServer, SERVICE_NAME},
    identity::{Identity, IdentityError},
    reason::{self, Reason},
    reflection,
    revocation::Revocations,
    tls::{self, Peer, TlsMaterial},
};
use tokio::net::TcpListener;
use tonic::{Code, Request, Status, service::interceptor::InterceptedService, transport::Server};
use tonic_health::ServingStatus;

use crate::{agent::Agent, error::Error, service::AgentApi, trust::Trust};

/// How often an idle connection is pinged, and how long a ping may go
/// unanswered, so a vanished control plane is noticed mid-stream.
const KEEPALIVE: Duration = Duration::from_secs(10);

/// Decides whether a caller may use the AgentService: only the control
/// plane may. Answers PERMISSION_DENIED for another Slipway identity and
/// UNAUTHENTICATED when the certificate carries none.
pub fn authorize(identity: Result<Identity, IdentityError>) -> Result<Identity, Status> {
    match identity {
        Ok(identity @ Identity::ControlPlane { .. }) => Ok(identity),
        Ok(other) => Err(reason::status(
            Code::PermissionDenied,
            format!("only the control plane may call the agent; caller is {other}"),
            Reason::Unclassified,
            [],
        )),
        Err(err) => Err(reason::status(
            Code::Unauthenticated,
            format!("{err}; the agent accepts only the control plane's certificate"),
            Reason::Unclassified,
            [],
        )),
    }
}

/// The interceptor: checks the peer (its identity, and the revocation list
/// on every call, so a certificate revoked while its connection is open is
/// refused from its next call) and leaves its identity in the request's
/// extensions for the handlers' logs.
fn control_plane_only(
    mut request: Request<()>,
    revocations: &Revocations,
) -> Result<Request<()>, Status> {
    let peer = request
        .remote_addr()
        .map_or_else(|| "?".to_owned(), |addr| addr.to_string());
    let leaf = request
        .peer_certs()
        .and_then(|certs| certs.first().map(|c| c.as_ref().to_vec()));
    let fingerprint = leaf.as_deref().map(tls::fingerprint).unwrap_or_default();
    let checked = authorize(Identity::from_request(&request)).and_then(|identity| {
        match leaf.as_deref().and_then(|der| revocations.check(der)) {
            Some(why) => Err(reason::status(
                Code::Unauthenticated,
                why,
                Reason::Unclassified,
                [],
            )),
            None => Ok(identity),
        }
    });
    let identity = checked.inspect_err(|status| {
        tracing::warn!(%peer, fingerprint, reason = status.message(), "refused a caller");
    })?;
    request.extensions_mut().insert(identity);
    Ok(request)
}

/// Serves the agent on `listener` until `shutdown` resolves, then drains.
pub async fn serve(
    agent: Arc<Agent>,
    trust: Arc<Trust>,
    tls: &TlsMaterial,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_service_status(SERVICE_NAME, ServingStatus::Serving)
        .await;
    // Only the agent's own service; grpcurl 1.8.6 speaks only v1alpha
    // reflection, newer clients v1.
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_file_descriptor_set(reflection::descriptor_set(reflection::AGENT_PACKAGE))
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let reflection_v1 = reflection().build_v1()?;
    let reflection_v1alpha = reflection().build_v1alpha()?;
    let revocations = trust.revocations();
    // Every request's lines name this host and the method.
    let host = agent.host_name().to_owned();
    let grpc = agent.metrics().grpc().layer();
    let api = AgentServiceServer::new(AgentApi::new(agent).with_trust(trust))
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);
    let checked = revocations.clone();
    let api = InterceptedService::new(api, move |request| control_plane_only(request, &checked));
    let shutdown = async move {
        shutdown.await;
        // Load balancers and probes see the drain before connections close.
        health
            .set_service_status(SERVICE_NAME, ServingStatus::NotServing)
            .await;
    };
    let tls = tls::server_config(tls, Peer::ControlPlane, revocations);
    let span = move |request: &tonic::codegen::http::Request<()>| tracing::info_span!("rpc", host = %host, method = %request.uri().path());
    Server::builder()
        .trace_fn(span)
        .layer(grpc)
        .http2_keepalive_interval(Some(KEEPALIVE))
        // Release contents arrive as bulk streams.
        .initial_stream_window_size(slipway_proto::tls::STREAM_WINDOW)
        .initial_connection_window_size(slipway_proto::tls::CONNECTION_WINDOW)
        .http2_keepalive_timeout(Some(KEEPALIVE))
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(api)
        .serve_with_incoming_shutdown(tls::Incoming::new(listener, tls), shutdown)
        .await
        .map_err(Error::Serve)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_control_plane_may_call() {
        let cp = Identity::ControlPlane {
            name: "main".into(),
        };
        assert_eq!(authorize(Ok(cp.clone())).unwrap(), cp);

        let status = authorize(Ok(Identity::Agent {
            host: "web-2".into(),
        }))
        .unwrap_err();
        assert_eq!(status.code(), Code::PermissionDenied);
        assert_eq!(
            status.message(),
            "only the control plane may call the agent; caller is agent/web-2"
        );
        let operator = Identity::Operator {
            name: "alice".into(),
            role: slipway_proto::identity::Role::Admin,
        };
        assert_eq!(
            authorize(Ok(operator)).unwrap_err().code(),
            Code::PermissionDenied
        );

        let status = authorize(Err(IdentityError::NoCertificate)).unwrap_err();
        assert_eq!(status.code(), Code::Unauthenticated);
        assert_eq!(reason::reason(&status), Some(Reason::Unclassified));
        assert_eq!(
            authorize(Err(IdentityError::Missing)).unwrap_err().code(),
            Code::Unauthenticated
        );
    }

    #[test]
    fn a_request_without_a_certificate_is_unauthenticated() {
        let status = control_plane_only(Request::new(()), &Revocations::default()).unwrap_err();
        assert_eq!(status.code(), Code::Unauthenticated);
    }
}
