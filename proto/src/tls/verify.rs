//! Exact identities on every hop: certificate verifiers that check the
//! chain against the CA bundle in force, then the peer's
//! `spiffe://slipway/...` identity against what this end expects, then the
//! revocation list. DNS names play no part: a certificate is who its URI
//! says, or nobody.

use std::sync::Arc;

use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, Error, OtherError, SignatureScheme,
    client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    crypto::{WebPkiSupportedAlgorithms, verify_tls12_signature, verify_tls13_signature},
    pki_types::{CertificateDer, ServerName, UnixTime},
    server::{
        ParsedCertificate,
        danger::{ClientCertVerified, ClientCertVerifier},
    },
};

use super::material::{TlsMaterial, provider};
use crate::{identity::Identity, revocation::Revocations};

/// Who the other end of a connection must be.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Peer {
    /// Any identity of the trust domain; the services decide what each may
    /// do (the control plane's operator listener).
    AnyIdentity,
    /// A control plane, any instance.
    ControlPlane,
    /// The agent of exactly this host.
    Agent(String),
}

/// Why a peer's certificate was refused after its chain verified.
#[derive(thiserror::Error)]
pub enum PeerError {
    /// No usable `spiffe://slipway/...` identity.
    #[error("peer certificate: {0}")]
    Identity(#[from] crate::identity::IdentityError),
    /// A valid identity, but not the expected one.
    #[error("peer certificate names {found}, expected {expected}")]
    Unexpected {
        /// The identity in the certificate.
        found: Identity,
        /// What this end expected.
        expected: String,
    },
    /// The certificate is revoked.
    #[error("{0}")]
    Revoked(String),
    /// No certificate of the server's chain has the pinned fingerprint.
    #[error(
        "the server's chain holds no CA with fingerprint {0}: is this the right control plane?"
    )]
    Unpinned(String),
}

/// rustls shows a custom certificate error with `Debug`: make that the
/// sentence a person reads.
impl std::fmt::Debug for PeerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

impl Peer {
    /// Checks a verified leaf certificate's identity and revocation.
    pub fn check(&self, der: &[u8], revocations: &Revocations) -> Result<Identity, PeerError> {
        let identity = Identity::from_der(der)?;
        let expected = match (self, &identity) {
            (Peer::AnyIdentity, _) | (Peer::ControlPlane, Identity::ControlPlane { .. }) => None,
            (Peer::Agent(host), Identity::Agent { host: found }) if host == found => None,
            (Peer::ControlPlane, _) => Some("a control plane".to_owned()),
            (Peer::Agent(host), _) => Some(format!("agent/{host}")),
        };
        if let Some(expected) = expected {
            return Err(PeerError::Unexpected {
                found: identity,
                expected,
            });
        }
        match revocations.check(der) {
            Some(why) => Err(PeerError::Revoked(why)),
            None => Ok(identity),
        }
    }
}

fn refused(err: PeerError) -> Error {
    Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(err))))
}

fn algorithms() -> WebPkiSupportedAlgorithms {
    provider().signature_verification_algorithms
}

/// The handshake-signature half of a verifier, the same for all of ours:
/// checked with the ring provider's algorithms.
macro_rules! handshake_signatures {
    () => {
        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, Error> {
            verify_tls12_signature(message, cert, dss, &algorithms())
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, Error> {
            verify_tls13_signature(message, cert, dss, &algorithms())
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            algorithms().supported_schemes()
        }
    };
}

/// Server side: a client certificate must chain to the CA bundle in force
/// and carry the expected identity, not revoked. With `anonymous`, a client
/// may present none (the enrollment listener).
#[derive(Debug)]
pub(super) struct ClientVerifier {
    pub(super) material: TlsMaterial,
    pub(super) peer: Peer,
    pub(super) revocations: Revocations,
    pub(super) anonymous: bool,
}

impl ClientVerifier {
    /// A verifier that lets a client present no certificate, and checks
    /// one that is presented (this CA, any identity of the trust domain,
    /// not revoked).
    pub(super) fn optional(material: &TlsMaterial, revocations: Revocations) -> Self {
        Self {
            material: material.clone(),
            peer: Peer::AnyIdentity,
            revocations,
            anonymous: true,
        }
    }
}

impl ClientCertVerifier for ClientVerifier {
    fn client_auth_mandatory(&self) -> bool {
        !self.anonymous
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        // The hints would borrow from material that a reload may replace;
        // clients hold one certificate each and need none.
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        let current = self.material.current();
        current
            .client_verifier
            .verify_client_cert(end_entity, intermediates, now)?;
        self.peer
            .check(end_entity, &self.revocations)
            .map_err(refused)?;
        Ok(ClientCertVerified::assertion())
    }

    handshake_signatures!();
}

/// Client side: the server's certificate must chain to the CA bundle in
/// force and carry the expected identity, not revoked. The name dialed is
/// sent for SNI only.
#[derive(Debug)]
pub(super) struct ServerVerifier {
    pub(super) material: TlsMaterial,
    pub(super) peer: Peer,
    pub(super) revocations: Revocations,
}

impl ServerCertVerifier for ServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        let current = self.material.current();
        let cert = ParsedCertificate::try_from(end_entity)?;
        rustls::client::verify_server_cert_signed_by_trust_anchor(
            &cert,
            &current.roots,
            intermediates,
            now,
            algorithms().all,
        )?;
        self.peer
            .check(end_entity, &self.revocations)
            .map_err(refused)?;
        Ok(ServerCertVerified::assertion())
    }

    handshake_signatures!();
}

/// Client side, for enrollment: nothing is trusted yet but the fingerprint
/// of the CA the operator gave. The server must send that CA in its chain;
/// its leaf must chain to it and name a control plane.
#[derive(Debug)]
pub(super) struct PinnedVerifier {
    pub(super) ca_fingerprint: String,
}

impl ServerCertVerifier for PinnedVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        let pinned = intermediates
            .iter()
            .find(|cert| super::fingerprint(cert).eq_ignore_ascii_case(&self.ca_fingerprint))
            .ok_or_else(|| refused(PeerError::Unpinned(self.ca_fingerprint.clone())))?;
        let mut roots = rustls::RootCertStore::empty();
        roots.add(pinned.clone().into_owned())?;
        let cert = ParsedCertificate::try_from(end_entity)?;
        rustls::client::verify_server_cert_signed_by_trust_anchor(
            &cert,
            &roots,
            &[],
            now,
            algorithms().all,
        )?;
        Peer::ControlPlane
            .check(end_entity, &Revocations::default())
            .map_err(refused)?;
        Ok(ServerCertVerified::assertion())
    }

    handshake_signatures!();
}

/// Checks that `leaf` chains to `material`'s CA bundle now (no identity or
/// name check): for a certificate about to be installed.
pub fn verify_chain(material: &TlsMaterial, leaf: &CertificateDer<'_>) -> Result<(), Error> {
    let current = material.current();
    let cert = ParsedCertificate::try_from(leaf)?;
    rustls::client::verify_server_cert_signed_by_trust_anchor(
        &cert,
        &current.roots,
        &[],
        UnixTime::now(),
        algorithms().all,
    )
}
