//! The CA the control plane may hold to sign agents' certificates (for
//! enrollment and renewal). Only what a request proves is taken from it:
//! the public key. Identity, names, usages and validity are the signer's.

use std::path::{Path, PathBuf};

use rcgen::{
    CertificateParams, CertificateSigningRequestParams, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use rustls::pki_types::{CertificateDer, pem::PemObject};
use slipway_proto::{identity::Identity, tls};

/// How long an agent certificate signed here is valid.
pub const AGENT_VALIDITY_DAYS: i64 = 30;

/// Validity starts this far in the past, for clocks a little behind.
const BACKDATE: time::Duration = time::Duration::minutes(5);

/// Paths of the CA certificate (or bundle, new CA first) and its key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SigningPaths {
    /// CA certificate PEM.
    pub ca_cert: PathBuf,
    /// CA private key PEM.
    pub ca_key: PathBuf,
}

/// Why the CA could not be loaded or a request not signed.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    /// A file could not be read.
    #[error("cannot read {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The CA or its key is unusable.
    #[error("{path}: {reason}")]
    Ca {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The certificate request is malformed or not signed by its key.
    #[error("the certificate request is not usable: {0}")]
    Request(String),
}

/// A loaded CA.
pub struct Signer {
    issuer: Issuer<'static, KeyPair>,
    ca_pem: String,
    ca_fingerprint: String,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("ca_fingerprint", &self.ca_fingerprint)
            .finish_non_exhaustive()
    }
}

fn read(path: &Path) -> Result<String, SignError> {
    std::fs::read_to_string(path).map_err(|source| SignError::Read {
        path: path.to_owned(),
        source,
    })
}

impl Signer {
    /// Loads the CA certificate (the first of a bundle signs) and its key.
    pub fn load(paths: &SigningPaths) -> Result<Self, SignError> {
        let ca_pem = read(&paths.ca_cert)?;
        let key_pem = read(&paths.ca_key)?;
        let bad = |path: &Path, reason: String| SignError::Ca {
            path: path.to_owned(),
            reason,
        };
        let first = CertificateDer::pem_slice_iter(ca_pem.as_bytes())
            .next()
            .and_then(Result::ok)
            .ok_or_else(|| bad(&paths.ca_cert, "holds no PEM certificate".into()))?;
        let key = KeyPair::from_pem(&key_pem)
            .map_err(|err| bad(&paths.ca_key, format!("not a PEM private key: {err}")))?;
        let issuer = Issuer::from_ca_cert_der(&first, key)
            .map_err(|err| bad(&paths.ca_cert, format!("not a CA certificate: {err}")))?;
        Ok(Self {
            ca_fingerprint: tls::fingerprint(&first),
            issuer,
            ca_pem,
        })
    }

    /// The CA bundle, PEM.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// `SHA256:<hex>` of the signing CA.
    pub fn ca_fingerprint(&self) -> &str {
        &self.ca_fingerprint
    }

    /// Signs a certificate for `host`'s agent with the key of `csr_pem`.
    pub fn sign_agent(&self, csr_pem: &str, host: &str) -> Result<String, SignError> {
        let mut csr = CertificateSigningRequestParams::from_pem(csr_pem)
            .map_err(|err| SignError::Request(err.to_string()))?;
        let identity = Identity::Agent {
            host: host.to_owned(),
        };
        let mut params = CertificateParams::default();
        let mut name = DistinguishedName::new();
        name.push(DnType::CommonName, format!("agent {host}"));
        params.distinguished_name = name;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.use_authority_key_identifier_extension = true;
        let mut serial: [u8; 16] = rand::random();
        serial[0] = (serial[0] & 0x7f) | 0x40;
        params.serial_number = Some(SerialNumber::from_slice(&serial));
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - BACKDATE;
        params.not_after = now + time::Duration::days(AGENT_VALIDITY_DAYS);
        let uri = identity
            .uri()
            .try_into()
            .map_err(|err: rcgen::Error| SignError::Request(err.to_string()))?;
        params.subject_alt_names.push(SanType::URI(uri));
        let dns = host
            .try_into()
            .map_err(|err: rcgen::Error| SignError::Request(err.to_string()))?;
        params.subject_alt_names.push(SanType::DnsName(dns));
        csr.params = params;
        let cert = csr
            .signed_by(&self.issuer)
            .map_err(|err| SignError::Request(err.to_string()))?;
        Ok(cert.pem())
    }
}
