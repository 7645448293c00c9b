//! The agent's own certificate: a new key made on this host for a renewal
//! (the control plane signs its request), the signed certificate checked
//! and written over the agent's TLS files, then served from the next
//! handshake on. The private key never leaves the host.

use std::{
    io::{self, Write},
    os::unix::fs::OpenOptionsExt,
    path::Path,
    sync::Mutex,
};

use rcgen::{CertificateParams, KeyPair, PKCS_ECDSA_P256_SHA256};
use slipway_proto::{
    identity::Identity,
    tls::{self, TlsMaterial},
};

/// A renewal step that cannot go ahead.
#[derive(Debug, thiserror::Error)]
pub enum CertificateError {
    /// No key was prepared (or it was used already).
    #[error("no certificate request is pending: call PrepareCertificate first")]
    NothingPending,
    /// The certificate does not fit the key, the CA or this host.
    #[error("the certificate is not usable here: {0}")]
    Unusable(String),
    /// Making the key or the request failed.
    #[error("cannot make a certificate request")]
    Request(#[source] rcgen::Error),
    /// Writing the files failed.
    #[error("cannot write {path}")]
    Write {
        /// The file.
        path: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

/// A new P-256 key and a certificate request for `host` (the signer sets
/// every field that matters; the request proves the key).
pub fn request(host: &str) -> Result<(KeyPair, String), CertificateError> {
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(CertificateError::Request)?;
    let params =
        CertificateParams::new(vec![host.to_owned()]).map_err(CertificateError::Request)?;
    let csr = params
        .serialize_request(&key)
        .map_err(CertificateError::Request)?;
    let pem = csr.pem().map_err(CertificateError::Request)?;
    Ok((key, pem))
}

/// Checks that `cert_pem` is a certificate of `host`'s agent for `key_pem`,
/// signed by the CA in `ca_pem`; returns its serial.
pub fn check(
    host: &str,
    ca_pem: &[u8],
    cert_pem: &[u8],
    key_pem: &[u8],
) -> Result<String, CertificateError> {
    let unusable = |what: String| CertificateError::Unusable(what);
    // Parses the three together: the key must match the certificate.
    let material = TlsMaterial::from_pem(ca_pem, cert_pem, key_pem)
        .map_err(|err| unusable(slipway_proto::daemon::chain(&err)))?;
    let leaf = material.leaf_der();
    let expected = Identity::Agent {
        host: host.to_owned(),
    };
    match Identity::from_der(&leaf) {
        Ok(identity) if identity == expected => {}
        Ok(other) => return Err(unusable(format!("it names {other}, not {expected}"))),
        Err(err) => return Err(unusable(err.to_string())),
    }
    tls::verify_chain(&material, &leaf).map_err(|err| unusable(err.to_string()))?;
    Ok(tls::summary(&leaf).map(|s| s.serial).unwrap_or_default())
}

/// Writes `pem` to `path` through a temporary file, fsynced, with `mode`.
pub fn write_file(path: &Path, pem: &[u8], mode: u32) -> Result<(), CertificateError> {
    let fail = |source| CertificateError::Write {
        path: path.display().to_string(),
        source,
    };
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .map_err(fail)?;
    file.write_all(pem).map_err(fail)?;
    file.sync_all().map_err(fail)?;
    std::fs::rename(&tmp, path).map_err(fail)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(fail)?;
    }
    Ok(())
}

/// The renewal in progress: the key made by the last PrepareCertificate.
#[derive(Debug, Default)]
pub struct Pending(Mutex<Option<String>>);

impl Pending {
    /// Makes a new key for `host`, keeps it and returns the request.
    pub fn prepare(&self, host: &str) -> Result<String, CertificateError> {
        let (key, csr) = request(host)?;
        *self.0.lock().expect("pending key") = Some(key.serialize_pem());
        Ok(csr)
    }

    /// Installs `cert_pem` for the pending key over the agent's TLS files
    /// and reloads `material`. Returns the new serial.
    pub fn install(
        &self,
        host: &str,
        material: &TlsMaterial,
        cert_pem: &[u8],
    ) -> Result<String, CertificateError> {
        let mut pending = self.0.lock().expect("pending key");
        let key = pending.as_ref().ok_or(CertificateError::NothingPending)?;
        let paths = material
            .paths()
            .ok_or_else(|| {
                CertificateError::Unusable("the agent's TLS files are not on disk".into())
            })?
            .clone();
        let ca = std::fs::read(&paths.ca).map_err(|source| CertificateError::Write {
            path: paths.ca.display().to_string(),
            source,
        })?;
        let serial = check(host, &ca, cert_pem, key.as_bytes())?;
        // The key first: until the certificate lands, the old pair is
        // still whole on disk only if the key write fails; a crash between
        // the two renames leaves a key without its certificate, which the
        // agent names at start.
        write_file(&paths.key, key.as_bytes(), 0o600)?;
        write_file(&paths.cert, cert_pem, 0o644)?;
        *pending = None;
        material
            .reload()
            .map_err(|err| CertificateError::Unusable(slipway_proto::daemon::chain(&err)))?;
        Ok(serial)
    }
}
