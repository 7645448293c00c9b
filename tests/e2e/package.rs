//! What operators install: the release tarball holds every file it should,
//! and the Debian package, installed with `dpkg -i` into a throwaway overlay
//! root, makes the `slipway` user and directories, installs units that pass
//! `systemd-analyze verify`, and its daemons start from its own configs with
//! certificates from its own `slipctl pki` and answer `slipctl status`.
//! Both are built by the scripts in tests/packaging from this build's
//! binaries (the package needs cargo-deb, which `.ci/run` installs).

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    process::Command,
};

use clap::CommandFactory;
use slipway_tests::{control_process::without_test_env, sandbox::Sandbox};

fn workspace() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("root")
}

/// The target directory and cargo profile of this test build.
fn target_and_profile() -> (PathBuf, String) {
    let exe = std::env::current_exe().expect("current exe");
    let deps = exe.parent().expect("deps");
    let profile_dir = deps.parent().expect("profile dir");
    let target = profile_dir.parent().expect("target dir").to_path_buf();
    let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") => "dev".to_owned(),
        Some(other) => other.to_owned(),
        None => panic!("no profile dir in {}", exe.display()),
    };
    (target, profile)
}

/// Runs `tests/packaging/<script>` into `out`; the path it prints last.
fn build(script: &str, out: &Path, extra: &[&str]) -> PathBuf {
    let (target, profile) = target_and_profile();
    let mut command = Command::new(workspace().join("tests/packaging").join(script));
    // The script runs cargo: with the test's variables it would rebuild.
    without_test_env(&mut command);
    let output = command
        .args(["--profile", &profile, "--out"])
        .arg(out)
        .args(extra)
        .env("CARGO_TARGET_DIR", target)
        .output()
        .unwrap_or_else(|err| panic!("run {script}: {err}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{script} failed ({}):\n{stdout}{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let path = PathBuf::from(stdout.lines().last().expect("a path").trim());
    assert!(path.is_file(), "{script} printed {}", path.display());
    path
}

fn version() -> &'static str {
    env!("CARGO_PKG_VERSION")
}

#[test]
fn the_release_tarball_holds_the_binaries_units_configs_completions_and_man_pages() {
    let out = tempfile::tempdir().expect("temp dir");
    let tarball = build("release-tarball.sh", out.path(), &[]);
    let name = tarball
        .file_name()
        .and_then(|n| n.to_str())
        .expect("name")
        .strip_suffix(".tar.gz")
        .expect(".tar.gz")
        .to_owned();
    assert!(
        name.starts_with(&format!("slipway-{}-", version())),
        "{name}"
    );
    let listing = Command::new("tar")
        .arg("-tvzf")
        .arg(&tarball)
        .output()
        .expect("tar");
    assert!(listing.status.success());
    let listing = String::from_utf8_lossy(&listing.stdout).into_owned();
    let mut files = BTreeSet::new();
    let mut subcommand_pages = BTreeSet::new();
    for line in listing.lines() {
        let mode = line.split_whitespace().next().expect("mode");
        let path = line.split_whitespace().last().expect("path");
        let inner = path
            .strip_prefix(&format!("{name}/"))
            .unwrap_or_else(|| panic!("{path} is outside {name}/"));
        if inner.is_empty() || inner.ends_with('/') {
            continue;
        }
        if inner.starts_with("bin/") {
            assert_eq!(mode, "-rwxr-xr-x", "{inner}");
        }
        match inner.strip_prefix("man/man1/slipctl-") {
            Some(page) => {
                subcommand_pages.insert(page.to_owned());
            }
            None => {
                files.insert(inner.to_owned());
            }
        }
    }
    let expected: BTreeSet<String> = [
        "README.md",
        "bin/slipctl",
        "bin/slipway-agent",
        "bin/slipway-control-plane",
        "completions/_slipctl",
        "completions/slipctl.bash",
        "completions/slipctl.fish",
        "config/agent.toml",
        "config/control-plane.toml",
        "man/man1/slipctl.1",
        "man/man1/slipway-agent.1",
        "man/man1/slipway-control-plane.1",
        "systemd/slipway-agent.service",
        "systemd/slipway-control-plane.service",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    assert_eq!(files, expected);
    // One page per subcommand, as `slipctl man` writes them.
    let pages = tempfile::tempdir().expect("temp dir");
    let written: BTreeSet<String> =
        slipctl::commands::man::write_pages(pages.path(), slipctl::Cli::command())
            .expect("write pages")
            .into_iter()
            .filter_map(|page| page.strip_prefix("slipctl-").map(str::to_owned))
            .collect();
    assert!(written.contains("deploy.1") && written.contains("pki-init.1"));
    assert_eq!(subcommand_pages, written);
}

/// `KEY=VALUE` of each `Environment=`, the `User=` and the `ExecStart=`
/// command line of a unit file.
fn unit_start(text: &str) -> (Vec<(String, String)>, Option<String>, Vec<String>) {
    let mut env = Vec::new();
    let mut user = None;
    let mut exec = Vec::new();
    for line in text.lines() {
        if let Some(pair) = line.strip_prefix("Environment=") {
            let (key, value) = pair.split_once('=').expect("KEY=VALUE");
            env.push((key.to_owned(), value.to_owned()));
        } else if let Some(name) = line.strip_prefix("User=") {
            user = Some(name.to_owned());
        } else if let Some(command) = line.strip_prefix("ExecStart=") {
            exec = command.split_whitespace().map(str::to_owned).collect();
        }
    }
    assert!(!exec.is_empty(), "no ExecStart in\n{text}");
    (env, user, exec)
}

/// Starts a daemon the way its installed unit does, on loopback ports of
/// the kernel's choosing and without the fixed metrics port.
fn start_as_unit(sandbox: &Sandbox, unit: &str, marker: &str) -> slipway_tests::sandbox::Daemon {
    let text = sandbox.run(&["cat", &format!("/usr/lib/systemd/system/{unit}")]);
    let (env, user, exec) = unit_start(&text);
    let mut args: Vec<&str> = exec.iter().map(String::as_str).collect();
    args.extend(["--listen", "127.0.0.1:0", "--metrics-listen", "off"]);
    sandbox.start_daemon(user.as_deref(), &env, &args, marker)
}

#[test]
fn the_deb_installs_its_user_dirs_and_units_and_its_daemons_start_from_its_configs() {
    let out = tempfile::tempdir().expect("temp dir");
    let deb = build("build-deb.sh", out.path(), &["--fast"]);
    let sandbox = Sandbox::new();
    sandbox.run(&["dpkg", "-i", deb.to_str().expect("utf-8 path")]);

    let passwd = sandbox.run(&["getent", "passwd", "slipway"]);
    let fields: Vec<&str> = passwd.trim().split(':').collect();
    assert_eq!(
        fields[5..],
        ["/var/lib/slipway", "/usr/sbin/nologin"],
        "{passwd}"
    );
    let modes = sandbox.run(&[
        "stat",
        "-c",
        "%n %U:%G %a",
        "/etc/slipway",
        "/etc/slipway/pki",
        "/var/lib/slipway",
        "/var/lib/slipway-agent",
    ]);
    assert_eq!(
        modes.lines().collect::<Vec<_>>(),
        [
            "/etc/slipway root:slipway 750",
            "/etc/slipway/pki slipway:slipway 700",
            "/var/lib/slipway slipway:slipway 700",
            "/var/lib/slipway-agent root:root 700",
        ]
    );
    let conffiles = sandbox.run(&["dpkg-query", "-W", "-f", "${Conffiles}", "slipway"]);
    assert!(
        conffiles.contains("/etc/slipway/control-plane.toml"),
        "{conffiles}"
    );
    assert!(conffiles.contains("/etc/slipway/agent.toml"), "{conffiles}");

    let units = [
        "/usr/lib/systemd/system/slipway-control-plane.service",
        "/usr/lib/systemd/system/slipway-agent.service",
    ];
    let verify = sandbox.output(None, &["systemd-analyze", "verify", units[0], units[1]]);
    let stderr = String::from_utf8_lossy(&verify.stderr);
    assert!(
        verify.status.success() && stderr.trim().is_empty(),
        "{stderr}"
    );

    let complete = sandbox.run(&[
        "bash",
        "-c",
        "source /usr/share/bash-completion/completions/slipctl && complete -p slipctl",
    ]);
    assert!(complete.contains("slipctl"), "{complete}");
    for page in [
        "slipctl",
        "slipctl-deploy",
        "slipway-control-plane",
        "slipway-agent",
    ] {
        sandbox.run(&["test", "-s", &format!("/usr/share/man/man1/{page}.1")]);
    }

    // As README's "Install" says: certificates by the slipway user, the
    // directories the example configs name.
    let pki = ["slipctl", "pki"];
    let as_slipway = |args: &[&str]| {
        let output = sandbox.output(Some("slipway"), &[&pki[..], args].concat());
        assert!(
            output.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    };
    as_slipway(&["init", "--dir", "/etc/slipway/pki", "--san", "127.0.0.1"]);
    as_slipway(&[
        "issue",
        "agent",
        "web-1.example.com",
        "--dir",
        "/etc/slipway/pki",
        "--san",
        "127.0.0.1",
    ]);
    sandbox.run(&["mkdir", "-p", "/srv/git", "/opt/apps"]);

    let cp = start_as_unit(
        &sandbox,
        "slipway-control-plane.service",
        "control plane serving",
    );
    let agent = start_as_unit(&sandbox, "slipway-agent.service", "slipway-agent listening");
    let endpoint = format!("https://{}", cp.addr);
    let agent_addr = agent.addr.to_string();
    let slipctl = |args: &[&str]| {
        let base = [
            "slipctl",
            "--endpoint",
            &endpoint,
            "--pki-dir",
            "/etc/slipway/pki",
        ];
        sandbox.run(&[&base[..], args].concat())
    };
    slipctl(&["env", "create", "prod"]);
    slipctl(&[
        "host",
        "add",
        "web-1.example.com",
        "--address",
        &agent_addr,
        "--env",
        "prod",
    ]);
    let status = slipctl(&["status"]);
    assert!(status.contains("web-1.example.com"), "{status}");
}
