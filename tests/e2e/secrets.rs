//! Secrets end to end, with a real control-plane process (its key in a
//! key file) and two real agent processes: a value set with `slipctl secret
//! set` (from stdin), deployed, readable by the app in its 0600 file and by
//! its hooks and health check; changed and applied with `deploy
//! --secrets-only` without a new release; a viewer can neither set nor
//! unset one; and the canary value absent from the control plane's and the
//! agents' data dirs (the store's files), their logs, every event, audit
//! entry and `-o json` output.

use std::{io::Write, os::unix::fs::PermissionsExt, path::Path, process::Stdio};

use slipway_proto::{
    agent::v1::{ActivationSpec, HealthCheck, Hook, HookPoint},
    control::v1::DeploymentKind,
    identity::Role,
};
use slipway_tests::{
    Cluster, assert_succeeded,
    cluster::{APP, ENV},
    slipctl,
};

/// Runs slipctl as `role` off the async runtime, with `stdin` as its input.
async fn slipctl_in(
    cluster: &Cluster,
    role: Role,
    args: &[&str],
    stdin: &str,
) -> (bool, String, String) {
    tokio::task::block_in_place(|| {
        let mut child = slipctl::command(cluster, role)
            .args(args)
            .env("NO_COLOR", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run slipctl");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(stdin.as_bytes())
            .expect("write stdin");
        let output = child.wait_with_output().expect("slipctl ends");
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    })
}

async fn slipctl_as(cluster: &Cluster, role: Role, args: &[&str]) -> (bool, String, String) {
    slipctl_in(cluster, role, args, "").await
}

/// `n` random bytes.
fn random(n: usize) -> Vec<u8> {
    use std::io::Read;
    let mut bytes = vec![0; n];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .expect("read /dev/urandom");
    bytes
}

/// SHA-256 of `text` in hex, as `sha256sum` prints it.
fn sha(text: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(text.as_bytes()))
}

/// Hooks and a check that read API_TOKEN from their environment and from
/// the release's `.env`, and say the hash when both agree; the commands
/// hold no value.
fn activation() -> ActivationSpec {
    let compare = "env=$(printf %s \"$API_TOKEN\" | sha256sum | cut -c1-64); \
                   file=$(. ./.env; printf %s \"$API_TOKEN\" | sha256sum | cut -c1-64); \
                   [ \"$env\" = \"$file\" ] && echo \"token $env\"";
    let hook = |point: HookPoint, name: &str| Hook {
        point: point as i32,
        name: name.into(),
        command: compare.into(),
        timeout_seconds: 30,
    };
    ActivationSpec {
        hooks: vec![
            hook(HookPoint::BeforeActivate, "before"),
            hook(HookPoint::AfterActivate, "after"),
        ],
        health_check: Some(HealthCheck {
            command: format!("{compare} && test \"$(stat -c %a .env)\" = 600"),
            attempts: 1,
            timeout_seconds: 30,
            ..HealthCheck::default()
        }),
        ..ActivationSpec::default()
    }
}

/// Every file under `dir` holding `needle`.
fn files_holding(dir: &Path, needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() && !path.is_symlink() {
            found.extend(files_holding(&path, needle));
        } else if std::fs::read(&path)
            .is_ok_and(|bytes| bytes.windows(needle.len()).any(|w| w == needle.as_bytes()))
        {
            found.push(path.display().to_string());
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_is_shipped_to_a_private_file_and_hooks_and_never_shown() {
    let keys = tempfile::tempdir().unwrap();
    let key_file = keys.path().join("secrets.key");
    std::fs::write(&key_file, random(32)).unwrap();
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let mut cluster = Cluster::builder()
        .agents(2)
        .process_agents()
        .process_control_plane()
        .control_plane_env(
            "SLIPWAY_CP_SECRETS_KEY_FILE",
            &key_file.display().to_string(),
        )
        .activation(activation())
        .start()
        .await;
    let canary = format!("canary-{}", hex::encode(random(8)));
    let first = format!("{canary}-one");
    let mut outputs = Vec::new();

    // Set from stdin (with the newline a shell adds); listed without value.
    let set = ["secret", "set", APP, "--env", ENV, "API_TOKEN"];
    let (ok, out, err) = slipctl_in(&cluster, Role::Deployer, &set, &format!("{first}\n")).await;
    assert!(ok, "{err}");
    assert!(out.contains("version 1"), "{out}");
    outputs.push(out + &err);
    let list = ["-o", "json", "secret", "list", APP, "--env", ENV];
    let (ok, out, err) = slipctl_as(&cluster, Role::Viewer, &list).await;
    assert!(ok, "{err}");
    let listed: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(listed["secrets"][0]["name"], "API_TOKEN");
    assert_eq!(listed["secrets"][0]["version"], "1");
    assert!(
        listed["secrets"][0]["setBy"]
            .as_str()
            .unwrap()
            .contains("deployer")
    );
    outputs.push(out);

    // A viewer can neither set nor unset one.
    let viewer_set = ["secret", "set", APP, "--env", ENV, "API_TOKEN"];
    let (ok, out, err) = slipctl_in(&cluster, Role::Viewer, &viewer_set, "forged").await;
    assert!(!ok, "a viewer set a secret: {out}");
    assert!(err.to_lowercase().contains("permission"), "{err}");
    let unset = ["secret", "unset", APP, "--env", ENV, "API_TOKEN"];
    let (ok, _, err) = slipctl_as(&cluster, Role::Viewer, &unset).await;
    assert!(!ok);
    assert!(err.to_lowercase().contains("permission"), "{err}");
    // Bad input changes nothing and never echoes the value.
    let bad = ["secret", "set", APP, "--env", ENV, "SLIPWAY_X"];
    let (ok, _, err) = slipctl_in(&cluster, Role::Deployer, &bad, &canary).await;
    assert!(!ok);
    assert!(err.contains("SLIPWAY_"), "{err}");
    outputs.push(err);

    // Deployed: each host has it in a 0600 .env, and the hooks and the
    // check saw the same value in their environment and in the file.
    cluster.commit_text("v1");
    let deploy = ["-o", "json", "deploy", APP, "--env", ENV, "--ref", "main"];
    let (ok, out, err) = slipctl_as(&cluster, Role::Deployer, &deploy).await;
    assert!(ok, "{out}{err}");
    outputs.push(out + &err);
    let history = cluster.history().await;
    let deployed = history.first().unwrap().clone();
    assert_succeeded(&deployed);
    let (events, record) = cluster.watch(&deployed.id).await;
    assert_eq!(record.secrets.len(), 1);
    assert_eq!(
        (record.secrets[0].name.as_str(), record.secrets[0].version),
        ("API_TOKEN", 1)
    );
    let said = |events: &[slipway_proto::control::v1::DeploymentEvent], text: &str| {
        events.iter().filter(|e| e.message.contains(text)).count()
    };
    // Two hosts: before, after and the check each say the hash.
    assert_eq!(
        said(&events, &format!("token {}", sha(&first))),
        6,
        "{events:#?}"
    );
    for agent in &cluster.agents {
        let file = agent.release_dir(&deployed.release).join(".env");
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{}", file.display());
        let text = std::fs::read_to_string(&file).unwrap();
        assert_eq!(text, format!("API_TOKEN=\"{first}\"\n"));
    }
    let (ok, out, err) = slipctl_as(
        &cluster,
        Role::Viewer,
        &["-o", "json", "deployment", "show", &deployed.id],
    )
    .await;
    assert!(ok, "{err}");
    assert!(out.contains("API_TOKEN"), "{out}");
    outputs.push(out);
    let mut all_events = events;

    // A new value, applied without a new release.
    let second = format!("{canary}-two");
    let (ok, _, err) = slipctl_in(&cluster, Role::Deployer, &set, &second).await;
    assert!(ok, "{err}");
    let only = ["-o", "json", "deploy", APP, "--env", ENV, "--secrets-only"];
    let (ok, out, err) = slipctl_as(&cluster, Role::Deployer, &only).await;
    assert!(ok, "{out}{err}");
    outputs.push(out + &err);
    let applied = cluster.history().await.first().unwrap().clone();
    assert_succeeded(&applied);
    assert_eq!(applied.kind(), DeploymentKind::Secrets);
    assert_eq!(applied.release, deployed.release, "no new release");
    assert_eq!(applied.secrets[0].version, 2);
    let (events, _) = cluster.watch(&applied.id).await;
    // After-activate hook and check on each host: no before-activate.
    assert_eq!(
        said(&events, &format!("token {}", sha(&second))),
        4,
        "{events:#?}"
    );
    for agent in &cluster.agents {
        assert_eq!(agent.current().as_deref(), Some(deployed.release.as_str()));
        let file = agent.release_dir(&deployed.release).join(".env");
        assert_eq!(
            std::fs::read_to_string(&file).unwrap(),
            format!("API_TOKEN=\"{second}\"\n")
        );
    }
    let releases = cluster.releases_of_app().await;
    assert_eq!(releases.len(), 1, "a secret changes no release");
    all_events.extend(events);
    let (ok, out, err) = slipctl_as(
        &cluster,
        Role::Viewer,
        &["-o", "json", "history", "--app", APP, "--env", ENV],
    )
    .await;
    assert!(ok, "{err}");
    outputs.push(out);

    // The canary is nowhere but in the releases' files.
    for event in &all_events {
        assert!(
            !event.message.contains(&canary),
            "an event holds the value: {event:?}"
        );
    }
    let audit = cluster.audit_trail().await;
    let sets: Vec<_> = (audit.iter())
        .filter(|a| a.method.ends_with("SecretService/SetSecret"))
        .collect();
    assert!(
        sets.iter().any(|a| a.role == "viewer"),
        "the refusal is audited: {sets:#?}"
    );
    assert!(
        sets.iter().any(|a| a.target.contains("secret API_TOKEN")),
        "{sets:#?}"
    );
    for entry in &audit {
        assert!(!format!("{entry:?}").contains(&canary), "audit: {entry:?}");
    }
    for output in &outputs {
        assert!(
            !output.contains(&canary),
            "output holds the value: {output}"
        );
    }
    let cp_log = cluster.control_plane_process().log();
    assert!(!cp_log.contains(&canary), "control plane log: {cp_log}");
    let mut logs = Vec::new();
    for agent in &mut cluster.agents {
        logs.push(agent.process().log());
    }
    for (agent, log) in cluster.agents.iter().zip(&logs) {
        assert!(!log.contains(&canary), "{} log: {log}", agent.name);
        let found = files_holding(&agent.data_dir, &canary);
        assert!(
            found.is_empty(),
            "{}'s data dir holds the value: {found:?}",
            agent.name
        );
    }
    // The control plane's store, flushed by every commit.
    let found = files_holding(&cluster.data_dir, &canary);
    assert!(
        found.is_empty(),
        "the control plane's data dir holds the value: {found:?}"
    );
    cluster.shutdown().await;
}
