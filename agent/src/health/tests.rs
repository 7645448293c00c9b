//! Health checks against a tiny local HTTP server and real commands.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use futures_util::StreamExt;
use slipway_proto::agent::v1::{ProgressEvent, Stage};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
};

use super::*;
use crate::operations::{Begin, Kind, OperationGuard, Operations, Spec};

/// Serves `answers[i]` to the i-th request (the last one from then on);
/// None accepts and never answers.
async fn server(answers: Vec<Option<&'static str>>) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let served = Arc::new(AtomicUsize::new(0));
    let count = served.clone();
    tokio::spawn(async move {
        let mut held = Vec::new();
        loop {
            let (mut conn, _) = listener.accept().await.unwrap();
            let n = count.fetch_add(1, Ordering::SeqCst);
            let answer = answers[n.min(answers.len() - 1)];
            let mut request = Vec::new();
            let mut buf = [0; 1024];
            while !request.ends_with(b"\r\n\r\n") {
                let read = conn.read(&mut buf).await.unwrap();
                if read == 0 {
                    break;
                }
                request.extend_from_slice(&buf[..read]);
            }
            assert!(request.starts_with(b"GET /health?full=1 HTTP/1.1\r\n"));
            match answer {
                Some(answer) => conn.write_all(answer.as_bytes()).await.unwrap(),
                None => held.push(conn),
            }
        }
    });
    (format!("http://{addr}/health?full=1"), served)
}

const OK: &str = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
const BROKEN: &str = "HTTP/1.1 500 Internal Server Error\r\n\r\ndatabase unreachable";

fn operation() -> (Arc<Operations>, OperationGuard) {
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

fn check(probe: Probe, attempts: u32, deadline: Duration) -> HealthCheck {
    HealthCheck {
        probe,
        attempts,
        interval: Duration::from_millis(10),
        deadline,
    }
}

async fn run(check_spec: &HealthCheck) -> (Result<(), HealthError>, Vec<ProgressEvent>) {
    let dir = tempfile::tempdir().unwrap();
    let (_ops, guard) = operation();
    let cmd = Command {
        what: String::new(),
        command: String::new(),
        dir: dir.path().to_owned(),
        env: Vec::new(),
        timeout: Duration::from_secs(60),
    };
    let out = Output {
        log: guard.log().clone(),
        stage: Stage::HealthCheck,
        percent: 94,
        step: "health-check".into(),
        budget: crate::hook_output::OutputBudget::new(Default::default()),
    };
    let result = super::check(check_spec, &cmd, &out, None, &Cancel::never()).await;
    let log = guard.log().clone();
    drop(guard);
    (result, log.subscribe().collect().await)
}

#[tokio::test]
async fn http_passes_on_2xx_after_retries() {
    let (url, served) = server(vec![Some(BROKEN), Some(BROKEN), Some(OK)]).await;
    let (result, events) = run(&check(Probe::Http(url), 5, Duration::from_secs(30))).await;
    result.unwrap();
    assert_eq!(served.load(Ordering::SeqCst), 3);
    let attempts: Vec<&str> = events
        .iter()
        .filter(|e| e.stage() == Stage::HealthCheck && e.result.is_none())
        .map(|e| e.message.as_str())
        .collect();
    assert_eq!(attempts.len(), 3, "{attempts:?}");
    assert!(
        attempts[0].starts_with("health check attempt 1/5 failed"),
        "{attempts:?}"
    );
    assert!(attempts[2].contains("HTTP/1.1 200 OK"), "{attempts:?}");
    assert!(
        events
            .iter()
            .all(|e| e.step == "health-check" || e.result.is_some())
    );
}

#[tokio::test]
async fn http_fails_after_the_attempts_with_the_answer() {
    let (url, served) = server(vec![Some(BROKEN)]).await;
    let (result, _) = run(&check(Probe::Http(url.clone()), 3, Duration::from_secs(30))).await;
    let err = result.unwrap_err();
    assert_eq!(served.load(Ordering::SeqCst), 3);
    assert_eq!(
        err.to_string(),
        format!(
            "health check GET {url} failed after 3 attempts: \
             answered HTTP/1.1 500 Internal Server Error: database unreachable"
        )
    );
}

#[tokio::test]
async fn the_deadline_bounds_every_attempt() {
    let (url, _) = server(vec![None]).await;
    let (result, _) = run(&check(Probe::Http(url), 100, Duration::from_millis(300))).await;
    let err = result.unwrap_err();
    assert_eq!(err.attempts, 1);
    assert!(
        err.last.starts_with("no answer before the deadline"),
        "{err}"
    );

    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let closed = format!("http://{}/", listener.local_addr().unwrap());
    drop(listener);
    let (result, _) = run(&check(Probe::Http(closed), 2, Duration::from_secs(10))).await;
    assert!(result.unwrap_err().last.starts_with("cannot connect"));
}

#[tokio::test]
async fn a_command_passes_on_exit_0_and_fails_with_its_output() {
    let pass = check(
        Probe::Command("echo fine".into()),
        2,
        Duration::from_secs(30),
    );
    let (result, events) = run(&pass).await;
    result.unwrap();
    assert!(
        events
            .iter()
            .any(|e| e.output == "stdout" && e.message == "fine")
    );

    let fail = check(
        Probe::Command("echo 'not ready' >&2; exit 1".into()),
        2,
        Duration::from_secs(30),
    );
    let (result, _) = run(&fail).await;
    let err = result.unwrap_err();
    assert_eq!(err.attempts, 2);
    assert_eq!(err.output, "not ready");
    assert!(
        err.to_string().starts_with("health check command \"echo"),
        "{err}"
    );
}

#[tokio::test]
async fn a_cancel_ends_the_check_between_attempts() {
    let dir = tempfile::tempdir().unwrap();
    let (_ops, guard) = operation();
    let cmd = Command {
        what: String::new(),
        command: String::new(),
        dir: dir.path().to_owned(),
        env: Vec::new(),
        timeout: Duration::from_secs(60),
    };
    let out = Output {
        log: guard.log().clone(),
        stage: Stage::HealthCheck,
        percent: 94,
        step: "health-check".into(),
        budget: crate::hook_output::OutputBudget::new(Default::default()),
    };
    // Fails, then pauses a minute before the next attempt.
    let spec = HealthCheck {
        probe: Probe::Command("exit 1".into()),
        attempts: 5,
        interval: Duration::from_secs(60),
        deadline: Duration::from_secs(600),
    };
    let cancel = Cancel::default();
    let (log, trigger) = (guard.log().clone(), cancel.clone());
    tokio::spawn(async move {
        let mut events = Box::pin(log.subscribe());
        while let Some(event) = events.next().await {
            if event.message.starts_with("health check attempt 1/5 failed") {
                trigger.cancel(Duration::from_secs(1));
                return;
            }
        }
    });
    let started = std::time::Instant::now();
    let err = super::check(&spec, &cmd, &out, None, &cancel)
        .await
        .unwrap_err();
    assert!(err.cancelled, "{err}");
    assert_eq!(err.attempts, 1);
    assert!(started.elapsed() < Duration::from_secs(30));
}
