//! Real git servers on loopback for remote-source tests. Each listener is
//! bound on `127.0.0.1:0` before anything is spawned, and every connection
//! is served by the real server program started for it in its inetd mode
//! (`git daemon --inetd`), with the socket as its standard input and
//! output: no port is guessed and nothing waits on a timer.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::Stdio,
};

use tokio::{net::TcpListener, process::Command, task::JoinHandle};

/// `git daemon` serving every repository under a directory over git://.
pub struct GitDaemon {
    /// Where it listens.
    pub addr: SocketAddr,
    base: PathBuf,
    task: JoinHandle<()>,
}

impl GitDaemon {
    /// Serves the repositories under `base`.
    pub async fn serve(base: &Path) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("local addr");
        let base = base.to_owned();
        let root = base.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((socket, _)) = listener.accept().await else {
                    return;
                };
                let root = root.clone();
                tokio::spawn(async move {
                    let mut command = Command::new("git");
                    command
                        .arg("daemon")
                        .arg("--inetd")
                        .arg("--export-all")
                        .arg(format!("--base-path={}", root.display()))
                        .arg(&root);
                    pipe(command, socket).await;
                });
            }
        });
        Self { addr, base, task }
    }

    /// The git:// URL of the repository at `path` (under the base).
    pub fn url(&self, path: &Path) -> String {
        let relative = path.strip_prefix(&self.base).expect("under the base");
        format!("git://{}/{}", self.addr, relative.display())
    }
}

impl Drop for GitDaemon {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Runs `command` with `socket` as its standard input and output until
/// either side closes.
pub async fn pipe(mut command: Command, socket: tokio::net::TcpStream) {
    let Ok(mut child) = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
    else {
        return;
    };
    let (mut stdin, mut stdout) = match (child.stdin.take(), child.stdout.take()) {
        (Some(i), Some(o)) => (i, o),
        _ => return,
    };
    let (mut read, mut write) = socket.into_split();
    let upstream = async {
        let _ = tokio::io::copy(&mut read, &mut stdin).await;
        drop(stdin);
    };
    let downstream = async {
        let _ = tokio::io::copy(&mut stdout, &mut write).await;
        let _ = tokio::io::AsyncWriteExt::shutdown(&mut write).await;
    };
    tokio::join!(upstream, downstream);
    let _ = child.wait().await;
}
