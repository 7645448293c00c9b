//! Drift against real agents: a file edited by hand (through the release's
//! hard link, so the stored object too), one deleted and one added on one
//! host are found by path on that host only, `slipctl drift` exits 1, and
//! a repair deploys the recorded release there afresh: its tree matches the
//! commit again, the store no longer holds the edited object, and the next
//! check is clean; the live feed says once when drift was found and once
//! when it cleared. Also: a `current` switched by hand, a release directory
//! the control plane does not know, and the refusals.

use std::{
    os::unix::fs::{MetadataExt, PermissionsExt, symlink},
    path::Path,
};

use futures_util::StreamExt;
use sha2::{Digest, Sha256};
use slipway_proto::{
    agent::v1::DriftKind,
    control::v1::{
        CheckDriftRequest, CheckDriftResponse, Deployment, DeploymentStatus, DriftState, FeedItem,
        FeedKind, HostDrift, ListDriftFindingsRequest, RepairDriftRequest, WatchEventsRequest,
        drift_service_client::DriftServiceClient, feed_service_client::FeedServiceClient,
    },
    identity::Role,
};
use slipway_tests::{
    Cluster, assert_succeeded,
    cluster::{APP, ENV},
    repo::{Change, assert_tree_matches},
    scrape::Scrape,
    slipctl,
};
use tonic::{Code, transport::Channel};

async fn drift(cluster: &Cluster, role: Role) -> DriftServiceClient<Channel> {
    DriftServiceClient::new(cluster.channel(role).await)
}

async fn check(cluster: &Cluster) -> CheckDriftResponse {
    drift(cluster, Role::Viewer)
        .await
        .check_drift(CheckDriftRequest {
            environment: ENV.into(),
            app: APP.into(),
        })
        .await
        .expect("check drift")
        .into_inner()
}

fn entry<'a>(report: &'a CheckDriftResponse, host: &str) -> &'a HostDrift {
    report
        .hosts
        .iter()
        .find(|h| h.host == host)
        .unwrap_or_else(|| panic!("no entry for {host}: {report:?}"))
}

/// The hosts whose latest kept finding drifted (what `slipctl status`
/// marks).
async fn drifted_kept(cluster: &Cluster) -> Vec<String> {
    drift(cluster, Role::Viewer)
        .await
        .list_drift_findings(ListDriftFindingsRequest {
            environment: ENV.into(),
            drifted_only: true,
            ..Default::default()
        })
        .await
        .expect("findings")
        .into_inner()
        .findings
        .into_iter()
        .map(|f| f.host)
        .collect()
}

/// Runs the repair as a deployer; returns the check that decided it, the
/// deployment's record (none when no host needed one) and its events' text.
async fn repair(cluster: &Cluster) -> (CheckDriftResponse, Option<Deployment>, Vec<String>) {
    let mut stream = drift(cluster, Role::Deployer)
        .await
        .repair_drift(RepairDriftRequest {
            app: APP.into(),
            environment: ENV.into(),
            message: "put it back".into(),
            policy: None,
        })
        .await
        .expect("repair")
        .into_inner();
    let first = stream.next().await.expect("first message").expect("check");
    let events: Vec<_> = stream.map(|m| m.expect("event").event).collect().await;
    let check = first.check.expect("the check comes first");
    if first.deployment_id.is_empty() {
        assert!(events.is_empty());
        return (check, None, Vec::new());
    }
    let lines = events
        .into_iter()
        .map(|e| e.expect("then only events").message)
        .collect();
    let record = cluster.deployment(&first.deployment_id).await;
    (check, Some(record), lines)
}

/// `slipctl drift --env prod` as a viewer: whether it exited 0, and what
/// it printed.
fn slipctl_drift(cluster: &Cluster) -> (bool, String) {
    let (ok, out, err) = slipctl::run(cluster, Role::Viewer, &["drift", "--env", ENV]);
    assert!(err.is_empty(), "{err}");
    (ok, out)
}

fn sha256(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// What a person at the host does to a read-only file of a release: make
/// it writable and write through the release's path.
fn edit_by_hand(path: &Path, content: &[u8]) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    std::fs::write(path, content).expect("write");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hand_edited_file_is_drift_with_its_path_and_a_repair_puts_the_release_back() {
    let cluster = Cluster::builder().agents(2).start().await;
    let commit = cluster.repo.commit(
        "first",
        &[
            Change::File("index.html", b"<h1>v1</h1>\n"),
            Change::File("config/app.toml", b"port = 8080\n"),
            Change::Exec("bin/start", b"#!/bin/sh\necho start\n"),
            Change::Link("public", "config"),
        ],
    );
    let (_, deployed) = cluster.deploy("main").await;
    assert_succeeded(&deployed);
    let release = deployed.release.clone();
    let clean = check(&cluster).await;
    assert_eq!((clean.drifted, clean.unknown), (0, 0), "{clean:?}");
    assert!(slipctl_drift(&cluster).0, "exit 0: nothing drifted");

    let (web1, web2) = (&cluster.agents[0], &cluster.agents[1]);
    let current = web2.app_root().join("current");
    edit_by_hand(
        &current.join("index.html"),
        b"<h1>edited on the host</h1>\n",
    );
    std::fs::remove_file(current.join("config/app.toml")).expect("rm");
    std::fs::write(current.join("notes.txt"), "left here\n").expect("add");
    let stored = web2
        .app_root()
        .join(".slipway/objects")
        .join(&sha256(b"<h1>v1</h1>\n")[..2])
        .join(sha256(b"<h1>v1</h1>\n"));
    assert_ne!(
        std::fs::read(&stored).expect("object"),
        b"<h1>v1</h1>\n",
        "the hard link carried the edit into the store"
    );

    let report = check(&cluster).await;
    assert_eq!((report.drifted, report.unknown), (1, 0), "{report:?}");
    assert_eq!(entry(&report, &web1.name).state(), DriftState::Clean);
    let found = entry(&report, &web2.name);
    assert_eq!(found.state(), DriftState::Drifted);
    assert!(found.repairable);
    assert_eq!(
        (&found.expected_release, &found.current_release),
        (&release, &release)
    );
    let paths: Vec<(&str, DriftKind)> = found
        .findings
        .iter()
        .map(|f| (f.path.as_str(), f.kind()))
        .collect();
    assert_eq!(
        paths,
        [
            ("config/app.toml", DriftKind::Missing),
            ("index.html", DriftKind::Modified),
            ("notes.txt", DriftKind::Added),
        ]
    );
    assert!(found.unknown_releases.is_empty());
    let (ok, table) = slipctl_drift(&cluster);
    assert!(!ok, "exit 1 on drift:\n{table}");
    assert!(
        table.contains("config/app.toml (missing), index.html (modified), notes.txt (added)"),
        "{table}"
    );
    assert_eq!(drifted_metric(&cluster).await, Some(1.0));
    let kept = drifted_kept(&cluster).await;
    assert_eq!(
        kept,
        std::slice::from_ref(&web2.name),
        "the latest finding is kept"
    );
    let (ok, status, _) = slipctl::run(&cluster, Role::Viewer, &["status", "--env", ENV]);
    assert!(ok);
    let marked: Vec<&str> = status
        .lines()
        .filter(|l| l.contains("drifted (checked"))
        .collect();
    assert!(
        marked.len() == 1 && marked[0].starts_with("web-2"),
        "{status}"
    );

    let untouched = std::fs::metadata(web1.release_dir(&release))
        .expect("web-1 release")
        .ino();
    let (decided, repaired, lines) = repair(&cluster).await;
    assert_eq!(decided.drifted, 1);
    let said = |text: &str| lines.iter().any(|l| l.contains(text));
    assert!(
        said("discarded 1 stored contents that no longer matched their hash"),
        "{lines:#?}"
    );
    assert!(
        said("built afresh and swapped in for the copy on disk"),
        "{lines:#?}"
    );
    let repaired = repaired.expect("a repair deployment");
    assert_succeeded(&repaired);
    assert_eq!(repaired.release, release);
    let hosts: Vec<&str> = repaired.hosts.iter().map(|h| h.host.as_str()).collect();
    assert_eq!(hosts, [web2.name.as_str()], "only the drifted host");
    assert!(
        repaired.message.starts_with(&format!(
            "drift repair of {release} on web-2 (1 modified, 1 missing, 1 added)"
        )),
        "{}",
        repaired.message
    );
    assert_eq!(repaired.hosts[0].status(), DeploymentStatus::Succeeded);

    assert_tree_matches(&current, &cluster.repo, &commit);
    assert_eq!(std::fs::read(&stored).expect("object"), b"<h1>v1</h1>\n");
    let mode = std::fs::metadata(&stored)
        .expect("object")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o444, "stored read-only again");
    let web1_after = std::fs::metadata(web1.release_dir(&release))
        .expect("web-1 release")
        .ino();
    assert_eq!(untouched, web1_after, "web-1 was left alone");

    let after = check(&cluster).await;
    assert_eq!((after.drifted, after.unknown), (0, 0), "{after:?}");
    assert!(drifted_kept(&cluster).await.is_empty());
    assert!(slipctl_drift(&cluster).0);
    assert_eq!(drifted_metric(&cluster).await, Some(0.0));

    // The live feed says when drift was found and when it cleared, once
    // each, however many checks saw it.
    let items = drift_feed(&cluster).await;
    let seen: Vec<(&str, DriftState, &str)> = items
        .iter()
        .map(|i| (i.host.as_str(), i.drift(), i.message.as_str()))
        .collect();
    let found = format!(
        "web-2 drifted from release {release} of {APP}: config/app.toml (missing), \
         index.html (modified), notes.txt (added)"
    );
    let cleared = format!("web-2 no longer drifts from release {release} of {APP}");
    assert_eq!(
        seen,
        [
            ("web-2", DriftState::Drifted, found.as_str()),
            ("web-2", DriftState::Clean, cleared.as_str()),
        ]
    );
    cluster.shutdown().await;
}

/// `slipway_hosts_drifted` of the app in the environment, as scraped.
async fn drifted_metric(cluster: &Cluster) -> Option<f64> {
    let scraped = Scrape::of(cluster.metrics_addr()).await;
    scraped.value(
        "slipway_hosts_drifted",
        &[("app", APP), ("environment", ENV)],
    )
}

/// The drift items of the live feed so far.
async fn drift_feed(cluster: &Cluster) -> Vec<FeedItem> {
    FeedServiceClient::new(cluster.channel(Role::Viewer).await)
        .watch_events(WatchEventsRequest {
            kinds: vec![FeedKind::Drift as i32],
            ..Default::default()
        })
        .await
        .expect("watch the feed")
        .into_inner()
        .map(|m| m.expect("message").item.expect("an item"))
        .collect()
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_current_switched_by_hand_and_an_unknown_release_are_drift() {
    let cluster = Cluster::builder().agents(2).start().await;
    cluster.commit_text("<h1>one</h1>\n");
    let (_, first) = cluster.deploy("main").await;
    let second_commit = cluster.commit_text("<h1>two</h1>\n");
    let (_, second) = cluster.deploy("main").await;
    assert_succeeded(&second);
    let (web1, web2) = (&cluster.agents[0], &cluster.agents[1]);

    // web-1: `current` put back on the first release by hand.
    let hand = web1.app_root().join(".current.by-hand");
    symlink(Path::new("releases").join(&first.release), &hand).expect("symlink");
    std::fs::rename(&hand, web1.app_root().join("current")).expect("switch");
    // web-2: a release directory nobody deployed.
    let stray = "20990101T000000.000Z-0000000";
    std::fs::create_dir(web2.release_dir(stray)).expect("mkdir");
    std::fs::write(web2.release_dir(stray).join("index.html"), "?").expect("write");

    let report = check(&cluster).await;
    assert_eq!(report.drifted, 2, "{report:?}");
    let switched = entry(&report, &web1.name);
    assert_eq!(switched.state(), DriftState::Drifted);
    assert_eq!(switched.expected_release, second.release);
    assert_eq!(switched.current_release, first.release);
    assert!(switched.repairable);
    assert!(switched.findings.is_empty(), "its files are the first's");
    let stray_entry = entry(&report, &web2.name);
    assert_eq!(stray_entry.state(), DriftState::Drifted);
    assert_eq!(stray_entry.unknown_releases, [stray]);
    assert_eq!(stray_entry.current_release, second.release);
    assert!(
        !stray_entry.repairable,
        "an unknown release is reported, not repaired"
    );

    // Through slipctl this time, for every app with a host to repair.
    let args = [
        "deploy",
        "--repair",
        "--env",
        ENV,
        "-m",
        "back to the record",
    ];
    let (ok, out, err) = slipctl::run(&cluster, Role::Deployer, &args);
    assert!(ok, "{out}\n{err}");
    let repaired = cluster.history().await.remove(0);
    assert_succeeded(&repaired);
    assert!(
        repaired.message.ends_with(": back to the record"),
        "{}",
        repaired.message
    );
    let hosts: Vec<&str> = repaired.hosts.iter().map(|h| h.host.as_str()).collect();
    assert_eq!(hosts, [web1.name.as_str()]);
    assert_eq!(web1.current().as_deref(), Some(second.release.as_str()));
    assert_tree_matches(
        &web1.app_root().join("current"),
        &cluster.repo,
        &second_commit,
    );

    let after = check(&cluster).await;
    assert_eq!(entry(&after, &web1.name).state(), DriftState::Clean);
    assert_eq!(entry(&after, &web2.name).unknown_releases, [stray]);
    assert!(web2.release_dir(stray).is_dir(), "left alone");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repair_without_a_recorded_release_and_bad_requests_are_refused() {
    let cluster = Cluster::builder().agents(1).start().await;
    cluster.commit_text("<h1>one</h1>\n");
    let request = || RepairDriftRequest {
        app: APP.into(),
        environment: ENV.into(),
        ..Default::default()
    };
    let refused = drift(&cluster, Role::Deployer)
        .await
        .repair_drift(request())
        .await
        .expect_err("nothing recorded");
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    assert!(
        refused
            .message()
            .contains("app web has no recorded release in prod"),
        "{}",
        refused.message()
    );
    assert!(cluster.history().await.is_empty(), "nothing started");
    assert!(cluster.lock().await.is_none());

    let viewer = drift(&cluster, Role::Viewer)
        .await
        .repair_drift(request())
        .await
        .expect_err("a viewer may only look");
    assert_eq!(viewer.code(), Code::PermissionDenied);

    let mut client = drift(&cluster, Role::Viewer).await;
    let ask = |environment: &str, app: &str| CheckDriftRequest {
        environment: environment.into(),
        app: app.into(),
    };
    let cases = [
        (ask("", ""), Code::InvalidArgument),
        (ask("Prod!", ""), Code::InvalidArgument),
        (ask("staging", ""), Code::NotFound),
        (ask(ENV, "api"), Code::NotFound),
    ];
    for (request, code) in cases {
        let status = client
            .check_drift(request.clone())
            .await
            .expect_err("refused");
        assert_eq!(status.code(), code, "{request:?}: {status:?}");
    }
    // Nothing deployed and nothing on the host: nothing to show.
    let report = check(&cluster).await;
    assert!(report.hosts.is_empty(), "{report:?}");
    cluster.shutdown().await;
}
