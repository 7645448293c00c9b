//! Retention after a successful deploy: keep the newest N good releases,
//! never the current, the previous good, a pinned one or a prepared one
//! waiting to be switched to, and remove failed and unfinished ones.
//! Blocking.

use std::{collections::HashSet, fs};

use crate::{
    error::Error,
    fsutil,
    journal::{Journal, State},
    layout::AppRoot,
    release::{self, io_err},
};

/// What a prune did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Good releases beyond retention.
    pub old: Vec<String>,
    /// Failed and unfinished releases.
    pub broken: Vec<String>,
}

/// Removes releases beyond `keep` READY/ACTIVE ones (newest by id) and
/// every FAILED or UNFINISHED one, except `current`, the previous good
/// release, pinned ones, READY ones newer than `current` (prepared by a
/// prepare-only deploy and waiting for their switch; they do not count
/// towards `keep`) and those in `protect` (the release being worked on and
/// the one current before it). Each is renamed into the trash under
/// the journal's lock (so a concurrent pin cannot be lost), then the trash
/// is emptied. The caller holds the app's operation lock.
pub fn prune(
    app: &AppRoot,
    journal: &Journal,
    keep: usize,
    protect: &[&str],
) -> Result<Pruned, Error> {
    let pruned = journal.update(|data| {
        let ids = release::list(app)?;
        let current = release::current_release(app)?;
        // Records of releases that never made it to disk (a failed build).
        data.releases
            .retain(|id, _| ids.contains(id) || protect.contains(&id.as_str()));
        let mut kept: HashSet<&str> = protect.iter().copied().collect();
        kept.extend(current.as_deref());
        kept.extend(data.previous_good.as_deref());
        kept.extend(
            data.releases
                .iter()
                .filter(|(_, r)| r.pinned)
                .map(|(id, _)| id.as_str()),
        );
        // Ids sort by creation time: a ready release newer than `current`
        // was prepared and not switched to yet.
        let waiting = |id: &str| {
            data.state(id) == Some(State::Ready) && current.as_deref().is_none_or(|c| id > c)
        };
        kept.extend(ids.iter().map(String::as_str).filter(|id| waiting(id)));
        // A release the journal does not know is one from before it: good.
        let broken = |id: &str| matches!(data.state(id), Some(State::Failed | State::Unfinished));
        let newest: HashSet<&str> = ids
            .iter()
            .rev()
            .filter(|id| !broken(id) && !waiting(id))
            .take(keep)
            .map(String::as_str)
            .collect();
        let mut pruned = Pruned::default();
        for id in ids.iter().filter(|id| !kept.contains(id.as_str())) {
            if broken(id) {
                pruned.broken.push(id.clone());
            } else if !newest.contains(id.as_str()) {
                pruned.old.push(id.clone());
            }
        }
        let trash = app.trash();
        fsutil::create_dir_synced(&trash).map_err(io_err("create", &trash))?;
        for id in pruned.old.iter().chain(&pruned.broken) {
            let from = app.release(id);
            let to = trash.join(format!("{id}.{:016x}", rand::random::<u64>()));
            fs::rename(&from, &to).map_err(io_err("move to the trash", &from))?;
            crate::manifests::remove(app, id);
            data.releases.remove(id);
        }
        if !pruned.old.is_empty() || !pruned.broken.is_empty() {
            let releases = app.releases();
            fsutil::sync_dir(&releases).map_err(io_err("sync", &releases))?;
        }
        Ok::<_, Error>(pruned)
    })?;
    // Also clears leftovers of interrupted operations.
    release::clear_dir(&app.trash())?;
    release::clear_dir(&app.staging())?;
    release::clear_current_temps(app)?;
    Ok(pruned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::JournalError;

    fn app_with(ids: &[&str]) -> (tempfile::TempDir, AppRoot) {
        let dir = tempfile::tempdir().unwrap();
        let app = AppRoot::new("web", dir.path().join("web"));
        app.ensure().unwrap();
        for id in ids {
            fs::create_dir(app.release(id)).unwrap();
            fs::write(app.release(id).join("VERSION"), id).unwrap();
        }
        (dir, app)
    }

    fn states(journal: &Journal, states: &[(&str, State)]) {
        journal
            .update(|data| {
                for (id, state) in states {
                    data.set_state(id, *state, "d");
                }
                Ok::<_, JournalError>(())
            })
            .unwrap();
    }

    #[test]
    fn failed_and_unfinished_do_not_count_and_are_removed() {
        let (_dir, app) = app_with(&["r1", "r2", "r3", "r4", "r5", "r6", "r7"]);
        release::switch(&app, "r7").unwrap();
        let journal = Journal::open(&app).unwrap();
        states(
            &journal,
            &[
                ("r1", State::Ready),
                ("r2", State::Ready),
                ("r3", State::Ready),
                ("r4", State::Failed),
                ("r5", State::Ready),
                ("r6", State::Unfinished),
                ("r7", State::Active),
            ],
        );
        // Keep 3 good ones: r7, r5, r3 (r6 and r4 do not count).
        let pruned = prune(&app, &journal, 3, &["r7", "r5"]).unwrap();
        assert_eq!(pruned.old, ["r1", "r2"]);
        assert_eq!(pruned.broken, ["r4", "r6"]);
        assert_eq!(release::list(&app).unwrap(), ["r3", "r5", "r7"]);
        assert_eq!(
            journal.read(|d| d.releases.keys().cloned().collect::<Vec<_>>()),
            ["r3", "r5", "r7"]
        );
        assert!(fs::read_dir(app.trash()).unwrap().next().is_none());
    }

    #[test]
    fn a_prepared_release_newer_than_current_waits_and_does_not_count() {
        let (_dir, app) = app_with(&["r1", "r2", "r3", "r4", "r5"]);
        release::switch(&app, "r3").unwrap();
        let journal = Journal::open(&app).unwrap();
        states(
            &journal,
            &[
                ("r1", State::Ready),
                ("r2", State::Ready),
                ("r3", State::Active),
                ("r4", State::Ready),
                ("r5", State::Ready),
            ],
        );
        // keep 2 counts r3 and r2; r4 and r5 wait for their switch.
        let pruned = prune(&app, &journal, 2, &["r3"]).unwrap();
        assert_eq!(pruned.old, ["r1"]);
        assert_eq!(release::list(&app).unwrap(), ["r2", "r3", "r4", "r5"]);
        // Once a newer one is current, an older prepared one is just old.
        release::switch(&app, "r5").unwrap();
        states(&journal, &[("r3", State::Ready), ("r5", State::Active)]);
        let pruned = prune(&app, &journal, 1, &["r5"]).unwrap();
        assert_eq!(pruned.old, ["r2", "r3", "r4"]);
    }

    #[test]
    fn current_previous_good_pinned_and_the_working_release_are_never_pruned() {
        let (_dir, app) = app_with(&["r1", "r2", "r3", "r4", "r5", "r6"]);
        release::switch(&app, "r2").unwrap();
        let journal = Journal::open(&app).unwrap();
        states(
            &journal,
            &[("r5", State::Failed), ("r6", State::Unfinished)],
        );
        journal
            .update(|data| {
                data.previous_good = Some("r3".into());
                data.set_state("r1", State::Ready, "");
                data.releases.get_mut("r1").unwrap().pinned = true;
                Ok::<_, JournalError>(())
            })
            .unwrap();
        // keep 1: only r4 (newest good) counts; r1 pinned, r2 current, r3
        // previous good, r6 being worked on; r5 failed goes.
        let pruned = prune(&app, &journal, 1, &["r6"]).unwrap();
        assert_eq!(
            pruned,
            Pruned {
                old: vec![],
                broken: vec!["r5".into()]
            }
        );
        assert_eq!(release::list(&app).unwrap(), ["r1", "r2", "r3", "r4", "r6"]);
        // Leftovers of interrupted operations go too.
        fs::create_dir(app.staging().join("r9.d9")).unwrap();
        prune(&app, &journal, 5, &[]).unwrap();
        assert!(fs::read_dir(app.staging()).unwrap().next().is_none());
    }
}
