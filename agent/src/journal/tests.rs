//! The journal on real files: round trip, bounded operations, refusals.

use slipway_proto::agent::v1::{LogLevel, OperationResult, Stage};

use super::*;
use crate::error::Error;

fn app() -> (tempfile::TempDir, AppRoot) {
    let dir = tempfile::tempdir().unwrap();
    let app = AppRoot::new("web", dir.path().join("web"));
    app.ensure().unwrap();
    (dir, app)
}

fn op(id: &str, status: Status) -> OperationRecord {
    OperationRecord {
        status,
        ..OperationRecord::running(id, "r1")
    }
}

fn final_event() -> ProgressEvent {
    ProgressEvent {
        sequence: 1,
        time: Some(slipway_proto::now()),
        stage: Stage::Done as i32,
        percent: 100,
        message: "release r1 is live".into(),
        level: LogLevel::Info as i32,
        result: Some(OperationResult {
            success: true,
            current_release: "r1".into(),
            ..OperationResult::default()
        }),
        step: "after-activate".into(),
        output: "stdout".into(),
        run_id: "0123456789abcdef-1".into(),
    }
}

#[test]
fn changes_survive_a_reopen_and_leave_no_temp_files() {
    let (_dir, app) = app();
    let journal = Journal::open(&app).unwrap();
    assert_eq!(journal.read(JournalData::clone), JournalData::default());
    let last = final_event();
    journal
        .update(|data| {
            data.set_state("r1", State::Active, "d1");
            data.set_state("r2", State::Failed, "d2");
            data.previous_good = Some("r0".into());
            data.begin_operation(op("d1", Status::Running));
            data.operation_mut("d1", Kind::Deploy).unwrap().hook = Some(HookProcess {
                step: "migrate".into(),
                pgid: 4242,
                boot_id: "b".into(),
            });
            data.finish_operation("d1", Kind::Deploy, vec![last.clone()]);
            Ok::<_, JournalError>(())
        })
        .unwrap();
    let written = journal.read(JournalData::clone);
    let reopened = Journal::open(&app).unwrap().read(JournalData::clone);
    assert_eq!(reopened, written);
    let op = reopened.operation("d1", Kind::Deploy).unwrap();
    assert_eq!(op.status, Status::Finished);
    assert_eq!(op.hook, None, "a finished operation runs no hook");
    // The run id is kept once, not on every event (older agents read the
    // events without knowing the field).
    assert_eq!(op.run_id, "0123456789abcdef-1");
    let stripped = ProgressEvent {
        run_id: String::new(),
        ..last
    };
    assert_eq!(op.events, vec![stripped]);
    let bytes = std::fs::read(app.journal()).unwrap();
    assert!(!String::from_utf8_lossy(&bytes).contains("runId"));
    assert_eq!(reopened.state("r2"), Some(State::Failed));

    let text = std::fs::read_to_string(app.journal()).unwrap();
    assert!(text.contains("\"version\":1"), "{text}");
    assert!(text.contains("\"state\":\"failed\""), "{text}");
    let names: Vec<String> = std::fs::read_dir(app.private())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.contains("journal"))
        .collect();
    assert_eq!(names, ["journal.log"]);
}

fn events(n: usize, line: &str) -> Vec<ProgressEvent> {
    (1..=n)
        .map(|i| ProgressEvent {
            sequence: i as u64,
            message: line.to_owned(),
            output: "stdout".into(),
            result: (i == n).then(OperationResult::default),
            ..final_event()
        })
        .collect()
}

/// Runs deploy `id` to its end with `events`.
async fn run(id: &str, journal: &Arc<Journal>, events: &[ProgressEvent]) {
    let record = op(id, Status::Running);
    journal
        .change(|data| data.begin_operation(record))
        .await
        .unwrap();
    journal
        .finish(id.into(), Kind::Deploy, events.to_vec())
        .await
        .unwrap();
}

#[tokio::test]
async fn events_live_outside_the_journal_which_grows_by_small_records() {
    let (_dir, app) = app();
    let journal = Arc::new(Journal::open(&app).unwrap());
    // 2 MB of hook output.
    let all = events(2_000, &"x".repeat(1_000));
    run("d1", &journal, &all).await;
    let size = std::fs::metadata(app.journal()).unwrap().len();
    assert!(
        size < 4_096,
        "the journal holds the outcome only: {size} bytes"
    );
    let record = journal.read(|d| d.operation("d1", Kind::Deploy).cloned().unwrap());
    assert_eq!(record.events.len(), 1);
    let replayed = journal.events(&record);
    assert_eq!(replayed.len(), 2_000);
    assert_eq!(replayed[10].message, all[10].message);
    // Later changes append small records; the events file is private.
    let before = std::fs::metadata(app.journal()).unwrap().len();
    journal
        .change(|data| data.set_state("r1", State::Active, "d1"))
        .await
        .unwrap();
    let grown = std::fs::metadata(app.journal()).unwrap().len() - before;
    assert!(grown < 512, "one small record: {grown} bytes");
    let events_dir = app.event_logs();
    let file = std::fs::read_dir(&events_dir)
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(file.metadata().unwrap().permissions().mode() & 0o777, 0o600);
    // Records dropped past the bound take their events along.
    journal
        .change(|data| {
            for i in 0..OPERATIONS_KEPT + 1 {
                data.begin_operation(op(&format!("n{i}"), Status::Finished));
            }
        })
        .await
        .unwrap();
    assert!(journal.read(|d| d.operation("d1", Kind::Deploy).is_none()));
    assert_eq!(std::fs::read_dir(&events_dir).unwrap().count(), 0);
    // Reopened: the same content (the log compacted to one line).
    let content = journal.read(JournalData::clone);
    let reopened = Journal::open(&app).unwrap();
    assert_eq!(reopened.read(JournalData::clone), content);
    let lines = std::fs::read_to_string(app.journal())
        .unwrap()
        .lines()
        .count();
    assert_eq!(lines, 1);
}

#[test]
fn a_deferred_change_is_written_with_the_next_one_in_one_line() {
    let (_dir, app) = app();
    let journal = Journal::open(&app).unwrap();
    journal
        .update(|data| {
            data.set_state("r1", State::Active, "d1");
            Ok::<_, JournalError>(())
        })
        .unwrap();
    let lines = || {
        std::fs::read_to_string(app.journal())
            .unwrap()
            .lines()
            .count()
    };
    let on_disk = || Journal::open(&app).unwrap().read(JournalData::clone);
    journal
        .defer(|data| {
            data.set_state("r2", State::Active, "d2");
            data.set_state("r1", State::Ready, "d2");
            Ok::<_, JournalError>(())
        })
        .unwrap();
    assert_eq!(
        journal.read(|d| d.state("r2")),
        Some(State::Active),
        "in memory now"
    );
    assert_eq!(lines(), 1, "nothing written");
    // A change that fails keeps what was deferred, and writes nothing.
    let failed: Result<(), Error> = journal.update(|data| {
        data.previous_good = Some("r1".into());
        Err(Error::Invalid(slipway_proto::validate::InvalidField::new(
            "x", "no",
        )))
    });
    assert!(failed.is_err());
    assert_eq!(lines(), 1);
    // Even a change that changes nothing writes what was deferred.
    journal.update(|_| Ok::<_, JournalError>(())).unwrap();
    assert_eq!(lines(), 2, "one line for both");
    journal.update(|_| Ok::<_, JournalError>(())).unwrap();
    assert_eq!(lines(), 2, "then nothing to write");
    let read = on_disk();
    assert_eq!(read.state("r2"), Some(State::Active));
    assert_eq!(read.state("r1"), Some(State::Ready));
    assert_eq!(read, journal.read(JournalData::clone));
}

#[test]
fn a_journal_json_of_an_older_agent_is_migrated_with_its_events_moved_out() {
    let (_dir, app) = app();
    let mut old = JournalData {
        fencing_token: 9,
        ..JournalData::default()
    };
    old.set_state("r1", State::Active, "d1");
    old.begin_operation(op("d0", Status::Finished));
    old.begin_operation(op("d1", Status::Finished));
    old.operations[1].events = events(300, "hook output");
    old.operations[1].seq = 0;
    std::fs::write(
        app.legacy_journal(),
        serde_json::to_vec_pretty(&old).unwrap(),
    )
    .unwrap();

    let journal = Journal::open(&app).unwrap();
    assert!(!app.legacy_journal().exists(), "migrated away");
    let data = journal.read(JournalData::clone);
    assert_eq!(data.fencing_token, 9);
    assert_eq!(data.state("r1"), Some(State::Active));
    let ids: Vec<&str> = data
        .operations
        .iter()
        .map(|o| o.deployment_id.as_str())
        .collect();
    assert_eq!(ids, ["d0", "d1"], "order kept");
    let op = data.operation("d1", Kind::Deploy).unwrap();
    assert_eq!(op.events.len(), 1, "the outcome stays in the record");
    assert_eq!(journal.events(op).len(), 300, "the events moved out");
    let size = std::fs::metadata(app.journal()).unwrap().len();
    assert!(size < 4_096, "{size}");
    assert_eq!(Journal::open(&app).unwrap().read(JournalData::clone), data);
}

#[test]
fn a_failed_change_leaves_the_journal_as_it_was() {
    let (_dir, app) = app();
    let journal = Journal::open(&app).unwrap();
    let failed: Result<(), Error> = journal.update(|data| {
        data.set_state("r1", State::Ready, "d1");
        Err(Error::Invalid(slipway_proto::validate::InvalidField::new(
            "x", "no",
        )))
    });
    assert!(failed.is_err());
    assert!(journal.read(|data| data.releases.is_empty()));
    assert!(!app.journal().exists(), "nothing written");
}

#[test]
fn operations_are_bounded_but_a_running_one_is_kept() {
    let mut data = JournalData::default();
    data.begin_operation(op("running", Status::Running));
    for i in 0..100 {
        data.begin_operation(op(&format!("d{i}"), Status::Finished));
    }
    assert_eq!(data.operations.len(), OPERATIONS_KEPT);
    assert!(data.operation("running", Kind::Deploy).is_some());
    assert!(data.operation("d99", Kind::Deploy).is_some());
    assert!(data.operation("d36", Kind::Deploy).is_none());
    // A new run of the same id replaces its record.
    data.begin_operation(op("d99", Status::Running));
    let count = data
        .operations
        .iter()
        .filter(|o| o.deployment_id == "d99")
        .count();
    assert_eq!(count, 1);
}

#[test]
fn corrupt_and_newer_journals_are_refused_with_what_to_do() {
    let (_dir, app) = app();
    std::fs::write(app.journal(), b"{not json\n{\"put\":{}}\n").unwrap();
    let err = Journal::open(&app).unwrap_err();
    assert!(err.to_string().contains("move it away"), "{err}");
    let journals = Journals::default();
    assert!(journals.get(&app).is_err());
    std::fs::write(app.journal(), b"{\"put\":{\"meta\":{\"version\":9}}}\n").unwrap();
    let err = Journal::open(&app).unwrap_err();
    assert!(err.to_string().contains("has version 9"), "{err}");
    std::fs::remove_file(app.journal()).unwrap();
    std::fs::write(app.legacy_journal(), br#"{"version": 9}"#).unwrap();
    let err = Journal::open(&app).unwrap_err();
    assert!(err.to_string().contains("has version 9"), "{err}");
    std::fs::remove_file(app.legacy_journal()).unwrap();
    assert!(journals.get(&app).is_ok(), "not cached while broken");
}
