//! CancelOperation below gRPC: a cancel stops the running hook or check with
//! its whole process group, ends the operation failed "cancelled", switches
//! back when it had switched, and answers only once nothing of it runs.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use slipway_proto::agent::v1::{ProgressEvent, ReleaseState, Stage};

use super::{
    lifecycle_tests::{check, hook, lines, states, status},
    tests::{Fixture, fixture, result},
    *,
};
use crate::activation::{Activation, Point, Probe};

/// Reads `events` until a line of output equal to `line`; every event read
/// goes to `seen`. Fails after 30 s or when the operation ends first.
async fn until_output(events: &mut EventStream, seen: &mut Vec<ProgressEvent>, line: &str) {
    let wait = async {
        while let Some(event) = events.next().await {
            seen.push(event.clone());
            if event.output == "stdout" && event.message == line {
                return;
            }
        }
        panic!("the operation ended before printing {line:?}: {seen:#?}");
    };
    tokio::time::timeout(Duration::from_secs(30), wait)
        .await
        .expect("the line within 30 s");
}

/// Gone, or a zombie nobody has reaped yet: either way it runs no more.
fn gone(pid: &str) -> bool {
    match std::fs::read_to_string(format!("/proc/{}/stat", pid.trim())) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with(['Z', 'X'])),
    }
}

fn read(f: &Fixture, name: &str) -> String {
    std::fs::read_to_string(f.dir.path().join(name)).unwrap()
}

/// A before-activate hook that records its shell's pid and its child's,
/// says "started", and waits for the child (a long sleep).
fn holding(f: &Fixture, trap_term: bool) -> Activation {
    let trap = if trap_term { "trap '' TERM; " } else { "" };
    let script = format!(
        "{trap}echo $$ > {sh}; sleep 600 & echo $! > {child}; echo started; wait; wait",
        sh = f.dir.path().join("sh.pid").display(),
        child = f.dir.path().join("child.pid").display(),
    );
    Activation {
        hooks: vec![hook(Point::BeforeActivate, "slow", &script)],
        ..Activation::default()
    }
}

#[tokio::test]
async fn a_cancel_stops_a_before_activate_hook_with_its_group_and_leaves_current() {
    let f = fixture().await;
    f.deploy("d1", "r1").await;
    f.stage("r2").await;
    let plan = DeployPlan {
        activation: holding(&f, false),
        ..f.plan("d2", "r2")
    };
    let mut events = f.agent.deploy(plan).await.unwrap();
    let mut seen = Vec::new();
    until_output(&mut events, &mut seen, "started").await;
    let (sh, child) = (read(&f, "sh.pid"), read(&f, "child.pid"));
    assert!(!gone(&sh) && !gone(&child));
    assert_eq!(status(&f).await.running_deployment, "d2");

    let (cancelled, current) = f
        .agent
        .cancel(f.app(), "d2".into(), Duration::from_secs(10), 1)
        .await
        .unwrap();
    assert!(cancelled);
    assert_eq!(current.as_deref(), Some("r1"));
    // Answered only once the whole group is gone and the operation ended.
    assert!(
        gone(&sh) && gone(&child),
        "sh {sh} or sleep {child} still runs"
    );
    assert_eq!(status(&f).await.running_deployment, "");
    seen.extend(events.collect::<Vec<_>>().await);
    let done = result(&seen);
    assert!(!done.success);
    assert_eq!(done.current_release, "r1");
    assert!(
        done.error.starts_with(
            "a deploy of release r2 for app web failed: cancelled during before-activate hook \"slow\""
        ),
        "{}",
        done.error
    );
    assert_eq!(seen.last().unwrap().stage(), Stage::Hook);
    assert!(
        seen.iter().all(|e| e.stage() != Stage::Activate),
        "no new step"
    );
    let app = status(&f).await;
    assert_eq!(app.current_release, "r1");
    assert_eq!(
        states(&app),
        [
            ("r1".to_owned(), ReleaseState::Active),
            ("r2".to_owned(), ReleaseState::Failed)
        ]
    );
    // The outcome is the operation's: a repeat replays it, a second cancel
    // finds nothing running.
    let replay: Vec<_> = f
        .agent
        .deploy(f.plan("d2", "r2"))
        .await
        .unwrap()
        .collect()
        .await;
    assert_eq!(replay, seen);
    let (again, _) = f
        .agent
        .cancel(f.app(), "d2".into(), Duration::ZERO, 1)
        .await
        .unwrap();
    assert!(!again);
}

#[tokio::test]
async fn a_group_that_ignores_sigterm_is_killed_after_the_grace() {
    let f = fixture().await;
    f.stage("r1").await;
    // A prepare-only deploy is cancelled the same way.
    let plan = DeployPlan {
        activation: holding(&f, true),
        prepare_only: true,
        rebuild: false,
        ..f.plan("d1", "r1")
    };
    let mut events = f.agent.deploy(plan).await.unwrap();
    let mut seen = Vec::new();
    until_output(&mut events, &mut seen, "started").await;
    let (sh, child) = (read(&f, "sh.pid"), read(&f, "child.pid"));
    let started = Instant::now();
    let (cancelled, current) = f
        .agent
        .cancel(f.app(), "d1".into(), Duration::from_millis(500), 1)
        .await
        .unwrap();
    assert!(cancelled);
    assert_eq!(current, None, "nothing was ever current");
    assert!(
        started.elapsed() >= Duration::from_millis(500),
        "SIGKILL waited for the grace"
    );
    assert!(
        gone(&sh) && gone(&child),
        "sh {sh} or sleep {child} still runs"
    );
    seen.extend(events.collect::<Vec<_>>().await);
    let messages: Vec<&str> = seen.iter().map(|e| e.message.as_str()).collect();
    assert!(
        messages.iter().any(|m| m.contains("SIGKILL after 0.5 s")),
        "{messages:#?}"
    );
    assert!(
        result(&seen).error.starts_with(
            "a prepare-only deploy of release r1 for app web failed: cancelled during"
        ),
        "{}",
        result(&seen).error
    );
    // Not left ready: retention keeps ready releases waiting for a switch.
    let app = status(&f).await;
    assert_eq!(states(&app), [("r1".to_owned(), ReleaseState::Failed)]);
}

#[tokio::test]
async fn a_cancel_after_the_switch_switches_back_like_a_failed_check() {
    let f = fixture().await;
    let log = f.dir.path().join("hooks");
    let activation = Activation {
        hooks: vec![hook(
            Point::AfterActivate,
            "after-activate",
            &format!("echo \"after $SLIPWAY_RELEASE_ID\" >> {}", log.display()),
        )],
        health: check(Probe::Command(
            "test \"$SLIPWAY_RELEASE_ID\" = r1 || { echo started; exec sleep 600; }".into(),
        )),
        ..Activation::default()
    };
    assert!(result(&f.deploy_with("d1", "r1", activation.clone(), 5).await).success);
    f.stage("r2").await;
    let plan = DeployPlan {
        activation,
        ..f.plan("d2", "r2")
    };
    let mut events = f.agent.deploy(plan).await.unwrap();
    let mut seen = Vec::new();
    until_output(&mut events, &mut seen, "started").await;
    assert_eq!(status(&f).await.current_release, "r2", "switched, checking");

    let (cancelled, current) = f
        .agent
        .cancel(f.app(), "d2".into(), Duration::from_secs(5), 1)
        .await
        .unwrap();
    assert!(cancelled);
    assert_eq!(current.as_deref(), Some("r1"));
    seen.extend(events.collect::<Vec<_>>().await);
    let done = result(&seen);
    assert!(!done.success);
    assert_eq!(
        (
            done.previous_release.as_str(),
            done.current_release.as_str()
        ),
        ("r1", "r1")
    );
    assert!(
        done.error
            .contains("cancelled during the health check; current was switched back to r1"),
        "{}",
        done.error
    );
    assert!(seen.iter().any(|e| e.stage() == Stage::Revert));
    // The switch back restarts the previous release, as after a failed check.
    assert_eq!(lines(&f, "hooks"), ["after r1", "after r2", "after r1"]);
    let app = status(&f).await;
    assert_eq!(app.current_release, "r1");
    assert_eq!(app.previous_release, "");
    assert_eq!(
        states(&app),
        [
            ("r1".to_owned(), ReleaseState::Active),
            ("r2".to_owned(), ReleaseState::Failed)
        ]
    );
}
