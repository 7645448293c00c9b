//! Runtime actions and drains below gRPC: their order around the switch,
//! a drain past its timeout failing before the switch, and a failed check
//! switching back with the previous release's action and a restore.

use std::time::Duration;

use slipway_proto::agent::v1::{LogLevel, ProgressEvent, Stage};

use super::{
    lifecycle_tests::{check, hook, lines},
    tests::{Fixture, fixture, result},
};
use crate::{
    activation::{Activation, Point, Probe},
    runtime::{Action, Call, Drain, RuntimeAction},
};

/// Every step logs `<step> <release>` to `steps` in the fixture's dir; the
/// health check passes unless `fail_check` names the release.
fn logging(f: &Fixture, drain: &str, fail_check: &str) -> Activation {
    let log = f.dir.path().join("steps");
    let line = |step: &str| format!("echo \"{step} $SLIPWAY_RELEASE_ID\" >> {}", log.display());
    let check_command = format!(
        "{} && test \"$SLIPWAY_RELEASE_ID\" != '{fail_check}'",
        line("check")
    );
    Activation {
        hooks: vec![hook(Point::AfterActivate, "after-activate", &line("after"))],
        health: check(Probe::Command(check_command)),
        runtime: Some(RuntimeAction {
            action: Action::Command(line("reload")),
            timeout: Duration::from_secs(30),
        }),
        drain: Some(Drain {
            drain: Call::Command(format!("{} && {drain}", line("drain"))),
            restore: Call::Command(line("restore")),
            timeout: Duration::from_secs(1),
        }),
        ..Activation::default()
    }
}

fn current(f: &Fixture) -> String {
    let link = std::fs::read_link(f.app().root().join("current")).unwrap();
    link.file_name().unwrap().to_string_lossy().into_owned()
}

fn stages(events: &[ProgressEvent], stage: Stage) -> usize {
    events.iter().filter(|e| e.stage() == stage).count()
}

#[tokio::test]
async fn drain_switch_hooks_action_check_restore_in_that_order() {
    let f = fixture().await;
    let activation = logging(&f, "true", "");
    assert!(result(&f.deploy_with("d1", "r1", activation.clone(), 5).await).success);
    let events = f.deploy_with("d2", "r2", activation, 5).await;
    assert!(result(&events).success, "{events:#?}");
    let steps = lines(&f, "steps");
    assert_eq!(
        &steps[5..],
        [
            "drain r2",
            "after r2",
            "reload r2",
            "check r2",
            "restore r2"
        ]
    );
    let drain_at = events
        .iter()
        .position(|e| e.stage() == Stage::Drain)
        .unwrap();
    let switch_at = (events.iter())
        .position(|e| e.message.starts_with("current now points to r2"))
        .unwrap();
    let restore_at = events
        .iter()
        .position(|e| e.stage() == Stage::Restore)
        .unwrap();
    assert!(
        drain_at < switch_at && switch_at < restore_at,
        "{events:#?}"
    );
    assert!(stages(&events, Stage::RuntimeAction) > 0);
    assert!(events.iter().any(|e| e.step == "drain"));
}

#[tokio::test]
async fn a_drain_past_its_timeout_fails_before_the_switch() {
    let f = fixture().await;
    let good = logging(&f, "true", "");
    assert!(result(&f.deploy_with("d1", "r1", good, 5).await).success);
    let slow = logging(&f, "sleep 30", "");
    let events = f.deploy_with("d2", "r2", slow, 5).await;
    let done = result(&events);
    assert!(!done.success);
    assert_eq!(done.current_release, "r1");
    assert_eq!(current(&f), "r1");
    assert!(
        done.error.contains("drain command timed out"),
        "{}",
        done.error
    );
    // The drain may have half happened: the host is restored, nothing else.
    assert_eq!(&lines(&f, "steps")[5..], ["drain r2", "restore r2"]);
    assert!(
        events
            .iter()
            .any(|e| e.stage() == Stage::Drain && e.level() == LogLevel::Error)
    );
    assert!(
        !events
            .iter()
            .any(|e| e.message.starts_with("current now points to r2"))
    );
}

#[tokio::test]
async fn a_failed_check_switches_back_reloads_the_previous_release_and_restores() {
    let f = fixture().await;
    assert!(result(&f.deploy_with("d1", "r1", logging(&f, "true", ""), 5).await).success);
    let events = f
        .deploy_with("d2", "r2", logging(&f, "true", "r2"), 5)
        .await;
    let done = result(&events);
    assert!(!done.success);
    assert_eq!(done.current_release, "r1");
    assert_eq!(
        &lines(&f, "steps")[5..],
        [
            "drain r2",
            "after r2",
            "reload r2",
            "check r2",
            "check r2",
            "after r1",
            "reload r1",
            "restore r1"
        ]
    );
    assert!(
        done.error.contains("the host was restored"),
        "{}",
        done.error
    );
}
