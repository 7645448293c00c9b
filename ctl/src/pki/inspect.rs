//! Reading certificates back: what `slipctl pki list` shows of each file.

use std::{fs, net::IpAddr, path::Path};

use anyhow::Context;
use serde::Serialize;
use sha2::{Digest, Sha256};
use slipway_proto::identity::Identity;
use x509_parser::{extensions::GeneralName, pem::Pem};

/// What `list` tells about one certificate file. Serialised in camelCase,
/// like the proto3 JSON of every other command.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CertInfo {
    /// File name inside the directory.
    pub file: String,
    /// Subject common name.
    pub subject: String,
    /// The `spiffe://slipway/...` URI SAN, if any.
    pub identity: Option<String>,
    /// "ca", "control-plane", "agent" or "operator"; None when the
    /// certificate carries no Slipway identity.
    pub kind: Option<String>,
    /// The operator role (viewer, deployer, admin).
    pub role: Option<String>,
    /// Extended key usages: "server", "client".
    pub usages: Vec<String>,
    /// Start of validity, RFC 3339 UTC.
    pub not_before: String,
    /// End of validity, RFC 3339 UTC.
    pub not_after: String,
    /// True when `not_after` has passed.
    pub expired: bool,
    /// Lowercase hex SHA-256 of the DER certificate.
    pub sha256: String,
    /// DNS subject alternative names.
    pub dns_names: Vec<String>,
    /// IP subject alternative names.
    pub ip_addresses: Vec<String>,
    /// Why the control plane revoked it, when it did (and was asked).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revoked: Option<String>,
}

/// Describes every `*.crt` in `dir`, by file name.
pub fn list(dir: &Path) -> anyhow::Result<Vec<CertInfo>> {
    let entries =
        fs::read_dir(dir).with_context(|| format!("cannot read directory {}", dir.display()))?;
    let mut files = Vec::new();
    for entry in entries {
        let path = entry
            .with_context(|| format!("cannot read directory {}", dir.display()))?
            .path();
        if path.extension().is_some_and(|ext| ext == "crt") && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    files.iter().map(|path| describe(path)).collect()
}

/// Describes one PEM certificate file.
pub fn describe(path: &Path) -> anyhow::Result<CertInfo> {
    let pem_bytes = fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let (_, pem) = x509_parser::pem::parse_x509_pem(&pem_bytes)
        .map_err(|_| anyhow::anyhow!("{} is not a PEM certificate", path.display()))?;
    info_from_pem(path, &pem)
}

fn info_from_pem(path: &Path, pem: &Pem) -> anyhow::Result<CertInfo> {
    let not_pem = || format!("{} holds no valid X.509 certificate", path.display());
    let cert = pem.parse_x509().map_err(|_| anyhow::anyhow!(not_pem()))?;
    let subject = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .unwrap_or_default()
        .to_owned();
    let mut identity = None;
    let mut dns_names = Vec::new();
    let mut ip_addresses = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                GeneralName::URI(uri) if uri.starts_with("spiffe://") => {
                    identity.get_or_insert_with(|| (*uri).to_owned());
                }
                GeneralName::DNSName(dns) => dns_names.push((*dns).to_owned()),
                GeneralName::IPAddress(bytes) => {
                    if let Some(ip) = ip_from_bytes(bytes) {
                        ip_addresses.push(ip.to_string());
                    }
                }
                _ => {}
            }
        }
    }
    let (mut kind, role) = match identity.as_deref().map(Identity::from_uri) {
        Some(Ok(Identity::ControlPlane { .. })) => (Some("control-plane"), None),
        Some(Ok(Identity::Agent { .. })) => (Some("agent"), None),
        Some(Ok(Identity::Operator { role, .. })) => (Some("operator"), Some(role.to_string())),
        _ => (None, None),
    };
    if cert.is_ca() {
        kind = Some("ca");
    }
    let mut usages = Vec::new();
    if let Ok(Some(eku)) = cert.extended_key_usage() {
        if eku.value.server_auth {
            usages.push("server".to_owned());
        }
        if eku.value.client_auth {
            usages.push("client".to_owned());
        }
    }
    let validity = cert.validity();
    Ok(CertInfo {
        file: path
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default(),
        subject,
        identity,
        kind: kind.map(str::to_owned),
        role,
        usages,
        not_before: rfc3339(validity.not_before.timestamp()),
        not_after: rfc3339(validity.not_after.timestamp()),
        expired: validity.not_after.timestamp() < chrono::Utc::now().timestamp(),
        sha256: hex::encode(Sha256::digest(&pem.contents)),
        dns_names,
        ip_addresses,
        revoked: None,
    })
}

fn ip_from_bytes(bytes: &[u8]) -> Option<IpAddr> {
    match bytes.len() {
        4 => <[u8; 4]>::try_from(bytes).ok().map(IpAddr::from),
        16 => <[u8; 16]>::try_from(bytes).ok().map(IpAddr::from),
        _ => None,
    }
}

fn rfc3339(unix: i64) -> String {
    chrono::DateTime::from_timestamp(unix, 0)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_else(|| unix.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::{InitOptions, init, issue_operator};
    use slipway_proto::identity::Role;

    #[test]
    fn list_shows_role_and_expiry() {
        let dir = tempfile::tempdir().unwrap();
        init(dir.path(), &InitOptions::default()).unwrap();
        issue_operator(dir.path(), "bob", Role::Viewer, 10).unwrap();
        let certs = list(dir.path()).unwrap();
        let files: Vec<&str> = certs.iter().map(|c| c.file.as_str()).collect();
        assert_eq!(
            files,
            [
                "ca.crt",
                "control-plane-client.crt",
                "control-plane.crt",
                "operator-admin.crt",
                "operator-bob.crt"
            ]
        );
        let bob = &certs[4];
        assert_eq!(bob.role.as_deref(), Some("viewer"));
        assert_eq!(bob.kind.as_deref(), Some("operator"));
        assert_eq!(
            bob.identity.as_deref(),
            Some("spiffe://slipway/operator/viewer/bob")
        );
        assert_eq!(bob.usages, ["client"]);
        assert!(!bob.expired);
        let expires = chrono::DateTime::parse_from_rfc3339(&bob.not_after).unwrap();
        let days = (expires.timestamp() - chrono::Utc::now().timestamp()) / 86_400;
        assert!((9..=10).contains(&days), "{days}");
        assert_eq!(bob.sha256.len(), 64);
        assert_eq!(certs[3].role.as_deref(), Some("admin"));
    }
}
