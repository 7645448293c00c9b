//! The CA itself: making one, loading it to sign with, and rotating it
//! without downtime (a bundle of the new and the old CA while every
//! certificate is reissued, then the new one alone).

use std::{
    fs,
    path::{Path, PathBuf},
};

use anyhow::Context;
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use x509_parser::pem::Pem;

use super::{
    CA_CERT, CA_COMMON_NAME, CA_KEY, CA_VALIDITY_DAYS, common_name, new_key, random_serial,
    set_validity, write_pem,
};

/// The old CA certificate, kept during a rotation.
pub const CA_PREVIOUS_CERT: &str = "ca-previous.crt";
/// The old CA key, kept during a rotation (mode 0600).
pub const CA_PREVIOUS_KEY: &str = "ca-previous.key";

/// Why a CA rotation step was refused.
#[derive(Debug, thiserror::Error)]
pub enum RotationError {
    /// `rotate-ca` while a rotation is under way.
    #[error(
        "a CA rotation is already under way ({} exists): reissue every certificate, then \
         run `slipctl pki rotate-ca --finish --dir {}`", dir.join(CA_PREVIOUS_CERT).display(), dir.display()
    )]
    InProgress {
        /// The PKI directory.
        dir: PathBuf,
    },
    /// `rotate-ca --finish` without a rotation under way.
    #[error("no CA rotation is under way in {} (no {CA_PREVIOUS_CERT})", dir.display())]
    NotRotating {
        /// The PKI directory.
        dir: PathBuf,
    },
    /// `rotate-ca --finish` while certificates of the old CA remain.
    #[error(
        "still signed by the old CA only: {}; reissue them (`slipctl pki issue ... --force`) \
         or move them out of the directory first", files.join(", ")
    )]
    OldCertificates {
        /// File names in the directory.
        files: Vec<String>,
    },
}

/// A new self-signed CA: its certificate PEM and the issuer to sign with.
pub(super) fn new_ca(
    common: &str,
    days: u32,
) -> anyhow::Result<(String, Issuer<'static, KeyPair>)> {
    let key = new_key()?;
    let mut params = CertificateParams::default();
    params.distinguished_name = common_name(common);
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    set_validity(&mut params, days.max(CA_VALIDITY_DAYS));
    params.serial_number = Some(random_serial());
    let cert = params.self_signed(&key)?;
    Ok((cert.pem(), Issuer::new(params, key)))
}

/// The CA of `dir` to sign with: the first certificate of `ca.crt` (the
/// new CA during a rotation) and `ca.key`, which must belong to it.
pub(super) fn load_ca(dir: &Path) -> anyhow::Result<Issuer<'static, KeyPair>> {
    let cert_path = dir.join(CA_CERT);
    let key_path = dir.join(CA_KEY);
    let certs = read_certs(&cert_path).with_context(|| {
        format!(
            "cannot read the CA certificate (create the PKI with `slipctl pki init --dir {}`)",
            dir.display()
        )
    })?;
    let key_pem = fs::read_to_string(&key_path)
        .with_context(|| format!("cannot read the CA key {}", key_path.display()))?;
    let key = KeyPair::from_pem(&key_pem)
        .with_context(|| format!("{} is not a PEM private key", key_path.display()))?;
    let first = &certs[0];
    let cert = first.parse_x509().map_err(|_| not_ca(&cert_path))?;
    if cert.public_key().subject_public_key.data.as_ref() != key.public_key_raw() {
        anyhow::bail!(
            "{} does not belong to the first certificate of {}",
            key_path.display(),
            cert_path.display()
        );
    }
    Issuer::from_ca_cert_der(&first.contents.clone().into(), key).map_err(|_| not_ca(&cert_path))
}

fn not_ca(path: &Path) -> anyhow::Error {
    anyhow::anyhow!("{} is not a CA certificate", path.display())
}

/// Every PEM certificate block of a file (at least one).
fn read_certs(path: &Path) -> anyhow::Result<Vec<Pem>> {
    let bytes = fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let certs: Vec<Pem> = Pem::iter_from_buffer(&bytes)
        .collect::<Result<_, _>>()
        .map_err(|_| anyhow::anyhow!("{} is not PEM", path.display()))?;
    if certs.is_empty() {
        anyhow::bail!("{} holds no certificate", path.display());
    }
    Ok(certs)
}

fn pem_text(pem: &Pem) -> String {
    let block = ::pem::Pem::new("CERTIFICATE", pem.contents.clone());
    ::pem::encode(&block)
}

/// Starts a CA rotation in `dir`: a new CA key and certificate; `ca.crt`
/// becomes the new CA followed by the old one, so daemons given it trust
/// both; the old CA is kept as `ca-previous.crt` and `ca-previous.key`.
/// From then on `pki issue` signs with the new CA. Returns the files
/// written.
pub fn rotate_ca(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    if dir.join(CA_PREVIOUS_CERT).exists() || dir.join(CA_PREVIOUS_KEY).exists() {
        return Err(RotationError::InProgress {
            dir: dir.to_owned(),
        }
        .into());
    }
    // The current CA must be usable before anything changes.
    load_ca(dir)?;
    let old_cert = pem_text(&read_certs(&dir.join(CA_CERT))?[0]);
    let old_key = fs::read_to_string(dir.join(CA_KEY))
        .with_context(|| format!("cannot read {}", dir.join(CA_KEY).display()))?;
    let suffix: [u8; 4] = rand::random();
    let common = format!(
        "{CA_COMMON_NAME} {} {}",
        time::OffsetDateTime::now_utc().date(),
        hex::encode(suffix)
    );
    let (new_cert, issuer) = new_ca(&common, CA_VALIDITY_DAYS)?;
    let written = [
        (dir.join(CA_PREVIOUS_KEY), old_key, false),
        (dir.join(CA_PREVIOUS_CERT), old_cert.clone(), false),
        (dir.join(CA_CERT), format!("{new_cert}{old_cert}"), true),
        (dir.join(CA_KEY), issuer.key().serialize_pem(), true),
    ];
    for (path, pem, force) in &written {
        write_pem(path, pem, *force)?;
    }
    Ok(written.into_iter().map(|(path, _, _)| path).collect())
}

/// Ends the CA rotation in `dir`: `ca.crt` holds the new CA alone and the
/// old CA's files go. Refuses, naming them, while any certificate in `dir`
/// is still signed by the old CA. Returns the files written or removed.
pub fn finish_rotation(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let previous_path = dir.join(CA_PREVIOUS_CERT);
    if !previous_path.exists() {
        return Err(RotationError::NotRotating {
            dir: dir.to_owned(),
        }
        .into());
    }
    let previous = read_certs(&previous_path)?;
    let old = previous[0]
        .parse_x509()
        .map_err(|_| not_ca(&previous_path))?;
    let old_subject = old.subject().as_raw();
    let current = read_certs(&dir.join(CA_CERT))?;
    let mut stale = Vec::new();
    for info in super::list(dir)? {
        if info.file == CA_CERT || info.file == CA_PREVIOUS_CERT {
            continue;
        }
        let certs = read_certs(&dir.join(&info.file))?;
        let cert = certs[0]
            .parse_x509()
            .with_context(|| format!("{} is not a certificate", info.file))?;
        if cert.issuer().as_raw() == old_subject {
            stale.push(info.file);
        }
    }
    if !stale.is_empty() {
        return Err(RotationError::OldCertificates { files: stale }.into());
    }
    let ca_path = dir.join(CA_CERT);
    write_pem(&ca_path, &pem_text(&current[0]), true)?;
    let key_path = dir.join(CA_PREVIOUS_KEY);
    for path in [&key_path, &previous_path] {
        match fs::remove_file(path) {
            Ok(()) => {}
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => {
                return Err(err).with_context(|| format!("cannot remove {}", path.display()));
            }
        }
    }
    Ok(vec![ca_path, key_path, previous_path])
}
