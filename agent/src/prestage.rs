//! Prestaged trees: once a release has gone live (a deploy, or the
//! activation of a prepared release), the agent builds that release's tree
//! a second time, in `.slipway/spare/<id>`, on a thread of the lowest CPU
//! priority, once the app has been idle for a while (a second by default:
//! the rest of a rollout, or another app's, has the host to itself). The next
//! deploy of the app takes it, moves it into staging and patches in only
//! what differs (see `release::materialise`): a one-file change links one
//! file instead of the whole tree, so the part of a deploy that grows with
//! the tree is done ahead of time rather than while the host waits.
//!
//! A deploy that needs the app while a tree is being built stops the build
//! (without waiting for it) and patches the tree ready before, if any, or
//! builds afresh. What a stopped build leaves is removed by the next build,
//! or at the agent's next start (which trees are ready is kept in memory
//! only).
//! Trees are only made of hard links; apps deployed as private copies get
//! none. One tree per app, as large as one release's directories and links.

use std::{
    collections::HashMap,
    ops::ControlFlow,
    path::{Path, PathBuf},
    sync::{
        Arc, Condvar, Mutex, MutexGuard,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use slipway_proto::daemon::chain;

use crate::{
    fsutil,
    layout::AppRoot,
    manifest::Manifest,
    objects::ObjectStore,
    release::{self, Prestaged, ReleaseError},
};

/// Nice value of the threads that build trees: the lowest priority, so
/// they take only CPU time nothing else wants.
const BUILD_NICE: i32 = 19;

/// The prestaged trees of this agent's apps.
#[derive(Debug)]
pub struct Prestage {
    enabled: bool,
    /// How long an app stays idle before a build begins.
    idle: Duration,
    slots: Mutex<HashMap<PathBuf, Arc<Slot>>>,
}

/// One app's tree.
#[derive(Debug, Default)]
struct Slot {
    /// Bumped by every take: a build started before stops.
    generation: AtomicU64,
    /// Notified when the generation moves, with the mutex it waits on.
    bumped: Condvar,
    quiet: Mutex<()>,
    /// The ready tree, held briefly.
    ready: Mutex<Option<Ready>>,
    /// Held by the one build of the app at a time, for all of it.
    building: Mutex<()>,
    /// The thread of the latest build.
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

/// A ready tree and where it is.
#[derive(Debug)]
struct Ready {
    tree: Prestaged,
    dir: PathBuf,
}

/// Locks `mutex`: a panic while it was held leaves a state that holds (a
/// tree is published only once complete).
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl Slot {
    /// Stops the builds started before, waking one that waits to begin.
    fn bump(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        let _quiet = lock(&self.quiet);
        self.bumped.notify_all();
    }

    /// Whether the generation is still `started`.
    fn current(&self, started: u64) -> bool {
        self.generation.load(Ordering::SeqCst) == started
    }

    /// Waits `idle` unless the generation moves on from `started` first;
    /// returns whether it did not.
    fn stays_idle(&self, started: u64, idle: Duration) -> bool {
        let quiet = lock(&self.quiet);
        let waited = self
            .bumped
            .wait_timeout_while(quiet, idle, |_| self.current(started));
        drop(waited.unwrap_or_else(|e| e.into_inner()));
        self.current(started)
    }
}

impl Prestage {
    /// Trees are built only when `enabled`, each once its app has been
    /// idle for `idle`.
    pub fn new(enabled: bool, idle: Duration) -> Self {
        Self {
            enabled,
            idle,
            slots: Mutex::default(),
        }
    }

    fn slot(&self, app: &AppRoot) -> Arc<Slot> {
        lock(&self.slots)
            .entry(app.root().to_owned())
            .or_default()
            .clone()
    }

    /// Stops a build under way for `app` and, when its ready tree is worth
    /// patching into `manifest`, moves it to `dest` (a path on the same
    /// filesystem that does not exist) and hands it over. Blocking (one
    /// rename); it does not wait for a build to stop.
    pub fn take(&self, app: &AppRoot, dest: &Path, manifest: &Manifest) -> Option<Prestaged> {
        let slot = self.slot(app);
        slot.bump();
        let mut ready = lock(&slot.ready);
        if !release::worth_patching(&ready.as_ref()?.tree.manifest, manifest) {
            return None;
        }
        let Ready { tree, dir } = ready.take()?;
        match std::fs::rename(&dir, dest) {
            Ok(()) => Some(tree),
            Err(err) => {
                tracing::warn!(tree = %dir.display(), error = %err, "cannot move the prestaged tree");
                None
            }
        }
    }

    /// The release whose tree is ready for `app`; None when none is.
    pub fn ready(&self, app: &AppRoot) -> Option<String> {
        let slot = self.slot(app);
        let ready = lock(&slot.ready);
        ready.as_ref().map(|r| r.tree.release_id.clone())
    }

    /// Starts a thread to build the tree of `release_id` for `app` once
    /// the returned [`Go`] is given (an operation gives it when it is
    /// over), from `manifest` or else the one kept beside the release; once
    /// complete, the tree replaces the app's. Nothing is built when
    /// prestaging is off, when that release's tree is the one ready, or
    /// when the `Go` is dropped.
    pub fn prepare(&self, app: &AppRoot, release_id: &str, manifest: Option<Manifest>) -> Go {
        if !self.enabled || self.ready(app).as_deref() == Some(release_id) {
            return Go(None);
        }
        let (go, gate) = std::sync::mpsc::channel();
        let slot = self.slot(app);
        let started = slot.generation.load(Ordering::SeqCst);
        let (app, release_id, builder) = (app.clone(), release_id.to_owned(), slot.clone());
        let idle = self.idle;
        let slot = builder.clone();
        let spawned = std::thread::Builder::new()
            .name("prestage".into())
            .spawn(move || {
                if gate.recv().is_err() || !slot.stays_idle(started, idle) {
                    return;
                }
                lower_priority();
                let _building = lock(&slot.building);
                let manifest = manifest.or_else(|| {
                    let kept = crate::manifests::load(&app, &release_id)?;
                    Manifest::from_wire(kept).ok()
                });
                let Some(manifest) = manifest else {
                    tracing::debug!(app = app.name(), release = %release_id, "no manifest kept to prestage from");
                    return;
                };
                let tree = Prestaged {
                    release_id: release_id.clone(),
                    manifest,
                };
                match build(&app, &slot, started, tree) {
                    Ok(()) | Err(ReleaseError::Stopped) => {}
                    Err(err) => tracing::warn!(
                        app = app.name(), release = %release_id, error = %chain(&err),
                        "cannot prestage the next deploy's tree"
                    ),
                }
            });
        match spawned {
            // The one before is over or stopping; dropping it detaches it.
            Ok(thread) => *lock(&builder.thread) = Some(thread),
            Err(err) => tracing::warn!(error = %err, "cannot start a thread to prestage a tree"),
        }
        Go(Some(go))
    }

    /// [`Prestage::prepare`] and go at once.
    #[cfg(test)]
    pub fn start(&self, app: &AppRoot, release_id: &str, manifest: Manifest) {
        self.prepare(app, release_id, Some(manifest)).go();
    }

    /// Waits for the latest build for `app` to end (it must have been told
    /// to go, or have been dropped).
    #[cfg(test)]
    pub fn settle(&self, app: &AppRoot) {
        let thread = lock(&self.slot(app).thread).take();
        if let Some(thread) = thread {
            thread.join().expect("the build does not panic");
        }
    }

    /// Stops a build under way for `app` and drops its ready tree (an
    /// object it may link was found corrupted); the next build removes it.
    pub fn forget(&self, app: &AppRoot) {
        let slot = self.slot(app);
        slot.bump();
        lock(&slot.ready).take();
    }
}

impl Drop for Prestage {
    /// Stops every build under way: the agent is going away.
    fn drop(&mut self) {
        for slot in lock(&self.slots).values() {
            slot.bump();
        }
    }
}

/// Lets a prepared build begin.
#[derive(Debug)]
#[must_use = "a build begins only once told to go"]
pub struct Go(Option<std::sync::mpsc::Sender<()>>);

impl Go {
    /// Lets the build begin.
    pub fn go(self) {
        if let Some(go) = self.0 {
            // A thread that failed to start is gone already.
            let _ = go.send(());
        }
    }
}

/// Builds `tree` in `.slipway/spare` of `app` and publishes it in `slot`,
/// unless the slot's generation moves on from `started` first; removes what
/// earlier builds left there. Blocking; the caller holds `slot.building`.
fn build(app: &AppRoot, slot: &Slot, started: u64, tree: Prestaged) -> Result<(), ReleaseError> {
    let current = || slot.current(started);
    let mut progress = |_, _| match current() {
        true => ControlFlow::Continue(()),
        false => ControlFlow::Break(()),
    };
    if !current() {
        return Err(ReleaseError::Stopped);
    }
    let spare = app.spare();
    fsutil::create_private_dir(&spare).map_err(release::io_err("create", &spare))?;
    // Whatever is there but the ready tree is a stopped build's, or a tree
    // replaced since: a take moves only the ready one, so none is in use.
    let published = lock(&slot.ready).as_ref().map(|r| r.dir.clone());
    for entry in std::fs::read_dir(&spare).map_err(release::io_err("list", &spare))? {
        let path = entry.map_err(release::io_err("list", &spare))?.path();
        if Some(&path) != published.as_ref() {
            fsutil::remove_tree(&path).map_err(release::io_err("remove", &path))?;
        }
    }
    let dir = spare.join(format!("{}.{started}", tree.release_id));
    let store = ObjectStore::new(app);
    release::build_tree(&store, &dir, &tree.manifest, false, &mut progress)?;
    let replaced = {
        let mut ready = lock(&slot.ready);
        if !current() {
            return Err(ReleaseError::Stopped);
        }
        ready.replace(Ready { tree, dir }).map(|r| r.dir)
    };
    if let Some(old) = replaced {
        fsutil::remove_tree(&old).map_err(release::io_err("remove", &old))?;
    }
    Ok(())
}

/// Gives the calling thread the lowest CPU priority (on Linux a nice value
/// is a thread's own). A failure only costs priority.
fn lower_priority() {
    let thread = rustix::thread::gettid();
    if let Err(err) = rustix::process::setpriority_process(Some(thread), BUILD_NICE) {
        tracing::debug!(error = %err, "cannot lower the prestage thread's priority");
    }
}

#[cfg(test)]
mod tests;
