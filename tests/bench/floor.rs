//! The floor: the least a deploy script must do on each host, timed in the
//! same run. Cold: `cp -a` of the release's tree. Incremental: `cp -al` of
//! the previous release, then a copy of each changed file. Rollback: one
//! symlink renamed over `current` (`ln -sfn` + `mv -T`). Each ends with that
//! switch. Every host works in a thread of its own, as the agents do, each
//! in a directory of its own on the same disk. Nothing is transferred,
//! checked or recorded. The plain floor syncs nothing either; the durable
//! floor adds what a tool must sync before it can say a host is done: the
//! release's contents (`sync -f`, one syncfs) before the switch, and the
//! host directory (`sync <dir>`, one fsync) after it, so the switch
//! survives a power cut.

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, ensure};

use crate::repo::Files;

/// Whether a step syncs what it did before it returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// Nothing synced: page cache only.
    None,
    /// The release synced before the switch, the switch synced after it.
    Synced,
}

/// N host directories and the exported trees they copy from.
pub struct Floor {
    dir: tempfile::TempDir,
    hosts: usize,
}

impl Floor {
    /// Empty host directories.
    pub fn new(hosts: usize) -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("slipway-floor-")
            .tempdir()?;
        for host in 0..hosts {
            std::fs::create_dir_all(dir.path().join(format!("host-{host}/releases")))?;
        }
        Ok(Self { dir, hosts })
    }

    fn host(&self, host: usize) -> PathBuf {
        self.dir.path().join(format!("host-{host}"))
    }

    /// Writes the tree of release `id` (untimed): the source the copies read.
    pub fn export(&self, id: &str, tree: &Files) -> Result<PathBuf> {
        let root = self.dir.path().join(format!("export-{id}"));
        for (path, content) in tree {
            let file = root.join(path);
            std::fs::create_dir_all(file.parent().context("a file has a parent")?)?;
            std::fs::write(&file, content)?;
        }
        Ok(root)
    }

    /// `cp -a` of the exported tree into `releases/<id>` and the switch, on
    /// every host at once.
    pub fn cold(&self, export: &Path, id: &str, durability: Durability) -> Result<Duration> {
        self.on_hosts(durability, |host| {
            let release = host.join("releases").join(id);
            run(Command::new("cp").arg("-a").arg(export).arg(&release))?;
            switch(&host, id, &release, durability)
        })
    }

    /// `cp -al` of `releases/<previous>` into `releases/<id>`, a copy of each
    /// changed file over its link, and the switch, on every host at once.
    pub fn incremental(
        &self,
        export: &Path,
        previous: &str,
        id: &str,
        changed: &Files,
        durability: Durability,
    ) -> Result<Duration> {
        self.on_hosts(durability, |host| {
            let releases = host.join("releases");
            let release = releases.join(id);
            run(Command::new("cp")
                .arg("-al")
                .arg(releases.join(previous))
                .arg(&release))?;
            for (path, _) in changed {
                let target = release.join(path);
                if let Some(parent) = target.parent() {
                    std::fs::create_dir_all(parent)?;
                }
                // A hard link shares the previous release's content: replace it.
                let _ = std::fs::remove_file(&target);
                std::fs::copy(export.join(path), &target)?;
            }
            switch(&host, id, &release, durability)
        })
    }

    /// The switch alone: a release still on disk made current again.
    pub fn rollback(&self, id: &str, durability: Durability) -> Result<Duration> {
        self.on_hosts(durability, |host| {
            let durable = durability == Durability::Synced;
            flip(&host, id)?;
            if durable {
                sync(&[host.as_path()])
            } else {
                Ok(())
            }
        })
    }

    /// Runs `work` on every host at once. A durable step starts with
    /// nothing dirty (an untimed `sync`), so that it pays for its own
    /// writes only.
    fn on_hosts(
        &self,
        durability: Durability,
        work: impl Fn(PathBuf) -> Result<()> + Sync,
    ) -> Result<Duration> {
        if durability == Durability::Synced {
            run(&mut Command::new("sync"))?;
        }
        let started = Instant::now();
        std::thread::scope(|scope| {
            let handles: Vec<_> = (0..self.hosts)
                .map(|i| {
                    let (work, host) = (&work, self.host(i));
                    scope.spawn(move || work(host))
                })
                .collect();
            handles.into_iter().try_for_each(|h| {
                h.join()
                    .map_err(|_| anyhow::anyhow!("a host thread panicked"))?
            })
        })?;
        Ok(started.elapsed())
    }
}

/// Makes `release` current, syncing it before and the switch after when
/// `durability` says so.
fn switch(host: &Path, id: &str, release: &Path, durability: Durability) -> Result<()> {
    let durable = durability == Durability::Synced;
    if durable {
        run(Command::new("sync").arg("-f").arg(release))?;
    }
    flip(host, id)?;
    if durable {
        sync(&[host])?;
    }
    Ok(())
}

/// fsyncs each path (`sync PATH...`).
fn sync(paths: &[&Path]) -> Result<()> {
    run(Command::new("sync").args(paths))
}

/// `ln -sfn releases/<id> current.tmp && mv -T current.tmp current`: the
/// atomic switch as a deploy script does it.
fn flip(host: &Path, id: &str) -> Result<()> {
    let temp = host.join("current.tmp");
    run(Command::new("ln")
        .arg("-sfn")
        .arg(Path::new("releases").join(id))
        .arg(&temp))?;
    run(Command::new("mv")
        .arg("-T")
        .arg(&temp)
        .arg(host.join("current")))
}

fn run(command: &mut Command) -> Result<()> {
    let status = command
        .status()
        .with_context(|| format!("run {command:?}"))?;
    ensure!(status.success(), "{command:?}: {status}");
    Ok(())
}
