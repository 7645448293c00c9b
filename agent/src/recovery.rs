//! What the agent does for each app when it starts: clear what an
//! interrupted operation left behind, kill a hook process group that
//! outlived the agent, and make the journal tell the truth about the disk:
//! nothing is left unfinished or running. Blocking.

use rustix::process::{Pid, Signal, kill_process_group};
use slipway_proto::agent::v1::{LogLevel, OperationResult, ProgressEvent, Stage};

use crate::{
    error::Error,
    hooks,
    journal::{Journal, State, Status, now_unix},
    layout::AppRoot,
    release,
};

/// The error of an operation the agent was running when it stopped.
pub const INTERRUPTED: &str = "the agent restarted during this operation";

/// What recovery found, for the log.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Recovered {
    /// Entries removed from staging, spare, tmp and trash, and
    /// `.current.*` temps.
    pub leftovers: usize,
    /// Operations marked interrupted.
    pub interrupted: Vec<String>,
    /// Hook process groups killed.
    pub killed: Vec<i32>,
    /// Journaled releases no longer on disk, dropped from the journal.
    pub dropped: Vec<String>,
}

/// Recovers one app. A root that does not exist has nothing to recover.
/// Only process groups started by hooks of this agent `instance` are killed.
pub fn recover(app: &AppRoot, journal: &Journal, instance: &str) -> Result<Recovered, Error> {
    let mut found = Recovered::default();
    if !app.root().is_dir() {
        return Ok(found);
    }
    for dir in [app.staging(), app.spare(), app.tmp(), app.trash()] {
        found.leftovers += release::clear_dir(&dir)?;
    }
    found.leftovers += release::clear_current_temps(app)?;
    let ids = release::list(app)?;
    let current = release::current_release(app)?;
    let boot = hooks::boot_id();
    journal.update(|data| {
        for op in data.operations.iter_mut() {
            if op.status != Status::Running {
                continue;
            }
            if let Some(hook) = op.hook.take() {
                let ours = !boot.is_empty()
                    && hook.boot_id == boot
                    && hooks::is_hook_group(hook.pgid, &op.deployment_id, instance);
                let group = Pid::from_raw(hook.pgid).filter(|p| p.as_raw_nonzero().get() > 1);
                if let (true, Some(group)) = (ours, group)
                    && kill_process_group(group, Signal::KILL).is_ok()
                {
                    found.killed.push(hook.pgid);
                }
            }
            // The journal may not have caught the group (a kill right after
            // the spawn): the processes' environment still names the
            // operation. Only an operation of this boot can have processes.
            let this_boot = hooks::boot_time_unix().is_some_and(|boot| op.started_unix >= boot);
            let strays = if this_boot {
                hooks::groups_of(&op.deployment_id, instance, app.root())
            } else {
                Vec::new()
            };
            for pgid in strays {
                let group = Pid::from_raw(pgid).filter(|p| p.as_raw_nonzero().get() > 1);
                if let Some(group) = group
                    && !found.killed.contains(&pgid)
                    && kill_process_group(group, Signal::KILL).is_ok()
                {
                    found.killed.push(pgid);
                }
            }
            op.status = Status::Interrupted;
            op.finished_unix = Some(now_unix());
            op.events = vec![interrupted_event(&op.release_id)];
            found.interrupted.push(op.deployment_id.clone());
        }
        let gone: Vec<String> = data
            .releases
            .keys()
            .filter(|id| !ids.contains(id))
            .cloned()
            .collect();
        for id in &gone {
            data.releases.remove(id);
        }
        found.dropped = gone;
        for id in &ids {
            let state = match data.state(id) {
                _ if current.as_deref() == Some(id.as_str()) => State::Active,
                Some(State::Active) | None => State::Ready,
                // Complete on disk, but its before-activate hooks never
                // finished: a retry reuses it, retention removes it.
                Some(State::Unfinished) => State::Failed,
                Some(other) => other,
            };
            if data.state(id) != Some(state) {
                data.set_state(id, state, "");
            }
        }
        if data
            .previous_good
            .as_ref()
            .is_some_and(|id| !ids.contains(id))
        {
            data.previous_good = None;
        }
        Ok::<_, Error>(())
    })?;
    Ok(found)
}

/// The final event recorded for an operation the agent did not finish.
fn interrupted_event(release_id: &str) -> ProgressEvent {
    let error = INTERRUPTED.to_owned();
    ProgressEvent {
        sequence: 1,
        time: Some(slipway_proto::now()),
        stage: Stage::Done as i32,
        percent: 100,
        message: format!("{error}; repeat the request to run it again (release {release_id})"),
        level: LogLevel::Error as i32,
        result: Some(OperationResult {
            success: false,
            error,
            ..OperationResult::default()
        }),
        ..ProgressEvent::default()
    }
}

#[cfg(test)]
mod tests;
