//! Builds: an app may declare a command whose output directory is its
//! release. The control plane checks the commit out into a scratch
//! directory under `build_dir` (beside the data directory, which is 0700:
//! the build user could not reach a directory inside it), runs the command there as the build user
//! ([`run`]), writes the output into the app's repository as git objects
//! ([`output`]) and records the [`Build`]; a commit is built once per
//! build spec, later cuts reuse the recorded output.

mod output;
mod run;

use std::{
    collections::HashMap,
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
};

use sha2::{Digest as _, Sha256};
use slipway_proto::{
    control::v1::{App, Build, BuildSpec, BuildStatus},
    limits,
    validate::{InvalidField, bounded},
};

use crate::{
    error::Error,
    git,
    progress::{Note, Progress},
    store::{self, Store},
};

pub use run::{MAX_EVENT_BYTES, MAX_LINE, TAIL_BYTES};

/// Seconds a build may run unless its spec says.
pub const DEFAULT_TIMEOUT_SECONDS: u32 = 600;
/// Longest timeout a spec may ask for (a day).
pub const MAX_TIMEOUT_SECONDS: u32 = 86_400;
/// Most environment variables of a build.
pub const MAX_ENV: usize = 64;

/// The build settings of the configuration.
#[derive(Clone, Debug, Default)]
pub struct BuildConfig {
    /// The user builds run as; None: `nobody` when the control plane runs
    /// as root, else the control plane's own user.
    pub user: Option<String>,
    /// Where scratch directories go; None: `<data_dir>-builds`, beside the
    /// data directory (which only the control plane's user may enter).
    pub dir: Option<PathBuf>,
}

/// The unprivileged user builds run as.
#[derive(Clone, Debug)]
pub struct BuildUser {
    /// Its name.
    pub name: String,
    /// Its uid.
    pub uid: u32,
    /// Its primary gid.
    pub gid: u32,
}

/// A build setting that stops the control plane at start.
#[derive(Debug, thiserror::Error)]
#[error("build_user {0}: no such user in /etc/passwd")]
pub struct UnknownBuildUser(pub String);

/// Runs builds, one per app at a time.
#[derive(Clone)]
pub struct Builder {
    user: Option<BuildUser>,
    dir: PathBuf,
    running: Arc<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>,
}

/// A build's output, built now or earlier.
pub struct Obtained {
    /// The build as recorded.
    pub build: Build,
    /// It ran now (false: cached).
    pub ran: bool,
}

impl Builder {
    /// The builder of `config` for a control plane on `data_dir`.
    pub fn new(config: &BuildConfig, data_dir: &Path) -> Result<Self, UnknownBuildUser> {
        let name = match &config.user {
            Some(name) => Some(name.clone()),
            None if rustix::process::geteuid().is_root() => Some("nobody".to_owned()),
            None => None,
        };
        let user = name
            .map(|name| lookup(&name).ok_or(UnknownBuildUser(name)))
            .transpose()?;
        Ok(Self {
            user,
            dir: config.dir.clone().unwrap_or_else(|| beside(data_dir)),
            running: Arc::default(),
        })
    }

    /// The output of `app`'s build of `commit` from the repository at
    /// `repo`: the recorded one when this commit was built with this spec,
    /// else built now. A failed build is an error that says why.
    pub async fn obtain(
        &self,
        store: &Store,
        repo: String,
        app: &App,
        commit: &str,
        progress: &Progress,
    ) -> Result<Obtained, Error> {
        let spec = app.build.clone().unwrap_or_default();
        let hash = spec_hash(&spec);
        let lock = self.app_lock(&app.name);
        let _one = lock.lock().await;
        if let Some(build) = cached(store, &repo, &app.name, commit, &hash).await? {
            let message = format!(
                "build cached: {} ({} files, built in {} ms); the command is not run again",
                build.id, build.file_count, build.duration_ms
            );
            progress.note(Note::info("build", message)).await;
            return Ok(Obtained { build, ran: false });
        }
        let id = format!("{}-{}", short(commit), &hash[..12]);
        let message = format!("building {} with `{}`", short(commit), spec.command);
        progress.note(Note::info("build", message)).await;
        let scratch = self.scratch(&app.name, &id)?;
        let job = Job {
            repo,
            commit: commit.to_owned(),
            id: id.clone(),
            spec,
            max_file_bytes: match app.max_file_bytes {
                0 => limits::DEFAULT_MAX_FILE_BYTES,
                n => n,
            },
        };
        let attempt = self.attempt(&job, &scratch, progress).await;
        let _ = tokio::fs::remove_dir_all(&scratch).await;
        let build = Build {
            id,
            app: app.name.clone(),
            commit: commit.to_owned(),
            spec_hash: hash,
            status: if attempt.output.is_ok() {
                BuildStatus::Succeeded
            } else {
                BuildStatus::Failed
            } as i32,
            output_commit: attempt
                .output
                .as_ref()
                .map(|o| o.commit.clone())
                .unwrap_or_default(),
            file_count: attempt.output.as_ref().map_or(0, |o| o.files),
            duration_ms: attempt.duration_ms,
            log_tail: attempt.tail,
            error: attempt.output.as_ref().err().cloned().unwrap_or_default(),
            finished_at: Some(slipway_proto::now()),
        };
        store.commit(vec![store::builds::put(&build)]).await?;
        if build.status() != BuildStatus::Succeeded {
            tracing::warn!(app = %app.name, build = %build.id, error = %build.error, "build failed");
            return Err(Error::Precondition(format!(
                "the build of {} at {} failed: {}; its output is in the deployment's events \
                 (stage build), and `slipctl release create {} --ref {} --build` runs it again{}",
                app.name,
                short(commit),
                build.error,
                app.name,
                commit,
                last_lines(&build.log_tail)
            )));
        }
        let message = format!(
            "build succeeded: {} files in {} ms",
            build.file_count, build.duration_ms
        );
        progress.note(Note::info("build", message)).await;
        tracing::info!(app = %app.name, build = %build.id, files = build.file_count, "built");
        Ok(Obtained { build, ran: true })
    }

    /// Checks out, runs, records the output.
    async fn attempt(&self, job: &Job, scratch: &Path, progress: &Progress) -> Attempt {
        let src = scratch.join("src");
        let (repo, commit, dir) = (job.repo.clone(), job.commit.clone(), src.clone());
        let owner = self.user.as_ref().map(|u| (u.uid, u.gid));
        let top = scratch.to_owned();
        let prepared = blocking(move || {
            let repo = git::open(&repo).map_err(|e| e.to_string())?;
            output::checkout(&repo, &commit, &dir)?;
            if let Some((uid, gid)) = owner {
                output::chown_all(&top, uid, gid)
                    .map_err(|e| format!("giving the checkout to the build user: {e}"))?;
            }
            Ok(())
        })
        .await;
        if let Err(err) = prepared {
            return Attempt::failed(err, String::new(), 0);
        }
        let timeout = match job.spec.timeout_seconds {
            0 => DEFAULT_TIMEOUT_SECONDS,
            s => s,
        };
        let timeout = std::time::Duration::from_secs(timeout.into());
        let ran = run::run(&job.spec, timeout, &src, self.user.as_ref(), progress).await;
        if let Some(failure) = ran.failure {
            return Attempt::failed(failure, ran.tail, ran.duration_ms);
        }
        let (repo, commit, id) = (job.repo.clone(), job.commit.clone(), job.id.clone());
        let out = job.spec.output.clone();
        let max = job.max_file_bytes;
        let owner = self.user.as_ref().map(|u| u.uid);
        let output = blocking(move || {
            let repo = git::open(&repo).map_err(|e| e.to_string())?;
            output::record(&repo, &commit, &id, (&src, &out), max, owner)
        })
        .await;
        Attempt {
            output,
            tail: ran.tail,
            duration_ms: ran.duration_ms,
        }
    }

    /// A fresh scratch directory for build `id` of `app`, which only the
    /// build user (and root) may enter.
    fn scratch(&self, app: &str, id: &str) -> Result<PathBuf, Error> {
        let io = |e: std::io::Error| {
            tracing::error!(dir = %self.dir.display(), error = %e, "creating a build directory failed");
            Error::Precondition(format!(
                "the build directory {} cannot be created: {e}",
                self.dir.display()
            ))
        };
        std::fs::create_dir_all(&self.dir).map_err(io)?;
        if self.user.is_some() {
            // The build user passes through, never lists.
            std::fs::set_permissions(&self.dir, std::fs::Permissions::from_mode(0o711))
                .map_err(io)?;
        }
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let scratch = self.dir.join(format!("{app}-{id}-{nanos}"));
        std::fs::create_dir(&scratch).map_err(io)?;
        std::fs::set_permissions(&scratch, std::fs::Permissions::from_mode(0o700)).map_err(io)?;
        Ok(scratch)
    }

    fn app_lock(&self, app: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.running.lock().unwrap_or_else(|p| p.into_inner());
        locks.entry(app.to_owned()).or_default().clone()
    }
}

/// One build to run.
struct Job {
    repo: String,
    commit: String,
    id: String,
    spec: BuildSpec,
    max_file_bytes: u64,
}

/// How one run went.
struct Attempt {
    output: Result<output::Output, String>,
    tail: String,
    duration_ms: u64,
}

impl Attempt {
    fn failed(error: String, tail: String, duration_ms: u64) -> Self {
        Self {
            output: Err(error),
            tail,
            duration_ms,
        }
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Result<T, String> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|_| Err("the build task failed".to_owned()))
}

/// The successful build of `commit` with spec `hash` whose output is still
/// in the repository, if recorded.
async fn cached(
    store: &Store,
    repo: &str,
    app: &str,
    commit: &str,
    hash: &str,
) -> Result<Option<Build>, Error> {
    let Some(build) = store::builds::get(store, app, commit, hash)? else {
        return Ok(None);
    };
    if build.status() != BuildStatus::Succeeded {
        return Ok(None);
    }
    let (repo, output) = (repo.to_owned(), build.output_commit.clone());
    let held = blocking(move || {
        let repo = git::open(&repo).map_err(|e| e.to_string())?;
        let oid = git2::Oid::from_str(&output).map_err(|e| e.message().to_owned())?;
        Ok(repo.find_commit(oid).is_ok())
    })
    .await
    .unwrap_or(false);
    Ok(held.then_some(build))
}

/// The end of a log tail for an error message: at most 2 KiB, whole lines.
fn last_lines(tail: &str) -> String {
    const MOST: usize = 2 << 10;
    if tail.is_empty() {
        return String::new();
    }
    let mut start = tail.len().saturating_sub(MOST);
    while !tail.is_char_boundary(start) {
        start += 1;
    }
    let end = &tail[start..];
    let end = match (start, end.find('\n')) {
        (0, _) | (_, None) => end,
        (_, Some(i)) => &end[i + 1..],
    };
    format!("; its last output:\n{}", end.trim_end())
}

fn short(commit: &str) -> &str {
    &commit[..commit.len().min(12)]
}

/// The hash a build is cached under: SHA-256 of the spec, its variables
/// in name order.
pub fn spec_hash(spec: &BuildSpec) -> String {
    let mut hash = Sha256::new();
    for part in [spec.command.as_str(), spec.output.as_str()] {
        hash.update(part.as_bytes());
        hash.update([0]);
    }
    let mut env: Vec<_> = spec.env.iter().collect();
    env.sort();
    for (key, value) in env {
        hash.update(format!("{key}={value}\0").as_bytes());
    }
    hash.update(spec.timeout_seconds.to_be_bytes());
    hex::encode(hash.finalize())
}

/// A spec as an operator may declare it: a command, a relative output
/// without `..`, bounded variables with shell-style names, a timeout of at
/// most a day.
pub fn check(field: &str, spec: &BuildSpec) -> Result<(), InvalidField> {
    let sub = |name: &str| format!("{field}.{name}");
    if spec.command.trim().is_empty() {
        return Err(InvalidField::new(sub("command"), "missing"));
    }
    bounded(&sub("command"), &spec.command, limits::COMMAND)?;
    slipway_proto::validate::relative_path(&sub("output"), &spec.output)?;
    if spec.env.len() > MAX_ENV {
        return Err(InvalidField::new(
            sub("env"),
            format!("more than {MAX_ENV} variables"),
        ));
    }
    for (key, value) in &spec.env {
        let shell_name = key
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && key.len() <= 128;
        if !shell_name {
            return Err(InvalidField::new(
                sub("env"),
                format!("{key:?} is not a variable name (letters, digits, '_', 1-128)"),
            ));
        }
        bounded(&sub("env"), value, limits::COMMAND)?;
    }
    if spec.timeout_seconds > MAX_TIMEOUT_SECONDS {
        return Err(InvalidField::new(
            sub("timeout_seconds"),
            format!("at most {MAX_TIMEOUT_SECONDS} (a day)"),
        ));
    }
    Ok(())
}

/// `<data_dir>-builds`.
fn beside(data_dir: &Path) -> PathBuf {
    let mut name = data_dir
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_else(|| "slipway".into());
    name.push("-builds");
    data_dir.with_file_name(name)
}

/// The user `name` of /etc/passwd.
fn lookup(name: &str) -> Option<BuildUser> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        if fields.next()? != name {
            return None;
        }
        let _password = fields.next()?;
        Some(BuildUser {
            name: name.to_owned(),
            uid: fields.next()?.parse().ok()?,
            gid: fields.next()?.parse().ok()?,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> BuildSpec {
        BuildSpec {
            command: "make".into(),
            output: "dist".into(),
            env: [("A".to_owned(), "1".to_owned())].into(),
            timeout_seconds: 60,
        }
    }

    #[test]
    fn outputs_must_stay_inside_and_names_be_shell_names() {
        assert!(check("app.build", &spec()).is_ok());
        for bad in ["../dist", "/srv/dist", "dist/../..", ""] {
            let s = BuildSpec {
                output: bad.into(),
                ..spec()
            };
            assert!(check("app.build", &s).is_err(), "{bad}");
        }
        let s = BuildSpec {
            env: [("1A".to_owned(), String::new())].into(),
            ..spec()
        };
        assert!(check("app.build", &s).is_err());
        let s = BuildSpec {
            timeout_seconds: MAX_TIMEOUT_SECONDS + 1,
            ..spec()
        };
        assert!(check("app.build", &s).is_err());
    }

    #[test]
    fn the_spec_hash_changes_with_any_field() {
        let base = spec_hash(&spec());
        assert_eq!(base, spec_hash(&spec()));
        let other = BuildSpec {
            command: "make all".into(),
            ..spec()
        };
        assert_ne!(base, spec_hash(&other));
        let other = BuildSpec {
            env: [("A".to_owned(), "2".to_owned())].into(),
            ..spec()
        };
        assert_ne!(base, spec_hash(&other));
    }
}
