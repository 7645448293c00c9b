//! A PKI minted per test with `slipctl pki`, in a temporary directory.

use std::path::{Path, PathBuf};

use slipway_proto::{
    identity::Role,
    tls::{TlsMaterial, TlsPaths},
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

    /// Loads PEM material.
    pub fn material(paths: &TlsPaths) -> TlsMaterial {
        TlsMaterial::load(paths).expect("load PEM files")
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
