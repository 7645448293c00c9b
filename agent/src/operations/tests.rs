//! The operations table: one per app, attach, replay, run ids, and a
//! guard dropped without finishing.

use futures_util::StreamExt;

use super::*;

fn spec(id: &str, root: &str) -> Spec {
    Spec {
        deployment_id: id.into(),
        kind: Kind::Deploy,
        app: "web".into(),
        root: root.into(),
        release_id: "r1".into(),
    }
}

async fn done(guard: OperationGuard) -> Vec<ProgressEvent> {
    let result = OperationResult {
        success: true,
        ..Default::default()
    };
    let last = Event {
        stage: Stage::Done,
        percent: 100,
        level: LogLevel::Info,
        message: "done".into(),
        ..Event::default()
    };
    let recorded = Arc::new(Mutex::new(Vec::new()));
    let sink = recorded.clone();
    guard
        .finish(last, result, |events| async move {
            *sink.lock().unwrap() = events;
        })
        .await;
    recorded.lock().unwrap().clone()
}

#[tokio::test]
async fn one_operation_per_app_with_attach_and_replay() {
    let ops = Operations::new();
    let Begin::New(guard) = ops.begin(spec("d1", "/srv/web")).unwrap() else {
        panic!("expected a new operation");
    };
    guard
        .log()
        .push(Stage::Prepare, 0, LogLevel::Info, "one", None);

    let busy = ops.begin(spec("d2", "/srv/web")).unwrap_err();
    assert_eq!(
        busy.to_string(),
        "deployment d1 is already running for app web"
    );
    assert!(matches!(
        ops.begin(spec("d2", "/srv/api")).unwrap(),
        Begin::New(_)
    ));
    let mut other = spec("d1", "/srv/web");
    other.release_id = "r2".into();
    assert!(matches!(
        ops.begin(other),
        Err(OperationError::Reused { .. })
    ));
    assert_eq!(ops.running_on("/srv/web".as_ref()).as_deref(), Some("d1"));

    let Begin::Existing(attached) = ops.begin(spec("d1", "/srv/web")).unwrap() else {
        panic!("expected to attach");
    };
    let follower = tokio::spawn(attached.subscribe().collect::<Vec<_>>());
    let recorded = done(guard).await;
    let events = follower.await.unwrap();
    assert_eq!(
        recorded, events,
        "the journal gets exactly what is streamed"
    );
    assert_eq!(
        events.iter().map(|e| e.sequence).collect::<Vec<_>>(),
        [1, 2]
    );
    assert!(events[1].result.as_ref().unwrap().success);

    let Begin::Existing(replayed) = ops.begin(spec("d1", "/srv/web")).unwrap() else {
        panic!("expected a replay");
    };
    assert_eq!(replayed.subscribe().collect::<Vec<_>>().await, events);
    assert!(matches!(
        ops.begin(spec("d3", "/srv/web")).unwrap(),
        Begin::New(_)
    ));
    ops.wait_idle().await;
}

#[tokio::test]
async fn a_run_keeps_its_id_in_this_process_and_in_a_replay_after_a_restart() {
    let ops = Operations::new();
    let Begin::New(guard) = ops.begin(spec("d1", "/srv/web")).unwrap() else {
        panic!("expected a new operation");
    };
    let run = guard.log().run_id().to_owned();
    guard
        .log()
        .push(Stage::Prepare, 0, LogLevel::Info, "one", None);
    let Begin::Existing(attached) = ops.begin(spec("d1", "/srv/web")).unwrap() else {
        panic!("expected to attach");
    };
    assert_eq!(attached.run_id(), run);
    let events = done(guard).await;
    assert!(events.iter().all(|e| e.run_id == run), "{events:#?}");
    let Begin::Existing(again) = ops.begin(spec("d1", "/srv/web")).unwrap() else {
        panic!("expected a replay");
    };
    assert_eq!(again.subscribe().collect::<Vec<_>>().await, events);
    let Begin::New(other) = ops.begin(spec("d2", "/srv/web")).unwrap() else {
        panic!("expected a new operation");
    };
    assert_ne!(other.log().run_id(), run, "another run, another id");
    drop(other);

    // From the journal: a run keeps its id, whichever process made it, so
    // a client deduplicates a replay after a restart by (run id, sequence)...
    let mine = spec("d3", "/srv/api");
    let replayed = ops.replay(&mine, &run, events.clone());
    assert_eq!(replayed.subscribe().collect::<Vec<_>>().await, events);
    let earlier = spec("d4", "/srv/api");
    let first = ops.replay(&earlier, "0123456789abcdef-7", events.clone());
    assert_eq!(first.run_id(), "0123456789abcdef-7");
    let second = ops.replay(&earlier, "0123456789abcdef-7", events.clone());
    assert!(Arc::ptr_eq(&first, &second));
    let Begin::Existing(found) = ops.begin(earlier).unwrap() else {
        panic!("a replay is remembered like a finished run");
    };
    assert_eq!(found.run_id(), first.run_id());
    // ...and one recorded without an id gets a new one.
    let unnamed = ops.replay(&spec("d5", "/srv/api"), "", events.clone());
    assert!(!unnamed.run_id().is_empty());
    let sequences: Vec<_> = found.subscribe().map(|e| e.sequence).collect().await;
    assert_eq!(sequences, [1, 2]);
}

#[tokio::test]
async fn a_dropped_guard_records_a_failure() {
    let ops = Operations::new();
    let Begin::New(guard) = ops.begin(spec("d1", "/srv/web")).unwrap() else {
        panic!("expected a new operation");
    };
    let log = guard.log().clone();
    drop(guard);
    let events = log.subscribe().collect::<Vec<_>>().await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].level(), LogLevel::Error);
    assert!(!events[0].result.as_ref().unwrap().success);
    assert_eq!(ops.running_on("/srv/web".as_ref()), None);
}

#[tokio::test]
async fn a_closed_table_refuses_new_operations_but_lets_running_ones_be_followed() {
    let ops = Operations::new();
    let Begin::New(running) = ops.begin(spec("d1", "/srv/a")).unwrap() else {
        panic!("a new operation");
    };
    ops.close(500);
    let refused = ops.begin(spec("d2", "/srv/b")).unwrap_err();
    assert!(matches!(
        refused,
        OperationError::Upgrading {
            retry_after_ms: 500
        }
    ));
    let status = tonic::Status::from(crate::error::Error::from(refused));
    assert_eq!(status.code(), tonic::Code::Unavailable);
    // The running one is still followed by its id.
    assert!(matches!(
        ops.begin(spec("d1", "/srv/a")).unwrap(),
        Begin::Existing(_)
    ));
    done(running).await;
    ops.wait_idle().await;
    ops.reopen();
    assert!(matches!(
        ops.begin(spec("d2", "/srv/b")).unwrap(),
        Begin::New(_)
    ));
}
