//! `slipway.control.v1.EnrollmentService` and the listener it alone is
//! served on: no client certificate is needed there, so nothing else is
//! served there. Every attempt is audited with the peer's address.

use std::future::Future;

use slipway_proto::{
    control::v1::{enrollment_service_server::EnrollmentServiceServer, *},
    tls::{self, TlsMaterial},
};
use tokio::net::TcpListener;
use tonic::{Code, Request, Response, transport::Server};

use super::Reply;
use crate::{
    Context,
    audit::{self, Actor},
    enrollment,
};

/// `slipway.control.v1.EnrollmentService`.
pub struct Enrollment(pub Context);

#[tonic::async_trait]
impl enrollment_service_server::EnrollmentService for Enrollment {
    async fn enroll_agent(
        &self,
        request: Request<EnrollAgentRequest>,
    ) -> Reply<EnrollAgentResponse> {
        let peer = request
            .remote_addr()
            .map_or_else(|| "?".to_owned(), |addr| addr.to_string());
        let request = request.into_inner();
        let host = slipway_proto::limits::cut(&request.host, 253).into_owned();
        let result = enrollment::enroll(&self.0, request)
            .await
            .map_err(tonic::Status::from);
        let (outcome, message) = match &result {
            Ok(_) => (Code::Ok, "certificate signed".to_owned()),
            Err(status) => (status.code(), status.message().to_owned()),
        };
        let actor = Actor {
            principal: format!("(enrollment from {peer})"),
            ..Default::default()
        };
        let method = "slipway.control.v1.EnrollmentService/EnrollAgent";
        if let Err(err) = audit::record(
            &self.0.store,
            &actor,
            method,
            &format!("host {host}"),
            outcome,
            &message,
        )
        .await
        {
            tracing::error!(error = %slipway_proto::daemon::chain(&err), "recording an enrollment failed");
        }
        if outcome != Code::Ok {
            tracing::warn!(%peer, host, reason = message, "refused an enrollment");
        } else {
            tracing::info!(%peer, host, "enrolled an agent");
        }
        Ok(Response::new(result?))
    }
}

/// Serves enrollment on `listener` until `shutdown` resolves.
pub async fn serve(
    ctx: Context,
    material: &TlsMaterial,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), tonic::transport::Error> {
    let config = tls::enrollment_server_config(material, ctx.revocations.clone());
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "enrollment serving");
    }
    let service = EnrollmentServiceServer::new(Enrollment(ctx))
        .max_decoding_message_size(64 << 10)
        .max_encoding_message_size(64 << 10);
    Server::builder()
        .add_service(service)
        .serve_with_incoming_shutdown(tls::Incoming::new(listener, config), shutdown)
        .await
}
