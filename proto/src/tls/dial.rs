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
use rustls::{
    ClientConfig,
    client::Resumption,
    pki_types::{CertificateDer, ServerName},
};
use tokio::net::TcpStream;
use tokio_rustls::{TlsConnector, client::TlsStream};
use tonic::transport::{Channel, Endpoint, Uri};

use super::{
    CONNECT_TIMEOUT, CONNECTION_WINDOW, ConnectError, Peer, STREAM_WINDOW, host_of, https_uri,
    material::{TlsMaterial, provider},
    verify::{PinnedVerifier, ServerVerifier},
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
    // Built per connection, so a session cache would never be read again;
    // and a resumed session would skip the server's revocation check of
    // this certificate. Full handshakes only, without the cache's memory
    // (about 15 KiB per connection, 15 MB for a control plane with 1,000
    // agents).
    config.resumption = Resumption::disabled();
    Arc::new(config)
}

/// A client configuration that presents no certificate and trusts only the
/// CA whose fingerprint is `ca_fingerprint` (`SHA256:<hex>`), which the
/// server must send in its chain; the server must be a control plane. For
/// enrollment, before the agent has a certificate or the CA.
pub fn pinned_client_config(ca_fingerprint: &str) -> Arc<ClientConfig> {
    let verifier = PinnedVerifier {
        ca_fingerprint: ca_fingerprint.to_owned(),
    };
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("the ring provider supports the default protocol versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    Arc::new(config)
}

/// Where a connector's TLS configuration comes from.
#[derive(Clone, Debug)]
enum Source {
    /// Built per connection from the material in force.
    Material {
        material: TlsMaterial,
        peer: Peer,
        revocations: Revocations,
    },
    /// Fixed.
    Fixed(Arc<ClientConfig>),
}

/// Called with the server's certificate after each handshake.
pub type PeerObserver = Arc<dyn Fn(&CertificateDer<'_>) + Send + Sync>;

/// Opens TLS connections to one address for tonic.
#[derive(Clone)]
pub struct Connector {
    observer: Option<PeerObserver>,
    source: Source,
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
        let config = match &self.source {
            Source::Material {
                material,
                peer,
                revocations,
            } => client_config(material, peer.clone(), revocations.clone()),
            Source::Fixed(config) => config.clone(),
        };
        let server_name = self.server_name.clone();
        let authority = self.authority.clone();
        let observer = self.observer.clone();
        Box::pin(async move {
            let tcp = TcpStream::connect(&authority).await?;
            tcp.set_nodelay(true)?;
            let tls = TlsConnector::from(config).connect(server_name, tcp).await?;
            if let (Some(observer), Some(leaf)) = (
                observer,
                tls.get_ref().1.peer_certificates().and_then(|c| c.first()),
            ) {
                observer(leaf);
            }
            Ok(TokioIo::new(tls))
        })
    }
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connector")
            .field("authority", &self.authority)
            .field("source", &self.source)
            .finish_non_exhaustive()
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

    /// Calls `observer` with the server's certificate after each handshake.
    pub fn on_peer_certificate(mut self, observer: PeerObserver) -> Self {
        self.connector.observer = Some(observer);
        self
    }

    /// Refuses a server whose certificate is in `revocations`.
    pub fn revocations(mut self, revocations: &Revocations) -> Self {
        if let Source::Material { revocations: r, .. } = &mut self.connector.source {
            *r = revocations.clone();
        }
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
    dialer(
        address,
        Source::Material {
            material: material.clone(),
            peer,
            revocations: Revocations::default(),
        },
    )
}

/// A dialer with a fixed client configuration (see
/// [`pinned_client_config`]).
pub fn endpoint_with(address: &str, config: Arc<ClientConfig>) -> Result<Dialer, ConnectError> {
    dialer(address, Source::Fixed(config))
}

fn dialer(address: &str, source: Source) -> Result<Dialer, ConnectError> {
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
            observer: None,
            source,
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
