//! Run ids below gRPC: every event of a run carries its run id; attaching
//! again to a running operation, or asking again for a finished one, in the
//! same agent process gives the same run and sequences; after a restart a
//! repeated request is a new run.

use std::time::Duration;

use futures_util::StreamExt;
use slipway_proto::agent::v1::ProgressEvent;

use super::{
    lifecycle_tests::hook,
    tests::{Fixture, fixture, result},
    *,
};
use crate::activation::{Activation, Point};

/// A before-activate hook that says "started", then waits for the file
/// `go` in the fixture's dir (which the test creates).
fn waiting(f: &Fixture) -> Activation {
    let go = f.dir.path().join("go");
    let script = format!(
        "echo started; while [ ! -e {go} ]; do sleep 0.02; done",
        go = go.display()
    );
    Activation {
        hooks: vec![hook(Point::BeforeActivate, "wait", &script)],
        ..Activation::default()
    }
}

/// Reads `events` up to and including the line of hook output "started".
async fn until_started(events: &mut EventStream) -> Vec<ProgressEvent> {
    let mut seen = Vec::new();
    let wait = async {
        while let Some(event) = events.next().await {
            let started = event.output == "stdout" && event.message == "started";
            seen.push(event);
            if started {
                return;
            }
        }
        panic!("the operation ended before its hook started");
    };
    tokio::time::timeout(Duration::from_secs(30), wait)
        .await
        .expect("the hook within 30 s");
    seen
}

fn one_run(events: &[ProgressEvent]) -> String {
    let run = events[0].run_id.clone();
    assert!(!run.is_empty());
    assert!(events.iter().all(|e| e.run_id == run), "{events:#?}");
    let sequences: Vec<u64> = events.iter().map(|e| e.sequence).collect();
    assert_eq!(sequences, (1..=events.len() as u64).collect::<Vec<_>>());
    run
}

#[tokio::test]
async fn a_client_that_attaches_again_sees_the_same_run_and_sequences() {
    let mut f = fixture().await;
    f.deploy("d1", "r1").await;
    f.stage("r2").await;
    let plan = DeployPlan {
        activation: waiting(&f),
        prepare_only: true,
        rebuild: false,
        ..f.plan("d2", "r2")
    };
    let mut first = f.agent.deploy(plan.clone()).await.unwrap();
    let seen = until_started(&mut first).await;
    // The client went away mid-run and attaches again: the same run from
    // sequence 1, so it skips what it saw by (run id, sequence).
    drop(first);
    let mut second = f.agent.deploy(plan.clone()).await.unwrap();
    let replayed = until_started(&mut second).await;
    assert_eq!(replayed, seen);
    std::fs::write(f.dir.path().join("go"), b"").unwrap();
    let rest: Vec<_> = second.collect().await;
    let all: Vec<_> = replayed.into_iter().chain(rest).collect();
    assert!(result(&all).success, "{all:#?}");
    let run = one_run(&all);
    assert!(
        all.iter()
            .map(|e| (e.run_id.as_str(), e.sequence))
            .skip(seen.len())
            .all(|(id, n)| id == run && n > seen.len() as u64),
        "what the client had not seen follows on"
    );

    // Finished: asked again in this process, the same run.
    let again: Vec<_> = f.agent.deploy(plan.clone()).await.unwrap().collect().await;
    assert_eq!(again, all);
    // Another deployment is another run.
    let other = f.deploy("d3", "r3").await;
    assert_ne!(one_run(&other), run);

    // After a restart, the repeat replays the recorded run under its own
    // id and sequences, and stays that run while this process lives.
    f.restart().await;
    let after: Vec<_> = f.agent.deploy(plan.clone()).await.unwrap().collect().await;
    assert_eq!(one_run(&after), run);
    assert_eq!(after, all, "the recorded outcome, as the same run");
    let again: Vec<_> = f.agent.deploy(plan).await.unwrap().collect().await;
    assert_eq!(again, after);
}

#[tokio::test]
async fn each_operation_is_its_own_run_and_replays_as_itself() {
    let f = fixture().await;
    f.deploy("d1", "r1").await;
    f.stage("r2").await;
    let first = f.deploy("d2", "r2").await;
    // A rollback is a run of its own; the deploy still replays as itself.
    let rollback = RollbackPlan {
        app: f.app(),
        deployment_id: "d3".into(),
        release_id: "r1".into(),
        activation: Activation::default(),
        environment: "test".into(),
        fencing_token: 1,
        fencing_epoch: String::new(),
        prepared_keep: None,
        secrets_only: false,
    };
    let back: Vec<_> = f
        .agent
        .rollback(rollback.clone())
        .await
        .unwrap()
        .collect()
        .await;
    assert!(result(&back).success);
    assert_ne!(one_run(&back), one_run(&first));
    let again: Vec<_> = f.agent.rollback(rollback).await.unwrap().collect().await;
    assert_eq!(again, back);
    let replay = f.deploy("d2", "r2").await;
    assert_eq!(replay, first);
}
