//! Two-phase deploys at a real agent: a prepare-only Deploy builds the
//! release and runs its before-activate hooks without touching `current`;
//! a Rollback under the same deployment id then switches to it, runs its
//! after-activate hooks and health check, and records it as active with the
//! previous release as the good one. Each phase replays when repeated.

use slipway_proto::agent::v1::{ReleaseState, Stage};
use slipway_tests::{
    Cluster, assert_succeeded,
    direct::{agent_deploy, agent_rollback, outcome},
    disk,
    repo::{Change, assert_tree_matches},
    spec,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_prepare_only_leaves_current_and_the_rollback_of_its_deployment_activates() {
    let log = r#"echo "$0 $SLIPWAY_RELEASE_ID" >> "$SLIPWAY_RELEASE_DIR/../../hooks.log""#;
    let activation = slipway_proto::agent::v1::ActivationSpec {
        health_check: Some(spec::health_command("test -f a.txt", 2, 50)),
        ..spec::hooks(vec![
            spec::before_activate("before", &log.replace("$0", "before")),
            spec::after_activate("after", &log.replace("$0", "after")),
        ])
    };
    let cluster = Cluster::builder()
        .agents(1)
        .activation(activation)
        .start()
        .await;
    let host = &cluster.agents[0];
    let root = host.app_root();
    let hooks = root.join("hooks.log");
    cluster.repo.commit("one", &[Change::File("a.txt", b"1\n")]);
    let (_, d1) = cluster.deploy("main").await;
    assert_succeeded(&d1);
    let c2 = cluster.repo.commit("two", &[Change::File("a.txt", b"2\n")]);
    let r2 = cluster.create_release("main").await;
    let token = cluster.holder_token(0).await;
    cluster.agent_upload(0, &r2, token).await.expect("upload");

    let mut agent = cluster.agent_client(0);
    let mut prepare = cluster.agent_deploy_request("dep-two-phase", &r2.id).await;
    prepare.prepare_only = true;
    prepare.fencing_token = token;
    let prepared = agent_deploy(&mut agent, prepare.clone())
        .await
        .expect("prepare");
    let done = outcome(&prepared);
    assert!(done.success, "{prepared:#?}");
    assert_eq!(done.current_release, d1.release, "not switched");
    assert_eq!(
        prepared.last().expect("events").message,
        format!("release {} is ready; not switched", r2.id)
    );
    assert!(
        prepared.iter().all(|e| e.stage() != Stage::Activate),
        "{prepared:#?}"
    );
    assert_eq!(host.current().as_deref(), Some(d1.release.as_str()));
    assert_tree_matches(&host.release_dir(&r2.id), &cluster.repo, &c2);
    let status = cluster.agent_status(0).await;
    let state = |status: &slipway_proto::agent::v1::AppStatus, id: &str| {
        status
            .releases
            .iter()
            .find(|r| r.id == id)
            .unwrap_or_else(|| panic!("{id} in {status:?}"))
            .state()
    };
    assert_eq!(status.current_release, d1.release);
    assert_eq!(state(&status, &r2.id), ReleaseState::Ready);
    let ran = [
        format!("before {}", d1.release),
        format!("after {}", d1.release),
        format!("before {}", r2.id),
    ];
    assert_eq!(disk::lines(&hooks), ran);

    // A repeated prepare replays its events and runs nothing.
    let again = agent_deploy(&mut agent, prepare.clone())
        .await
        .expect("prepare again");
    assert_eq!(again, prepared);
    assert_eq!(disk::lines(&hooks), ran);

    let activate = cluster
        .agent_rollback_request("dep-two-phase", &r2.id, token)
        .await;
    let activated = agent_rollback(&mut agent, activate.clone())
        .await
        .expect("activate");
    let done = outcome(&activated);
    assert!(done.success, "{activated:#?}");
    assert_eq!(
        (
            done.previous_release.as_str(),
            done.current_release.as_str()
        ),
        (d1.release.as_str(), r2.id.as_str())
    );
    assert_eq!(host.current().as_deref(), Some(r2.id.as_str()));
    assert_tree_matches(&root.join("current"), &cluster.repo, &c2);
    let health = activated
        .iter()
        .filter(|e| e.stage() == Stage::HealthCheck && e.message.contains("passed"))
        .count();
    assert_eq!(health, 1, "{activated:#?}");
    let status = cluster.agent_status(0).await;
    assert_eq!(
        (
            status.current_release.as_str(),
            status.previous_release.as_str()
        ),
        (r2.id.as_str(), d1.release.as_str())
    );
    assert_eq!(state(&status, &r2.id), ReleaseState::Active);
    assert_eq!(state(&status, &d1.release), ReleaseState::Ready);
    let mut all = ran.to_vec();
    all.push(format!("after {}", r2.id));
    assert_eq!(disk::lines(&hooks), all);

    // Both phases replay; nothing runs again.
    let again = agent_rollback(&mut agent, activate)
        .await
        .expect("activate again");
    assert_eq!(again, activated);
    assert_eq!(
        agent_deploy(&mut agent, prepare)
            .await
            .expect("prepare again"),
        prepared
    );
    assert_eq!(disk::lines(&hooks), all);
    disk::assert_journal_settled(&root);
    cluster.shutdown().await;
}
