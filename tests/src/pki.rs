//! A PKI minted per test with `slipctl pki`, in a temporary directory.

use std::path::{Path, PathBuf};

use rustls::pki_types::pem::PemObject;

use slipway_proto::{
    identity::Role,
    tls::{self, Peer, TlsMaterial, TlsPaths},
};
use tempfile::TempDir;

/// A CA and the certificates issued from it.
pub struct TestPki {
    dir: TempDir,
}

/// Certificates last this long in tests.
const DAYS: u32 = 2;

impl TestPki {
    /// A new CA with the control plane's certificates and an admin operator.
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        slipctl::pki::init(
            dir.path(),
            &slipctl::pki::InitOptions {
                control_plane_name: "main".into(),
                sans: Vec::new(),
                validity_days: DAYS,
                force: false,
            },
        )
        .expect("pki init");
        Self { dir }
    }

    /// The directory holding every PEM file.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn paths(&self, name: &str) -> TlsPaths {
        TlsPaths {
            ca: self.dir().join("ca.crt"),
            cert: self.dir().join(format!("{name}.crt")),
            key: self.dir().join(format!("{name}.key")),
        }
    }

    /// The control plane's server identity.
    pub fn control_plane(&self) -> TlsPaths {
        self.paths("control-plane")
    }

    /// The control plane's client identity (used to dial agents).
    pub fn control_plane_client(&self) -> TlsPaths {
        self.paths("control-plane-client")
    }

    /// Issues (once) and returns an agent certificate for `host`.
    pub fn agent(&self, host: &str) -> TlsPaths {
        let paths = self.paths(&format!("agent-{host}"));
        if !paths.cert.exists() {
            slipctl::pki::issue_agent(self.dir(), host, &["127.0.0.1".to_owned()], DAYS)
                .expect("issue agent");
        }
        paths
    }

    /// Issues (once) and returns an operator certificate named after its role.
    pub fn operator(&self, role: Role) -> TlsPaths {
        let name = match role {
            Role::Admin => "admin".to_owned(),
            other => format!("{other}-op"),
        };
        let paths = self.paths(&format!("operator-{name}"));
        if !paths.cert.exists() {
            slipctl::pki::issue_operator(self.dir(), &name, role, DAYS).expect("issue operator");
        }
        paths
    }

    /// An operator certificate of `role` named `name`, valid from
    /// `not_before` to `not_after` (in the past or the future, which
    /// `slipctl pki` never issues), signed by this CA.
    pub fn operator_valid(
        &self,
        name: &str,
        role: Role,
        not_before: time::OffsetDateTime,
        not_after: time::OffsetDateTime,
    ) -> TlsPaths {
        use rcgen::{CertificateParams, ExtendedKeyUsagePurpose, Issuer, KeyPair, SanType};
        let read = |name: &str| std::fs::read_to_string(self.file(name)).expect("CA file");
        let ca_key = KeyPair::from_pem(&read("ca.key")).expect("CA key");
        let issuer = Issuer::from_ca_cert_pem(&read("ca.crt"), ca_key).expect("CA");
        let identity = slipway_proto::identity::Identity::Operator {
            name: name.to_owned(),
            role,
        };
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.not_before = not_before;
        params.not_after = not_after;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params
            .subject_alt_names
            .push(SanType::URI(identity.uri().try_into().expect("URI")));
        let key = KeyPair::generate().expect("key");
        let cert = params.signed_by(&key, &issuer).expect("sign");
        let paths = self.paths(&format!("operator-{name}"));
        std::fs::write(&paths.cert, cert.pem()).expect("write certificate");
        std::fs::write(&paths.key, key.serialize_pem()).expect("write key");
        paths
    }

    /// Loads PEM material.
    pub fn material(paths: &TlsPaths) -> TlsMaterial {
        TlsMaterial::load(paths).expect("load PEM files")
    }

    /// Issues new certificates, in place, for the control plane (server and
    /// client) and the agents of `hosts`, from the same CA; returns the
    /// serials of the new control-plane server and agent certificates.
    pub fn renew(&self, hosts: &[&str]) -> Vec<String> {
        let opts = slipctl::pki::IssueOptions {
            validity_days: DAYS,
            force: true,
        };
        let mut serials = Vec::new();
        let [server, _client] =
            slipctl::pki::issue_control_plane_with(self.dir(), "main", &[], &opts)
                .expect("issue control plane");
        serials.push(serial_of(&server.cert));
        for host in hosts {
            let issued =
                slipctl::pki::issue_agent_with(self.dir(), host, &["127.0.0.1".to_owned()], &opts)
                    .expect("issue agent");
            serials.push(serial_of(&issued.cert));
        }
        serials
    }

    /// Path of a file in the PKI directory.
    pub fn file(&self, name: &str) -> PathBuf {
        self.dir().join(name)
    }
}

impl Default for TestPki {
    fn default() -> Self {
        Self::new()
    }
}

/// The `SHA256:` fingerprint of the certificate in a PEM file.
pub fn fingerprint_of(cert: &std::path::Path) -> String {
    let pem = std::fs::read(cert).expect("read certificate");
    let der = rustls::pki_types::CertificateDer::pem_slice_iter(&pem)
        .next()
        .expect("a certificate")
        .expect("PEM");
    tls::fingerprint(&der)
}

/// The serial of the certificate in a PEM file.
pub fn serial_of(cert: &std::path::Path) -> String {
    let pem = std::fs::read(cert).expect("read certificate");
    let der = rustls::pki_types::CertificateDer::pem_slice_iter(&pem)
        .next()
        .expect("a certificate")
        .expect("PEM");
    tls::serial_and_expiry(&der).expect("parse").0
}

/// The serial of the certificate a server presents now: one TLS handshake
/// as `client`, requiring the server to be `peer`.
pub async fn served_serial(addr: &str, peer: Peer, client: &TlsPaths) -> String {
    let material = TestPki::material(client);
    let config = tls::client_config(&material, peer, Default::default());
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
    let stream = tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .expect("TLS handshake");
    let leaf = &stream
        .get_ref()
        .1
        .peer_certificates()
        .expect("certificates")[0];
    tls::serial_and_expiry(leaf).expect("parse").0
}
