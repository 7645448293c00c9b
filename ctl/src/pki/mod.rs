//! The Slipway PKI, made with rcgen: one CA, the control plane's server and
//! client certificates, agent and operator certificates, and a listing of
//! what a directory holds. Usable as a library by tests and the demo.

use std::{
    net::IpAddr,
    path::{Path, PathBuf},
};

use rcgen::{ExtendedKeyUsagePurpose, Issuer, KeyPair};
use slipway_proto::{
    identity::{Identity, Role},
    validate,
};

pub use ca::{CA_PREVIOUS_CERT, CA_PREVIOUS_KEY, RotationError, finish_rotation, rotate_ca};
pub use inspect::{CertInfo, describe, list};

use ca::{load_ca, new_ca};
use files::{ensure_dir, paths_for, refuse_existing, write_pair, write_pem};
use sign::{
    check_days, common_name, dedup, leaf, new_key, random_serial, refuse_other_hosts, set_validity,
    split_sans,
};

mod ca;
mod files;
mod inspect;
mod sign;
#[cfg(test)]
mod tests;

/// File name of the CA certificate.
pub const CA_CERT: &str = "ca.crt";
/// File name of the CA private key.
pub const CA_KEY: &str = "ca.key";
/// Common name of the CA.
pub const CA_COMMON_NAME: &str = "Slipway CA";
/// Validity of the CA in days (at least that of the certificates it signs).
pub const CA_VALIDITY_DAYS: u32 = 3650;
/// Default validity of operator certificates in days.
pub const DEFAULT_VALIDITY_DAYS: u32 = 365;
/// Default validity of the control plane's and agents' certificates in
/// days: short, since both daemons reload a renewed certificate on SIGHUP.
pub const SERVICE_VALIDITY_DAYS: u32 = 30;
/// How far `not_before` lies in the past, so that clocks a little behind
/// accept a certificate made a moment ago.
const BACKDATE: time::Duration = time::Duration::minutes(5);

/// What `init` makes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InitOptions {
    /// Instance name of the control plane, in its identity URI.
    pub control_plane_name: String,
    /// Extra DNS names or IP addresses for the control plane's server certificate.
    pub sans: Vec<String>,
    /// Validity of the leaf certificates in days (the CA gets at least 3650).
    pub validity_days: u32,
    /// Overwrite existing files, including the CA key: every certificate the
    /// old CA signed stops being trusted.
    pub force: bool,
}

impl Default for InitOptions {
    fn default() -> Self {
        Self {
            control_plane_name: "main".to_owned(),
            sans: Vec::new(),
            validity_days: SERVICE_VALIDITY_DAYS,
            force: false,
        }
    }
}

/// How `issue_*_with` makes one certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IssueOptions {
    /// Validity in days.
    pub validity_days: u32,
    /// Replace an existing certificate and key of the same name.
    pub force: bool,
}

impl Default for IssueOptions {
    fn default() -> Self {
        Self {
            validity_days: DEFAULT_VALIDITY_DAYS,
            force: false,
        }
    }
}

/// The two files of an issued certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Issued {
    /// PEM certificate.
    pub cert: PathBuf,
    /// PEM private key (mode 0600).
    pub key: PathBuf,
}

/// Creates the CA, the control plane's server (`control-plane.crt`) and client
/// (`control-plane-client.crt`) certificates and an admin operator
/// certificate (`operator-admin.crt`) in `dir`. Refuses to overwrite any of
/// them unless `opts.force`. Returns the paths written.
pub fn init(dir: &Path, opts: &InitOptions) -> anyhow::Result<Vec<PathBuf>> {
    validate::name("control plane name", &opts.control_plane_name)?;
    check_days(opts.validity_days)?;
    split_sans(&opts.sans)?;
    let names = [
        CA_CERT,
        CA_KEY,
        "control-plane.crt",
        "control-plane.key",
        "control-plane-client.crt",
        "control-plane-client.key",
        "operator-admin.crt",
        "operator-admin.key",
    ];
    let paths: Vec<PathBuf> = names.iter().map(|name| dir.join(name)).collect();
    if !opts.force {
        refuse_existing(&paths)?;
    }

    let (ca_cert, issuer) = new_ca(CA_COMMON_NAME, opts.validity_days)?;

    let (server, client) = control_plane_pair(
        &issuer,
        &opts.control_plane_name,
        &opts.sans,
        opts.validity_days,
    )?;
    let admin = Identity::Operator {
        name: "admin".to_owned(),
        role: Role::Admin,
    };
    let operator = leaf(
        &issuer,
        "admin",
        &admin,
        &[],
        &[],
        &[ExtendedKeyUsagePurpose::ClientAuth],
        opts.validity_days,
    )?;

    ensure_dir(dir)?;
    let contents = [
        ca_cert,
        issuer.key().serialize_pem(),
        server.0,
        server.1,
        client.0,
        client.1,
        operator.0,
        operator.1,
    ];
    for (path, pem) in paths.iter().zip(contents) {
        write_pem(path, &pem, opts.force)?;
    }
    Ok(paths)
}

/// The control plane's server and client certificates: (certificate PEM,
/// key PEM) each.
fn control_plane_pair(
    issuer: &Issuer<'_, KeyPair>,
    name: &str,
    sans: &[String],
    days: u32,
) -> anyhow::Result<((String, String), (String, String))> {
    let (extra_dns, extra_ips) = split_sans(sans)?;
    let cp = Identity::ControlPlane {
        name: name.to_owned(),
    };
    let mut dns = vec!["localhost".to_owned(), name.to_owned()];
    dns.extend(extra_dns);
    let mut ips: Vec<IpAddr> = vec![[127, 0, 0, 1].into(), std::net::Ipv6Addr::LOCALHOST.into()];
    ips.extend(extra_ips);
    dedup(&mut dns);
    dedup(&mut ips);
    let cp_name = format!("control-plane {name}");
    let server = leaf(
        issuer,
        &cp_name,
        &cp,
        &dns,
        &ips,
        &[ExtendedKeyUsagePurpose::ServerAuth],
        days,
    )?;
    let client = leaf(
        issuer,
        &cp_name,
        &cp,
        &[],
        &[],
        &[ExtendedKeyUsagePurpose::ClientAuth],
        days,
    )?;
    Ok((server, client))
}

/// Issues new server and client certificates of the control plane
/// (`control-plane.crt`, `control-plane-client.crt`) from the CA in `dir`,
/// for a renewal: the CA and every other certificate stay. Refuses to
/// overwrite existing files unless `opts.force`.
pub fn issue_control_plane_with(
    dir: &Path,
    name: &str,
    sans: &[String],
    opts: &IssueOptions,
) -> anyhow::Result<[Issued; 2]> {
    validate::name("control plane name", name)?;
    check_days(opts.validity_days)?;
    let issuer = load_ca(dir)?;
    let (server, client) = control_plane_pair(&issuer, name, sans, opts.validity_days)?;
    let issued = [
        paths_for(dir, "control-plane"),
        paths_for(dir, "control-plane-client"),
    ];
    if !opts.force {
        refuse_existing(&[
            issued[0].cert.clone(),
            issued[0].key.clone(),
            issued[1].cert.clone(),
            issued[1].key.clone(),
        ])?;
    }
    write_pair(&issued[0], &server.0, &server.1, opts.force)?;
    write_pair(&issued[1], &client.0, &client.1, opts.force)?;
    Ok(issued)
}

/// Issues `agent-<host>.crt/.key` for the agent of `host`, signed by the CA in
/// `dir`. Refuses to overwrite an existing certificate of that host.
pub fn issue_agent(
    dir: &Path,
    host: &str,
    sans: &[String],
    validity_days: u32,
) -> anyhow::Result<Issued> {
    let opts = IssueOptions {
        validity_days,
        force: false,
    };
    issue_agent_with(dir, host, sans, &opts)
}

/// [`issue_agent`] with the choice to replace an existing certificate.
pub fn issue_agent_with(
    dir: &Path,
    host: &str,
    sans: &[String],
    opts: &IssueOptions,
) -> anyhow::Result<Issued> {
    let issued = paths_for(dir, &format!("agent-{host}"));
    let (cert, key) = AgentSigner::open(dir)?.sign(host, sans, opts.validity_days)?;
    write_pair(&issued, &cert, &key, opts.force)?;
    Ok(issued)
}

/// Signs agent certificates in memory with the CA of a PKI directory, the
/// way [`issue_agent`] does, for a tool that needs many of them (a
/// simulated fleet) without two files per host.
pub struct AgentSigner(Issuer<'static, KeyPair>);

impl AgentSigner {
    /// Loads the CA in `dir`.
    pub fn open(dir: &Path) -> anyhow::Result<Self> {
        Ok(Self(load_ca(dir)?))
    }

    /// (certificate PEM, key PEM) of the agent of `host`, also naming
    /// `sans` (IP addresses, or DNS names of that host only).
    pub fn sign(
        &self,
        host: &str,
        sans: &[String],
        validity_days: u32,
    ) -> anyhow::Result<(String, String)> {
        validate::host_name("host", host)?;
        check_days(validity_days)?;
        let (extra_dns, ips) = split_sans(sans)?;
        refuse_other_hosts(host, &extra_dns)?;
        // The control plane dials the agent with the host name as TLS server name.
        let mut dns = vec![host.to_owned()];
        dns.extend(extra_dns);
        dedup(&mut dns);
        let identity = Identity::Agent {
            host: host.to_owned(),
        };
        leaf(
            &self.0,
            &format!("agent {host}"),
            &identity,
            &dns,
            &ips,
            // clientAuth too: an agent certificate presented to the operator API
            // then reaches the role check and gets a clear PERMISSION_DENIED
            // instead of an opaque handshake failure.
            &[
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ],
            validity_days,
        )
    }
}

/// Issues `operator-<name>.crt/.key` for an operator with `role`, signed by
/// the CA in `dir`. Refuses to overwrite an existing certificate of that name.
pub fn issue_operator(
    dir: &Path,
    name: &str,
    role: Role,
    validity_days: u32,
) -> anyhow::Result<Issued> {
    let opts = IssueOptions {
        validity_days,
        force: false,
    };
    issue_operator_with(dir, name, role, &opts)
}

/// [`issue_operator`] with the choice to replace an existing certificate.
pub fn issue_operator_with(
    dir: &Path,
    name: &str,
    role: Role,
    opts: &IssueOptions,
) -> anyhow::Result<Issued> {
    validate::name("operator name", name)?;
    check_days(opts.validity_days)?;
    let identity = Identity::Operator {
        name: name.to_owned(),
        role,
    };
    let issued = paths_for(dir, &format!("operator-{name}"));
    let issuer = load_ca(dir)?;
    let (cert, key) = leaf(
        &issuer,
        name,
        &identity,
        &[],
        &[],
        &[ExtendedKeyUsagePurpose::ClientAuth],
        opts.validity_days,
    )?;
    write_pair(&issued, &cert, &key, opts.force)?;
    Ok(issued)
}
