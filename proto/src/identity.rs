//! The identity convention shared by every Slipway certificate: one URI SAN
//! `spiffe://slipway/<kind>/...` that names the role and the holder.

use std::fmt;

use tonic::Request;
use x509_parser::{certificate::X509Certificate, extensions::GeneralName, prelude::FromDer};

/// Trust domain in every identity URI.
pub const TRUST_DOMAIN: &str = "slipway";

/// What an operator may do. Ordered: each role can do what the ones below it can.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// Reads everything.
    Viewer,
    /// Also deploys and rolls back.
    Deployer,
    /// Also configures apps, environments and hosts.
    Admin,
}

impl Role {
    /// All roles, weakest first.
    pub const ALL: [Role; 3] = [Role::Viewer, Role::Deployer, Role::Admin];

    /// The role's name in certificates and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Deployer => "deployer",
            Role::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Role {
    type Err = IdentityError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|role| role.as_str() == s)
            .ok_or_else(|| IdentityError::UnknownRole(s.to_owned()))
    }
}

/// Who holds a certificate.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Identity {
    /// The control plane, as server to operators and as client to agents.
    ControlPlane {
        /// Instance name.
        name: String,
    },
    /// The agent of one host.
    Agent {
        /// Host name, as registered in the control plane.
        host: String,
    },
    /// A person or a CI job using the operator API.
    Operator {
        /// Operator name.
        name: String,
        /// What the operator may do.
        role: Role,
    },
}

/// Why a certificate does not carry a usable identity.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// The connection carried no client certificate.
    #[error("no client certificate was presented")]
    NoCertificate,
    /// The certificate could not be parsed.
    #[error("the certificate could not be parsed")]
    Malformed,
    /// The certificate has no `spiffe://slipway/...` URI SAN.
    #[error("the certificate carries no spiffe://{TRUST_DOMAIN}/ identity")]
    Missing,
    /// The URI does not follow the convention.
    #[error("identity URI {0:?} does not follow spiffe://{TRUST_DOMAIN}/<kind>/...")]
    BadUri(String),
    /// The role is not viewer, deployer or admin.
    #[error("unknown role {0:?} (expected viewer, deployer or admin)")]
    UnknownRole(String),
}

impl Identity {
    /// The URI SAN that carries this identity.
    pub fn uri(&self) -> String {
        match self {
            Identity::ControlPlane { name } => {
                format!("spiffe://{TRUST_DOMAIN}/control-plane/{name}")
            }
            Identity::Agent { host } => format!("spiffe://{TRUST_DOMAIN}/agent/{host}"),
            Identity::Operator { name, role } => {
                format!("spiffe://{TRUST_DOMAIN}/operator/{role}/{name}")
            }
        }
    }

    /// Parses an identity URI.
    pub fn from_uri(uri: &str) -> Result<Self, IdentityError> {
        let bad = || IdentityError::BadUri(uri.to_owned());
        let rest = uri
            .strip_prefix("spiffe://")
            .and_then(|r| r.strip_prefix(TRUST_DOMAIN))
            .and_then(|r| r.strip_prefix('/'))
            .ok_or_else(bad)?;
        let parts: Vec<&str> = rest.split('/').collect();
        if parts.iter().any(|p| p.is_empty()) {
            return Err(bad());
        }
        match parts.as_slice() {
            ["control-plane", name] => Ok(Identity::ControlPlane {
                name: (*name).to_owned(),
            }),
            ["agent", host] => Ok(Identity::Agent {
                host: (*host).to_owned(),
            }),
            ["operator", role, name] => Ok(Identity::Operator {
                name: (*name).to_owned(),
                role: role.parse()?,
            }),
            _ => Err(bad()),
        }
    }

    /// Reads the identity from a DER certificate's URI SANs.
    pub fn from_der(der: &[u8]) -> Result<Self, IdentityError> {
        let (_, cert) = X509Certificate::from_der(der).map_err(|_| IdentityError::Malformed)?;
        let san = cert
            .subject_alternative_name()
            .map_err(|_| IdentityError::Malformed)?
            .ok_or(IdentityError::Missing)?;
        let prefix = format!("spiffe://{TRUST_DOMAIN}/");
        let uri = san
            .value
            .general_names
            .iter()
            .find_map(|name| match name {
                GeneralName::URI(uri) if uri.starts_with(&prefix) => Some(*uri),
                _ => None,
            })
            .ok_or(IdentityError::Missing)?;
        Identity::from_uri(uri)
    }

    /// Reads the identity of the peer of a request served over mutual TLS.
    pub fn from_request<T>(request: &Request<T>) -> Result<Self, IdentityError> {
        let certs = request.peer_certs().ok_or(IdentityError::NoCertificate)?;
        let leaf = certs.first().ok_or(IdentityError::NoCertificate)?;
        Identity::from_der(leaf.as_ref())
    }

    /// Parses a principal as [`Identity::principal`] writes it.
    pub fn from_principal(principal: &str) -> Result<Self, IdentityError> {
        let bad = || IdentityError::BadUri(principal.to_owned());
        let (kind, name) = principal.split_once('/').ok_or_else(bad)?;
        let uri = match kind {
            "agent" | "control-plane" => format!("spiffe://{TRUST_DOMAIN}/{kind}/{name}"),
            role => format!("spiffe://{TRUST_DOMAIN}/operator/{role}/{name}"),
        };
        Identity::from_uri(&uri)
    }

    /// A short name for records and logs: `admin/alice`, `agent/web-1`,
    /// `control-plane/main`.
    pub fn principal(&self) -> String {
        match self {
            Identity::ControlPlane { name } => format!("control-plane/{name}"),
            Identity::Agent { host } => format!("agent/{host}"),
            Identity::Operator { name, role } => format!("{role}/{name}"),
        }
    }
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.principal())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_round_trip() {
        for identity in [
            Identity::ControlPlane {
                name: "main".into(),
            },
            Identity::Agent {
                host: "web-1.example.com".into(),
            },
            Identity::Operator {
                name: "alice".into(),
                role: Role::Deployer,
            },
        ] {
            assert_eq!(Identity::from_uri(&identity.uri()).unwrap(), identity);
            assert_eq!(
                Identity::from_principal(&identity.principal()).unwrap(),
                identity
            );
        }
    }

    #[test]
    fn rejects_foreign_and_malformed_uris() {
        for uri in [
            "spiffe://other/agent/web-1",
            "spiffe://slipway/agent/",
            "spiffe://slipway/operator/root/alice",
            "spiffe://slipway/agent/a/b",
            "https://slipway/agent/web-1",
        ] {
            assert!(Identity::from_uri(uri).is_err(), "{uri}");
        }
    }

    #[test]
    fn roles_are_ordered() {
        assert!(Role::Viewer < Role::Deployer && Role::Deployer < Role::Admin);
    }
}
