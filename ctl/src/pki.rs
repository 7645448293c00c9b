//! The Slipway PKI, made with rcgen: one CA, the control plane's server and
//! client certificates, agent and operator certificates, and a listing of
//! what a directory holds. Usable as a library by tests and the demo.

use std::{
    fs,
    io::Write,
    net::IpAddr,
    os::unix::fs::{DirBuilderExt, PermissionsExt},
    path::{Path, PathBuf},
};

use anyhow::{Context, bail};
use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, SanType, SerialNumber,
};
use slipway_proto::{
    identity::{Identity, Role},
    validate,
};

pub use ca::{CA_PREVIOUS_CERT, CA_PREVIOUS_KEY, RotationError, finish_rotation, rotate_ca};
pub use inspect::{CertInfo, describe, list};

use ca::{load_ca, new_ca};

mod ca;
mod inspect;

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
    validate::host_name("host", host)?;
    check_days(opts.validity_days)?;
    let (extra_dns, ips) = split_sans(sans)?;
    refuse_other_hosts(host, &extra_dns)?;
    // The control plane dials the agent with the host name as TLS server name.
    let mut dns = vec![host.to_owned()];
    dns.extend(extra_dns);
    dedup(&mut dns);
    let identity = Identity::Agent {
        host: host.to_owned(),
    };
    let issued = paths_for(dir, &format!("agent-{host}"));
    let issuer = load_ca(dir)?;
    let (cert, key) = leaf(
        &issuer,
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
        opts.validity_days,
    )?;
    write_pair(&issued, &cert, &key, opts.force)?;
    Ok(issued)
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

/// Signs a leaf certificate; returns (certificate PEM, key PEM).
fn leaf(
    issuer: &Issuer<'_, KeyPair>,
    common: &str,
    identity: &Identity,
    dns: &[String],
    ips: &[IpAddr],
    usages: &[ExtendedKeyUsagePurpose],
    days: u32,
) -> anyhow::Result<(String, String)> {
    let key = new_key()?;
    let mut params = CertificateParams::default();
    params.distinguished_name = common_name(common);
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = usages.to_vec();
    params.use_authority_key_identifier_extension = true;
    params.serial_number = Some(random_serial());
    set_validity(&mut params, days);
    params
        .subject_alt_names
        .push(SanType::URI(identity.uri().as_str().try_into()?));
    for name in dns {
        let ia5 = name
            .as_str()
            .try_into()
            .with_context(|| format!("{name:?} cannot be a DNS name in a certificate"))?;
        params.subject_alt_names.push(SanType::DnsName(ia5));
    }
    params
        .subject_alt_names
        .extend(ips.iter().copied().map(SanType::IpAddress));
    let cert = params
        .signed_by(&key, issuer)
        .with_context(|| format!("cannot sign the certificate of {identity}"))?;
    Ok((cert.pem(), key.serialize_pem()))
}

fn new_key() -> anyhow::Result<KeyPair> {
    KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).context("cannot generate a P-256 key")
}

fn common_name(name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, name);
    dn
}

fn set_validity(params: &mut CertificateParams, days: u32) {
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - BACKDATE;
    params.not_after = now + time::Duration::days(i64::from(days));
}

fn random_serial() -> SerialNumber {
    let mut bytes: [u8; 16] = rand::random();
    // Positive and of a fixed length when DER-encoded.
    bytes[0] = (bytes[0] & 0x7f) | 0x40;
    SerialNumber::from_slice(&bytes)
}

fn check_days(days: u32) -> anyhow::Result<()> {
    if days == 0 {
        bail!("validity must be at least 1 day");
    }
    Ok(())
}

/// Sorts `--san` values into DNS names and IP addresses.
fn split_sans(sans: &[String]) -> anyhow::Result<(Vec<String>, Vec<IpAddr>)> {
    let mut dns = Vec::new();
    let mut ips = Vec::new();
    for san in sans {
        if let Ok(ip) = san.parse::<IpAddr>() {
            ips.push(ip);
        } else {
            validate::host_name("--san", san)?;
            dns.push(san.clone());
        }
    }
    Ok((dns, ips))
}

/// An agent certificate names its own host only: a DNS SAN must be the host
/// name or share its first label (`web-3`, `web-3.example.com`), so no
/// certificate of one host can pass for another's address.
fn refuse_other_hosts(host: &str, dns: &[String]) -> anyhow::Result<()> {
    let label = |name: &str| name.split('.').next().unwrap_or(name).to_owned();
    if let Some(other) = dns.iter().find(|name| label(name) != label(host)) {
        bail!(
            "--san {other} names another host than {host}: an agent certificate may name only \
             its own host ({host}, {host}.<domain>) and IP addresses"
        );
    }
    Ok(())
}

/// Removes repeated items, keeping the first of each in order.
fn dedup<T: PartialEq>(items: &mut Vec<T>) {
    let mut unique: Vec<T> = Vec::with_capacity(items.len());
    for item in items.drain(..) {
        if !unique.contains(&item) {
            unique.push(item);
        }
    }
    *items = unique;
}

fn paths_for(dir: &Path, stem: &str) -> Issued {
    Issued {
        cert: dir.join(format!("{stem}.crt")),
        key: dir.join(format!("{stem}.key")),
    }
}

fn write_pair(issued: &Issued, cert: &str, key: &str, force: bool) -> anyhow::Result<()> {
    if !force {
        refuse_existing(&[issued.cert.clone(), issued.key.clone()])?;
    }
    write_pem(&issued.key, key, force)?;
    write_pem(&issued.cert, cert, force)
}

fn refuse_existing(paths: &[PathBuf]) -> anyhow::Result<()> {
    let existing: Vec<String> = paths
        .iter()
        .filter(|path| path.exists())
        .map(|path| path.display().to_string())
        .collect();
    if !existing.is_empty() {
        bail!(
            "{} already exist{}; pass --force to replace {}",
            existing.join(", "),
            if existing.len() == 1 { "s" } else { "" },
            if existing.len() == 1 { "it" } else { "them" },
        );
    }
    Ok(())
}

/// Creates the directory private to its owner when it does not exist.
fn ensure_dir(dir: &Path) -> anyhow::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("cannot create directory {}", dir.display()))
}

/// Writes a PEM file atomically: a temporary file in the same directory
/// (mode 0600, kept for keys, 0644 for certificates), renamed into place.
/// Without `force` the rename refuses to replace an existing file.
fn write_pem(path: &Path, pem: &str, force: bool) -> anyhow::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    ensure_dir(dir)?;
    let fail = || format!("cannot write {}", path.display());
    let mut tmp = tempfile::Builder::new()
        .prefix(".slipctl-")
        .tempfile_in(dir)
        .with_context(fail)?;
    tmp.write_all(pem.as_bytes()).with_context(fail)?;
    let is_key = path.extension().is_some_and(|ext| ext == "key");
    let mode = if is_key { 0o600 } else { 0o644 };
    tmp.as_file()
        .set_permissions(fs::Permissions::from_mode(mode))
        .with_context(fail)?;
    tmp.as_file().sync_all().with_context(fail)?;
    if force {
        tmp.persist(path)
            .map_err(|err| err.error)
            .with_context(fail)?;
    } else {
        tmp.persist_noclobber(path)
            .map_err(|err| err.error)
            .with_context(|| {
                format!(
                    "{} already exists; pass --force to replace it",
                    path.display()
                )
            })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use x509_parser::prelude::{FromDer, X509Certificate};

    fn parse(path: &Path) -> Vec<u8> {
        let bytes = fs::read(path).unwrap();
        let (_, pem) = x509_parser::pem::parse_x509_pem(&bytes).unwrap();
        pem.contents
    }

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn init_writes_every_file_with_private_keys() {
        let dir = tempfile::tempdir().unwrap();
        let pki = dir.path().join("pki");
        let opts = InitOptions {
            sans: vec!["cp.example.com".into(), "10.0.0.7".into()],
            ..InitOptions::default()
        };
        let written = init(&pki, &opts).unwrap();
        assert_eq!(written.len(), 8);
        for path in &written {
            assert!(path.is_file(), "{}", path.display());
            let expected = if path.extension().unwrap() == "key" {
                0o600
            } else {
                0o644
            };
            assert_eq!(mode(path), expected, "{}", path.display());
        }
        assert_eq!(mode(&pki), 0o700);

        let der = parse(&pki.join("control-plane.crt"));
        let (_, cert) = X509Certificate::from_der(&der).unwrap();
        assert_eq!(
            Identity::from_der(&der).unwrap(),
            Identity::ControlPlane {
                name: "main".into()
            }
        );
        let info = describe(&pki.join("control-plane.crt")).unwrap();
        assert_eq!(info.dns_names, ["localhost", "main", "cp.example.com"]);
        assert_eq!(info.ip_addresses, ["127.0.0.1", "::1", "10.0.0.7"]);
        assert_eq!(info.usages, ["server"]);
        assert!(!cert.is_ca());

        let ca = describe(&pki.join(CA_CERT)).unwrap();
        assert_eq!(ca.kind.as_deref(), Some("ca"));
        assert_eq!(ca.subject, CA_COMMON_NAME);

        let admin = parse(&pki.join("operator-admin.crt"));
        assert_eq!(
            Identity::from_der(&admin).unwrap(),
            Identity::Operator {
                name: "admin".into(),
                role: Role::Admin
            }
        );
    }

    fn certs_in(path: &Path) -> Vec<Vec<u8>> {
        let pem = fs::read(path).unwrap();
        x509_parser::pem::Pem::iter_from_buffer(&pem)
            .map(|block| block.unwrap().contents)
            .collect()
    }

    fn rotation_error(err: &anyhow::Error) -> &RotationError {
        err.downcast_ref::<RotationError>()
            .unwrap_or_else(|| panic!("not a rotation error: {err:#}"))
    }

    #[test]
    fn a_rotated_ca_is_bundled_before_the_old_one_and_signs_from_then_on() {
        let dir = tempfile::tempdir().unwrap();
        let dir = dir.path();
        init(dir, &InitOptions::default()).unwrap();
        let old_ca = parse(&dir.join(CA_CERT));
        let old_key = fs::read_to_string(dir.join(CA_KEY)).unwrap();

        let written = rotate_ca(dir).unwrap();
        assert_eq!(written.len(), 4);
        assert_eq!(mode(&dir.join(CA_PREVIOUS_KEY)), 0o600);
        assert_eq!(mode(&dir.join(CA_KEY)), 0o600);
        assert_eq!(
            fs::read_to_string(dir.join(CA_PREVIOUS_KEY)).unwrap(),
            old_key
        );
        assert_ne!(fs::read_to_string(dir.join(CA_KEY)).unwrap(), old_key);
        assert_eq!(
            certs_in(&dir.join(CA_PREVIOUS_CERT)),
            std::slice::from_ref(&old_ca)
        );
        let bundle = certs_in(&dir.join(CA_CERT));
        assert_eq!(bundle.len(), 2);
        assert_eq!(bundle[1], old_ca);
        let (_, new_ca) = X509Certificate::from_der(&bundle[0]).unwrap();
        let (_, old) = X509Certificate::from_der(&old_ca).unwrap();
        assert_ne!(new_ca.subject(), old.subject());
        assert!(new_ca.is_ca());

        let agent = issue_agent(dir, "web-2", &[], 30).unwrap();
        let der = parse(&agent.cert);
        let (_, cert) = X509Certificate::from_der(&der).unwrap();
        assert_eq!(cert.issuer(), new_ca.subject());
        cert.verify_signature(Some(new_ca.public_key())).unwrap();
        assert!(cert.verify_signature(Some(old.public_key())).is_err());

        let again = rotate_ca(dir).unwrap_err();
        assert!(matches!(
            rotation_error(&again),
            RotationError::InProgress { .. }
        ));
        assert_eq!(
            certs_in(&dir.join(CA_CERT)),
            bundle,
            "a refusal changes nothing"
        );
    }

    #[test]
    fn finishing_a_rotation_waits_for_every_certificate_then_drops_the_old_ca() {
        let dir = tempfile::tempdir().unwrap();
        let dir = dir.path();
        init(dir, &InitOptions::default()).unwrap();
        issue_agent(dir, "web-1", &[], 30).unwrap();
        let not_rotating = finish_rotation(dir).unwrap_err();
        assert!(matches!(
            rotation_error(&not_rotating),
            RotationError::NotRotating { .. }
        ));
        rotate_ca(dir).unwrap();
        let bundle = certs_in(&dir.join(CA_CERT));

        let refused = finish_rotation(dir).unwrap_err();
        let RotationError::OldCertificates { files } = rotation_error(&refused) else {
            panic!("{refused:#}");
        };
        assert_eq!(
            files,
            &[
                "agent-web-1.crt",
                "control-plane-client.crt",
                "control-plane.crt",
                "operator-admin.crt"
            ]
        );
        assert!(refused.to_string().contains("agent-web-1.crt"), "{refused}");
        assert_eq!(
            certs_in(&dir.join(CA_CERT)),
            bundle,
            "a refusal changes nothing"
        );
        assert!(dir.join(CA_PREVIOUS_KEY).exists());

        let force = IssueOptions {
            validity_days: 30,
            force: true,
        };
        issue_control_plane_with(dir, "main", &[], &force).unwrap();
        issue_agent_with(dir, "web-1", &[], &force).unwrap();
        let refused = finish_rotation(dir).unwrap_err();
        assert!(
            refused.to_string().contains("operator-admin.crt"),
            "{refused}"
        );
        issue_operator_with(dir, "admin", Role::Admin, &force).unwrap();

        finish_rotation(dir).unwrap();
        assert_eq!(certs_in(&dir.join(CA_CERT)), [bundle[0].clone()]);
        assert!(!dir.join(CA_PREVIOUS_KEY).exists());
        assert!(!dir.join(CA_PREVIOUS_CERT).exists());
        assert_eq!(mode(&dir.join(CA_CERT)), 0o644);
        // Signing goes on with the new CA, and a second rotation may start.
        issue_agent(dir, "web-3", &[], 30).unwrap();
        rotate_ca(dir).unwrap();
    }

    #[test]
    fn a_ca_key_of_another_ca_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let dir = dir.path();
        init(dir, &InitOptions::default()).unwrap();
        fs::write(dir.join(CA_KEY), new_key().unwrap().serialize_pem()).unwrap();
        let err = issue_agent(dir, "web-1", &[], 30).unwrap_err();
        assert!(err.to_string().contains("does not belong"), "{err:#}");
        assert!(!dir.join("agent-web-1.crt").exists());
        assert!(rotate_ca(dir).is_err());
        assert!(!dir.join(CA_PREVIOUS_KEY).exists());
    }

    #[test]
    fn reloaded_ca_issues_verifiable_certificates() {
        let dir = tempfile::tempdir().unwrap();
        init(dir.path(), &InitOptions::default()).unwrap();
        let agent = issue_agent(dir.path(), "web-1", &["192.0.2.1".into()], 30).unwrap();
        assert_eq!(agent.cert, dir.path().join("agent-web-1.crt"));
        assert_eq!(mode(&agent.key), 0o600);
        let operator = issue_operator(dir.path(), "alice", Role::Deployer, 30).unwrap();

        let ca_der = parse(&dir.path().join(CA_CERT));
        let (_, ca) = X509Certificate::from_der(&ca_der).unwrap();
        for (path, identity) in [
            (
                &agent.cert,
                Identity::Agent {
                    host: "web-1".into(),
                },
            ),
            (
                &operator.cert,
                Identity::Operator {
                    name: "alice".into(),
                    role: Role::Deployer,
                },
            ),
        ] {
            let der = parse(path);
            let (_, cert) = X509Certificate::from_der(&der).unwrap();
            assert_eq!(cert.issuer(), ca.subject());
            cert.verify_signature(Some(ca.public_key())).unwrap();
            assert_eq!(Identity::from_der(&der).unwrap(), identity);
            let lifetime =
                cert.validity().not_after.timestamp() - cert.validity().not_before.timestamp();
            assert_eq!(lifetime, 30 * 86_400 + 300);
        }
        let info = describe(&agent.cert).unwrap();
        assert_eq!(info.dns_names, ["web-1"]);
        assert_eq!(info.ip_addresses, ["192.0.2.1"]);
    }

    #[test]
    fn an_agent_certificate_names_only_its_own_host() {
        let dir = tempfile::tempdir().unwrap();
        init(dir.path(), &InitOptions::default()).unwrap();
        let err = issue_agent(dir.path(), "web-3", &["web-2".to_owned()], 30).unwrap_err();
        assert!(
            err.to_string()
                .contains("--san web-2 names another host than web-3"),
            "{err}"
        );
        assert!(
            !dir.path().join("agent-web-3.crt").exists(),
            "nothing written"
        );
        let sans = ["web-3.example.com".to_owned(), "10.0.0.3".to_owned()];
        issue_agent(dir.path(), "web-3", &sans, 30).unwrap();
    }

    #[test]
    fn the_control_plane_is_renewed_from_the_same_ca() {
        let dir = tempfile::tempdir().unwrap();
        init(dir.path(), &InitOptions::default()).unwrap();
        let ca = fs::read(dir.path().join(CA_CERT)).unwrap();
        let before = fs::read(dir.path().join("control-plane.crt")).unwrap();
        let opts = IssueOptions::default();
        let refused = issue_control_plane_with(dir.path(), "main", &[], &opts).unwrap_err();
        assert!(refused.to_string().contains("--force"), "{refused}");
        let forced = IssueOptions {
            force: true,
            ..opts
        };
        issue_control_plane_with(dir.path(), "main", &[], &forced).unwrap();
        assert_ne!(
            fs::read(dir.path().join("control-plane.crt")).unwrap(),
            before
        );
        assert_eq!(fs::read(dir.path().join(CA_CERT)).unwrap(), ca, "same CA");
    }

    #[test]
    fn refuses_to_overwrite_without_force() {
        let dir = tempfile::tempdir().unwrap();
        init(dir.path(), &InitOptions::default()).unwrap();
        let ca_before = fs::read(dir.path().join(CA_KEY)).unwrap();
        let err = init(dir.path(), &InitOptions::default()).unwrap_err();
        assert!(err.to_string().contains("--force"), "{err}");
        assert_eq!(fs::read(dir.path().join(CA_KEY)).unwrap(), ca_before);

        issue_agent(dir.path(), "web-1", &[], 5).unwrap();
        let key_before = fs::read(dir.path().join("agent-web-1.key")).unwrap();
        let err = issue_agent(dir.path(), "web-1", &[], 5).unwrap_err();
        assert!(err.to_string().contains("agent-web-1"), "{err}");
        assert_eq!(
            fs::read(dir.path().join("agent-web-1.key")).unwrap(),
            key_before
        );

        let opts = IssueOptions {
            validity_days: 5,
            force: true,
        };
        issue_agent_with(dir.path(), "web-1", &[], &opts).unwrap();
        assert_ne!(
            fs::read(dir.path().join("agent-web-1.key")).unwrap(),
            key_before
        );

        let forced = InitOptions {
            force: true,
            ..InitOptions::default()
        };
        init(dir.path(), &forced).unwrap();
        assert_ne!(fs::read(dir.path().join(CA_KEY)).unwrap(), ca_before);
        assert_eq!(mode(&dir.path().join(CA_KEY)), 0o600);
    }

    #[test]
    fn rejects_bad_names() {
        let dir = tempfile::tempdir().unwrap();
        init(dir.path(), &InitOptions::default()).unwrap();
        assert!(issue_agent(dir.path(), "Web_1", &[], 5).is_err());
        assert!(issue_agent(dir.path(), "web-1", &["not a name".into()], 5).is_err());
        assert!(issue_operator(dir.path(), "../x", Role::Admin, 5).is_err());
        assert!(issue_operator(dir.path(), "carol", Role::Admin, 0).is_err());
        assert!(issue_agent(&dir.path().join("missing"), "web-1", &[], 5).is_err());
    }
}
