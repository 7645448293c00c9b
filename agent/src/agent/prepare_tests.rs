//! Two-phase deploys below gRPC: a prepare-only deploy leaves the release
//! ready without switching; a Rollback with the same deployment id
//! activates it, with its checks, bookkeeping and retention; both replay.

use futures_util::StreamExt;
use slipway_proto::agent::v1::{ProgressEvent, ReleaseState, Stage};
use tonic::{Code, Status};

use super::{
    lifecycle_tests::{check, hook, lines, states, status},
    tests::{Fixture, fixture, result},
    *,
};
use crate::activation::{Activation, Point, Probe};

fn prepare_plan(f: &Fixture, deployment: &str, id: &str, activation: &Activation) -> DeployPlan {
    DeployPlan {
        prepare_only: true,
        rebuild: false,
        activation: activation.clone(),
        keep: 1,
        ..f.plan(deployment, id)
    }
}

fn activate_plan(f: &Fixture, deployment: &str, id: &str, activation: &Activation) -> RollbackPlan {
    RollbackPlan {
        app: f.app(),
        deployment_id: deployment.into(),
        release_id: id.into(),
        activation: activation.clone(),
        environment: "test".into(),
        fencing_token: 1,
        fencing_epoch: String::new(),
        prepared_keep: None,
        secrets_only: false,
    }
}

async fn prepare(f: &Fixture, deployment: &str, id: &str, a: &Activation) -> Vec<ProgressEvent> {
    let plan = prepare_plan(f, deployment, id, a);
    f.agent.deploy(plan).await.unwrap().collect().await
}

async fn activate(f: &Fixture, deployment: &str, id: &str, a: &Activation) -> Vec<ProgressEvent> {
    let plan = activate_plan(f, deployment, id, a);
    f.agent.rollback(plan).await.unwrap().collect().await
}

fn named(states: &[(&str, ReleaseState)]) -> Vec<(String, ReleaseState)> {
    states
        .iter()
        .map(|(id, s)| ((*id).to_owned(), *s))
        .collect()
}

/// Hooks that log `<point> <release>` to `hooks` in the fixture's dir.
fn logging(f: &Fixture) -> Activation {
    let log = f.dir.path().join("hooks");
    let line = |point: &str| format!("echo \"{point} $SLIPWAY_RELEASE_ID\" >> {}", log.display());
    Activation {
        hooks: vec![
            hook(Point::BeforeActivate, "before-activate", &line("before")),
            hook(Point::AfterActivate, "after-activate", &line("after")),
        ],
        health: check(Probe::Command("true".into())),
        ..Activation::default()
    }
}

#[tokio::test]
async fn a_prepared_release_is_ready_until_the_rollback_of_its_deployment_switches() {
    let f = fixture().await;
    let activation = logging(&f);
    for (d, r) in [("d1", "r1"), ("d2", "r2")] {
        assert!(result(&f.deploy_with(d, r, activation.clone(), 5).await).success);
    }
    f.stage("r3").await;

    let prepared = prepare(&f, "d3", "r3", &activation).await;
    let done = result(&prepared);
    assert!(done.success, "{prepared:#?}");
    assert_eq!(
        (
            done.previous_release.as_str(),
            done.current_release.as_str()
        ),
        ("r2", "r2")
    );
    let last = prepared.last().unwrap();
    assert_eq!(last.message, "release r3 is ready; not switched");
    assert!(prepared.iter().all(|e| e.stage() != Stage::Activate));
    let app = status(&f).await;
    assert_eq!(app.current_release, "r2");
    assert_eq!(
        states(&app),
        named(&[
            ("r1", ReleaseState::Ready),
            ("r2", ReleaseState::Active),
            ("r3", ReleaseState::Ready)
        ])
    );
    let ran = [
        "before r1",
        "after r1",
        "before r2",
        "after r2",
        "before r3",
    ];
    assert_eq!(lines(&f, "hooks"), ran);

    // A repeated prepare replays.
    assert_eq!(prepare(&f, "d3", "r3", &activation).await, prepared);
    assert_eq!(lines(&f, "hooks"), ran);

    let activated = activate(&f, "d3", "r3", &activation).await;
    let done = result(&activated);
    assert!(done.success, "{activated:#?}");
    assert_eq!(
        (
            done.previous_release.as_str(),
            done.current_release.as_str()
        ),
        ("r2", "r3")
    );
    assert_eq!(activated.last().unwrap().message, "release r3 is live");
    assert_eq!(
        lines(&f, "hooks")[5..],
        ["after r3"],
        "no second before-activate"
    );
    let app = status(&f).await;
    assert_eq!(
        (app.current_release.as_str(), app.previous_release.as_str()),
        ("r3", "r2")
    );
    // The prepare's keep (1) applies once switched; r2 stays as previous.
    assert_eq!(
        states(&app),
        named(&[("r2", ReleaseState::Ready), ("r3", ReleaseState::Active)])
    );

    // Both phases replay, in any order; a whole Deploy repeated under the
    // deployment id replays the deployment's outcome, its activation.
    assert_eq!(activate(&f, "d3", "r3", &activation).await, activated);
    assert_eq!(prepare(&f, "d3", "r3", &activation).await, prepared);
    let whole: Vec<_> = f
        .agent
        .deploy(f.plan("d3", "r3"))
        .await
        .unwrap()
        .collect()
        .await;
    assert_eq!(whole, activated);
    assert_eq!(lines(&f, "hooks").len(), 6, "nothing ran again");
}

#[tokio::test]
async fn retention_keeps_a_prepared_release_until_it_is_switched_to() {
    let f = fixture().await;
    f.deploy("d1", "r1").await;
    f.stage("r3").await;
    let none = Activation::default();
    assert!(result(&prepare(&f, "d3", "r3", &none).await).success);
    // Another deployment meanwhile, keeping 1: r1 is its previous, r3 is
    // newer than current and waits for its switch.
    let events = f.deploy_with("d2", "r2", none.clone(), 1).await;
    assert!(result(&events).success);
    let app = status(&f).await;
    assert_eq!(
        states(&app),
        named(&[
            ("r1", ReleaseState::Ready),
            ("r2", ReleaseState::Active),
            ("r3", ReleaseState::Ready)
        ])
    );
    assert!(result(&activate(&f, "d3", "r3", &none).await).success);
    let app = status(&f).await;
    assert_eq!(
        (app.current_release.as_str(), app.previous_release.as_str()),
        ("r3", "r2")
    );
    assert_eq!(
        states(&app),
        named(&[("r2", ReleaseState::Ready), ("r3", ReleaseState::Active)])
    );
}

#[tokio::test]
async fn a_failed_activation_switches_back_and_keeps_the_bookkeeping() {
    let f = fixture().await;
    // The very first release of an app can be prepared and activated too.
    let none = Activation::default();
    f.stage("r1").await;
    let first = prepare(&f, "d1", "r1", &none).await;
    assert_eq!(result(&first).current_release, "");
    assert_eq!(status(&f).await.current_release, "");
    let done = activate(&f, "d1", "r1", &none).await;
    assert_eq!(
        (
            result(&done).previous_release.as_str(),
            result(&done).current_release.as_str()
        ),
        ("", "r1")
    );
    assert_eq!(status(&f).await.previous_release, "");

    f.stage("r2").await;
    assert!(result(&prepare(&f, "d2", "r2", &none).await).success);
    let failing = Activation {
        health: check(Probe::Command("exit 1".into())),
        ..none.clone()
    };
    let events = activate(&f, "d2", "r2", &failing).await;
    let done = result(&events);
    assert!(!done.success);
    assert_eq!(done.current_release, "r1");
    assert!(
        done.error.contains("current was switched back to r1"),
        "{}",
        done.error
    );
    let app = status(&f).await;
    assert_eq!(
        (app.current_release.as_str(), app.previous_release.as_str()),
        ("r1", "")
    );
    assert_eq!(
        states(&app),
        named(&[("r1", ReleaseState::Active), ("r2", ReleaseState::Failed)])
    );
    assert_eq!(activate(&f, "d2", "r2", &failing).await, events, "replayed");
}

#[tokio::test]
async fn a_deployment_id_pairs_only_a_prepare_with_the_activation_of_its_release() {
    let f = fixture().await;
    f.deploy("d1", "r1").await;
    f.stage("r2").await;
    let none = Activation::default();
    let failing = Activation {
        hooks: vec![hook(Point::BeforeActivate, "migrate", "exit 3")],
        ..Activation::default()
    };
    assert!(!result(&prepare(&f, "d2", "r2", &failing).await).success);
    let refused = |err: Error| Status::from(err);

    let status_ = refused(
        f.agent
            .rollback(activate_plan(&f, "d2", "r2", &none))
            .await
            .err()
            .unwrap(),
    );
    assert_eq!(status_.code(), Code::FailedPrecondition);
    assert!(
        status_
            .message()
            .contains("deployment d2 did not prepare release r2 on this host (its prepare failed)"),
        "{}",
        status_.message()
    );
    let status_ = refused(
        f.agent
            .rollback(activate_plan(&f, "d2", "r1", &none))
            .await
            .err()
            .unwrap(),
    );
    assert_eq!(status_.code(), Code::FailedPrecondition);
    assert!(
        status_
            .message()
            .contains("already names a prepare-only deploy of release r2"),
        "{}",
        status_.message()
    );
    let status_ = refused(f.agent.deploy(f.plan("d2", "r2")).await.err().unwrap());
    assert!(
        status_
            .message()
            .contains("already names a prepare-only deploy"),
        "{}",
        status_.message()
    );
    let plan = prepare_plan(&f, "d1", "r1", &none);
    let status_ = refused(f.agent.deploy(plan).await.err().unwrap());
    assert!(
        status_
            .message()
            .contains("already names a deploy of release r1"),
        "{}",
        status_.message()
    );
    assert_eq!(status(&f).await.current_release, "r1");
}
