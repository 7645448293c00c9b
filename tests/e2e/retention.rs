//! What stays on disk: retention never gives up the last good release to
//! failed deploys, a pinned release survives retention, and GetStatus
//! reports each release's state and the previous good release.

use slipway_proto::{
    agent::v1::{PinReleaseRequest, ReleaseState},
    control::v1::DeploymentStatus,
};
use slipway_tests::assert_succeeded;
use slipway_tests::{
    Cluster,
    cluster::APP,
    direct::app_target,
    disk,
    repo::{Change, assert_tree_matches},
    spec,
};
use tonic::Code;

fn state_of(status: &slipway_proto::agent::v1::AppStatus, id: &str) -> Option<ReleaseState> {
    status
        .releases
        .iter()
        .find(|r| r.id == id)
        .map(|r| r.state())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_deploys_never_push_out_the_last_good_release() {
    let cluster = Cluster::builder()
        .agents(2)
        .keep(2)
        .activation(spec::hooks(vec![spec::before_activate(
            "gate",
            r#"if [ -f broken ]; then echo "release is broken" >&2; exit 3; fi"#,
        )]))
        .start()
        .await;
    let good = cluster
        .repo
        .commit("good", &[Change::File("index.html", b"good\n")]);
    let (_, d1) = cluster.deploy("main").await;
    assert_succeeded(&d1);

    let mut failed = Vec::new();
    for n in 2..=4 {
        let content = format!("broken {n}\n");
        cluster.repo.commit(
            &format!("broken {n}"),
            &[Change::File("broken", content.as_bytes())],
        );
        let (_, d) = cluster.deploy("main").await;
        assert_eq!(d.status, DeploymentStatus::Failed as i32, "deploy {n}");
        assert!(
            d.error.contains("gate") || d.error.contains("release is broken"),
            "says which hook failed: {}",
            d.error
        );
        for host in &cluster.agents {
            assert_eq!(host.current().as_deref(), Some(d1.release.as_str()));
            assert_tree_matches(&host.release_dir(&d1.release), &cluster.repo, &good);
        }
        failed.push(d.release);
    }
    for (i, host) in cluster.agents.iter().enumerate() {
        let status = cluster.agent_status(i).await;
        assert_eq!(status.current_release, d1.release);
        assert_eq!(
            state_of(&status, &d1.release),
            Some(ReleaseState::Active),
            "{status:?}"
        );
        for id in &failed {
            if let Some(state) = state_of(&status, id) {
                assert_eq!(state, ReleaseState::Failed, "{}: {id}", host.name);
            }
        }
    }

    // The next good deploy cleans up: failed releases do not count towards
    // the two kept and are removed; the previous good one stays.
    cluster.repo.commit(
        "fixed",
        &[
            Change::Delete("broken"),
            Change::File("index.html", b"fixed\n"),
        ],
    );
    let (_, d5) = cluster.deploy("main").await;
    assert_succeeded(&d5);
    for (i, host) in cluster.agents.iter().enumerate() {
        assert_eq!(host.current().as_deref(), Some(d5.release.as_str()));
        assert_eq!(
            disk::releases(&host.app_root()),
            [d1.release.clone(), d5.release.clone()],
            "{}: the last good release and the new one, nothing failed",
            host.name
        );
        let status = cluster.agent_status(i).await;
        assert_eq!(status.previous_release, d1.release);
        disk::assert_journal_settled(&host.app_root());
    }
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pinned_release_survives_retention_until_unpinned() {
    let cluster = Cluster::builder().agents(1).keep(2).start().await;
    let host = &cluster.agents[0];
    let mut releases = Vec::new();
    cluster.repo.commit("r1", &[Change::File("v", b"1\n")]);
    let (_, d) = cluster.deploy("main").await;
    assert_succeeded(&d);
    releases.push(d.release);

    let mut agent = cluster.agent_client(0);
    let pinned = agent
        .pin_release(PinReleaseRequest {
            app: Some(app_target()),
            release_id: releases[0].clone(),
            pinned: true,
            fencing_token: 0,
            fencing_epoch: String::new(),
        })
        .await
        .expect("pin")
        .into_inner()
        .release
        .expect("release set");
    assert_eq!(pinned.id, releases[0]);
    assert!(pinned.pinned);

    let status = agent
        .pin_release(PinReleaseRequest {
            app: Some(app_target()),
            release_id: "20200101T000000Z-0000000".into(),
            pinned: true,
            fencing_token: 0,
            fencing_epoch: String::new(),
        })
        .await
        .expect_err("a release that is not on the host");
    assert!(
        matches!(status.code(), Code::NotFound | Code::FailedPrecondition),
        "{status:?}"
    );

    for n in 2..=4 {
        let content = format!("{n}\n");
        cluster
            .repo
            .commit(&format!("r{n}"), &[Change::File("v", content.as_bytes())]);
        let (_, d) = cluster.deploy("main").await;
        assert_succeeded(&d);
        releases.push(d.release);
    }
    // Keep 2 would leave r3 and r4; the pin keeps r1 as well.
    assert_eq!(
        disk::releases(&host.app_root()),
        [
            releases[0].clone(),
            releases[2].clone(),
            releases[3].clone()
        ]
    );
    let status = cluster.agent_status(0).await;
    let r1 = status
        .releases
        .iter()
        .find(|r| r.id == releases[0])
        .expect("r1 listed");
    assert!(r1.pinned, "{status:?}");
    assert_eq!(r1.state(), ReleaseState::Ready);

    let unpinned = agent
        .pin_release(PinReleaseRequest {
            app: Some(app_target()),
            release_id: releases[0].clone(),
            pinned: false,
            fencing_token: 0,
            fencing_epoch: String::new(),
        })
        .await
        .expect("unpin")
        .into_inner()
        .release
        .expect("release set");
    assert!(!unpinned.pinned);
    cluster.repo.commit("r5", &[Change::File("v", b"5\n")]);
    let (_, d) = cluster.deploy("main").await;
    assert_succeeded(&d);
    assert_eq!(
        disk::releases(&host.app_root()),
        [releases[3].clone(), d.release.clone()],
        "unpinned, r1 is pruned like any other"
    );
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_reports_release_states_and_the_previous_good_release() {
    let cluster = Cluster::builder()
        .agents(2)
        .activation(slipway_proto::agent::v1::ActivationSpec {
            health_check: Some(spec::health_command("test -f healthy", 1, 100)),
            ..Default::default()
        })
        .start()
        .await;
    cluster.repo.commit(
        "one",
        &[Change::File("healthy", b"1\n"), Change::File("v", b"1\n")],
    );
    let (_, d1) = cluster.deploy("main").await;
    assert_succeeded(&d1);
    cluster.repo.commit("two", &[Change::File("v", b"2\n")]);
    let (_, d2) = cluster.deploy("main").await;
    assert_succeeded(&d2);

    for i in 0..cluster.agents.len() {
        let status = cluster.agent_status(i).await;
        assert_eq!(status.current_release, d2.release);
        assert_eq!(status.previous_release, d1.release);
        assert_eq!(status.running_deployment, "");
        assert_eq!(state_of(&status, &d2.release), Some(ReleaseState::Active));
        assert_eq!(state_of(&status, &d1.release), Some(ReleaseState::Ready));
    }

    cluster.repo.commit("three", &[Change::Delete("healthy")]);
    let (_, d3) = cluster.deploy("main").await;
    assert_eq!(d3.status, DeploymentStatus::Failed as i32);
    for (i, host) in cluster.agents.iter().enumerate() {
        assert_eq!(host.current().as_deref(), Some(d2.release.as_str()));
        let status = cluster.agent_status(i).await;
        assert_eq!(status.current_release, d2.release);
        assert_eq!(
            status.previous_release, d1.release,
            "a release that failed its check is never the previous good one"
        );
        assert_eq!(state_of(&status, &d2.release), Some(ReleaseState::Active));
        assert_eq!(state_of(&status, &d1.release), Some(ReleaseState::Ready));
        if let Some(state) = state_of(&status, &d3.release) {
            assert_eq!(state, ReleaseState::Failed);
        }
        assert!(
            status
                .releases
                .iter()
                .all(|r| r.state() != ReleaseState::Unfinished),
            "{status:?}"
        );
    }

    // The control plane passes the same through.
    for host in cluster.fleet_status().await {
        assert!(host.reachable, "{host:?}");
        let app = host.apps.iter().find(|a| a.app == APP).expect("app");
        assert_eq!(app.current_release, d2.release);
        assert_eq!(app.previous_release, d1.release);
        let active: Vec<&str> = app
            .release_details
            .iter()
            .filter(|r| r.state() == ReleaseState::Active)
            .map(|r| r.id.as_str())
            .collect();
        assert_eq!(active, [d2.release.as_str()]);
    }
    cluster.shutdown().await;
}
