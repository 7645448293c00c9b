//! A real etcd cluster per test: `members` processes of `/usr/bin/etcd` on
//! free loopback ports, data in a temporary directory, mutual TLS on both
//! client and peer URLs with certificates minted for the test (one CA, a
//! certificate per member for 127.0.0.1, a client certificate).
//!
//! ```ignore
//! let etcd = EtcdCluster::start(3);
//! let backend = EtcdBackend::open(&etcd.settings())?;
//! etcd.kill(1);
//! etcd.restart(1);
//! ```

use std::{
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use slipway_control_plane::store::{EtcdBackend, EtcdSettings, EtcdTls};
use tempfile::TempDir;

/// The etcd server binary (Debian's `etcd-server`).
pub const ETCD: &str = "/usr/bin/etcd";
/// Operations per transaction the test members take (and the backend is
/// set to): room for the largest deployment record (see the README).
pub const MAX_TXN_OPS: usize = 8192;
/// How long a cluster may take to answer after its members start.
const STARTUP: Duration = Duration::from_secs(60);

/// One member's ports and process.
struct Member {
    name: String,
    client_port: u16,
    peer_port: u16,
    child: Option<Child>,
}

/// A running etcd cluster; dropping it kills every member.
pub struct EtcdCluster {
    dir: TempDir,
    members: Vec<Member>,
}

impl EtcdCluster {
    /// Starts `members` members and waits until each answers.
    pub fn start(members: usize) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        mint(dir.path(), members);
        let members = (0..members)
            .map(|i| Member {
                name: format!("m{i}"),
                client_port: free_port(),
                peer_port: free_port(),
                child: None,
            })
            .collect();
        let mut cluster = Self { dir, members };
        for i in 0..cluster.members.len() {
            cluster.spawn(i);
        }
        for i in 0..cluster.members.len() {
            cluster.wait_member(i);
        }
        cluster
    }

    /// The client URLs of every member.
    pub fn endpoints(&self) -> Vec<String> {
        self.members
            .iter()
            .map(|m| client_url(m.client_port))
            .collect()
    }

    /// The client's CA, certificate and key.
    pub fn client_tls(&self) -> EtcdTls {
        EtcdTls {
            ca: self.file("ca.crt"),
            cert: self.file("client.crt"),
            key: self.file("client.key"),
        }
    }

    /// Backend settings for this cluster (prefix `slipway`).
    pub fn settings(&self) -> EtcdSettings {
        let mut settings = EtcdSettings::new(self.endpoints());
        settings.tls = Some(self.client_tls());
        settings.max_txn_ops = MAX_TXN_OPS;
        settings
    }

    /// The `[store.etcd]` table of a control plane's configuration.
    pub fn config_toml(&self, prefix: &str) -> String {
        let tls = self.client_tls();
        let endpoints: Vec<String> = self.endpoints().iter().map(|e| format!("{e:?}")).collect();
        format!(
            "[store.etcd]\nendpoints = [{}]\nprefix = {prefix:?}\nmax_txn_ops = {MAX_TXN_OPS}\n\
             tls = {{ ca = {:?}, cert = {:?}, key = {:?} }}\n",
            endpoints.join(", "),
            tls.ca,
            tls.cert,
            tls.key,
        )
    }

    /// The environment that points a control plane process at this cluster
    /// under `prefix` (see `Builder::control_plane_env`).
    pub fn control_plane_env(&self, prefix: &str) -> Vec<(&'static str, String)> {
        let tls = self.client_tls();
        let path = |p: PathBuf| p.display().to_string();
        vec![
            ("SLIPWAY_CP_ETCD_ENDPOINTS", self.endpoints().join(",")),
            ("SLIPWAY_CP_ETCD_PREFIX", prefix.to_owned()),
            ("SLIPWAY_CP_ETCD_MAX_TXN_OPS", MAX_TXN_OPS.to_string()),
            ("SLIPWAY_CP_ETCD_TLS_CA", path(tls.ca)),
            ("SLIPWAY_CP_ETCD_TLS_CERT", path(tls.cert)),
            ("SLIPWAY_CP_ETCD_TLS_KEY", path(tls.key)),
        ]
    }

    /// SIGKILLs member `i`.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.members[i].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts member `i` again on its data and waits until it answers.
    pub fn restart(&mut self, i: usize) {
        self.kill(i);
        self.spawn(i);
        self.wait_member(i);
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn spawn(&mut self, i: usize) {
        let initial: Vec<String> = self
            .members
            .iter()
            .map(|m| format!("{}=https://127.0.0.1:{}", m.name, m.peer_port))
            .collect();
        let m = &self.members[i];
        let (cert, key) = (
            self.file(&format!("{}.crt", m.name)),
            self.file(&format!("{}.key", m.name)),
        );
        let log = std::fs::File::create(self.file(&format!("{}.log", m.name))).expect("log file");
        let client = client_url(m.client_port);
        let peer = format!("https://127.0.0.1:{}", m.peer_port);
        let child = Command::new(ETCD)
            .args(["--name", &m.name])
            .arg("--data-dir")
            .arg(self.file(&format!("{}.data", m.name)))
            .args([
                "--listen-client-urls",
                &client,
                "--advertise-client-urls",
                &client,
            ])
            .args([
                "--listen-peer-urls",
                &peer,
                "--initial-advertise-peer-urls",
                &peer,
            ])
            .args(["--initial-cluster", &initial.join(",")])
            .args([
                "--initial-cluster-state",
                "new",
                "--initial-cluster-token",
                "slipway-test",
            ])
            .arg("--cert-file")
            .arg(&cert)
            .arg("--key-file")
            .arg(&key)
            .arg("--trusted-ca-file")
            .arg(self.file("ca.crt"))
            .arg("--client-cert-auth")
            .arg("--peer-cert-file")
            .arg(&cert)
            .arg("--peer-key-file")
            .arg(&key)
            .arg("--peer-trusted-ca-file")
            .arg(self.file("ca.crt"))
            .arg("--peer-client-cert-auth")
            .args(["--max-txn-ops", &MAX_TXN_OPS.to_string()])
            .args([
                "--logger",
                "zap",
                "--log-outputs",
                "stderr",
                "--log-level",
                "warn",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|err| {
                panic!("cannot start {ETCD} (apt-get install etcd-server): {err}")
            });
        self.members[i].child = Some(child);
    }

    /// Polls member `i` with a real request until it answers.
    fn wait_member(&mut self, i: usize) {
        let mut settings = self.settings();
        settings.endpoints = vec![client_url(self.members[i].client_port)];
        settings.dial_timeout = Duration::from_secs(2);
        let started = Instant::now();
        loop {
            match EtcdBackend::open(&settings) {
                Ok(_) => return,
                Err(err) if started.elapsed() < STARTUP => {
                    if let Some(Ok(Some(status))) =
                        self.members[i].child.as_mut().map(Child::try_wait)
                    {
                        panic!("etcd member {i} exited with {status}: {}", self.log(i));
                    }
                    let _ = err;
                    // Each attempt waits on the network up to its dial
                    // timeout; a refused connection returns at once.
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(err) => panic!("etcd member {i} does not answer: {err:?}\n{}", self.log(i)),
            }
        }
    }

    fn log(&self, i: usize) -> String {
        std::fs::read_to_string(self.file(&format!("{}.log", self.members[i].name)))
            .unwrap_or_default()
    }
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            self.kill(i);
        }
    }
}

fn client_url(port: u16) -> String {
    format!("https://127.0.0.1:{port}")
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("address").port()
}

/// Writes `ca.crt`, `m<i>.crt`/`.key` (server and peer, 127.0.0.1) and
/// `client.crt`/`.key` into `dir`.
fn mint(dir: &Path, members: usize) {
    let ca_key = KeyPair::generate().expect("key");
    let mut ca = CertificateParams::default();
    ca.distinguished_name
        .push(DnType::CommonName, "etcd test CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    validity(&mut ca);
    let ca_cert = ca.self_signed(&ca_key).expect("self-signed");
    std::fs::write(dir.join("ca.crt"), ca_cert.pem()).expect("write CA");
    let issuer = Issuer::new(ca, ca_key);
    let issue = |name: &str, usages: Vec<ExtendedKeyUsagePurpose>| {
        let mut params = CertificateParams::new(vec!["localhost".to_owned()]).expect("params");
        params.distinguished_name.push(DnType::CommonName, name);
        params
            .subject_alt_names
            .push(SanType::IpAddress([127, 0, 0, 1].into()));
        params.extended_key_usages = usages;
        validity(&mut params);
        let key = KeyPair::generate().expect("key");
        let cert = params.signed_by(&key, &issuer).expect("sign");
        std::fs::write(dir.join(format!("{name}.crt")), cert.pem()).expect("write certificate");
        std::fs::write(dir.join(format!("{name}.key")), key.serialize_pem()).expect("write key");
    };
    use ExtendedKeyUsagePurpose::{ClientAuth, ServerAuth};
    for i in 0..members {
        issue(&format!("m{i}"), vec![ServerAuth, ClientAuth]);
    }
    issue("client", vec![ClientAuth]);
}

fn validity(params: &mut CertificateParams) {
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::hours(1);
    params.not_after = now + time::Duration::days(2);
}
