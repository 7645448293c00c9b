//! `slipway-demo-app`: a tiny HTTP server for the zero-downtime test. It
//! serves `<root>/current/index.html` from memory, answers `/health`, writes
//! its pid file, and on SIGHUP (or SIGUSR2) reads the content of whatever
//! `current` now points to, in the same process on the same listening socket,
//! so no connection is refused or dropped during a reload.
//!
//! `slipway-demo-app --root /srv/web --pid-file /run/web.pid --port-file PATH`

use std::{
    path::{Path, PathBuf},
    sync::{Arc, RwLock},
};

use slipway_tests::balancer::next_request;
use tokio::{
    io::AsyncWriteExt,
    net::{TcpListener, TcpStream},
    signal::unix::{SignalKind, signal},
};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .map(PathBuf::from)
            .ok_or_else(|| anyhow::anyhow!("missing {name}"))
    };
    let (root, pid_file, port_file) = (arg("--root")?, arg("--pid-file")?, arg("--port-file")?);
    let content = Arc::new(RwLock::new(read(&root)));
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    // Handlers first, then the pid file: a signal sent once the pid file
    // exists is always caught.
    let mut hup = signal(SignalKind::hangup())?;
    let mut usr2 = signal(SignalKind::user_defined2())?;
    std::fs::write(&pid_file, format!("{}\n", std::process::id()))?;
    let port = listener.local_addr()?.port();
    let temp = port_file.with_extension("tmp");
    std::fs::write(&temp, port.to_string())?;
    std::fs::rename(&temp, &port_file)?;
    let reloads = content.clone();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = hup.recv() => {}
                _ = usr2.recv() => {}
            }
            let fresh = read(&root);
            *reloads.write().unwrap_or_else(|e| e.into_inner()) = fresh;
        }
    });
    loop {
        let (stream, _) = listener.accept().await?;
        tokio::spawn(serve(stream, content.clone()));
    }
}

/// The content of the release `current` points to.
fn read(root: &Path) -> String {
    std::fs::read_to_string(root.join("current").join("index.html"))
        .unwrap_or_else(|err| format!("no content: {err}"))
}

/// Answers requests on one keep-alive connection until the client leaves.
async fn serve(mut stream: TcpStream, content: Arc<RwLock<String>>) {
    let mut buffer = Vec::new();
    loop {
        let Some(text) = next_request(&mut stream, &mut buffer).await else {
            return;
        };
        let path = text.split_whitespace().nth(1).unwrap_or("/");
        let close = text.to_ascii_lowercase().contains("connection: close");
        let body = if path == "/health" {
            "ok".to_owned()
        } else {
            content.read().unwrap_or_else(|e| e.into_inner()).clone()
        };
        let answer = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n{}\r\n{body}",
            body.len(),
            if close { "Connection: close\r\n" } else { "" }
        );
        if stream.write_all(answer.as_bytes()).await.is_err() || close {
            return;
        }
    }
}
