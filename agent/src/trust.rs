//! What this agent trusts and presents: the revocation list the control
//! plane pushes (kept on disk, 0600, written temp + fsync + rename, so that
//! after a restart it is enforced before the first call; shared with the TLS
//! verifier and the interceptor), and its own certificate with the renewal
//! in progress.

use std::{
    io::{self, Write},
    os::unix::fs::OpenOptionsExt,
    path::{Path, PathBuf},
};

use prost::Message;
use slipway_proto::{
    agent::v1::SetRevocationsRequest,
    revocation::{RevocationList, Revocations},
    tls::TlsMaterial,
};

use crate::certificate::{CertificateError, Pending};

/// File name under the agent's data directory.
const FILE: &str = "revocations.pb";

/// Largest list file read at start.
const MAX_FILE: u64 = 16 << 20;

/// The list could not be read or written.
#[derive(Debug, thiserror::Error)]
#[error("revocation list {}: {what}", path.display())]
pub struct TrustError {
    path: PathBuf,
    what: &'static str,
    #[source]
    source: io::Error,
}

/// The agent's revocation list and certificate.
#[derive(Debug)]
pub struct Trust {
    path: PathBuf,
    revocations: Revocations,
    host: String,
    material: Option<TlsMaterial>,
    pending: Pending,
}

impl Trust {
    /// Presents `material` as `host`'s agent: a renewal rewrites its files.
    pub fn with_material(mut self, host: &str, material: TlsMaterial) -> Self {
        self.host = host.to_owned();
        self.material = Some(material);
        self
    }

    /// A new key and a request for its certificate (the key stays here).
    pub fn prepare_certificate(&self) -> Result<String, CertificateError> {
        if self.material.is_none() {
            return Err(CertificateError::Unusable(
                "this agent serves no certificate from files".into(),
            ));
        }
        self.pending.prepare(&self.host)
    }

    /// Installs the certificate signed for the pending key; returns its
    /// serial.
    pub fn install_certificate(&self, cert_pem: &[u8]) -> Result<String, CertificateError> {
        let material = self
            .material
            .as_ref()
            .ok_or(CertificateError::NothingPending)?;
        self.pending.install(&self.host, material, cert_pem)
    }

    /// Loads the list kept in `data_dir` (none yet: empty).
    pub fn open(data_dir: &Path) -> Result<Self, TrustError> {
        let path = data_dir.join(FILE);
        let fail = |what, source| TrustError {
            path: path.clone(),
            what,
            source,
        };
        let revocations = Revocations::default();
        match std::fs::File::open(&path) {
            Ok(file) => {
                let mut raw = Vec::new();
                io::Read::read_to_end(&mut io::Read::take(file, MAX_FILE), &mut raw)
                    .map_err(|e| fail("cannot read", e))?;
                let stored = SetRevocationsRequest::decode(raw.as_slice()).map_err(|e| {
                    fail("is corrupt", io::Error::new(io::ErrorKind::InvalidData, e))
                })?;
                revocations.set(RevocationList::from_wire(stored.revision, &stored.revoked));
            }
            Err(err) if err.kind() == io::ErrorKind::NotFound => {}
            Err(err) => return Err(fail("cannot read", err)),
        }
        Ok(Self {
            path,
            revocations,
            host: String::new(),
            material: None,
            pending: Pending::default(),
        })
    }

    /// The shared list.
    pub fn revocations(&self) -> Revocations {
        self.revocations.clone()
    }

    /// Keeps `request` as the list in force; durable before it returns.
    pub fn set(&self, request: &SetRevocationsRequest) -> Result<u64, TrustError> {
        let fail = |what, source| TrustError {
            path: self.path.clone(),
            what,
            source,
        };
        let tmp = self.path.with_extension("pb.tmp");
        let write = || -> io::Result<()> {
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)?;
            file.write_all(&request.encode_to_vec())?;
            file.sync_all()?;
            std::fs::rename(&tmp, &self.path)?;
            if let Some(dir) = self.path.parent() {
                std::fs::File::open(dir)?.sync_all()?;
            }
            Ok(())
        };
        write().map_err(|e| fail("cannot write", e))?;
        self.revocations.set(RevocationList::from_wire(
            request.revision,
            &request.revoked,
        ));
        Ok(request.revision)
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use slipway_proto::agent::v1::RevokedCertificate;

    use super::*;

    #[test]
    fn the_list_survives_a_restart_and_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let trust = Trust::open(dir.path()).unwrap();
        assert_eq!(trust.revocations().get().revision, 0);
        let request = SetRevocationsRequest {
            revision: 2,
            revoked: vec![RevokedCertificate {
                fingerprint: "SHA256:00".into(),
                reason: "rotated".into(),
                ..Default::default()
            }],
        };
        assert_eq!(trust.set(&request).unwrap(), 2);
        let again = Trust::open(dir.path()).unwrap();
        let list = again.revocations().get();
        assert_eq!(list.revision, 2);
        assert_eq!(list.fingerprints["SHA256:00"], "rotated");
        let mode = std::fs::metadata(dir.path().join(FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn a_corrupt_file_is_an_error_not_an_empty_list() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FILE), b"\xff\xff\xff").unwrap();
        let err = Trust::open(dir.path()).unwrap_err();
        assert!(err.to_string().contains("is corrupt"), "{err}");
    }
}
