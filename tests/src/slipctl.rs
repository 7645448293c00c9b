//! The real `slipctl` binary, run against a test cluster as an operator.

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::OnceLock,
};

use slipway_proto::identity::Role;

use crate::{Cluster, control_process::cargo_build};

/// The `slipctl` binary of this build, built on first use.
pub fn binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| cargo_build("slipctl", "slipctl"))
}

/// Runs `slipctl` as an operator of `role` against `cluster` with `args`;
/// its exit success, stdout and stderr.
pub fn run(cluster: &Cluster, role: Role, args: &[&str]) -> (bool, String, String) {
    let operator = cluster.pki.operator(role);
    let output = Command::new(binary())
        .arg("--endpoint")
        .arg(cluster.addr())
        .arg("--ca")
        .arg(&operator.ca)
        .arg("--cert")
        .arg(&operator.cert)
        .arg("--key")
        .arg(&operator.key)
        .args(args)
        .env("NO_COLOR", "1")
        // Never a terminal to answer a confirmation on.
        .stdin(Stdio::null())
        .output()
        .expect("run slipctl");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}
