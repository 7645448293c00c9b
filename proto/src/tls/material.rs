//! The PEM material of one party (the CA bundle it trusts, its certificate
//! chain and key), parsed once per load and replaceable at run time: a
//! reload swaps it for every later handshake without touching the
//! connections already established.

use std::{
    path::{Path, PathBuf},
    sync::{
        Arc, RwLock,
        atomic::{AtomicU64, Ordering},
    },
};

use rustls::{
    CertificateError, RootCertStore,
    crypto::CryptoProvider,
    pki_types::{CertificateDer, PrivateKeyDer, UnixTime, pem::PemObject},
    server::{WebPkiClientVerifier, danger::ClientCertVerifier},
    sign::CertifiedKey,
};
use sha2::{Digest, Sha256};

/// Paths of the PEM files one party needs: the CA bundle it trusts, its
/// certificate and its private key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsPaths {
    /// CA certificates that signed every peer. During a CA rotation the
    /// file holds both the old and the new CA.
    pub ca: PathBuf,
    /// This party's certificate (followed by intermediates, if any).
    pub cert: PathBuf,
    /// This party's private key.
    pub key: PathBuf,
}

/// PEM material that could not be read or used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("cannot read {what} {path}")]
    Read {
        /// Which file: "CA certificate", "certificate" or "private key".
        what: &'static str,
        /// Its path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A file was read but holds no usable PEM material.
    #[error("{what} {path}: {reason}")]
    Invalid {
        /// Which file.
        what: &'static str,
        /// Its path (empty for material given as bytes).
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// This party's own certificate would be refused by any peer that
    /// trusts the same CA bundle.
    #[error("certificate {path}: {problem}")]
    Unusable {
        /// Its path (empty for material given as bytes).
        path: PathBuf,
        /// Why.
        problem: CertificateProblem,
    },
}

/// Why a certificate is not valid under its own CA bundle.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertificateProblem {
    /// Its validity ended.
    #[error("expired {ago} ago (valid until {not_after})")]
    Expired {
        /// When it stopped being valid.
        not_after: String,
        /// How long ago, in words.
        ago: String,
    },
    /// Its validity has not begun (or this machine's clock is behind).
    #[error("not valid yet: valid from {not_before}, in {wait}")]
    NotYetValid {
        /// When it becomes valid.
        not_before: String,
        /// How long until then, in words.
        wait: String,
    },
    /// It is not signed by any CA of the bundle.
    #[error("not signed by the CA in {ca}")]
    ForeignCa {
        /// The CA bundle's path.
        ca: String,
    },
    /// Anything else the verifier refuses.
    #[error("{0}")]
    Other(String),
}

/// The SHA-256 of a certificate's DER bytes, as `SHA256:` and lower-case
/// hex: how certificates are named in revocations, logs and audit entries.
pub fn fingerprint(der: &[u8]) -> String {
    let digest = Sha256::digest(der);
    let mut out = String::with_capacity(7 + 64);
    out.push_str("SHA256:");
    for byte in digest {
        out.push_str(&format!("{byte:02x}"));
    }
    out
}

/// The crypto provider of every Slipway TLS configuration.
pub(super) fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: std::sync::OnceLock<Arc<CryptoProvider>> = std::sync::OnceLock::new();
    PROVIDER
        .get_or_init(|| Arc::new(rustls::crypto::ring::default_provider()))
        .clone()
}

/// One parsed generation of the material.
pub(super) struct Loaded {
    pub(super) roots: Arc<RootCertStore>,
    /// The CA bundle's certificates, as read.
    pub(super) ca_certs: Vec<CertificateDer<'static>>,
    pub(super) client_verifier: Arc<dyn ClientCertVerifier>,
    pub(super) certified: Arc<CertifiedKey>,
    pub(super) key_der: PrivateKeyDer<'static>,
    pub(super) cert_pem: Vec<u8>,
    /// SHA-256 over the three files, to tell a reload that changes nothing.
    digest: [u8; 32],
}

impl Loaded {
    fn parse(
        ca_pem: &[u8],
        cert_pem: &[u8],
        key_pem: &[u8],
        paths: Option<&TlsPaths>,
    ) -> Result<Self, TlsError> {
        let path = |pick: fn(&TlsPaths) -> &PathBuf| paths.map(pick).cloned().unwrap_or_default();
        let invalid =
            |what, path: PathBuf, reason: String| TlsError::Invalid { what, path, reason };
        let certs = |pem: &[u8]| -> Result<Vec<CertificateDer<'static>>, String> {
            let certs = CertificateDer::pem_slice_iter(pem)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|err| format!("not PEM certificates: {err}"))?;
            if certs.is_empty() {
                return Err("holds no PEM certificate".into());
            }
            Ok(certs)
        };
        let ca = certs(ca_pem).map_err(|r| invalid("CA certificate", path(|p| &p.ca), r))?;
        let mut roots = RootCertStore::empty();
        for cert in ca.clone() {
            roots
                .add(cert)
                .map_err(|err| invalid("CA certificate", path(|p| &p.ca), err.to_string()))?;
        }
        let roots = Arc::new(roots);
        let chain = certs(cert_pem).map_err(|r| invalid("certificate", path(|p| &p.cert), r))?;
        let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|err| {
            invalid(
                "private key",
                path(|p| &p.key),
                format!("not a PEM private key: {err}"),
            )
        })?;
        let provider = provider();
        let key_der = key.clone_key();
        let certified = CertifiedKey::from_der(chain, key, &provider).map_err(|err| {
            invalid(
                "certificate",
                path(|p| &p.cert),
                format!("does not match its private key: {err}"),
            )
        })?;
        let client_verifier = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider)
            .build()
            .map_err(|err| invalid("CA certificate", path(|p| &p.ca), err.to_string()))?;
        Ok(Self {
            roots,
            ca_certs: ca,
            client_verifier,
            certified: Arc::new(certified),
            key_der,
            cert_pem: cert_pem.to_vec(),
            digest: Sha256::new()
                .chain_update(ca_pem)
                .chain_update(cert_pem)
                .chain_update(key_pem)
                .finalize()
                .into(),
        })
    }
}

/// The loaded PEM material of one party. Clones share it, so a reload is
/// seen by every server and dialer built from any clone.
#[derive(Clone)]
pub struct TlsMaterial {
    shared: Arc<Shared>,
}

struct Shared {
    paths: Option<TlsPaths>,
    current: RwLock<Arc<Loaded>>,
    generation: AtomicU64,
}

impl std::fmt::Debug for TlsMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsMaterial")
            .field("paths", &self.shared.paths)
            .field("generation", &self.generation())
            .finish_non_exhaustive()
    }
}

impl TlsMaterial {
    fn new(loaded: Loaded, paths: Option<TlsPaths>) -> Self {
        Self {
            shared: Arc::new(Shared {
                paths,
                current: RwLock::new(Arc::new(loaded)),
                generation: AtomicU64::new(1),
            }),
        }
    }

    /// Material from PEM bytes (it cannot be reloaded).
    pub fn from_pem(
        ca_pem: impl AsRef<[u8]>,
        cert_pem: impl AsRef<[u8]>,
        key_pem: impl AsRef<[u8]>,
    ) -> Result<Self, TlsError> {
        let loaded = Loaded::parse(ca_pem.as_ref(), cert_pem.as_ref(), key_pem.as_ref(), None)?;
        Ok(Self::new(loaded, None))
    }

    /// Reads and parses the three PEM files, naming the one that fails.
    pub fn load(paths: &TlsPaths) -> Result<Self, TlsError> {
        Ok(Self::new(Self::read(paths)?, Some(paths.clone())))
    }

    fn read(paths: &TlsPaths) -> Result<Loaded, TlsError> {
        let read = |what, path: &Path| {
            std::fs::read(path).map_err(|source| TlsError::Read {
                what,
                path: path.to_owned(),
                source,
            })
        };
        Loaded::parse(
            &read("CA certificate", &paths.ca)?,
            &read("certificate", &paths.cert)?,
            &read("private key", &paths.key)?,
            Some(paths),
        )
    }

    /// Reads the files again and, when they parse, serves them to every
    /// later handshake. On error the material in use stays. Returns whether
    /// anything changed.
    pub fn reload(&self) -> Result<bool, TlsError> {
        let Some(paths) = &self.shared.paths else {
            return Ok(false);
        };
        let loaded = Self::read(paths)?;
        let mut current = self.shared.current.write().expect("TLS material lock");
        if current.digest == loaded.digest {
            return Ok(false);
        }
        *current = Arc::new(loaded);
        self.shared.generation.fetch_add(1, Ordering::SeqCst);
        Ok(true)
    }

    /// The files this material was loaded from, if any.
    pub fn paths(&self) -> Option<&TlsPaths> {
        self.shared.paths.as_ref()
    }

    /// Counts reloads that changed something, from 1.
    pub fn generation(&self) -> u64 {
        self.shared.generation.load(Ordering::SeqCst)
    }

    pub(super) fn current(&self) -> Arc<Loaded> {
        self.shared
            .current
            .read()
            .expect("TLS material lock")
            .clone()
    }

    /// The certificate PEM of this party.
    pub fn cert_pem(&self) -> Vec<u8> {
        self.current().cert_pem.clone()
    }

    /// The CA bundle's certificates, DER.
    pub fn ca_ders(&self) -> Vec<CertificateDer<'static>> {
        self.current().ca_certs.clone()
    }

    /// Checks this party's own certificate against its own CA bundle at
    /// `now`, as a peer trusting that bundle would: expired, not yet
    /// valid, or signed by another CA. A client checks before it dials, so
    /// the operator reads what is wrong instead of a refused handshake.
    pub fn check_own(&self, now: UnixTime) -> Result<(), TlsError> {
        let loaded = self.current();
        let (leaf, intermediates) = loaded.certified.cert.split_first().expect("a leaf");
        let paths = self.shared.paths.as_ref();
        let path = paths.map(|p| p.cert.clone()).unwrap_or_default();
        let ca = paths
            .map(|p| p.ca.display().to_string())
            .unwrap_or_default();
        match loaded
            .client_verifier
            .verify_client_cert(leaf, intermediates, now)
        {
            Ok(_) => Ok(()),
            Err(err) => Err(TlsError::Unusable {
                path,
                problem: CertificateProblem::of(err, ca),
            }),
        }
    }

    /// This party's own certificate (the leaf), DER.
    pub fn leaf_der(&self) -> CertificateDer<'static> {
        self.current().certified.cert[0].clone()
    }
}

impl CertificateProblem {
    fn of(err: rustls::Error, ca: String) -> Self {
        let at = |t: UnixTime| {
            let secs = i64::try_from(t.as_secs()).unwrap_or(i64::MAX);
            x509_parser::time::ASN1Time::from_timestamp(secs)
                .map(|t| t.to_string())
                .unwrap_or_else(|_| secs.to_string())
        };
        let span =
            |from: UnixTime, to: UnixTime| span_words(to.as_secs().saturating_sub(from.as_secs()));
        match err {
            rustls::Error::InvalidCertificate(CertificateError::ExpiredContext {
                time,
                not_after,
            }) => CertificateProblem::Expired {
                not_after: at(not_after),
                ago: span(not_after, time),
            },
            rustls::Error::InvalidCertificate(CertificateError::NotValidYetContext {
                time,
                not_before,
            }) => CertificateProblem::NotYetValid {
                not_before: at(not_before),
                wait: span(time, not_before),
            },
            rustls::Error::InvalidCertificate(
                CertificateError::UnknownIssuer | CertificateError::BadSignature,
            ) => CertificateProblem::ForeignCa { ca },
            rustls::Error::InvalidCertificate(CertificateError::Expired) => {
                CertificateProblem::Expired {
                    not_after: "an earlier date".into(),
                    ago: "some time".into(),
                }
            }
            rustls::Error::InvalidCertificate(CertificateError::NotValidYet) => {
                CertificateProblem::NotYetValid {
                    not_before: "a later date".into(),
                    wait: "some time".into(),
                }
            }
            other => CertificateProblem::Other(other.to_string()),
        }
    }
}

/// "3 days", "5 hours", "12 minutes", "40 seconds".
fn span_words(secs: u64) -> String {
    let (n, unit) = match secs {
        s if s >= 2 * 86_400 => (s / 86_400, "days"),
        s if s >= 2 * 3_600 => (s / 3_600, "hours"),
        s if s >= 2 * 60 => (s / 60, "minutes"),
        s => (s, "seconds"),
    };
    format!("{n} {unit}")
}
