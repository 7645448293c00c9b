//! Dialing agents: mutual TLS with the control plane's client identity, the
//! agent's certificate checked against the host's name, transient failures
//! retried with capped, jittered exponential backoff.

use slipway_proto::{
    agent::v1::agent_service_client::AgentServiceClient,
    control::v1::Host,
    tls::{self, ConnectError, TlsMaterial},
};
use tonic::transport::Channel;

/// Attempts per call before a transient failure is final.
pub const ATTEMPTS: u32 = 3;

/// A connected agent client.
pub type AgentClient = AgentServiceClient<Channel>;

/// Dials agents.
#[derive(Clone)]
pub struct Agents {
    tls: TlsMaterial,
}

impl Agents {
    /// Dials with this client identity.
    pub fn new(tls: TlsMaterial) -> Self {
        Self { tls }
    }

    /// Connects to the host's agent. The agent's certificate must carry the
    /// host's name as a DNS SAN, so a certificate of another host is refused.
    pub async fn connect(&self, host: &Host) -> Result<AgentClient, ConnectError> {
        self.connect_with(host, ATTEMPTS).await
    }

    /// Dials `host` once: the rollout retries whole steps itself.
    pub async fn connect_once(&self, host: &Host) -> Result<AgentClient, ConnectError> {
        self.connect_with(host, 1).await
    }

    async fn connect_with(&self, host: &Host, attempts: u32) -> Result<AgentClient, ConnectError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match tls::connect(&host.address, &host.name, &self.tls).await {
                Ok(channel) => {
                    return Ok(AgentServiceClient::new(channel)
                        .max_decoding_message_size(slipway_proto::MAX_MESSAGE_BYTES)
                        .max_encoding_message_size(slipway_proto::MAX_MESSAGE_BYTES));
                }
                Err(err) if attempt < attempts => {
                    tracing::debug!(host = %host.name, error = ?err, attempt, "agent connect failed; retrying");
                    tokio::time::sleep(crate::policy::backoff(attempt + 1)).await;
                }
                Err(err) => return Err(err),
            }
        }
    }
}
