//! Deploy commit 1, deploy commit 2, roll back: every host's `current` and its
//! files, and the history.

use slipway_proto::{
    control::v1::{DeploymentKind, DeploymentStatus, ListDeploymentsRequest},
    identity::Role,
};
use slipway_tests::assert_succeeded;
use slipway_tests::{
    Cluster,
    cluster::APP,
    repo::{Change, assert_tree_matches},
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_deploy_rollback_across_three_hosts() {
    let cluster = Cluster::builder().agents(3).start().await;
    let c1 = cluster.repo.commit(
        "first",
        &[
            Change::File("index.html", b"<h1>v1</h1>\n"),
            Change::File("config/app.toml", b"port = 8080\n"),
            Change::Exec("bin/start", b"#!/bin/sh\necho start\n"),
            Change::Link("public", "config"),
        ],
    );
    let (_, d1) = cluster.deploy("main").await;
    assert_succeeded(&d1);
    for host in &cluster.agents {
        assert_eq!(
            host.current().as_deref(),
            Some(d1.release.as_str()),
            "{}",
            host.name
        );
        assert_tree_matches(&host.release_dir(&d1.release), &cluster.repo, &c1);
        assert_tree_matches(&host.app_root().join("current"), &cluster.repo, &c1);
    }

    let c2 = cluster.repo.commit(
        "second",
        &[
            Change::File("index.html", b"<h1>v2</h1>\n"),
            Change::Delete("config/app.toml"),
            Change::File("new.txt", b"new\n"),
        ],
    );
    let (_, d2) = cluster.deploy("main").await;
    assert_succeeded(&d2);
    assert_eq!(d2.previous_release, d1.release);
    for host in &cluster.agents {
        assert_eq!(host.current().as_deref(), Some(d2.release.as_str()));
        assert_tree_matches(&host.app_root().join("current"), &cluster.repo, &c2);
        // The one unchanged file was not sent again.
        let progress = d2
            .hosts
            .iter()
            .find(|h| h.host == host.name)
            .expect("host progress");
        assert_eq!(
            progress.objects_sent, 2,
            "only index.html and new.txt are new"
        );
    }

    let (_, d3) = cluster.rollback("").await;
    assert_succeeded(&d3);
    assert_eq!(d3.kind, DeploymentKind::Rollback as i32);
    assert_eq!(d3.release, d1.release);
    for host in &cluster.agents {
        assert_eq!(host.current().as_deref(), Some(d1.release.as_str()));
        assert_tree_matches(&host.app_root().join("current"), &cluster.repo, &c1);
    }

    let history = cluster
        .deployments(Role::Viewer)
        .await
        .list_deployments(ListDeploymentsRequest::default())
        .await
        .expect("history")
        .into_inner()
        .deployments;
    let ids: Vec<&str> = history.iter().map(|d| d.id.as_str()).collect();
    assert_eq!(ids, [d3.id.as_str(), d2.id.as_str(), d1.id.as_str()]);
    for d in &history {
        assert_eq!(d.status, DeploymentStatus::Succeeded as i32);
        assert_eq!(d.author, "admin/admin", "author comes from the certificate");
        assert!(d.started_at.is_some() && d.finished_at.is_some());
        let (start, end) = (d.started_at.unwrap(), d.finished_at.unwrap());
        let ms =
            (end.seconds - start.seconds) * 1000 + i64::from(end.nanos - start.nanos) / 1_000_000;
        assert_eq!(d.duration_ms as i64, ms.max(0));
        assert_eq!(d.hosts.len(), 3);
        assert!(
            d.hosts
                .iter()
                .all(|h| h.status == DeploymentStatus::Succeeded as i32)
        );
    }
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hosts_get_only_the_difference_and_a_host_without_the_base_gets_everything() {
    let cluster = Cluster::builder().agents(2).start().await;
    cluster.repo.commit(
        "one",
        &[
            Change::File("a.txt", b"a\n"),
            Change::File("b.txt", b"b\n"),
            Change::File("c.txt", b"c\n"),
        ],
    );
    let (_, d1) = cluster.deploy("main").await;
    assert_succeeded(&d1);

    // web-2 loses the manifest it kept for d1, as if it were a new host.
    let kept = cluster.agents[1]
        .app_root()
        .join(".slipway/manifests")
        .join(format!("{}.pb", d1.release));
    std::fs::remove_file(&kept).expect("web-2 kept the manifest of the release it runs");

    let c2 = cluster.repo.commit(
        "two",
        &[Change::File("b.txt", b"B\n"), Change::Delete("c.txt")],
    );
    let (events, d2) = cluster.deploy("main").await;
    assert_succeeded(&d2);
    let fell_back = |host: &str| {
        events
            .iter()
            .any(|e| e.host == host && e.message.contains("is not known on this host"))
    };
    assert!(
        !fell_back("web-1"),
        "web-1 had the base and got the difference"
    );
    assert!(
        fell_back("web-2"),
        "web-2 lacked the base and got the whole manifest"
    );
    for host in &cluster.agents {
        assert_tree_matches(&host.app_root().join("current"), &cluster.repo, &c2);
        let sent = d2.hosts.iter().find(|h| h.host == host.name).expect("host");
        assert_eq!(
            (sent.objects_sent, sent.bytes_sent),
            (1, 2),
            "only the new b.txt travels to {}",
            host.name
        );
    }
    cluster.shutdown().await;
}

/// Once a release is live and the app idle, each agent builds its tree again
/// ahead of the next deploy, which then links only what changed: the tree
/// is the commit's all the same, and the hosts say which they did.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_next_deploy_patches_the_tree_each_agent_prestaged() {
    let cluster = Cluster::builder().agents(2).start().await;
    let parts: Vec<(String, String)> = (0..6)
        .map(|i| (format!("lib/part{i}.rb"), format!("part {i}\n")))
        .collect();
    let mut first: Vec<Change<'_>> = parts
        .iter()
        .map(|(path, body)| Change::File(path, body.as_bytes()))
        .collect();
    first.push(Change::File("index.html", b"<h1>v1</h1>\n"));
    cluster.repo.commit("first", &first);
    let (_, d1) = cluster.deploy("main").await;
    assert_succeeded(&d1);
    for index in 0..cluster.agents.len() {
        cluster.wait_prestaged(index, &d1.release).await;
    }

    let c2 = cluster.repo.commit(
        "second",
        &[
            Change::File("index.html", b"<h1>v2</h1>\n"),
            Change::Exec("bin/start", b"#!/bin/sh\necho start\n"),
        ],
    );
    let (events, d2) = cluster.deploy("main").await;
    assert_succeeded(&d2);
    let said = format!(
        "the tree prestaged from {}, 2 entries placed and 1 removed",
        d1.release
    );
    for (index, host) in cluster.agents.iter().enumerate() {
        let patched = events
            .iter()
            .any(|e| e.host == host.name && e.message.contains(&said));
        assert!(patched, "{}: {events:#?}", host.name);
        assert_tree_matches(&host.app_root().join("current"), &cluster.repo, &c2);
        cluster.wait_prestaged(index, &d2.release).await;
    }

    // The control plane passes it through (what `slipctl status` shows).
    let fleet = cluster.fleet_status().await;
    assert_eq!(fleet.len(), 2);
    for host in fleet {
        let app = host.apps.iter().find(|a| a.app == APP).expect("the app");
        assert_eq!(app.prestaged_release, d2.release, "{host:?}");
    }
}
