//! Mutual TLS for every Slipway listener and client: loading the PEM files,
//! the server and client configurations, and dialing a peer.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use tonic::transport::{
    Certificate, Channel, ClientTlsConfig, Endpoint, Identity as TlsIdentity, ServerTlsConfig,
};

/// HTTP/2 flow-control window of one stream, for both clients and servers.
pub const STREAM_WINDOW: u32 = 4 << 20;

/// HTTP/2 flow-control window of one connection.
pub const CONNECTION_WINDOW: u32 = 8 << 20;

/// How long a TCP connect plus TLS handshake may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Paths of the PEM files one party needs: the CA it trusts, its certificate
/// and its private key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsPaths {
    /// CA certificate that signed every peer.
    pub ca: PathBuf,
    /// This party's certificate.
    pub cert: PathBuf,
    /// This party's private key.
    pub key: PathBuf,
}

/// A PEM file that could not be read.
#[derive(Debug, thiserror::Error)]
#[error("cannot read {what} {path}")]
pub struct TlsError {
    /// Which file: "CA certificate", "certificate" or "private key".
    pub what: &'static str,
    /// Its path.
    pub path: PathBuf,
    /// The cause.
    #[source]
    pub source: std::io::Error,
}

/// The loaded PEM material of one party.
#[derive(Clone, Debug)]
pub struct TlsMaterial {
    ca_pem: Vec<u8>,
    cert_pem: Vec<u8>,
    key_pem: Vec<u8>,
}

impl TlsMaterial {
    /// Material from PEM bytes.
    pub fn from_pem(
        ca_pem: impl Into<Vec<u8>>,
        cert_pem: impl Into<Vec<u8>>,
        key_pem: impl Into<Vec<u8>>,
    ) -> Self {
        Self {
            ca_pem: ca_pem.into(),
            cert_pem: cert_pem.into(),
            key_pem: key_pem.into(),
        }
    }

    /// Reads the three PEM files, naming the one that fails.
    pub fn load(paths: &TlsPaths) -> Result<Self, TlsError> {
        let read = |what, path: &Path| {
            std::fs::read(path).map_err(|source| TlsError {
                what,
                path: path.to_owned(),
                source,
            })
        };
        Ok(Self {
            ca_pem: read("CA certificate", &paths.ca)?,
            cert_pem: read("certificate", &paths.cert)?,
            key_pem: read("private key", &paths.key)?,
        })
    }

    /// The certificate PEM of this party.
    pub fn cert_pem(&self) -> &[u8] {
        &self.cert_pem
    }

    fn identity(&self) -> TlsIdentity {
        TlsIdentity::from_pem(&self.cert_pem, &self.key_pem)
    }

    fn ca(&self) -> Certificate {
        Certificate::from_pem(&self.ca_pem)
    }

    /// Server side: present this identity and require a client certificate
    /// signed by the CA.
    pub fn server_config(&self) -> ServerTlsConfig {
        ServerTlsConfig::new()
            .identity(self.identity())
            .client_ca_root(self.ca())
            .client_auth_optional(false)
            .timeout(CONNECT_TIMEOUT)
    }

    /// Client side: present this identity, trust only the CA and require the
    /// server certificate to name `server_name` (a DNS or IP SAN).
    pub fn client_config(&self, server_name: &str) -> ClientTlsConfig {
        ClientTlsConfig::new()
            .ca_certificate(self.ca())
            .identity(self.identity())
            .domain_name(server_name)
            .timeout(CONNECT_TIMEOUT)
    }
}

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

/// Builds an endpoint for `address` with mutual TLS, verifying that the peer's
/// certificate names `server_name`, plus the timeouts and keep-alives every
/// Slipway client uses.
pub fn endpoint(
    address: &str,
    server_name: &str,
    tls: &TlsMaterial,
) -> Result<Endpoint, ConnectError> {
    let uri = https_uri(address)?;
    let transport = |source| ConnectError::Transport {
        address: address.to_owned(),
        source,
    };
    Ok(Endpoint::from_shared(uri)
        .map_err(transport)?
        .tls_config(tls.client_config(server_name))
        .map_err(transport)?
        .connect_timeout(CONNECT_TIMEOUT)
        .tcp_nodelay(true)
        // Release contents are bulk streams: 64 KiB windows would throttle them.
        .initial_stream_window_size(Some(STREAM_WINDOW))
        .initial_connection_window_size(Some(CONNECTION_WINDOW))
        // Detects a peer that vanished mid-stream within about 20 s.
        .http2_keep_alive_interval(Duration::from_secs(10))
        .keep_alive_timeout(Duration::from_secs(10))
        .keep_alive_while_idle(true))
}

/// Dials `address` with mutual TLS (see [`endpoint`]).
pub async fn connect(
    address: &str,
    server_name: &str,
    tls: &TlsMaterial,
) -> Result<Channel, ConnectError> {
    endpoint(address, server_name, tls)?
        .connect()
        .await
        .map_err(|source| ConnectError::Transport {
            address: address.to_owned(),
            source,
        })
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
