//! Recovery after a simulated crash: leftovers, a half-built release, an
//! interrupted operation with a live hook process group.

use std::{
    fs,
    os::unix::{fs::symlink, process::CommandExt},
};

use super::*;
use crate::{
    journal::{HookProcess, JournalError, OperationRecord},
    operations::Kind,
};

/// A running deploy of `release` whose hook group `pgid` started this boot.
fn running(deployment: &str, release: &str, pgid: i32) -> OperationRecord {
    OperationRecord {
        hook: Some(HookProcess {
            step: "migrate".into(),
            pgid,
            boot_id: hooks::boot_id(),
        }),
        ..OperationRecord::running(deployment, release)
    }
}

#[test]
fn a_crash_is_cleaned_up_and_the_journal_tells_the_truth() {
    let dir = tempfile::tempdir().unwrap();
    let app = AppRoot::new("web", dir.path().join("web"));
    app.ensure().unwrap();
    for id in ["r1", "r2", "r4"] {
        fs::create_dir(app.release(id)).unwrap();
    }
    release::switch(&app, "r2").unwrap();
    // What a SIGKILL mid-operation leaves behind.
    fs::create_dir_all(app.staging().join("r3.d3/lib")).unwrap();
    fs::write(app.tmp().join("abc.0001"), b"half an object").unwrap();
    fs::create_dir(app.trash().join("r0.0001")).unwrap();
    symlink("releases/r4", app.root().join(".current.00ff")).unwrap();
    // A hook that outlived the agent, in its own process group.
    let mut hook = std::process::Command::new("sleep")
        .arg("300")
        .env("SLIPWAY_DEPLOYMENT_ID", "d4")
        .env("SLIPWAY_AGENT_INSTANCE", "i1")
        .process_group(0)
        .spawn()
        .unwrap();
    let pgid = hook.id() as i32;

    let journal = Journal::open(&app).unwrap();
    journal
        .update(|data| {
            data.set_state("r1", State::Active, "d1");
            data.set_state("r2", State::Ready, "d2");
            data.set_state("r3", State::Unfinished, "d3");
            data.set_state("r4", State::Unfinished, "d4");
            data.set_state("r9", State::Ready, "d0");
            data.previous_good = Some("r9".into());
            data.begin_operation(OperationRecord {
                previous_release: Some("r2".into()),
                ..running("d4", "r4", pgid)
            });
            Ok::<_, JournalError>(())
        })
        .unwrap();

    let found = recover(&app, &journal, "i1").unwrap();
    assert_eq!(found.leftovers, 4);
    assert_eq!(found.interrupted, ["d4"]);
    assert_eq!(found.killed, [pgid]);
    assert_eq!(found.dropped, ["r3", "r9"]);
    let status = hook.wait().unwrap();
    assert!(!status.success(), "the leftover hook was killed: {status}");

    for dir in [app.staging(), app.tmp(), app.trash()] {
        assert!(
            fs::read_dir(&dir).unwrap().next().is_none(),
            "{}",
            dir.display()
        );
    }
    assert!(!app.root().join(".current.00ff").exists());
    assert_eq!(
        release::current_release(&app).unwrap().as_deref(),
        Some("r2")
    );

    let data = Journal::open(&app).unwrap().read(|d| d.clone());
    assert_eq!(data.state("r1"), Some(State::Ready));
    assert_eq!(data.state("r2"), Some(State::Active));
    assert_eq!(
        data.state("r4"),
        Some(State::Failed),
        "complete dir, its hooks interrupted"
    );
    assert_eq!(data.previous_good, None, "r9 is gone");
    let op = data.operation("d4", Kind::Deploy).unwrap();
    assert_eq!(op.status, Status::Interrupted);
    assert_eq!(op.hook, None);
    let result = op.events.last().unwrap().result.clone().unwrap();
    assert_eq!(result.error, INTERRUPTED);

    // Nothing left to do the second time.
    let again = recover(&app, &journal, "i1").unwrap();
    assert_eq!(again, Recovered::default());
}

#[test]
fn a_group_that_is_not_the_hooks_is_not_killed() {
    let dir = tempfile::tempdir().unwrap();
    let app = AppRoot::new("web", dir.path().join("web"));
    app.ensure().unwrap();
    // A group that reused a journaled id: no hook marker in its environment.
    let mut bystander = std::process::Command::new("sleep")
        .arg("300")
        .env("SLIPWAY_DEPLOYMENT_ID", "someone-else")
        .process_group(0)
        .spawn()
        .unwrap();
    let pgid = bystander.id() as i32;
    let running = |id: &str, boot_id: String| OperationRecord {
        kind: Kind::Rollback,
        hook: Some(HookProcess {
            step: "restart".into(),
            pgid,
            boot_id,
        }),
        ..OperationRecord::running(id, "r1")
    };
    let journal = Journal::open(&app).unwrap();
    journal
        .update(|data| {
            data.begin_operation(running("d1", hooks::boot_id()));
            data.begin_operation(running("someone-else", "another-boot".into()));
            Ok::<_, JournalError>(())
        })
        .unwrap();
    let found = recover(&app, &journal, "").unwrap();
    assert!(found.killed.is_empty());
    assert_eq!(found.interrupted, ["d1", "someone-else"]);
    assert!(bystander.try_wait().unwrap().is_none(), "still running");
    bystander.kill().unwrap();
    bystander.wait().unwrap();
}

#[test]
fn another_agent_instances_hook_with_the_same_deployment_is_not_killed() {
    let dir = tempfile::tempdir().unwrap();
    let app = AppRoot::new("web", dir.path().join("web"));
    app.ensure().unwrap();
    // Another agent (same PID namespace, another data dir) runs a hook of a
    // deployment with the same id, for an app at the same path.
    let release_dir = format!("{}/", app.release("r1").display());
    let mut other = std::process::Command::new("sleep")
        .arg("300")
        .env("SLIPWAY_DEPLOYMENT_ID", "d1")
        .env("SLIPWAY_RELEASE_DIR", &release_dir)
        .env("SLIPWAY_AGENT_INSTANCE", "theirs")
        .process_group(0)
        .spawn()
        .unwrap();
    let journal = Journal::open(&app).unwrap();
    journal
        .update(|data| {
            let mut op = running("d1", "r1", other.id() as i32);
            op.started_unix = now_unix();
            data.begin_operation(op);
            Ok::<_, JournalError>(())
        })
        .unwrap();
    let found = recover(&app, &journal, "mine").unwrap();
    assert!(found.killed.is_empty(), "{found:?}");
    assert_eq!(found.interrupted, ["d1"]);
    assert!(other.try_wait().unwrap().is_none(), "still running");
    other.kill().unwrap();
    other.wait().unwrap();
}
