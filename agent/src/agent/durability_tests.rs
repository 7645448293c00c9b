//! What survives a restart or a crash, below gRPC: replays of finished
//! operations, interrupted ones run again, retention with pins and the
//! previous good release.

use futures_util::StreamExt;
use slipway_proto::agent::v1::ReleaseState;
use tonic::{Code, Status};

use super::{
    lifecycle_tests::{check, hook, lines, states, status},
    tests::{fixture, result},
    *,
};
use crate::{
    activation::{Activation, Point, Probe},
    journal::{OperationRecord, Status as OpStatus},
};

#[tokio::test]
async fn a_repeat_after_a_restart_replays_without_redoing_anything() {
    let mut f = fixture().await;
    let activation = Activation {
        hooks: vec![hook(
            Point::AfterActivate,
            "after-activate",
            &format!("echo ran >> {}", f.dir.path().join("ran").display()),
        )],
        ..Activation::default()
    };
    let first = f.deploy_with("d1", "r1", activation.clone(), 5).await;
    assert!(result(&first).success);
    f.restart().await;
    let plan = DeployPlan {
        activation: activation.clone(),
        ..f.plan("d1", "r1")
    };
    let replay: Vec<_> = f.agent.deploy(plan.clone()).await.unwrap().collect().await;
    // A new process replays the recorded run under its own id, so a client
    // that saw part of it before the restart skips what it saw.
    assert_eq!(replay[0].run_id, first[0].run_id, "the recorded run");
    let recorded = first.clone();
    assert_eq!(replay, recorded, "the recorded events, byte for byte");
    let again: Vec<_> = f.agent.deploy(plan).await.unwrap().collect().await;
    assert_eq!(again, replay, "asked again in this process: the same run");
    assert_eq!(lines(&f, "ran"), ["ran"], "the hook did not run again");
    let err = f.agent.deploy(f.plan("d1", "r2")).await.err().unwrap();
    let status = Status::from(err);
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert!(
        status
            .message()
            .contains("already names a deploy of release r1"),
        "{}",
        status.message()
    );
}

#[tokio::test]
async fn an_operation_interrupted_by_a_crash_runs_again_and_leftovers_go() {
    let mut f = fixture().await;
    f.deploy("d1", "r1").await;
    let app = f.app();
    // The agent died during d2: journaled as running, half a staging tree.
    let journal = f.agent.journals.get(&app).unwrap();
    journal
        .update(|data| {
            data.set_state("r2", crate::journal::State::Unfinished, "d2");
            data.begin_operation(OperationRecord {
                previous_release: Some("r1".into()),
                started_unix: 0,
                ..OperationRecord::running("d2", "r2")
            });
            Ok::<_, Error>(())
        })
        .unwrap();
    std::fs::create_dir_all(app.staging().join("r2.d2/public")).unwrap();
    f.restart().await;
    assert!(std::fs::read_dir(app.staging()).unwrap().next().is_none());
    let app_status = status(&f).await;
    assert_eq!(app_status.running_deployment, "");
    assert_eq!(
        states(&app_status),
        [("r1".to_owned(), ReleaseState::Active)]
    );

    let events = f.deploy("d2", "r2").await;
    assert!(result(&events).success, "{events:#?}");
    assert_eq!(status(&f).await.current_release, "r2");
}

#[tokio::test]
async fn pinned_and_previous_good_releases_survive_retention() {
    let f = fixture().await;
    f.deploy("d1", "r1").await;
    let pinned = f.agent.pin(f.app(), "r1".into(), true, 0).await.unwrap();
    assert!(pinned.pinned);
    assert_eq!(pinned.state(), ReleaseState::Active);
    for (d, r) in [("d2", "r2"), ("d3", "r3"), ("d4", "r4")] {
        let events = f.deploy_with(d, r, Activation::default(), 1).await;
        assert!(result(&events).success);
    }
    let app = status(&f).await;
    let ids: Vec<_> = app.releases.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(
        ids,
        ["r1", "r3", "r4"],
        "r2 pruned; r1 pinned, r3 previous good"
    );
    assert_eq!(
        (app.current_release.as_str(), app.previous_release.as_str()),
        ("r4", "r3")
    );
    assert!(app.releases[0].pinned && !app.releases[1].pinned);
    assert_eq!(app.releases[0].state(), ReleaseState::Ready);
    assert!(app.releases[0].size_bytes > 0);

    let err = f
        .agent
        .pin(f.app(), "r2".into(), true, 0)
        .await
        .unwrap_err();
    let status = Status::from(err);
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert_eq!(status.message(), "release r2 is not on this host");
    let unpinned = f.agent.pin(f.app(), "r1".into(), false, 0).await.unwrap();
    assert!(!unpinned.pinned);
}

#[tokio::test]
async fn a_retry_after_a_crash_past_the_switch_still_knows_where_to_go_back() {
    let mut f = fixture().await;
    f.deploy("d1", "r1").await;
    let before = Activation {
        hooks: vec![hook(
            Point::BeforeActivate,
            "before-activate",
            &format!(
                "echo $SLIPWAY_RELEASE_ID >> {}",
                f.dir.path().join("before").display()
            ),
        )],
        ..Activation::default()
    };
    assert!(result(&f.deploy_with("d2", "r2", before.clone(), 5).await).success);
    // As if the agent died after switching to r2, before its checks ended.
    let journal = f.agent.journals.get(&f.app()).unwrap();
    journal
        .update(|data| {
            let op = data.operation_mut("d2", Kind::Deploy).unwrap();
            op.status = OpStatus::Running;
            op.events.clear();
            Ok::<_, Error>(())
        })
        .unwrap();
    f.restart().await;
    let failing = Activation {
        health: check(Probe::Command("exit 1".into())),
        ..before
    };
    let events = f.deploy_with("d2", "r2", failing, 5).await;
    let done = result(&events);
    assert!(!done.success, "ran again rather than replayed");
    assert_eq!(done.current_release, "r1", "{}", done.error);
    assert_eq!(
        lines(&f, "before"),
        ["r2"],
        "before-activate did not run again on a live release"
    );
    let app = status(&f).await;
    assert_eq!(
        states(&app),
        [
            ("r1".to_owned(), ReleaseState::Active),
            ("r2".to_owned(), ReleaseState::Failed)
        ]
    );
}
