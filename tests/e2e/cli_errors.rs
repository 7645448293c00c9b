//! slipctl against certificates and addresses that cannot work: each case
//! exits with its own code (never 0, never an empty success), prints one
//! error line and the hint that fits, every one of 20 times.

use std::{path::Path, process::Command};

use slipway_proto::{identity::Role, tls::TlsPaths};
use slipway_tests::{Cluster, TestPki, slipctl};
use time::{Duration, OffsetDateTime};

/// Repetitions of each case: a transport race once hid a refusal as a
/// quiet exit 0.
const RUNS: usize = 20;

struct Case<'a> {
    what: &'a str,
    endpoint: String,
    tls: TlsPaths,
    args: &'a [&'a str],
    exit: i32,
    error: &'a str,
    hint: &'a str,
}

fn run(case: &Case<'_>) {
    for run in 0..RUNS {
        let output = Command::new(slipctl::binary())
            .arg("--endpoint")
            .arg(&case.endpoint)
            .arg("--ca")
            .arg(&case.tls.ca)
            .arg("--cert")
            .arg(&case.tls.cert)
            .arg("--key")
            .arg(&case.tls.key)
            .args(case.args)
            .env("NO_COLOR", "1")
            .output()
            .expect("run slipctl");
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        let what = format!("{} (run {run}): stderr {stderr:?}", case.what);
        assert_eq!(output.status.code(), Some(case.exit), "{what}");
        assert!(stdout.is_empty(), "{what}: stdout {stdout:?}");
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(lines.len(), 2, "{what}");
        assert!(lines[0].starts_with("error: "), "{what}");
        assert!(lines[0].contains(case.error), "{what}");
        assert!(lines[1].starts_with("hint: "), "{what}");
        assert!(lines[1].contains(case.hint), "{what}");
    }
}

fn with(ca: &Path, cert: &TlsPaths) -> TlsPaths {
    TlsPaths {
        ca: ca.to_owned(),
        ..cert.clone()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_wrong_certificate_and_address_has_its_exit_code_and_hint() {
    let cluster = Cluster::builder().agents(1).start().await;
    let endpoint = cluster.addr();
    let ca = cluster.pki.file("ca.crt");
    let admin = cluster.pki.operator(Role::Admin);
    let now = OffsetDateTime::now_utc();
    let expired = cluster.pki.operator_valid(
        "old",
        Role::Admin,
        now - Duration::days(30),
        now - Duration::days(2),
    );
    let early = cluster.pki.operator_valid(
        "early",
        Role::Admin,
        now + Duration::days(2),
        now + Duration::days(30),
    );
    let foreign = TestPki::new();
    let foreign_admin = foreign.operator(Role::Admin);
    // A bundle that trusts both CAs: locally the foreign certificate is
    // fine; only the control plane can refuse it.
    let both = cluster.pki.file("ca-and-foreign.crt");
    let bundle = [
        std::fs::read(&ca).expect("ca"),
        std::fs::read(foreign.file("ca.crt")).expect("foreign ca"),
    ]
    .concat();
    std::fs::write(&both, bundle).expect("bundle");
    let mismatched = TlsPaths {
        key: cluster.pki.operator(Role::Viewer).key,
        ..admin.clone()
    };
    let agent = cluster.agents[0].server.as_ref().expect("agent").addr;
    let nobody = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr");
    let not_running = format!("is the control plane running at {nobody}?");
    let list = &["env", "list", "-o", "json"][..];
    let cases = [
        Case {
            what: "expired certificate",
            endpoint: endpoint.clone(),
            tls: expired,
            args: list,
            exit: 3,
            error: "expired 2 days ago",
            hint: "your certificate has expired; an admin issues a new one",
        },
        Case {
            what: "certificate not valid yet",
            endpoint: endpoint.clone(),
            tls: early,
            args: list,
            exit: 3,
            error: "not valid yet",
            hint: "check this machine's clock",
        },
        Case {
            what: "certificate of another CA than --ca",
            endpoint: endpoint.clone(),
            tls: with(&ca, &foreign_admin),
            args: list,
            exit: 3,
            error: "not signed by the CA in",
            hint: "--cert and --ca come from different CAs",
        },
        Case {
            what: "a foreign CA's pair",
            endpoint: endpoint.clone(),
            tls: foreign_admin.clone(),
            args: list,
            exit: 3,
            error: "invalid peer certificate",
            hint: "the control plane's certificate is not signed by your CA",
        },
        Case {
            what: "a certificate the control plane does not trust",
            endpoint: endpoint.clone(),
            tls: with(&both, &foreign_admin),
            args: list,
            exit: 3,
            error: "transport error",
            hint: "refused your certificate",
        },
        Case {
            what: "key of another certificate",
            endpoint: endpoint.clone(),
            tls: mismatched,
            args: list,
            exit: 3,
            error: "does not match its private key",
            hint: "--key is not the key of --cert",
        },
        Case {
            what: "an agent's port",
            endpoint: agent.to_string(),
            tls: admin.clone(),
            args: list,
            exit: 3,
            error: "expected a control plane",
            hint: "is not a control plane (is it an agent's address?)",
        },
        Case {
            what: "nothing listening",
            endpoint: nobody.to_string(),
            tls: admin.clone(),
            args: list,
            exit: 3,
            error: "Connection refused",
            hint: &not_running,
        },
        Case {
            what: "a role that may not",
            endpoint: endpoint.clone(),
            tls: cluster.pki.operator(Role::Viewer),
            args: &["env", "create", "staging"],
            exit: 4,
            error: "permission denied",
            hint: "--role deployer",
        },
    ];
    tokio::task::block_in_place(|| cases.iter().for_each(run));
    cluster.shutdown().await;
}
