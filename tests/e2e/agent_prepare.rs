//! Two-phase deploys at a real agent over mutual TLS. PrepareRelease (or
//! the deprecated prepare-only Deploy) builds the release and runs its
//! before-activate hooks without touching `current`; ActivateRelease (or a
//! Rollback) under the same deployment id then switches to it, runs its
//! after-activate hooks and health check, and records it as active with the
//! previous release as the good one. Each phase replays when repeated, as
//! the same run; refusals carry their ErrorInfo reason.

use slipway_proto::{
    AGENT_CONTRACT_VERSION,
    agent::v1::{GetStatusRequest, ProgressEvent, ReleaseState, Stage},
    reason::{self, Reason},
};
use slipway_tests::{
    Cluster, assert_succeeded,
    direct::{agent_activate, agent_deploy, agent_prepare, agent_rollback, app_target, outcome},
    disk,
    repo::{Change, assert_tree_matches},
    spec,
};
use tonic::Code;

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
    // The deprecated field keeps working for control planes that use it.
    #[allow(deprecated)]
    {
        prepare.prepare_only = true;
    }
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

/// The run of a finished operation's events: one run id on every event,
/// sequences from 1.
#[track_caller]
fn one_run(events: &[ProgressEvent]) -> String {
    let run = events[0].run_id.clone();
    assert!(!run.is_empty(), "{events:#?}");
    assert!(events.iter().all(|e| e.run_id == run), "{events:#?}");
    let sequences: Vec<u64> = events.iter().map(|e| e.sequence).collect();
    assert_eq!(sequences, (1..=events.len() as u64).collect::<Vec<_>>());
    run
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_prepare_release_then_activate_release_with_reasons_on_refusals() {
    let cluster = Cluster::builder().agents(1).start().await;
    let host = &cluster.agents[0];
    cluster.repo.commit("one", &[Change::File("a.txt", b"1\n")]);
    let (_, d1) = cluster.deploy("main").await;
    assert_succeeded(&d1);
    let c2 = cluster.repo.commit("two", &[Change::File("a.txt", b"2\n")]);
    let r2 = cluster.create_release("main").await;
    // A newer lock holder than the control plane's last call.
    let token = cluster.holder_token(0).await + 1;
    cluster.agent_upload(0, &r2, token).await.expect("upload");
    let mut agent = cluster.agent_client(0);

    let contract = agent
        .get_status(GetStatusRequest {
            apps: vec![app_target()],
            omit_sizes: true,
        })
        .await
        .expect("status")
        .into_inner()
        .host
        .expect("host");
    assert_eq!(contract.contract_version, AGENT_CONTRACT_VERSION);
    assert!(!contract.agent_version.is_empty());

    // A delta against a base the host does not have: the caller learns
    // from the reason, not the text, to send the whole manifest.
    let mut delta = cluster
        .agent_prepare_request("dep-contract", &r2.id, token)
        .await;
    delta.base_release = "not-on-this-host".into();
    delta.files.clear();
    let refused = agent_prepare(&mut agent, delta)
        .await
        .expect_err("an unknown base");
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert_eq!(
        reason::reason(&refused),
        Some(Reason::BaseReleaseUnknown),
        "{refused:?}"
    );
    let (_, metadata) = reason::error_info(&refused).expect("ErrorInfo");
    assert_eq!(metadata["base_release"], "not-on-this-host");

    let prepare = cluster
        .agent_prepare_request("dep-contract", &r2.id, token)
        .await;
    let prepared = agent_prepare(&mut agent, prepare.clone())
        .await
        .expect("prepare");
    let done = outcome(&prepared);
    assert!(done.success, "{prepared:#?}");
    assert_eq!(done.current_release, d1.release, "not switched");
    assert_eq!(host.current().as_deref(), Some(d1.release.as_str()));
    assert_tree_matches(&host.release_dir(&r2.id), &cluster.repo, &c2);
    let prepare_run = one_run(&prepared);
    // Asked again: the same run, so a client skips all of it.
    let again = agent_prepare(&mut agent, prepare).await.expect("again");
    assert_eq!(again, prepared);

    // The old lock holder's token, once the newer one reached the agent.
    let stale = cluster
        .agent_activate_request("dep-contract", &r2.id, token - 1)
        .await;
    let refused = agent_activate(&mut agent, stale)
        .await
        .expect_err("a stale token");
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert_eq!(
        reason::reason(&refused),
        Some(Reason::StaleFencingToken),
        "{refused:?}"
    );

    // A release on disk that this deployment did not prepare.
    let other = cluster
        .agent_activate_request("dep-not-prepared", &d1.release, token)
        .await;
    let refused = agent_activate(&mut agent, other)
        .await
        .expect_err("not prepared");
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert_eq!(
        reason::reason(&refused),
        Some(Reason::ReleaseNotPrepared),
        "{refused:?}"
    );
    assert_eq!(host.current().as_deref(), Some(d1.release.as_str()));

    let activate = cluster
        .agent_activate_request("dep-contract", &r2.id, token)
        .await;
    let activated = agent_activate(&mut agent, activate.clone())
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
    assert!(
        activated[0]
            .message
            .starts_with("activating prepared release"),
        "{activated:#?}"
    );
    let activate_run = one_run(&activated);
    assert_ne!(activate_run, prepare_run, "each operation is its own run");
    let again = agent_activate(&mut agent, activate)
        .await
        .expect("activate again");
    assert_eq!(again, activated);
    // A Rollback under the deployment id is the same switch: it replays.
    let rollback = cluster
        .agent_rollback_request("dep-contract", &r2.id, token)
        .await;
    assert_eq!(
        agent_rollback(&mut agent, rollback)
            .await
            .expect("the same switch"),
        activated
    );
    disk::assert_journal_settled(&host.app_root());
    cluster.shutdown().await;
}
