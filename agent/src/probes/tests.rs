//! Continuous probes of a real release directory: an HTTP endpoint served
//! here that starts failing, a command run in the current release with the
//! app's variables, and the bounds of what is kept.

use std::sync::atomic::{AtomicBool, Ordering};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
};

use super::*;

/// An app root under a temp dir with releases r1 and r2, `current` at r1.
fn app() -> (tempfile::TempDir, AppRoot) {
    let dir = tempfile::tempdir().unwrap();
    let app = AppRoot::new("web", dir.path().join("web"));
    for id in ["r1", "r2"] {
        std::fs::create_dir_all(app.release(id)).unwrap();
    }
    crate::release::switch(&app, "r1").unwrap();
    (dir, app)
}

fn probes() -> Probes {
    Probes::new(HookHost::default(), Arc::new(Metrics::new()))
}

/// A record probing every 50 ms, its switch-time check passed just now.
fn every_50ms(http_url: &str, command: &str) -> ProbeRecord {
    ProbeRecord {
        http_url: http_url.into(),
        command: command.into(),
        timeout_ms: 5_000,
        interval_ms: 50,
        environment: "prod".into(),
        variables: vec![("GREETING".into(), "hi".into())],
        release_id: "r1".into(),
        passed_unix_ms: millis(SystemTime::now().duration_since(UNIX_EPOCH).unwrap()),
        response_ms: 4.0,
    }
}

/// Answers 200 while `healthy` holds, else 500 with a reason.
async fn endpoint(healthy: Arc<AtomicBool>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/health", listener.local_addr().unwrap());
    tokio::spawn(async move {
        loop {
            let (mut conn, _) = listener.accept().await.unwrap();
            let mut head = Vec::new();
            let mut buf = [0; 1024];
            while !head.ends_with(b"\r\n\r\n") {
                match conn.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            let answer = if healthy.load(Ordering::SeqCst) {
                "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
            } else {
                "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 7\r\nConnection: close\r\n\r\nno db\r\n"
            };
            let _ = conn.write_all(answer.as_bytes()).await;
        }
    });
    url
}

/// The only app's report once `done` holds for it, waiting on each
/// recorded outcome (at most 30 s).
async fn until(probes: &Probes, done: impl Fn(&AppHealth) -> bool) -> AppHealth {
    let mut recorded = probes.recorded();
    let wait = async {
        loop {
            if let Some(app) = probes.snapshot().pop().filter(|app| done(app)) {
                return app;
            }
            recorded.changed().await.unwrap();
        }
    };
    tokio::time::timeout(Duration::from_secs(30), wait)
        .await
        .expect("the probes got there in time")
}

fn state(app: &AppHealth) -> AppHealthState {
    AppHealthState::try_from(app.state).unwrap()
}

#[tokio::test]
async fn a_live_release_is_probed_until_its_endpoint_fails() {
    let (_dir, app) = app();
    let healthy = Arc::new(AtomicBool::new(true));
    let url = endpoint(healthy.clone()).await;
    let probes = probes();
    probes.set(&app, Some(every_50ms(&url, "")));

    // The switch-time check is the first outcome known.
    let first = probes.snapshot().pop().unwrap();
    assert_eq!(state(&first), AppHealthState::Healthy);
    assert_eq!((first.recent.len(), first.response_ms), (1, 4.0));
    assert_eq!(
        (first.release_id.as_str(), first.interval_seconds),
        ("r1", 0)
    );

    let probed = until(&probes, |a| a.recent.len() >= 3).await;
    assert_eq!(state(&probed), AppHealthState::Healthy);
    assert!(probed.recent.iter().all(|r| r.ok));

    healthy.store(false, Ordering::SeqCst);
    let failing = until(&probes, |a| state(a) == AppHealthState::Failing).await;
    assert_eq!(
        failing.error,
        "answered HTTP/1.1 500 Internal Server Error: no db"
    );
    assert!(failing.consecutive_failures >= 1);
    assert!(failing.checked_at.is_some());

    healthy.store(true, Ordering::SeqCst);
    let back = until(&probes, |a| state(a) == AppHealthState::Healthy).await;
    assert_eq!(back.consecutive_failures, 0);
    assert!(back.recent.len() <= RECENT);

    probes.set(&app, None);
    assert!(probes.snapshot().is_empty());
}

#[tokio::test]
async fn a_command_probe_runs_in_the_current_release_with_the_apps_variables() {
    let (_dir, app) = app();
    std::fs::write(app.release("r2").join("ready"), "").unwrap();
    let probes = probes();
    let command = "test \"$GREETING\" = hi && test \"$SLIPWAY_ENVIRONMENT\" = prod && \
                   cat ready && echo \"$SLIPWAY_RELEASE_ID\"";
    probes.set(&app, Some(every_50ms("", command)));
    let failing = until(&probes, |a| state(a) == AppHealthState::Failing).await;
    assert_eq!(failing.release_id, "r1");
    assert!(
        failing.error.starts_with("health probe command failed"),
        "{}",
        failing.error
    );
    assert!(failing.error.contains("ready"), "{}", failing.error);

    crate::release::switch(&app, "r2").unwrap();
    let passing = until(&probes, |a| state(a) == AppHealthState::Healthy).await;
    assert_eq!(passing.release_id, "r2");

    std::fs::remove_file(app.current()).unwrap();
    let gone = until(&probes, |a| state(a) == AppHealthState::Failing).await;
    assert_eq!(gone.error, "no release is current");
}

#[tokio::test]
async fn the_same_check_keeps_its_history_and_another_starts_afresh() {
    let (_dir, app) = app();
    let probes = probes();
    // Probes an hour apart: none runs during the test.
    let record = ProbeRecord {
        interval_ms: 3_600_000,
        ..every_50ms("http://127.0.0.1:9/", "")
    };
    probes.set(&app, Some(record.clone()));
    let later = ProbeRecord {
        release_id: "r2".into(),
        passed_unix_ms: record.passed_unix_ms + 1,
        ..record.clone()
    };
    probes.set(&app, Some(later.clone()));
    let kept = probes.snapshot().pop().unwrap();
    assert_eq!(kept.recent.len(), 2);
    assert_eq!(kept.release_id, "r2");
    // The same outcome again adds nothing.
    probes.set(&app, Some(later));
    assert_eq!(probes.snapshot().pop().unwrap().recent.len(), 2);

    let other = ProbeRecord {
        command: "true".into(),
        http_url: String::new(),
        ..record
    };
    probes.set(&app, Some(other));
    assert_eq!(probes.snapshot().pop().unwrap().recent.len(), 1);
    probes.stop_all();
    assert!(probes.snapshot().is_empty());
}

#[test]
fn history_is_bounded_and_counts_failures_in_a_row() {
    let mut history = History::default();
    let outcome = |ok| Outcome {
        at: UNIX_EPOCH,
        ok,
        took: Duration::ZERO,
        error: String::new(),
        release: "r1".into(),
    };
    for i in 0..100 {
        history.push(outcome(i % 10 != 0));
    }
    assert_eq!(history.recent.len(), RECENT);
    assert_eq!(history.failures, 0);
    for _ in 0..3 {
        history.push(outcome(false));
    }
    assert_eq!(history.failures, 3);
}

#[test]
fn a_record_bounds_each_probe_by_the_interval_and_the_deadline() {
    let check = HealthCheck {
        probe: Probe::Command("true".into()),
        attempts: 5,
        interval: Duration::from_secs(1),
        deadline: Duration::from_secs(60),
        probe_interval: Duration::from_secs(30),
    };
    let r = record(&check, "prod", &[], "r1", Duration::from_millis(7));
    assert_eq!((r.timeout_ms, r.interval_ms), (30_000, 30_000));
    assert_eq!(r.response_ms, 7.0);
    let quick = HealthCheck {
        probe_interval: Duration::ZERO,
        deadline: Duration::from_secs(5),
        ..check
    };
    let r = record(&quick, "prod", &[], "r1", Duration::ZERO);
    assert_eq!((r.timeout_ms, r.interval_ms), (1_000, 1_000));
}
