//! `slipway-agent enroll`: a new host gets its certificate without copying
//! keys. The key is made here; the control plane, reached on its
//! enrollment listener and trusted through the CA fingerprint the operator
//! gave, signs the request in exchange for the host's one-time join token.

use std::path::{Path, PathBuf};

use slipway_proto::{
    control::v1::{EnrollAgentRequest, enrollment_service_client::EnrollmentServiceClient},
    tls::{self, TlsPaths},
    validate,
};

use crate::certificate::{self, CertificateError};

/// What `enroll` needs.
#[derive(Clone, Debug)]
pub struct EnrollOptions {
    /// The control plane's enrollment address (`host:port`).
    pub control_plane: String,
    /// `SHA256:<hex>` of the CA, as `slipctl host add --enroll` printed it.
    pub ca_fingerprint: String,
    /// The join token.
    pub token: String,
    /// This host's name, as added.
    pub host: String,
    /// Directory for `ca.crt`, `agent.crt` and `agent.key`.
    pub dir: PathBuf,
}

/// Why enrollment failed.
#[derive(Debug, thiserror::Error)]
pub enum EnrollError {
    /// A flag is malformed.
    #[error(transparent)]
    Invalid(#[from] validate::InvalidField),
    /// The files exist already.
    #[error("{0} exists already: this host has a certificate (remove the files to enroll again)")]
    Exists(PathBuf),
    /// The control plane could not be reached or trusted.
    #[error("cannot reach the control plane")]
    Connect(#[from] tls::ConnectError),
    /// The control plane refused.
    #[error("the control plane refused the enrollment: {}", .0.message())]
    Refused(tonic::Status),
    /// The key, the request or the files failed.
    #[error(transparent)]
    Certificate(#[from] CertificateError),
    /// The directory could not be created.
    #[error("cannot create {path}")]
    Dir {
        /// The directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// Enrolls this host; returns the paths of the files written.
pub async fn enroll(opts: &EnrollOptions) -> Result<TlsPaths, EnrollError> {
    validate::host_name("host", &opts.host)?;
    let paths = TlsPaths {
        ca: opts.dir.join("ca.crt"),
        cert: opts.dir.join("agent.crt"),
        key: opts.dir.join("agent.key"),
    };
    for path in [&paths.ca, &paths.cert, &paths.key] {
        if path.exists() {
            return Err(EnrollError::Exists(path.clone()));
        }
    }
    let (key, csr_pem) = certificate::request(&opts.host)?;
    let config = tls::pinned_client_config(&opts.ca_fingerprint);
    let channel = tls::endpoint_with(&opts.control_plane, config)?
        .connect()
        .await?;
    let answer = EnrollmentServiceClient::new(channel)
        .enroll_agent(EnrollAgentRequest {
            host: opts.host.clone(),
            token: opts.token.clone(),
            csr_pem,
        })
        .await
        .map_err(EnrollError::Refused)?
        .into_inner();
    let key_pem = key.serialize_pem();
    certificate::check(
        &opts.host,
        answer.ca_pem.as_bytes(),
        answer.certificate_pem.as_bytes(),
        key_pem.as_bytes(),
    )?;
    create_dir(&opts.dir)?;
    certificate::write_file(&paths.key, key_pem.as_bytes(), 0o600)?;
    certificate::write_file(&paths.ca, answer.ca_pem.as_bytes(), 0o644)?;
    certificate::write_file(&paths.cert, answer.certificate_pem.as_bytes(), 0o644)?;
    Ok(paths)
}

fn create_dir(dir: &Path) -> Result<(), EnrollError> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| EnrollError::Dir {
            path: dir.to_owned(),
            source,
        })
}
