//! The hand-rolled baseline: `rsync -a --delete --link-dest` over ssh into
//! `releases/<id>/`, then an atomic `ln -sfn` + `mv -T` switch of `current`
//! over ssh, on N targets at once. A private sshd listens on loopback with a
//! generated host key; each target is reached through its own counting proxy
//! so the bytes on the wire are measured like Slipway's.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::Stdio,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};
use tempfile::TempDir;
use tokio::{io::AsyncReadExt, process::Command, task::JoinSet};

use crate::proxy::{CountingProxy, Traffic};

pub const SSHD: &str = "/usr/sbin/sshd";
pub const INSTALL: &str = "apt-get update && apt-get install -y openssh-server rsync";

/// Fails with the install command when rsync, ssh, ssh-keygen or sshd is
/// missing.
pub fn check_tools() -> Result<()> {
    let mut missing = Vec::new();
    for tool in ["rsync", "ssh", "ssh-keygen"] {
        let found = std::env::var_os("PATH")
            .map(|paths| std::env::split_paths(&paths).any(|dir| dir.join(tool).is_file()))
            .unwrap_or(false);
        if !found {
            missing.push(tool.to_owned());
        }
    }
    if !Path::new(SSHD).is_file() {
        missing.push(SSHD.to_owned());
    }
    if !missing.is_empty() {
        bail!(
            "the rsync baseline needs {} (Debian: openssh-server, rsync); install them with:\n  {INSTALL}\n(or run with --no-baseline)",
            missing.join(", ")
        );
    }
    Ok(())
}

/// One baseline step on all targets.
pub struct StepResult {
    pub wall: Duration,
    /// Per target: rsync's "Total bytes sent" (0 for a switch-only step).
    pub rsync_sent: Vec<u64>,
    /// Per target: bytes through the target's proxy.
    pub wire: Vec<Traffic>,
}

/// A private sshd and N target directories behind N counting proxies.
pub struct Baseline {
    dir: TempDir,
    sshd: tokio::process::Child,
    proxies: Vec<CountingProxy>,
    key: PathBuf,
}

impl Baseline {
    pub async fn start(targets: usize) -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("slipway-bench-rsync-")
            .tempdir()?;
        let d = dir.path();
        let host_key = d.join("ssh_host_ed25519_key");
        let key = d.join("id_ed25519");
        for path in [&host_key, &key] {
            run(Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-f"])
                .arg(path))
            .await?;
        }
        std::fs::copy(key.with_extension("pub"), d.join("authorized_keys"))?;
        // A free port; sshd binds it right after (a race only with other
        // processes binding ephemeral ports at the same instant).
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let config = d.join("sshd_config");
        std::fs::write(
            &config,
            format!(
                "ListenAddress 127.0.0.1\n\
                 Port {port}\n\
                 HostKey {host_key}\n\
                 AuthorizedKeysFile {auth}\n\
                 PubkeyAuthentication yes\n\
                 PasswordAuthentication no\n\
                 KbdInteractiveAuthentication no\n\
                 PermitRootLogin prohibit-password\n\
                 StrictModes no\n\
                 UsePAM no\n\
                 PidFile none\n\
                 MaxStartups 256\n\
                 MaxSessions 256\n\
                 LogLevel ERROR\n",
                host_key = host_key.display(),
                auth = d.join("authorized_keys").display(),
            ),
        )?;
        // Debian's sshd refuses to start without its privilege separation
        // directory, which only its init script creates.
        let privsep = Path::new("/run/sshd");
        if !privsep.exists() {
            let _ = std::fs::create_dir_all(privsep);
        }
        run(Command::new(SSHD).arg("-t").arg("-f").arg(&config))
            .await
            .context("sshd rejected the benchmark's configuration")?;
        // sshd's own log (it notes the readiness probe's early disconnect).
        let log = std::fs::File::create(d.join("sshd.log"))?;
        let sshd = Command::new(SSHD)
            .arg("-D")
            .arg("-e")
            .arg("-f")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .context("start sshd")?;
        let sshd_addr: SocketAddr = ([127, 0, 0, 1], port).into();
        wait_for_banner(sshd_addr).await?;
        let mut proxies = Vec::with_capacity(targets);
        for i in 0..targets {
            proxies.push(CountingProxy::start(sshd_addr).await?);
            std::fs::create_dir_all(d.join(format!("targets/{i}/releases")))?;
        }
        let baseline = Self {
            dir,
            sshd,
            proxies,
            key,
        };
        // One untimed login per target: fails early with ssh's own message.
        baseline
            .on_all(|_| "true".to_owned())
            .await
            .context("ssh login to the benchmark's sshd")?;
        Ok(baseline)
    }

    pub fn target(&self, i: usize) -> PathBuf {
        self.dir.path().join(format!("targets/{i}"))
    }

    fn ssh_command(&self, i: usize) -> String {
        format!(
            "ssh -p {} -i {} -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o BatchMode=yes -o LogLevel=ERROR",
            self.proxies[i].addr.port(),
            self.key.display()
        )
    }

    fn switch_script(&self, i: usize, id: &str) -> String {
        let t = self.target(i);
        format!(
            "ln -sfn releases/{id} {t}/current.tmp && mv -T {t}/current.tmp {t}/current",
            t = t.display()
        )
    }

    fn ssh(&self, i: usize, script: &str) -> Command {
        let mut cmd = Command::new("ssh");
        cmd.args(["-p", &self.proxies[i].addr.port().to_string(), "-i"])
            .arg(&self.key)
            .args([
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                "UserKnownHostsFile=/dev/null",
                "-o",
                "BatchMode=yes",
                "-o",
                "LogLevel=ERROR",
                "127.0.0.1",
                script,
            ]);
        cmd
    }

    fn traffic(&self) -> Vec<Traffic> {
        self.proxies.iter().map(CountingProxy::traffic).collect()
    }

    async fn settle(&self) {
        for proxy in &self.proxies {
            proxy.wait_idle(Duration::from_secs(5)).await;
        }
    }

    /// Runs `script(i)` over ssh on every target at once.
    async fn on_all(&self, script: impl Fn(usize) -> String) -> Result<()> {
        let mut jobs = JoinSet::new();
        for i in 0..self.proxies.len() {
            let mut cmd = self.ssh(i, &script(i));
            jobs.spawn(async move { run(&mut cmd).await });
        }
        while let Some(joined) = jobs.join_next().await {
            joined??;
        }
        Ok(())
    }

    /// `rsync --link-dest` of `source` into `releases/<id>/` then the switch,
    /// on every target at once; only this is timed.
    pub async fn deploy(
        &self,
        source: &Path,
        id: &str,
        previous: Option<&str>,
    ) -> Result<StepResult> {
        self.settle().await;
        let before = self.traffic();
        let start = Instant::now();
        let mut jobs = JoinSet::new();
        for i in 0..self.proxies.len() {
            let target = self.target(i);
            let mut rsync = Command::new("rsync");
            rsync
                .args(["-a", "--delete", "--stats", "--exclude=/.git", "-e"])
                .arg(self.ssh_command(i));
            if let Some(prev) = previous {
                rsync.arg(format!(
                    "--link-dest={}",
                    target.join("releases").join(prev).display()
                ));
            }
            rsync.arg(format!("{}/", source.display())).arg(format!(
                "127.0.0.1:{}/",
                target.join("releases").join(id).display()
            ));
            let mut switch = self.ssh(i, &self.switch_script(i, id));
            jobs.spawn(async move {
                let stats = run(&mut rsync).await?;
                run(&mut switch).await?;
                Ok::<_, anyhow::Error>((i, parse_sent(&stats)))
            });
        }
        let mut rsync_sent = vec![0; self.proxies.len()];
        while let Some(joined) = jobs.join_next().await {
            let (i, sent) = joined??;
            rsync_sent[i] = sent;
        }
        let wall = start.elapsed();
        self.settle().await;
        Ok(self.result(wall, rsync_sent, before))
    }

    /// The baseline's rollback: the release is still on disk, so it is the
    /// ssh symlink switch alone.
    pub async fn rollback(&self, id: &str) -> Result<StepResult> {
        self.settle().await;
        let before = self.traffic();
        let start = Instant::now();
        self.on_all(|i| self.switch_script(i, id)).await?;
        let wall = start.elapsed();
        self.settle().await;
        Ok(self.result(wall, vec![0; self.proxies.len()], before))
    }

    fn result(&self, wall: Duration, rsync_sent: Vec<u64>, before: Vec<Traffic>) -> StepResult {
        let wire = self
            .traffic()
            .into_iter()
            .zip(before)
            .map(|(after, before)| after - before)
            .collect();
        StepResult {
            wall,
            rsync_sent,
            wire,
        }
    }

    /// The release `current` points to on target `i`.
    pub fn current(&self, i: usize) -> Option<String> {
        let link = std::fs::read_link(self.target(i).join("current")).ok()?;
        Some(link.file_name()?.to_string_lossy().into_owned())
    }

    /// Stops sshd and removes the targets (in parallel: ~100,000 entries).
    pub async fn stop(mut self) {
        let _ = self.sshd.start_kill();
        let _ = self.sshd.wait().await;
        remove_all((0..self.proxies.len()).map(|i| self.target(i)).collect()).await;
    }
}

/// Removes directory trees in parallel, best effort (their temporary
/// directory is removed afterwards in any case).
pub async fn remove_all(dirs: Vec<PathBuf>) {
    let mut jobs = JoinSet::new();
    for dir in dirs {
        jobs.spawn_blocking(move || std::fs::remove_dir_all(dir));
    }
    jobs.join_all().await;
}

/// Runs a command to success and returns its stdout.
async fn run(cmd: &mut Command) -> Result<String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .await
        .with_context(|| format!("run {:?}", cmd.as_std().get_program()))?;
    if !out.status.success() {
        bail!(
            "{:?} failed ({}): {}",
            cmd.as_std().get_program(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// rsync --stats: "Total bytes sent: 1,234,567".
fn parse_sent(stats: &str) -> u64 {
    stats
        .lines()
        .find_map(|l| l.strip_prefix("Total bytes sent:"))
        .map(|n| n.chars().filter(char::is_ascii_digit).collect::<String>())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// Waits (bounded) for sshd's "SSH-2.0" banner.
async fn wait_for_banner(addr: SocketAddr) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(Ok(mut stream)) =
            tokio::time::timeout(Duration::from_secs(1), tokio::net::TcpStream::connect(addr)).await
        {
            let mut banner = [0u8; 7];
            if let Ok(Ok(_)) =
                tokio::time::timeout(Duration::from_secs(2), stream.read_exact(&mut banner)).await
                && &banner == b"SSH-2.0"
            {
                return Ok(());
            }
        }
        if Instant::now() >= deadline {
            bail!("sshd did not answer on {addr} within 10 s");
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}
