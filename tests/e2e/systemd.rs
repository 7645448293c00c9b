//! The daemons under systemd: their units pass `systemd-analyze verify`,
//! and each speaks the notify protocol (READY, WATCHDOG, STOPPING) to a
//! real datagram socket as systemd would hold it.

use std::{os::unix::net::UnixDatagram, path::Path, process::Command, time::Duration};

use slipway_tests::{
    TestPki,
    control_process::{ControlPlaneProcess, control_plane_binary},
    process::{AgentProcess, agent_binary},
};

/// `unit` with its `ExecStart=/usr/bin/<binary>` pointed at this build's
/// binary (verify checks that the command exists), verified.
fn verify(unit: &str, binary: &Path) {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("root");
    let text = std::fs::read_to_string(workspace.join(unit)).expect("unit file");
    let name = Path::new(unit).file_name().expect("name");
    let installed = format!("/usr/bin/{}", binary.file_name().unwrap().to_string_lossy());
    assert!(text.contains(&format!("ExecStart={installed}")), "{unit}");
    let dir = tempfile::tempdir().expect("temp dir");
    let local = dir.path().join(name);
    std::fs::write(&local, text.replace(&installed, &binary.to_string_lossy())).expect("write");
    let output = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&local)
        .output()
        .expect("systemd-analyze (Debian package systemd)");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{unit}: {stderr}");
    assert!(stderr.trim().is_empty(), "{unit}: {stderr}");
}

#[test]
fn both_units_pass_systemd_analyze_verify() {
    verify(
        "control-plane/packaging/slipway-control-plane.service",
        control_plane_binary(),
    );
    verify("agent/packaging/slipway-agent.service", agent_binary());
}

/// The next message on `socket` that contains `line`, within 10 s.
fn expect(socket: &UnixDatagram, line: &str) -> String {
    let mut buf = [0u8; 4096];
    loop {
        let n = socket
            .recv(&mut buf)
            .unwrap_or_else(|err| panic!("no {line} from the daemon: {err}"));
        let message = String::from_utf8_lossy(&buf[..n]).into_owned();
        if message.lines().any(|l| l == line) {
            return message;
        }
    }
}

fn notify_socket(dir: &Path) -> (UnixDatagram, Vec<(String, String)>) {
    let path = dir.join("notify.sock");
    let socket = UnixDatagram::bind(&path).expect("bind the notify socket");
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let env = vec![
        (
            "NOTIFY_SOCKET".to_owned(),
            path.to_string_lossy().into_owned(),
        ),
        // 200 ms: pings every 100 ms.
        ("WATCHDOG_USEC".to_owned(), "200000".to_owned()),
    ];
    (socket, env)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_daemons_notify_ready_keep_the_watchdog_and_say_stopping() {
    let dir = tempfile::tempdir().expect("temp dir");
    let pki = TestPki::new();

    let (socket, env) = notify_socket(dir.path());
    let mut cp = ControlPlaneProcess::start_with(&pki, dir.path().join("cp"), env).await;
    let ready = tokio::task::block_in_place(|| expect(&socket, "READY=1"));
    assert!(ready.contains("STATUS=serving"), "{ready}");
    tokio::task::block_in_place(|| expect(&socket, "WATCHDOG=1"));
    cp.terminate().await;
    tokio::task::block_in_place(|| expect(&socket, "STOPPING=1"));
    drop(socket);
    std::fs::remove_file(dir.path().join("notify.sock")).expect("remove");

    let (socket, env) = notify_socket(dir.path());
    let tls = pki.agent("web-1");
    let mut agent = AgentProcess::start_with(
        "web-1",
        tls,
        dir.path().join("apps"),
        dir.path().join("agent"),
        env,
    )
    .await;
    tokio::task::block_in_place(|| expect(&socket, "READY=1"));
    tokio::task::block_in_place(|| expect(&socket, "WATCHDOG=1"));
    agent.terminate().await;
    tokio::task::block_in_place(|| expect(&socket, "STOPPING=1"));
}
