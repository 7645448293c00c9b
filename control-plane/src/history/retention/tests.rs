//! History retention over a store filled directly: old logs dropped in
//! batches, records kept and marked, the cursor, what stops a run.

use std::time::{Duration, SystemTime};

use slipway_proto::control::v1::{
    DeploymentEvent, DeploymentKind, DeploymentStatus, ListAuditEventsRequest,
};

use super::*;
use crate::history::tests::{dep, fixture};

fn events(id: &str, n: u64) -> Vec<crate::store::Op> {
    (1..=n)
        .map(|sequence| {
            events::append(&DeploymentEvent {
                deployment_id: id.into(),
                sequence,
                message: format!("line {sequence}"),
                ..Default::default()
            })
        })
        .collect()
}

fn at(seconds: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(seconds)
}

#[tokio::test]
async fn old_logs_go_records_stay_and_each_run_starts_where_the_last_stopped() {
    use DeploymentKind::Deploy;
    use DeploymentStatus::{Running, Succeeded};
    // Deployment n starts at n*100 s and finishes 10 s later; 3 still runs.
    let f = fixture(vec![
        dep(1, Deploy, Succeeded, "r1"),
        dep(2, Deploy, Succeeded, "r1"),
        dep(3, Deploy, Running, "r1"),
        dep(4, Deploy, Succeeded, "r1"),
    ])
    .await;
    let store = &f.store;
    for n in 1..=4 {
        store
            .commit(events(&deployments::id(n), 5_000))
            .await
            .unwrap();
    }
    let logged = |n: u64| {
        events::after(store, &deployments::id(n), 0, 10_000)
            .unwrap()
            .len()
    };

    // Nothing finished before 0.
    assert_eq!(compact(store, at(0)).await.unwrap(), Compacted::default());
    // 1 and 2 finished before 500 s; 3 is still running, so 4 waits too.
    let done = compact(store, at(500)).await.unwrap();
    assert_eq!(
        done,
        Compacted {
            deployments: 2,
            events: 10_000
        }
    );
    assert_eq!(
        (logged(1), logged(2), logged(3), logged(4)),
        (0, 0, 5_000, 5_000)
    );
    for n in [1, 2] {
        let d = deployments::get(store, &deployments::id(n))
            .unwrap()
            .unwrap();
        assert!(d.events_compacted, "the summary says so");
        assert_eq!(d.status(), Succeeded, "the summary stays");
    }
    assert_eq!(retention::cursor(store).unwrap(), 2);
    // Again: nothing new.
    assert_eq!(compact(store, at(500)).await.unwrap(), Compacted::default());

    // Once 3 has finished, the next run goes on from there.
    let mut three = deployments::get(store, &deployments::id(3))
        .unwrap()
        .unwrap();
    three.status = Succeeded as i32;
    store.commit(vec![deployments::put(&three)]).await.unwrap();
    let done = compact(store, at(1_000)).await.unwrap();
    assert_eq!(
        done,
        Compacted {
            deployments: 2,
            events: 10_000
        }
    );
    assert_eq!(retention::cursor(store).unwrap(), 4);
}

#[tokio::test]
async fn a_run_that_compacted_something_is_audited() {
    let f = fixture(vec![dep(
        1,
        DeploymentKind::Deploy,
        DeploymentStatus::Succeeded,
        "r1",
    )])
    .await;
    let store = f.store.clone();
    store.commit(events(&deployments::id(1), 3)).await.unwrap();
    // Retention of one day, long after the deployment finished.
    let task = tokio::spawn(run(
        store.clone(),
        Duration::from_secs(86_400),
        Duration::from_secs(3600),
    ));
    let audited = async {
        loop {
            let (entries, _) = audit::list(&store, &ListAuditEventsRequest::default()).unwrap();
            if let Some(entry) = entries.into_iter().find(|e| e.method == "HistoryRetention") {
                return entry;
            }
            tokio::task::yield_now().await;
        }
    };
    let entry = tokio::time::timeout(Duration::from_secs(30), audited)
        .await
        .expect("the run is audited");
    task.abort();
    assert_eq!(entry.actor, "control-plane");
    assert!(
        entry.message.contains("1 deployments (3 events)"),
        "{}",
        entry.message
    );
}
