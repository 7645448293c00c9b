//! Dialing agents: mutual TLS with the control plane's client identity, the
//! agent's certificate checked against the host's name, transient failures
//! retried with capped, jittered exponential backoff.

use std::time::Duration;

use rand::Rng;
use slipway_proto::{
    agent::v1::agent_service_client::AgentServiceClient,
    control::v1::Host,
    tls::{self, ConnectError, TlsMaterial},
};
use tonic::{Code, transport::Channel};

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
        let mut attempt = 0;
        loop {
            attempt += 1;
            match tls::connect(&host.address, &host.name, &self.tls).await {
                Ok(channel) => {
                    return Ok(AgentServiceClient::new(channel)
                        .max_decoding_message_size(slipway_proto::MAX_MESSAGE_BYTES)
                        .max_encoding_message_size(slipway_proto::MAX_MESSAGE_BYTES));
                }
                Err(err) if attempt < ATTEMPTS => {
                    tracing::debug!(host = %host.name, error = ?err, attempt, "agent connect failed; retrying");
                    tokio::time::sleep(backoff(attempt)).await;
                }
                Err(err) => return Err(err),
            }
        }
    }
}

/// Whether a failed agent call may succeed when repeated.
pub fn is_transient(status: &tonic::Status) -> bool {
    matches!(
        status.code(),
        Code::Unavailable
            | Code::DeadlineExceeded
            | Code::Aborted
            | Code::ResourceExhausted
            | Code::Unknown
    )
}

/// Delay before retry `attempt` (1-based): 200 ms doubling, capped at 5 s,
/// with full jitter so that a fleet does not retry in lockstep.
pub fn backoff(attempt: u32) -> Duration {
    let cap = Duration::from_millis(200 * 2u64.pow(attempt.min(5))).min(Duration::from_secs(5));
    cap.mul_f64(rand::rng().random_range(0.5..=1.0))
}
