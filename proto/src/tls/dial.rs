//! The client half: a connector that opens TCP, then TLS with the material
//! in force at that moment (so a reload reaches every new connection) and
//! checks the server's identity with [`ServerVerifier`]; tonic runs HTTP/2
//! over it.

use std::{
    io,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use hyper_util::rt::TokioIo;
use rustls::{ClientConfig, pki_types::ServerName};
use tokio::net::TcpStream;
use tokio_rustls::{TlsConnector, client::TlsStream};
use tonic::transport::{Channel, Endpoint, Uri};

use super::{
    CONNECT_TIMEOUT, CONNECTION_WINDOW, ConnectError, Peer, STREAM_WINDOW, host_of, https_uri,
    material::{TlsMaterial, provider},
    verify::ServerVerifier,
};
use crate::revocation::Revocations;

/// A client configuration presenting `material`'s certificate and
/// requiring a server that names `peer`. HTTP/2 only.
pub fn client_config(
    material: &TlsMaterial,
    peer: Peer,
    revocations: Revocations,
) -> Arc<ClientConfig> {
    let current = material.current();
    let verifier = ServerVerifier {
        material: material.clone(),
        peer,
        revocations,
    };
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("the ring provider supports the default protocol versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_client_auth_cert(current.certified.cert.clone(), current.key_der.clone_key())
        .expect("the key was checked against the certificate when it was loaded");
    config.alpn_protocols = vec![b"h2".to_vec()];
    Arc::new(config)
}

/// Opens TLS connections to one address for tonic.
#[derive(Clone, Debug)]
pub struct Connector {
    material: TlsMaterial,
    peer: Peer,
    revocations: Revocations,
    server_name: ServerName<'static>,
    authority: String,
}

type Connecting = Pin<Box<dyn Future<Output = io::Result<TokioIo<TlsStream<TcpStream>>>> + Send>>;

impl tower_service::Service<Uri> for Connector {
    type Response = TokioIo<TlsStream<TcpStream>>;
    type Error = io::Error;
    type Future = Connecting;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _uri: Uri) -> Self::Future {
        let config = client_config(&self.material, self.peer.clone(), self.revocations.clone());
        let server_name = self.server_name.clone();
        let authority = self.authority.clone();
        Box::pin(async move {
            let tcp = TcpStream::connect(&authority).await?;
            tcp.set_nodelay(true)?;
            let tls = TlsConnector::from(config).connect(server_name, tcp).await?;
            Ok(TokioIo::new(tls))
        })
    }
}

/// An endpoint and its TLS connector: what [`endpoint`] returns.
#[derive(Clone, Debug)]
pub struct Dialer {
    endpoint: Endpoint,
    connector: Connector,
    address: String,
}

impl Dialer {
    /// A deadline for every request on the channel.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.endpoint = self.endpoint.timeout(timeout);
        self
    }

    /// Refuses a server whose certificate is in `revocations`.
    pub fn revocations(mut self, revocations: &Revocations) -> Self {
        self.connector.revocations = revocations.clone();
        self
    }

    /// Sends `name` in TLS SNI instead of the address's host. The server's
    /// identity is checked by its certificate's URI either way.
    pub fn server_name(mut self, name: &str) -> Result<Self, ConnectError> {
        self.connector.server_name =
            ServerName::try_from(name.to_owned()).map_err(|_| ConnectError::Address {
                address: name.to_owned(),
                reason: "the server name is neither a DNS name nor an IP address",
            })?;
        Ok(self)
    }

    /// Connects now.
    pub async fn connect(self) -> Result<Channel, ConnectError> {
        self.endpoint
            .connect_with_connector(self.connector)
            .await
            .map_err(|source| ConnectError::Transport {
                address: self.address,
                source,
            })
    }

    /// Connects on first use.
    pub fn connect_lazy(self) -> Channel {
        self.endpoint.connect_with_connector_lazy(self.connector)
    }
}

/// Builds a dialer for `address` (`host:port` or `https://host:port`) with
/// mutual TLS: this end presents `material`, the server must name `peer`;
/// plus the timeouts and keep-alives every Slipway client uses.
pub fn endpoint(address: &str, peer: Peer, material: &TlsMaterial) -> Result<Dialer, ConnectError> {
    let uri = https_uri(address)?;
    let authority = uri.trim_start_matches("https://").to_owned();
    let host = host_of(address);
    let server_name = ServerName::try_from(host.to_owned()).map_err(|_| ConnectError::Address {
        address: address.to_owned(),
        reason: "the host is neither a DNS name nor an IP address",
    })?;
    // TLS is the connector's: tonic sees plain HTTP/2 over it.
    let endpoint = Endpoint::from_shared(format!("http://{authority}"))
        .map_err(|source| ConnectError::Transport {
            address: address.to_owned(),
            source,
        })?
        .connect_timeout(CONNECT_TIMEOUT)
        // Release contents are bulk streams: 64 KiB windows would throttle them.
        .initial_stream_window_size(Some(STREAM_WINDOW))
        .initial_connection_window_size(Some(CONNECTION_WINDOW))
        // Detects a peer that vanished mid-stream within about 20 s.
        .http2_keep_alive_interval(Duration::from_secs(10))
        .keep_alive_timeout(Duration::from_secs(10))
        .keep_alive_while_idle(true);
    Ok(Dialer {
        endpoint,
        connector: Connector {
            material: material.clone(),
            peer,
            revocations: Revocations::default(),
            server_name,
            authority,
        },
        address: address.to_owned(),
    })
}

/// Dials `address` with mutual TLS (see [`endpoint`]).
pub async fn connect(
    address: &str,
    peer: Peer,
    material: &TlsMaterial,
) -> Result<Channel, ConnectError> {
    endpoint(address, peer, material)?.connect().await
}
