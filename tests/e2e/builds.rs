//! Builds on the control plane: a project whose build writes `dist/` is
//! deployed as the files of `dist/` only (modes and symlinks kept), its
//! output lines are the deployment's `build` events, it ran as the
//! unprivileged build user, and a second deploy of the same commit reuses
//! the build without running the command. A failing build fails the
//! deployment before any host is touched and frees the lock; a build past
//! its timeout is killed with every process it started. A deploy of a ref a
//! remote source's mirror lacks shows the fetch as `fetch` events.

use std::os::unix::fs::PermissionsExt as _;

use slipway_proto::{
    control::v1::{App, BuildSpec, DeploymentEvent, DeploymentStatus, UpdateAppRequest},
    identity::Role,
};
use slipway_tests::{
    Cluster, assert_succeeded, cluster::APP, git_server::GitDaemon, repo::Change, slipctl,
};
use tonic::Code;

/// A build that turns `src/` into `dist/`: a file, an executable, a
/// symlink inside, the user it ran as; and a line appended to $COUNTER.
const BUILD_SH: &str = r#"#!/bin/sh
set -e
echo "building from $(cat src/app.txt)"
echo "a warning on stderr" >&2
mkdir -p dist/bin
tr a-z A-Z < src/app.txt > dist/index.txt
printf '#!/bin/sh\necho run\n' > dist/bin/run
chmod +x dist/bin/run
ln -s index.txt dist/latest.txt
id -un > dist/user.txt
echo built >> "$COUNTER"
"#;

fn spec(command: &str, timeout_seconds: u32) -> BuildSpec {
    BuildSpec {
        command: command.into(),
        output: "dist".into(),
        env: Default::default(),
        timeout_seconds,
    }
}

fn messages<'a>(events: &'a [DeploymentEvent], stage: &str) -> Vec<&'a str> {
    events
        .iter()
        .filter(|e| e.stage == stage)
        .map(|e| e.message.as_str())
        .collect()
}

/// A directory the build user may write into, outside its scratch.
fn writable_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).expect("chmod");
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_build_deploys_only_its_output_logs_as_events_and_is_built_once_per_commit() {
    let cluster = Cluster::builder().agents(2).start().await;
    let commit = cluster.repo.commit(
        "a project to build",
        &[
            Change::File("src/app.txt", b"hello\n"),
            Change::Exec("build.sh", BUILD_SH.as_bytes()),
        ],
    );
    let counter_dir = writable_dir();
    let counter = counter_dir.path().join("runs");
    let (ok, out, err) = slipctl::run(
        &cluster,
        Role::Admin,
        &[
            "app",
            "set-build",
            APP,
            "--build-command",
            "./build.sh",
            "--build-output",
            "dist",
            "--build-env",
            &format!("COUNTER={}", counter.display()),
            "--build-timeout",
            "1m",
        ],
    );
    assert!(ok && out.contains("build set"), "{out}{err}");

    let (events, deployed) = cluster.deploy("main").await;
    assert_succeeded(&deployed);
    assert_eq!(events[0].stage, "preparing", "{:?}", events[0]);
    assert_eq!(deployed.commit, commit);
    let build = messages(&events, "build");
    assert!(build.contains(&"building from hello"), "{build:?}");
    let stderr = events
        .iter()
        .find(|e| e.stage == "build" && e.output == "stderr")
        .expect("a stderr line");
    assert_eq!(stderr.message, "a warning on stderr");
    assert!(
        build
            .iter()
            .any(|m| m.starts_with("build succeeded: 4 files")),
        "{build:?}"
    );
    // Building came before any host did anything.
    let first_host = events
        .iter()
        .position(|e| !e.host.is_empty())
        .expect("host events");
    let last_build = events
        .iter()
        .rposition(|e| e.stage == "build")
        .expect("build events");
    assert!(last_build < first_host);

    for agent in &cluster.agents {
        let current = agent.app_root().join("current");
        let read = |p: &str| std::fs::read_to_string(current.join(p)).expect(p);
        assert_eq!(read("index.txt"), "HELLO\n");
        assert_eq!(
            read("user.txt"),
            "nobody\n",
            "the build ran as the build user"
        );
        let mode = std::fs::metadata(current.join("bin/run"))
            .expect("run")
            .permissions()
            .mode();
        assert_eq!(mode & 0o111, 0o111, "{mode:o}");
        let link = std::fs::read_link(current.join("latest.txt")).expect("symlink");
        assert_eq!(link.to_str(), Some("index.txt"));
        assert!(!current.join("src").exists() && !current.join("build.sh").exists());
    }
    assert_eq!(
        std::fs::read_to_string(&counter).expect("counter"),
        "built\n"
    );

    // The same commit again: the build is reused, the command not run.
    let (events, again) = cluster.deploy("main").await;
    assert_succeeded(&again);
    let build = messages(&events, "build");
    assert_eq!(build.len(), 1, "{build:?}");
    assert!(build[0].starts_with("build cached: "), "{build:?}");
    assert_eq!(again.release, deployed.release);
    let (ok, out, err) = slipctl::run(
        &cluster,
        Role::Deployer,
        &["release", "create", APP, "--ref", "main", "--build"],
    );
    assert!(ok && out.starts_with("build cached: "), "{out}{err}");
    assert!(out.contains("building from hello"), "the log tail: {out}");
    assert_eq!(
        std::fs::read_to_string(&counter).expect("counter"),
        "built\n"
    );

    // An output leaving the checkout is refused and changes nothing.
    let bad = App {
        build: Some(BuildSpec {
            output: "../etc".into(),
            ..spec("true", 0)
        }),
        ..cluster.update_app(|_| {}).await
    };
    let status = cluster
        .apps(Role::Admin)
        .await
        .update_app(UpdateAppRequest { app: Some(bad) })
        .await
        .expect_err("refused");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    let app = cluster.update_app(|_| {}).await;
    assert_eq!(app.build.expect("kept").output, "dist");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_build_fails_the_deployment_before_any_host_is_touched() {
    let cluster = Cluster::builder().agents(2).start().await;
    cluster.commit_text("v1");
    let command = "echo compiling; echo 'boom: no such module' >&2; exit 1";
    cluster
        .update_app(|app| app.build = Some(spec(command, 60)))
        .await;
    let (events, failed) = cluster.deploy("main").await;
    assert_eq!(failed.status(), DeploymentStatus::Failed, "{events:?}");
    assert!(
        failed.error.contains("the build of web at"),
        "{}",
        failed.error
    );
    assert!(
        failed.error.contains("no host was touched"),
        "{}",
        failed.error
    );
    assert!(failed.release.is_empty());
    let build = messages(&events, "build");
    assert!(
        build.contains(&"compiling") && build.contains(&"boom: no such module"),
        "{build:?}"
    );
    assert!(
        events.iter().all(|e| e.host.is_empty()),
        "no host event: {events:?}"
    );
    assert!(
        failed
            .hosts
            .iter()
            .all(|h| h.status() == DeploymentStatus::Pending)
    );
    for agent in &cluster.agents {
        assert!(!agent.app_root().join("releases").exists());
    }
    assert!(cluster.lock().await.is_none(), "the lock is free");

    // slipctl says why, with the end of the build's output.
    let (ok, out, err) = slipctl::run(
        &cluster,
        Role::Deployer,
        &["release", "create", APP, "--build"],
    );
    assert!(!ok, "{out}");
    assert!(err.contains("boom: no such module"), "{err}");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_build_past_its_timeout_is_killed_with_every_process_it_started() {
    let cluster = Cluster::builder().agents(1).start().await;
    cluster.commit_text("v1");
    let command = "sleep 300 & echo \"child $!\"; wait";
    cluster
        .update_app(|app| app.build = Some(spec(command, 1)))
        .await;
    let (events, failed) = cluster.deploy("main").await;
    assert_eq!(failed.status(), DeploymentStatus::Failed, "{events:?}");
    assert!(
        failed.error.contains("longer than its timeout of 1 s"),
        "{}",
        failed.error
    );
    let child: u32 = messages(&events, "build")
        .iter()
        .find_map(|m| m.strip_prefix("child "))
        .and_then(|pid| pid.parse().ok())
        .unwrap_or_else(|| panic!("no child line: {events:?}"));
    // SIGKILL is sent to the group before the deployment ends; the kernel
    // ends the process at once, so within a bounded wait it is gone (or a
    // zombie no one reaped yet).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let stat = std::fs::read_to_string(format!("/proc/{child}/stat")).unwrap_or_default();
        let state = stat
            .rsplit(") ")
            .next()
            .and_then(|rest| rest.chars().next());
        if stat.is_empty() || state == Some('Z') || state == Some('X') {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{child} lives on: {stat}"
        );
        tokio::task::yield_now().await;
    }
    assert!(!cluster.agents[0].app_root().join("releases").exists());
    assert!(cluster.lock().await.is_none());
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deploy_of_a_ref_the_mirror_lacks_shows_the_fetch_as_events() {
    let cluster = Cluster::builder().agents(1).start().await;
    let first = cluster.commit_text("v1");
    let base = cluster.repo.path().parent().expect("parent").to_owned();
    let daemon = GitDaemon::serve(&base).await;
    let url = daemon.url(cluster.repo.path());
    cluster.update_app(|app| app.repository = url.clone()).await;
    let (events, deployed) = cluster.deploy("main").await;
    assert_succeeded(&deployed);
    assert_eq!(events[0].stage, "preparing");
    assert!(
        events[0].message.contains("preparing the release"),
        "{}",
        events[0].message
    );
    let fetch = messages(&events, "fetch");
    assert!(
        fetch[0].starts_with("fetching main from git://"),
        "{fetch:?}"
    );
    assert!(
        fetch.last().is_some_and(|m| m.starts_with("fetched ")),
        "{fetch:?}"
    );
    let release = messages(&events, "release");
    assert!(
        release[0].starts_with(&format!("release {} of main", deployed.release)),
        "{release:?}"
    );
    assert_eq!(deployed.commit, first);
    cluster.shutdown().await;
}
