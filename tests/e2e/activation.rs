//! Around the switch: shared paths, hooks with their environment and
//! streamed output, copy or hard-link materialising, a failing health check
//! that switches back, and a hook killed with its children at its timeout.

use slipway_tests::assert_succeeded;
use std::path::Path;

use slipway_proto::{
    agent::v1::{ActivationSpec, Hook, HookPoint, ReleaseState},
    control::v1::DeploymentStatus,
};
use slipway_tests::{
    Cluster, disk,
    events::messages,
    process::Probe,
    repo::{Change, assert_tree_matches},
    spec,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_log_directory_persists_across_releases() {
    let cluster = Cluster::builder()
        .agents(2)
        .activation(ActivationSpec {
            shared_paths: vec![spec::shared_dir("log")],
            // Runs in the release, through its `log` link into shared/.
            hooks: vec![spec::after_activate(
                "record",
                r#"echo "$SLIPWAY_RELEASE_ID" >> log/releases.log"#,
            )],
            ..Default::default()
        })
        .start()
        .await;
    cluster
        .repo
        .commit("one", &[Change::File("index.html", b"v1\n")]);
    let (_, d1) = cluster.deploy("main").await;
    assert_succeeded(&d1);
    for host in &cluster.agents {
        // What the running app writes goes to shared/ ...
        std::fs::write(
            host.app_root().join("current/log/app.log"),
            b"written by v1\n",
        )
        .expect("write through current/log");
    }

    cluster
        .repo
        .commit("two", &[Change::File("index.html", b"v2\n")]);
    let (_, d2) = cluster.deploy("main").await;
    assert_succeeded(&d2);
    for host in &cluster.agents {
        let shared = host.app_root().join("shared/log");
        assert!(shared.is_dir(), "{}: shared/log is a directory", host.name);
        let shared = shared.canonicalize().expect("canonical shared/log");
        for release in [&d1.release, &d2.release] {
            let linked = host.release_dir(release).join("log");
            assert_eq!(
                linked.canonicalize().expect("release log resolves"),
                shared,
                "{}: {release}/log is the shared directory",
                host.name
            );
        }
        // ... and is still there for the next release.
        let current_log = host.app_root().join("current/log");
        assert_eq!(
            std::fs::read(current_log.join("app.log")).expect("app.log"),
            b"written by v1\n"
        );
        assert_eq!(
            disk::lines(&current_log.join("releases.log")),
            [d1.release.clone(), d2.release.clone()],
            "{}: each release's hook wrote to the same shared log",
            host.name
        );
    }
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_required_shared_file_fails_before_the_switch() {
    let cluster = Cluster::builder()
        .agents(2)
        .activation(ActivationSpec {
            shared_paths: vec![spec::shared_file(".env", true), spec::shared_dir("log")],
            ..Default::default()
        })
        .start()
        .await;
    for host in &cluster.agents {
        let shared = host.app_root().join("shared");
        std::fs::create_dir_all(&shared).expect("mkdir shared");
        std::fs::write(shared.join(".env"), b"SECRET=1\n").expect("write .env");
    }
    cluster
        .repo
        .commit("one", &[Change::File("index.html", b"v1\n")]);
    let (_, d1) = cluster.deploy("main").await;
    assert_succeeded(&d1);
    for host in &cluster.agents {
        assert_eq!(
            std::fs::read(host.app_root().join("current/.env")).expect("current/.env"),
            b"SECRET=1\n",
            "{}: the release sees the shared file",
            host.name
        );
    }

    for host in &cluster.agents {
        std::fs::remove_file(host.app_root().join("shared/.env")).expect("remove .env");
    }
    cluster
        .repo
        .commit("two", &[Change::File("index.html", b"v2\n")]);
    let (events, d2) = cluster.deploy("main").await;
    assert_eq!(d2.status, DeploymentStatus::Failed as i32);
    assert!(
        d2.error.contains(".env"),
        "names the missing file: {}",
        d2.error
    );
    for (i, host) in cluster.agents.iter().enumerate() {
        assert_eq!(host.current().as_deref(), Some(d1.release.as_str()));
        // Shared paths are linked into the release, so compare its own file.
        assert_eq!(
            std::fs::read(host.app_root().join("current/index.html")).expect("index.html"),
            b"v1\n"
        );
        assert!(
            messages(&events, &host.name, "activate").is_empty(),
            "{}: nothing was switched",
            host.name
        );
        let status = cluster.agent_status(i).await;
        assert_eq!(status.current_release, d1.release);
        for release in &status.releases {
            if release.id == d2.release {
                assert_ne!(release.state, ReleaseState::Active as i32);
            }
        }
        assert!(disk::staging_leftovers(&host.app_root()).is_empty());
    }
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hook_output_is_streamed_with_the_documented_environment() {
    // Each expected line differs from the command's own text, which the
    // agent may quote in an event.
    let announce = r#"echo "app=$SLIPWAY_APP"
echo "env=$SLIPWAY_ENVIRONMENT"
echo "release=$SLIPWAY_RELEASE_ID"
echo "previous=$SLIPWAY_PREVIOUS_RELEASE"
echo "deployment=$SLIPWAY_DEPLOYMENT_ID"
same=no; if [ "$(cd "$SLIPWAY_RELEASE_DIR" && pwd -P)" = "$(pwd -P)" ]; then same=yes; fi
echo "cwd-is-release-dir=$same"
echo "stderr-of-$SLIPWAY_APP" >&2"#;
    let cluster = Cluster::builder()
        .agents(2)
        .activation(spec::hooks(vec![
            spec::before_activate("announce", announce),
            spec::after_activate("after", r#"echo "after-dir=$SLIPWAY_RELEASE_DIR""#),
        ]))
        .start()
        .await;
    cluster.repo.commit("one", &[Change::File("a.txt", b"1\n")]);
    let (events1, d1) = cluster.deploy("main").await;
    assert_succeeded(&d1);
    cluster.repo.commit("two", &[Change::File("a.txt", b"2\n")]);
    let (events2, d2) = cluster.deploy("main").await;
    assert_succeeded(&d2);

    for host in &cluster.agents {
        let first = messages(&events1, &host.name, "hook");
        assert!(
            first.iter().any(|m| m.trim_end().ends_with("previous=")),
            "{}: no previous release on the first deploy: {first:?}",
            host.name
        );
        let lines = messages(&events2, &host.name, "hook");
        for expected in [
            "app=web".to_owned(),
            "env=prod".to_owned(),
            format!("release={}", d2.release),
            format!("previous={}", d1.release),
            format!("deployment={}", d2.id),
            "cwd-is-release-dir=yes".to_owned(),
            "stderr-of-web".to_owned(),
        ] {
            assert!(
                lines.iter().any(|m| m.contains(&expected)),
                "{}: hook event with {expected:?} in {lines:?}",
                host.name
            );
        }
        // After the switch the release directory is the final one. (An
        // event that quotes the command holds "after-dir=$SLIPWAY_...".)
        let after = lines
            .iter()
            .filter_map(|m| m.split_once("after-dir=").map(|(_, dir)| dir.trim()))
            .find(|dir| dir.starts_with('/'))
            .unwrap_or_else(|| panic!("{}: after-activate output in {lines:?}", host.name));
        assert_eq!(
            Path::new(after)
                .canonicalize()
                .unwrap_or_else(|err| panic!("{}: after-dir {after:?}: {err}", host.name)),
            host.release_dir(&d2.release)
                .canonicalize()
                .expect("release"),
        );
    }
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_mode_gives_private_writable_files_and_default_gives_hard_links() {
    let cluster = Cluster::builder().agents(1).start().await;
    let host = &cluster.agents[0];
    let c1 = cluster.repo.commit(
        "one",
        &[
            Change::File("index.html", b"v1\n"),
            Change::Exec("bin/start", b"#!/bin/sh\necho start\n"),
            Change::Link("public", "index.html"),
        ],
    );
    let (_, d1) = cluster.deploy("main").await;
    assert_succeeded(&d1);
    let r1 = host.release_dir(&d1.release);
    assert_tree_matches(&r1, &cluster.repo, &c1);
    for file in disk::regular_files(&r1) {
        assert!(
            disk::nlink(&file) >= 2,
            "{} is a hard link into the store",
            file.display()
        );
        assert_eq!(
            disk::mode(&file) & 0o222,
            0,
            "{} is read-only",
            file.display()
        );
    }

    cluster
        .update_app(|app| app.activation = Some(spec::copy_mode()))
        .await;
    let c2 = cluster
        .repo
        .commit("two", &[Change::File("index.html", b"v2\n")]);
    let (_, d2) = cluster.deploy("main").await;
    assert_succeeded(&d2);
    let r2 = host.release_dir(&d2.release);
    assert_tree_matches(&r2, &cluster.repo, &c2);
    let files = disk::regular_files(&r2);
    assert_eq!(files.len(), 2, "{files:?}");
    for file in &files {
        assert_eq!(disk::nlink(file), 1, "{} is a private copy", file.display());
        assert_ne!(
            disk::mode(file) & 0o200,
            0,
            "{} is writable",
            file.display()
        );
    }
    assert_ne!(
        disk::mode(&r2.join("bin/start")) & 0o111,
        0,
        "still executable"
    );
    // Editing the copy in place changes nothing else: not the store, not
    // the earlier release that shares the object.
    std::fs::write(r2.join("bin/start"), b"edited in place\n").expect("edit the copy");
    assert_tree_matches(&r1, &cluster.repo, &c1);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_health_check_switches_back_on_every_host() {
    let cluster = Cluster::builder()
        .agents(2)
        .activation(ActivationSpec {
            hooks: vec![spec::after_activate(
                "mark",
                r#"echo "$SLIPWAY_RELEASE_ID" >> "$SLIPWAY_RELEASE_DIR/../../activated.log""#,
            )],
            health_check: Some(spec::health_command(
                r#"test -f healthy || { echo "healthy is missing from $(basename "$PWD")"; exit 1; }"#,
                2,
                100,
            )),
            ..Default::default()
        })
        .start()
        .await;
    let c1 = cluster.repo.commit(
        "healthy",
        &[
            Change::File("healthy", b"yes\n"),
            Change::File("index.html", b"v1\n"),
        ],
    );
    let (_, d1) = cluster.deploy("main").await;
    assert_succeeded(&d1);

    cluster.repo.commit(
        "sick",
        &[
            Change::Delete("healthy"),
            Change::File("index.html", b"v2\n"),
        ],
    );
    let (events, d2) = cluster.deploy("main").await;
    assert_eq!(d2.status, DeploymentStatus::Failed as i32);
    // Expanded by the shell: only the check's output can hold this.
    let output = format!("healthy is missing from {}", d2.release);
    assert!(
        d2.error.contains(&output),
        "the check's output {output:?} is in the failure: {}",
        d2.error
    );
    for (i, host) in cluster.agents.iter().enumerate() {
        assert_eq!(
            host.current().as_deref(),
            Some(d1.release.as_str()),
            "{}: current switched back",
            host.name
        );
        assert_tree_matches(&host.app_root().join("current"), &cluster.repo, &c1);
        assert!(
            !messages(&events, &host.name, "health_check").is_empty(),
            "{}: health check events",
            host.name
        );
        assert!(
            !messages(&events, &host.name, "revert").is_empty(),
            "{}: revert events",
            host.name
        );
        let marks = disk::lines(&host.app_root().join("activated.log"));
        assert_eq!(marks.first(), Some(&d1.release), "{}: {marks:?}", host.name);
        assert_eq!(
            marks.last(),
            Some(&d1.release),
            "{}: after-activate ran for the release switched back to: {marks:?}",
            host.name
        );
        assert_eq!(
            marks.iter().filter(|m| **m == d1.release).count(),
            2,
            "{}: {marks:?}",
            host.name
        );
        let status = cluster.agent_status(i).await;
        assert_eq!(status.current_release, d1.release);
        if let Some(failed) = status.releases.iter().find(|r| r.id == d2.release) {
            assert_eq!(failed.state, ReleaseState::Failed as i32, "{status:?}");
        }
    }
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hook_over_its_timeout_is_killed_with_its_children() {
    let pids = tempfile::tempdir().expect("temp dir");
    let hook_pid = pids.path().join("hook.pid");
    let child_pid = pids.path().join("child.pid");
    let command = format!(
        "echo $$ > '{}'; sleep 60 & echo $! > '{}'; echo \"started-$SLIPWAY_APP\"; wait",
        hook_pid.display(),
        child_pid.display()
    );
    let cluster = Cluster::builder()
        .agents(1)
        .activation(spec::hooks(vec![Hook {
            point: HookPoint::BeforeActivate as i32,
            name: "slow".into(),
            command,
            timeout_seconds: 1,
        }]))
        .start()
        .await;
    cluster.repo.commit("one", &[Change::File("a.txt", b"1\n")]);
    let (events, d) = cluster.deploy("main").await;
    assert_eq!(d.status, DeploymentStatus::Failed as i32);
    let error = d.error.to_lowercase();
    assert!(
        error.contains("timed out") || error.contains("timeout"),
        "the failure names the timeout: {}",
        d.error
    );
    assert!(
        messages(&events, "web-1", "hook")
            .iter()
            .any(|m| m.contains("started-web")),
        "the hook ran"
    );
    // Killed at its timeout, not waited for: the sleep would take 60 s.
    assert!(
        d.duration_ms < 30_000,
        "the deploy took {} ms",
        d.duration_ms
    );
    for pidfile in [&hook_pid, &child_pid] {
        if let Some(process) = Probe::from_pidfile(pidfile) {
            assert!(
                process.wait_gone(std::time::Duration::from_secs(5)),
                "process {} from {} outlived the hook's timeout",
                process.pid,
                pidfile.display()
            );
        }
    }
    assert_eq!(cluster.agents[0].current(), None, "nothing was switched");
    cluster.shutdown().await;
}
