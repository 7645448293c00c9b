//! A throwaway root for installing packages: a private mount namespace with
//! an overlayfs over `/` whose upper layer is a tmpfs, so `dpkg -i` and the
//! daemons it installs write only there and the machine stays as it was.
//! Needs root (as CI runs); the namespace ends with the last process in it.

use std::{
    io::{BufRead, BufReader},
    net::SocketAddr,
    path::PathBuf,
    process::{Child, ChildStdin, Command, Output, Stdio},
    sync::mpsc,
    thread,
    time::Duration,
};

use crate::process::{addr_in_line, strip_ansi};

/// Mounts the overlay, then holds the namespace open until stdin closes.
const SETUP: &str = r#"
d="$1"
mount -t tmpfs -o mode=0755 slipway-sandbox "$d"
mkdir "$d/upper" "$d/work" "$d/root"
mount -t overlay overlay -o "lowerdir=/,upperdir=$d/upper,workdir=$d/work" "$d/root"
mount --rbind /dev "$d/root/dev"
mount -t proc proc "$d/root/proc"
mount --rbind /sys "$d/root/sys"
# No systemd of the machine is reachable from inside.
mount -t tmpfs -o mode=0755 tmpfs "$d/root/run"
echo ready
exec cat >/dev/null
"#;

/// The overlay root and the process that holds its namespace.
pub struct Sandbox {
    holder: Child,
    stdin: Option<ChildStdin>,
    root: PathBuf,
    _dir: tempfile::TempDir,
}

impl Sandbox {
    /// Sets the overlay up; panics (with the reason) when this machine
    /// cannot (not root, no overlayfs).
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut holder = Command::new("unshare")
            .args([
                "--mount",
                "--propagation",
                "private",
                "--",
                "sh",
                "-euc",
                SETUP,
                "sh",
            ])
            .arg(dir.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("run unshare (util-linux)");
        let stdin = holder.stdin.take();
        let mut line = String::new();
        BufReader::new(holder.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("read from the sandbox");
        assert_eq!(
            line.trim(),
            "ready",
            "the overlay root could not be set up (root and overlayfs needed)"
        );
        Sandbox {
            holder,
            stdin,
            root: dir.path().join("root"),
            _dir: dir,
        }
    }

    /// `chroot` into the sandbox, inside its namespace, as `user` (root when
    /// `None`), running `args`.
    pub fn command(&self, user: Option<&str>, args: &[&str]) -> Command {
        let mut command = Command::new("nsenter");
        command
            .arg(format!("--target={}", self.holder.id()))
            .args(["--mount", "--", "chroot"]);
        if let Some(user) = user {
            command.arg(format!("--userspec={user}:{user}"));
        }
        command.arg(&self.root).args(args).env_clear().env(
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        );
        let home = user.map_or_else(|| "/root".to_owned(), |user| self.home_of(user));
        command.env("HOME", home).env("LANG", "C.UTF-8");
        command
    }

    /// `user`'s home directory from the sandbox's `/etc/passwd` (`/` when
    /// it has none), as a login would set `HOME`.
    fn home_of(&self, user: &str) -> String {
        let passwd = std::fs::read_to_string(self.root.join("etc/passwd")).unwrap_or_default();
        passwd
            .lines()
            .map(|line| line.split(':').collect::<Vec<_>>())
            .find(|fields| fields.len() > 5 && fields[0] == user)
            .map_or_else(|| "/".to_owned(), |fields| fields[5].to_owned())
    }

    /// Runs `args` as root in the sandbox; its stdout, or a panic with both
    /// streams when it fails.
    pub fn run(&self, args: &[&str]) -> String {
        let output = self.output(None, args);
        assert!(
            output.status.success(),
            "{args:?} failed ({}):\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Runs `args` as `user` in the sandbox.
    pub fn output(&self, user: Option<&str>, args: &[&str]) -> Output {
        self.command(user, args).output().expect("run nsenter")
    }

    /// Starts a daemon in the sandbox and waits for its log line with
    /// `marker` carrying its address.
    pub fn start_daemon(
        &self,
        user: Option<&str>,
        env: &[(String, String)],
        args: &[&str],
        marker: &str,
    ) -> Daemon {
        let mut command = self.command(user, args);
        command.envs(env.iter().map(|(k, v)| (k, v)));
        let mut child = command
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the daemon");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = mpsc::channel();
        let marker = marker.to_owned();
        // Keeps draining stderr after the address so the daemon never blocks.
        thread::spawn(move || {
            let mut log = Vec::new();
            let mut sent = false;
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let line = strip_ansi(&line);
                if !sent && let Some(addr) = addr_in_line(&line, &marker) {
                    sent = tx.send(Ok(addr)).is_ok();
                }
                log.push(line);
            }
            if !sent {
                let _ = tx.send(Err(log.join("\n")));
            }
        });
        let addr = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(Ok(addr)) => addr,
            Ok(Err(log)) => panic!("{args:?} exited before serving:\n{log}"),
            Err(_) => panic!("{args:?} did not serve within 60 s"),
        };
        Daemon { child, addr }
    }
}

impl Default for Sandbox {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        // EOF ends the holder, and with it the namespace and its mounts.
        drop(self.stdin.take());
        let _ = self.holder.wait();
    }
}

/// A daemon running in a [`Sandbox`]; killed when dropped.
pub struct Daemon {
    child: Child,
    /// Where it serves.
    pub addr: SocketAddr,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
