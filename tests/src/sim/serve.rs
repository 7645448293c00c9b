//! The one tonic server of a simulated fleet: the connections of every
//! agent's listener in one stream, the agent service that routes each call
//! to the agent whose port it came to, and gRPC health.

use std::{collections::HashMap, sync::Arc};

use futures_util::Stream;
use slipway_proto::{
    MAX_MESSAGE_BYTES,
    agent::v1::agent_service_server::{AgentServiceServer, SERVICE_NAME},
    tls::ServerStream,
};
use tokio_util::sync::CancellationToken;
use tonic::transport::Server;
use tonic_health::ServingStatus;

use super::{node::Node, service::SimService};

/// Keep-alive of every connection, as a real agent's.
const KEEPALIVE: std::time::Duration = std::time::Duration::from_secs(10);

/// Serves `connections` until `stop` is cancelled.
pub(super) async fn serve(
    nodes: HashMap<u16, Arc<Node>>,
    connections: impl Stream<Item = std::io::Result<ServerStream>> + Send + 'static,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_service_status(SERVICE_NAME, ServingStatus::Serving)
        .await;
    let api = AgentServiceServer::new(SimService::new(nodes))
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);
    Server::builder()
        .http2_keepalive_interval(Some(KEEPALIVE))
        .http2_keepalive_timeout(Some(KEEPALIVE))
        .initial_stream_window_size(slipway_proto::tls::STREAM_WINDOW)
        .initial_connection_window_size(slipway_proto::tls::CONNECTION_WINDOW)
        .add_service(health_service)
        .add_service(api)
        .serve_with_incoming_shutdown(connections, stop.cancelled_owned())
        .await?;
    Ok(())
}
