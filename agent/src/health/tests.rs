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
            let request = read_head(&mut conn).await;
            assert!(request.starts_with("GET /health?full=1 HTTP/1.1\r\n"));
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
        probe_interval: Duration::from_secs(30),
    }
}

async fn run(check_spec: &HealthCheck) -> (Result<Duration, HealthError>, Vec<ProgressEvent>) {
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
        probe_interval: Duration::from_secs(30),
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

/// Serves `answers` in order, one per connection, each closing it; records
/// each request's first line.
async fn raw_server(answers: Vec<&'static str>) -> (String, Arc<std::sync::Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let lines = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = lines.clone();
    tokio::spawn(async move {
        for answer in answers {
            let (mut conn, _) = listener.accept().await.unwrap();
            let head = read_head(&mut conn).await;
            let first = head.lines().next().unwrap_or_default().to_owned();
            seen.lock().unwrap().push(first);
            conn.write_all(answer.as_bytes()).await.unwrap();
        }
    });
    (format!("http://{addr}"), lines)
}

async fn read_head(conn: &mut (impl AsyncReadExt + Unpin)) -> String {
    let mut request = Vec::new();
    let mut buf = [0; 1024];
    while !request.ends_with(b"\r\n\r\n") {
        let read = conn.read(&mut buf).await.unwrap();
        if read == 0 {
            break;
        }
        request.extend_from_slice(&buf[..read]);
    }
    String::from_utf8_lossy(&request).into_owned()
}

#[tokio::test]
async fn http_follows_redirects_and_reads_chunked_bodies() {
    let moved =
        "HTTP/1.1 302 Found\r\nLocation: /ready\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
    let chunked = "HTTP/1.1 503 Service Unavailable\r\nTransfer-Encoding: chunked\r\n\
                   Connection: close\r\n\r\n5\r\nstill\r\n9\r\n starting\r\n0\r\n\r\n";
    let ok = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n2\r\nok\r\n0\r\n\r\n";
    let (base, lines) = raw_server(vec![moved, chunked, moved, ok]).await;
    let url = format!("{base}/health");
    let timeout = Duration::from_secs(10);
    let err = super::get(&url, timeout).await.unwrap_err();
    assert_eq!(
        err,
        "answered HTTP/1.1 503 Service Unavailable: still starting"
    );
    let answer = super::get(&url, timeout).await.unwrap();
    assert_eq!(answer, "HTTP/1.1 200 OK");
    let lines = lines.lock().unwrap().clone();
    assert_eq!(
        lines,
        [
            "GET /health HTTP/1.1",
            "GET /ready HTTP/1.1",
            "GET /health HTTP/1.1",
            "GET /ready HTTP/1.1"
        ]
    );
}

#[tokio::test]
async fn endless_redirects_and_bad_urls_are_failures_with_a_reason() {
    let moved =
        "HTTP/1.1 302 Found\r\nLocation: /again\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
    let (base, _) = raw_server(vec![moved; 12]).await;
    let err = super::get(&format!("{base}/"), Duration::from_secs(10))
        .await
        .unwrap_err();
    assert!(err.starts_with("more than 10 redirects"), "{err}");
    let err = super::get("http://", Duration::from_secs(1))
        .await
        .unwrap_err();
    assert!(err.contains("not a usable URL"), "{err}");
}

#[tokio::test]
async fn https_is_verified_against_the_trusted_roots() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let key = rcgen::KeyPair::generate().unwrap();
    let params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap();
    let cert = params.signed_by(&key, &issuer).unwrap();
    let config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        )
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("https://{}/health", listener.local_addr().unwrap());
    tokio::spawn(async move {
        loop {
            let (conn, _) = listener.accept().await.unwrap();
            // A client that does not trust the CA ends the handshake.
            let Ok(mut tls) = acceptor.accept(conn).await else {
                continue;
            };
            read_head(&mut tls).await;
            let answer = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok";
            tls.write_all(answer.as_bytes()).await.unwrap();
            tls.shutdown().await.unwrap();
        }
    });
    let timeout = Duration::from_secs(10);
    let trusting = http::client(&[ca.pem().as_bytes()]).unwrap();
    let answer = http::get(&trusting, &url, timeout).await.unwrap();
    assert_eq!(answer, "HTTP/1.1 200 OK");
    let stranger = http::client(&[]).unwrap();
    let err = http::get(&stranger, &url, timeout).await.unwrap_err();
    assert!(err.starts_with("cannot connect"), "{err}");
    assert!(err.to_lowercase().contains("certificate"), "{err}");
}
