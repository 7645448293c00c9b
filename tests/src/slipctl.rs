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

/// `slipctl` with nothing from the caller's environment that changes what
/// it does: no context, colour, output format or connection variables, and
/// a config home of its own (`config_home`, usually a temp dir).
pub fn isolated(config_home: &Path) -> Command {
    let mut command = Command::new(binary());
    for var in [
        "SLIPWAY_CONTEXT",
        "SLIPWAY_ENDPOINT",
        "SLIPWAY_PKI_DIR",
        "SLIPWAY_CA",
        "SLIPWAY_CERT",
        "SLIPWAY_KEY",
        "SLIPWAY_SERVER_NAME",
        "SLIPWAY_OUTPUT",
        "SLIPWAY_COLOR",
        "CLICOLOR_FORCE",
    ] {
        command.env_remove(var);
    }
    command.env("XDG_CONFIG_HOME", config_home);
    command
}

/// `slipctl` as an operator of `role` against `cluster`: the connection
/// flags set, `args` to add.
pub fn command(cluster: &Cluster, role: Role) -> Command {
    let operator = cluster.pki.operator(role);
    let mut command = isolated(&cluster.pki.dir().join("no-config"));
    command
        .arg("--endpoint")
        .arg(cluster.addr())
        .arg("--ca")
        .arg(&operator.ca)
        .arg("--cert")
        .arg(&operator.cert)
        .arg("--key")
        .arg(&operator.key);
    command
}

/// Runs `slipctl` as an operator of `role` against `cluster` with `args`;
/// its exit success, stdout and stderr.
pub fn run(cluster: &Cluster, role: Role, args: &[&str]) -> (bool, String, String) {
    let output = command(cluster, role)
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
