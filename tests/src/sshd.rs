//! A private `sshd` for deploy-key tests: its own host key, config and
//! authorized_keys in a temporary directory, reached on a loopback port
//! bound by the test (`127.0.0.1:0`), each connection served by
//! `sshd -i -f <config>` with the socket as its standard input and output.
//! Logins as root with a public key only; the git commands run as root
//! against repositories named by absolute path.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::Command as StdCommand,
};

use tempfile::TempDir;
use tokio::{net::TcpListener, process::Command, task::JoinHandle};

use crate::git_server::pipe;

/// The sshd binary.
pub const SSHD: &str = "/usr/sbin/sshd";

/// A running private sshd.
pub struct Sshd {
    /// Where it listens.
    pub addr: SocketAddr,
    dir: TempDir,
    task: JoinHandle<()>,
}

impl Sshd {
    /// Starts listening with a fresh host key and no authorized key.
    pub async fn serve() -> Self {
        // sshd refuses to start without its privilege separation directory,
        // which the package creates only when its service starts.
        std::fs::create_dir_all("/run/sshd").expect("create /run/sshd");
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("authorized_keys"), "").expect("authorized_keys");
        let config = dir.path().join("sshd_config");
        std::fs::write(
            &config,
            format!(
                "HostKey {dir}/host_key\n\
                 AuthorizedKeysFile {dir}/authorized_keys\n\
                 StrictModes no\n\
                 PermitRootLogin prohibit-password\n\
                 PubkeyAuthentication yes\n\
                 PasswordAuthentication no\n\
                 KbdInteractiveAuthentication no\n\
                 UsePAM no\n\
                 PidFile none\n\
                 LogLevel ERROR\n",
                dir = dir.path().display()
            ),
        )
        .expect("sshd_config");
        let sshd = Self::bind(dir).await;
        sshd.new_host_key();
        sshd
    }

    async fn bind(dir: TempDir) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("local addr");
        let config = dir.path().join("sshd_config");
        let task = tokio::spawn(async move {
            loop {
                let Ok((socket, _)) = listener.accept().await else {
                    return;
                };
                let mut command = Command::new(SSHD);
                command.arg("-i").arg("-f").arg(&config);
                tokio::spawn(pipe(command, socket));
            }
        });
        Self { addr, dir, task }
    }

    /// Replaces the host key (the next connection offers the new one).
    pub fn new_host_key(&self) {
        let key = self.dir.path().join("host_key");
        let _ = std::fs::remove_file(&key);
        let _ = std::fs::remove_file(key.with_extension("pub"));
        let status = StdCommand::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", "test-host", "-f"])
            .arg(&key)
            .status()
            .expect("run ssh-keygen");
        assert!(status.success(), "ssh-keygen failed");
    }

    /// The host key as an OpenSSH public key line.
    pub fn host_key(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("host_key.pub"))
            .expect("host key")
            .trim()
            .to_owned()
    }

    /// The host key's `SHA256:` fingerprint.
    pub fn host_fingerprint(&self) -> String {
        let output = StdCommand::new("ssh-keygen")
            .arg("-lf")
            .arg(self.dir.path().join("host_key.pub"))
            .output()
            .expect("run ssh-keygen");
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        text.split_whitespace()
            .nth(1)
            .expect("fingerprint")
            .to_owned()
    }

    /// Lets `public_key` (an OpenSSH line) log in.
    pub fn authorize(&self, public_key: &str) {
        let path = self.dir.path().join("authorized_keys");
        let mut keys = std::fs::read_to_string(&path).expect("authorized_keys");
        keys.push_str(public_key.trim());
        keys.push('\n');
        std::fs::write(&path, keys).expect("authorized_keys");
    }

    /// The ssh:// URL of the repository at the absolute `path`.
    pub fn url(&self, path: &Path) -> String {
        format!("ssh://root@{}{}", self.addr, path.display())
    }

    /// The directory holding its files.
    pub fn dir(&self) -> PathBuf {
        self.dir.path().to_owned()
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        self.task.abort();
    }
}
