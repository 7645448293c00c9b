//! Hooks as real processes: output streamed line by line, failures with
//! their output, timeouts that take the whole process group down.

use futures_util::StreamExt;
use slipway_proto::agent::v1::ProgressEvent;

use super::*;
use crate::{
    cancel::Cancel,
    journal::{JournalError, OperationRecord},
    layout::AppRoot,
    operations::{Begin, Kind, Operations, Spec},
};

/// A log to run hooks against: an operation's, so it can be read back.
fn log() -> (Arc<Operations>, crate::operations::OperationGuard) {
    let ops = Operations::new();
    let spec = Spec {
        deployment_id: "d1".into(),
        kind: Kind::Deploy,
        app: "web".into(),
        root: "/srv/web".into(),
        release_id: "r1".into(),
    };
    let Begin::New(guard) = ops.begin(spec).unwrap() else {
        panic!("new operation")
    };
    (ops, guard)
}

fn command(dir: &std::path::Path, script: &str, timeout: Duration) -> Command {
    Command {
        what: "before-activate hook \"migrate\"".into(),
        command: script.into(),
        dir: dir.to_owned(),
        env: vec![("SLIPWAY_RELEASE_ID".into(), "r1".into())],
        timeout,
    }
}

fn output(log: &Arc<EventLog>) -> Output {
    Output {
        log: log.clone(),
        stage: Stage::Hook,
        percent: 86,
        step: "migrate".into(),
        budget: crate::hook_output::OutputBudget::new(Default::default()),
    }
}

async fn events(guard: crate::operations::OperationGuard) -> Vec<ProgressEvent> {
    let log = guard.log().clone();
    drop(guard);
    log.subscribe().collect().await
}

/// Gone, or a zombie nobody has reaped yet: either way it runs no more.
fn gone(pid: &str) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with(['Z', 'X'])),
    }
}

#[tokio::test]
async fn output_streams_line_by_line_with_step_and_stream() {
    let dir = tempfile::tempdir().unwrap();
    let (_ops, guard) = log();
    let script = "echo one; echo two >&2; printf 'id=%s\\n' \"$SLIPWAY_RELEASE_ID\"; pwd; printf 'no newline'";
    let cmd = command(dir.path(), script, Duration::from_secs(30));
    run(&cmd, &output(guard.log()), None, &Cancel::never())
        .await
        .unwrap();
    let events = events(guard).await;
    let lines: Vec<(&str, &str, LogLevel)> = events
        .iter()
        .filter(|e| !e.output.is_empty())
        .map(|e| (e.output.as_str(), e.message.as_str(), e.level()))
        .collect();
    let pwd = dir.path().canonicalize().unwrap().display().to_string();
    let mut stdout: Vec<&str> = lines
        .iter()
        .filter(|l| l.0 == "stdout")
        .map(|l| l.1)
        .collect();
    stdout.sort_unstable();
    let mut want = vec!["one", "id=r1", pwd.as_str(), "no newline"];
    want.sort_unstable();
    assert_eq!(stdout, want);
    assert!(
        lines.contains(&("stderr", "two", LogLevel::Warn)),
        "{lines:?}"
    );
    // The last event is the dropped guard's.
    let hook_events = &events[..events.len() - 1];
    assert!(
        hook_events
            .iter()
            .all(|e| e.step == "migrate" && e.stage() == Stage::Hook)
    );
    let sequences: Vec<u64> = events.iter().map(|e| e.sequence).collect();
    assert_eq!(sequences, (1..=events.len() as u64).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_failing_hook_reports_its_status_and_last_lines() {
    let dir = tempfile::tempdir().unwrap();
    let (_ops, guard) = log();
    let cmd = command(
        dir.path(),
        "echo migrating; echo 'table locked' >&2; exit 3",
        Duration::from_secs(30),
    );
    let err = run(&cmd, &output(guard.log()), None, &Cancel::never())
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "before-activate hook \"migrate\" failed (exit status: 3)"
    );
    let output = err.output().unwrap();
    assert!(
        output.contains("migrating") && output.contains("table locked"),
        "{output}"
    );
}

#[tokio::test]
async fn a_hook_past_its_timeout_is_killed_with_its_process_group() {
    let dir = tempfile::tempdir().unwrap();
    let (_ops, guard) = log();
    // The grandchild prints its pid, then both wait far past the timeout.
    let cmd = command(
        dir.path(),
        "sleep 300 & echo $!; wait",
        Duration::from_millis(300),
    );
    let err = run(&cmd, &output(guard.log()), None, &Cancel::never())
        .await
        .unwrap_err();
    assert!(matches!(err, HookError::TimedOut { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        "before-activate hook \"migrate\" timed out after 0.3 s and was killed with its process group"
    );
    let events = events(guard).await;
    let pid = &events
        .iter()
        .find(|e| e.output == "stdout")
        .unwrap()
        .message;
    assert!(gone(pid), "grandchild {pid} still runs");
}

#[tokio::test]
async fn a_group_that_ignores_sigterm_gets_sigkill_after_the_grace() {
    let dir = tempfile::tempdir().unwrap();
    let (_ops, guard) = log();
    let script = "trap '' TERM; sleep 300 & echo $!; wait; wait";
    let cmd = command(dir.path(), script, Duration::from_millis(200));
    let started = Instant::now();
    let err = run(&cmd, &output(guard.log()), None, &Cancel::never())
        .await
        .unwrap_err();
    assert!(matches!(err, HookError::TimedOut { .. }), "{err}");
    assert!(started.elapsed() >= KILL_GRACE);
    let events = events(guard).await;
    let pid = &events
        .iter()
        .find(|e| e.output == "stdout")
        .unwrap()
        .message;
    assert!(gone(pid), "grandchild {pid} still runs");
}

#[tokio::test]
async fn a_background_process_holding_the_pipes_is_not_waited_for() {
    let dir = tempfile::tempdir().unwrap();
    let (_ops, guard) = log();
    let cmd = command(dir.path(), "sleep 300 & echo $!", Duration::from_secs(60));
    let started = Instant::now();
    run(&cmd, &output(guard.log()), None, &Cancel::never())
        .await
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(30));
    let events = events(guard).await;
    let pid = &events
        .iter()
        .find(|e| e.output == "stdout")
        .unwrap()
        .message;
    // It was left running, as a service started by a hook must be.
    assert!(!gone(pid));
    let pid = Pid::from_raw(pid.parse().unwrap()).unwrap();
    rustix::process::kill_process(pid, Signal::KILL).unwrap();
}

#[tokio::test]
async fn the_running_group_is_journaled_until_the_hook_ends() {
    let dir = tempfile::tempdir().unwrap();
    let app = AppRoot::new("web", dir.path().join("web"));
    app.ensure().unwrap();
    let journal = Arc::new(Journal::open(&app).unwrap());
    journal
        .update(|data| {
            data.begin_operation(OperationRecord {
                started_unix: 0,
                ..OperationRecord::running("d1", "r1")
            });
            Ok::<_, JournalError>(())
        })
        .unwrap();
    let tracker = Tracker {
        journal: journal.clone(),
        deployment_id: "d1".into(),
        kind: Kind::Deploy,
    };
    let (_ops, guard) = log();
    // The group is journaled right after the spawn: the hook waits for it.
    let script = format!(
        "until grep -q '\"pgid\":'$$ {}; do sleep 0.05; done; echo seen",
        app.journal().display()
    );
    let cmd = command(dir.path(), &script, Duration::from_secs(30));
    run(&cmd, &output(guard.log()), Some(&tracker), &Cancel::never())
        .await
        .unwrap();
    let events = events(guard).await;
    let seen = events.iter().find(|e| e.output == "stdout").unwrap();
    assert_eq!(
        seen.message, "seen",
        "the hook saw its own group in the journal"
    );
    assert_eq!(
        journal.read(|d| d.operation("d1", Kind::Deploy).unwrap().hook.clone()),
        None
    );
}

#[tokio::test]
async fn a_cancel_stops_the_whole_group_and_a_cancelled_hook_never_starts() {
    let dir = tempfile::tempdir().unwrap();
    let (_ops, guard) = log();
    let cancel = Cancel::default();
    let cmd = command(
        dir.path(),
        "sleep 300 & echo $!; wait",
        Duration::from_secs(300),
    );
    let log = guard.log().clone();
    let trigger = cancel.clone();
    // Cancel once the grandchild's pid is out: the hook is running.
    let watcher = tokio::spawn(async move {
        let mut events = Box::pin(log.subscribe());
        while let Some(event) = events.next().await {
            if event.output == "stdout" {
                trigger.cancel(Duration::from_secs(5));
                return event.message;
            }
        }
        panic!("no output");
    });
    let started = Instant::now();
    let err = run(&cmd, &output(guard.log()), None, &cancel)
        .await
        .unwrap_err();
    assert!(matches!(err, HookError::Cancelled { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        "before-activate hook \"migrate\" was cancelled and stopped with its process group"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "SIGTERM sufficed"
    );
    let pid = watcher.await.unwrap();
    assert!(gone(&pid), "grandchild {pid} still runs");

    let marker = dir.path().join("ran");
    let cmd = command(
        dir.path(),
        &format!("touch {}", marker.display()),
        Duration::from_secs(30),
    );
    let err = run(&cmd, &output(guard.log()), None, &cancel)
        .await
        .unwrap_err();
    assert!(matches!(err, HookError::Cancelled { .. }), "{err}");
    assert!(!marker.exists(), "a cancelled operation starts no hook");
}
