//! The server half: a rustls configuration that presents the certificate in
//! force (so a reload changes what new handshakes see) and verifies clients
//! with [`ClientVerifier`], and a stream of accepted connections whose
//! handshakes run side by side, bounded in number and time, each refusal
//! logged with the peer's address.

use std::{
    net::SocketAddr,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use futures_util::{Stream, stream::FuturesUnordered};
use rustls::{
    ServerConfig,
    server::{ClientHello, ResolvesServerCert},
    sign::CertifiedKey,
};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, server::TlsStream};

use super::{
    CONNECT_TIMEOUT, Peer,
    material::{TlsMaterial, provider},
    verify::ClientVerifier,
};
use crate::revocation::Revocations;

/// Handshakes in progress at once; further connections wait in the
/// listener's backlog.
const MAX_HANDSHAKES: usize = 256;

/// How long accepting pauses after an accept error.
const ACCEPT_BACKOFF: std::time::Duration = std::time::Duration::from_millis(100);

/// Presents the certificate of the material in force.
#[derive(Debug)]
struct Resolver(TlsMaterial);

impl ResolvesServerCert for Resolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.current().certified.clone())
    }
}

/// Presents the certificate in force followed by the CA bundle, so a new
/// agent that knows only the CA's fingerprint can check the chain.
#[derive(Debug)]
struct WithCa(TlsMaterial);

impl ResolvesServerCert for WithCa {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let current = self.0.current();
        let mut chain = current.certified.cert.clone();
        chain.extend(current.ca_certs.iter().cloned());
        Some(Arc::new(CertifiedKey::new(
            chain,
            current.certified.key.clone(),
        )))
    }
}

/// A configuration that verifies clients with `verifier`, presents what
/// `resolver` picks and speaks `alpn`.
fn configured(
    verifier: ClientVerifier,
    resolver: Arc<dyn ResolvesServerCert>,
    alpn: &[u8],
) -> Arc<ServerConfig> {
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("the ring provider supports the default protocol versions")
        .with_client_cert_verifier(Arc::new(verifier))
        .with_cert_resolver(resolver);
    config.alpn_protocols = vec![alpn.to_vec()];
    Arc::new(config)
}

/// The enrollment listener's configuration: a client certificate is not
/// required (a new agent has none yet; one that is presented is checked as
/// usual) and the chain sent includes the CA.
pub fn enrollment_server_config(
    material: &TlsMaterial,
    revocations: Revocations,
) -> Arc<ServerConfig> {
    let verifier = ClientVerifier::optional(material, revocations);
    configured(verifier, Arc::new(WithCa(material.clone())), b"h2")
}

/// The dashboard listener's configuration: a browser may present an
/// operator certificate (checked like the operator API's: this CA, a
/// `spiffe://slipway/...` identity, not revoked) or none; HTTP/1.1.
pub fn browser_server_config(
    material: &TlsMaterial,
    revocations: Revocations,
) -> Arc<ServerConfig> {
    let verifier = ClientVerifier::optional(material, revocations);
    configured(verifier, Arc::new(Resolver(material.clone())), b"http/1.1")
}

/// A server configuration for `material`: clients must present a
/// certificate naming `peer`, not in `revocations`. HTTP/2 only.
pub fn server_config(
    material: &TlsMaterial,
    peer: Peer,
    revocations: Revocations,
) -> Arc<ServerConfig> {
    let verifier = ClientVerifier {
        material: material.clone(),
        peer,
        revocations,
        anonymous: false,
    };
    configured(verifier, Arc::new(Resolver(material.clone())), b"h2")
}

/// A connection [`Incoming`] yields.
pub type ServerStream = TlsStream<TcpStream>;

/// The leaf certificate (DER) the client of `stream` presented, if any.
pub fn client_certificate(stream: &ServerStream) -> Option<Vec<u8>> {
    let (_, connection) = stream.get_ref();
    connection
        .peer_certificates()
        .and_then(|chain| chain.first())
        .map(|leaf| leaf.as_ref().to_vec())
}

type Handshake = Pin<Box<dyn Future<Output = Option<TlsStream<TcpStream>>> + Send>>;

/// The TLS connections accepted on a listener, for tonic's
/// `serve_with_incoming`. Dropping it closes the listener.
pub struct Incoming {
    listener: TcpListener,
    acceptor: TlsAcceptor,
    handshakes: FuturesUnordered<Handshake>,
    /// After an accept error (too many open files), accepting pauses.
    backoff: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl std::fmt::Debug for Incoming {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Incoming")
            .field("listener", &self.listener)
            .field("handshakes", &self.handshakes.len())
            .finish_non_exhaustive()
    }
}

impl Incoming {
    /// Accepts on `listener` with `config`.
    pub fn new(listener: TcpListener, config: Arc<ServerConfig>) -> Self {
        Self {
            listener,
            acceptor: TlsAcceptor::from(config),
            handshakes: FuturesUnordered::new(),
            backoff: None,
        }
    }

    fn handshake(&self, tcp: TcpStream, peer: SocketAddr) -> Handshake {
        let accept = self.acceptor.accept(tcp);
        Box::pin(async move {
            match tokio::time::timeout(CONNECT_TIMEOUT, accept).await {
                Ok(Ok(stream)) => Some(stream),
                Ok(Err(err)) => {
                    tracing::warn!(%peer, error = %crate::daemon::chain(&err), "refused a TLS connection");
                    None
                }
                Err(_) => {
                    tracing::warn!(%peer, "refused a TLS connection: no handshake within {CONNECT_TIMEOUT:?}");
                    None
                }
            }
        })
    }
}

impl Stream for Incoming {
    type Item = std::io::Result<TlsStream<TcpStream>>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if let Some(backoff) = &mut self.backoff {
            match backoff.as_mut().poll(cx) {
                Poll::Ready(()) => self.backoff = None,
                Poll::Pending => {}
            }
        }
        while self.backoff.is_none() && self.handshakes.len() < MAX_HANDSHAKES {
            match self.listener.poll_accept(cx) {
                Poll::Ready(Ok((tcp, peer))) => {
                    let _ = tcp.set_nodelay(true);
                    let handshake = self.handshake(tcp, peer);
                    self.handshakes.push(handshake);
                }
                // Too many open files and the like: log, pause, keep serving.
                Poll::Ready(Err(err)) => {
                    tracing::warn!(error = %err, "accepting a connection failed");
                    let mut backoff = Box::pin(tokio::time::sleep(ACCEPT_BACKOFF));
                    let _ = backoff.as_mut().poll(cx);
                    self.backoff = Some(backoff);
                }
                Poll::Pending => break,
            }
        }
        loop {
            match Pin::new(&mut self.handshakes).poll_next(cx) {
                Poll::Ready(Some(Some(stream))) => return Poll::Ready(Some(Ok(stream))),
                Poll::Ready(Some(None)) => continue,
                Poll::Ready(None) | Poll::Pending => return Poll::Pending,
            }
        }
    }
}
