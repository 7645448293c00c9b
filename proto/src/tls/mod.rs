//! Mutual TLS for every Slipway listener and client: the PEM material and
//! its reload, verifiers that check exact identities and revocations, the
//! server's accept stream and the client's connector.

use std::time::Duration;

mod dial;
mod material;
mod reload;
mod serve;
mod verify;

pub use dial::{
    Connector, Dialer, client_config, connect, endpoint, endpoint_with, pinned_client_config,
};
pub use material::{CertificateProblem, TlsError, TlsMaterial, TlsPaths, fingerprint};
pub use reload::{CertSummary, POLL_EVERY, Reloader, serial_and_expiry, summary};
pub use serve::{
    Incoming, ServerStream, browser_server_config, client_certificate, enrollment_server_config,
    server_config,
};
pub use verify::{Peer, PeerError, verify_chain};

/// HTTP/2 flow-control window of one stream, for both clients and servers.
pub const STREAM_WINDOW: u32 = 4 << 20;

/// HTTP/2 flow-control window of one connection.
pub const CONNECTION_WINDOW: u32 = 8 << 20;

/// How long a TCP connect plus TLS handshake may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a peer could not be dialed.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The address is not `host:port` or `https://host:port`.
    #[error("invalid address {address:?}: {reason}")]
    Address {
        /// The address given.
        address: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// TCP or TLS failed.
    #[error("cannot connect to {address}")]
    Transport {
        /// The address dialed.
        address: String,
        /// The cause.
        #[source]
        source: tonic::transport::Error,
    },
}

/// Turns `host:port` or `https://host:port` into an https URI. Plaintext
/// schemes are refused: tonic would silently drop TLS for them.
pub fn https_uri(address: &str) -> Result<String, ConnectError> {
    let bad = |reason| ConnectError::Address {
        address: address.to_owned(),
        reason,
    };
    let rest = match address.split_once("://") {
        Some(("https", rest)) => rest,
        Some(_) => {
            return Err(bad(
                "only https:// is supported: every connection is mutual TLS",
            ));
        }
        None => address,
    };
    if rest.is_empty() || !rest.contains(':') || rest.contains('/') {
        return Err(bad("expected host:port"));
    }
    Ok(format!("https://{rest}"))
}

/// The host part of `host:port` (brackets removed from IPv6 literals), the
/// name a server certificate is checked against by default.
pub fn host_of(address: &str) -> &str {
    let rest = address.split_once("://").map_or(address, |(_, r)| r);
    let host = rest.rsplit_once(':').map_or(rest, |(h, _)| h);
    host.trim_start_matches('[').trim_end_matches(']')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        assert_eq!(
            https_uri("127.0.0.1:7443").unwrap(),
            "https://127.0.0.1:7443"
        );
        assert_eq!(https_uri("https://cp:7443").unwrap(), "https://cp:7443");
        assert!(https_uri("http://cp:7443").is_err());
        assert!(https_uri("cp").is_err());
        assert_eq!(host_of("https://[::1]:7443"), "::1");
        assert_eq!(host_of("web-1:7444"), "web-1");
    }
}
