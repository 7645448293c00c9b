//! The context of a running deploy or rollback and the steps both share:
//! hooks with their environment, switching `current` (and back), the health
//! check, the journal's release states along the way, and the points where
//! a cancel stops the operation.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use slipway_proto::{
    agent::v1::{LogLevel, Stage},
    daemon::chain,
};

use crate::{
    activation::{Activation, Point},
    cancel::Cancel,
    error::{Error, blocking},
    health,
    hook_output::OutputBudget,
    hooks::{self, Command, HookError, Output, Tracker},
    journal::{Journal, JournalData, State},
    layout::AppRoot,
    metrics::Metrics,
    operations::{EventLog, Kind},
    probes, release,
};

/// Step name of health check events.
pub const HEALTH_STEP: &str = slipway_proto::HEALTH_CHECK_STEP;

/// A running operation: where its events go, where it is, what it works on.
#[derive(Debug)]
pub struct Ctx {
    /// The operation's events.
    pub log: Arc<EventLog>,
    /// Stage now, for events and a failure.
    pub stage: Stage,
    /// Percent now.
    pub percent: u32,
    /// The app.
    pub app: AppRoot,
    /// The app's journal.
    pub journal: Arc<Journal>,
    /// The operation's deployment id.
    pub deployment_id: String,
    /// The operation's kind.
    pub kind: Kind,
    /// Environment name, for hooks.
    pub environment: String,
    /// Hooks, shared paths, health check, mode.
    pub activation: Activation,
    /// Set by CancelOperation.
    pub cancel: Cancel,
    /// The hook output the operation still records as events.
    pub output: Arc<OutputBudget>,
    /// Where hooks and the health check are counted.
    pub metrics: Arc<Metrics>,
}

impl Ctx {
    /// Moves to a stage.
    pub fn enter(&mut self, stage: Stage, percent: u32) {
        self.stage = stage;
        self.percent = percent;
    }

    /// Records an event at the current stage.
    pub fn say(&self, level: LogLevel, message: impl Into<String>) {
        self.log
            .push(self.stage, self.percent, level, message, None);
    }

    /// Fails with [`Error::Cancelled`] when the operation was cancelled:
    /// called before each step, so no new step starts after a cancel.
    pub fn checkpoint(&self, before: &str) -> Result<(), Error> {
        if self.cancel.is_cancelled() {
            self.say(LogLevel::Warn, format!("cancelled before {before}"));
            return Err(Error::Cancelled {
                during: format!("before {before}"),
            });
        }
        Ok(())
    }

    /// Records a release's state.
    pub async fn set_state(&self, id: &str, state: State) -> Result<(), Error> {
        let (id, deployment) = (id.to_owned(), self.deployment_id.clone());
        self.journal
            .change(move |data| data.set_state(&id, state, &deployment))
            .await?;
        Ok(())
    }

    /// A change of the journal written with its next written change (see
    /// [`Journal::defer`]); `f` gets this operation's deployment id.
    fn defer(&self, f: impl FnOnce(&mut JournalData, &str)) {
        let _ = self.journal.defer(|data| {
            f(data, &self.deployment_id);
            Ok::<_, std::convert::Infallible>(())
        });
    }

    pub(crate) fn tracker(&self) -> Tracker {
        Tracker {
            journal: self.journal.clone(),
            deployment_id: self.deployment_id.clone(),
            kind: self.kind,
        }
    }

    /// A command in `releases/<release>` with the documented environment.
    pub(crate) fn command(
        &self,
        what: String,
        command: &str,
        release: &str,
        previous: Option<&str>,
    ) -> Command {
        let dir = self.app.release(release);
        let operation = vec![
            ("SLIPWAY_APP", self.app.name().to_owned()),
            ("SLIPWAY_ENVIRONMENT", self.environment.clone()),
            ("SLIPWAY_RELEASE_ID", release.to_owned()),
            ("SLIPWAY_RELEASE_DIR", dir.display().to_string()),
            (
                "SLIPWAY_PREVIOUS_RELEASE",
                previous.unwrap_or_default().to_owned(),
            ),
            (hooks::DEPLOYMENT_VAR, self.deployment_id.clone()),
        ];
        let host = &self.activation.host;
        Command {
            what,
            command: command.to_owned(),
            env: host.environment(
                self.app.root(),
                &self.activation.command_variables(),
                operation,
            ),
            dir,
            timeout: crate::activation::DEFAULT_HOOK_TIMEOUT,
        }
    }

    /// Runs the hooks at `point` for `release` in order; the first failure
    /// or a cancel stops them.
    pub async fn run_hooks(
        &mut self,
        point: Point,
        release: &str,
        previous: Option<&str>,
    ) -> Result<(), Error> {
        let cancel = self.cancel.clone();
        self.run_hooks_with(point, release, previous, &cancel).await
    }

    async fn run_hooks_with(
        &mut self,
        point: Point,
        release: &str,
        previous: Option<&str>,
        cancel: &Cancel,
    ) -> Result<(), Error> {
        let hooks: Vec<_> = self.activation.hooks_at(point).cloned().collect();
        if hooks.is_empty() {
            return Ok(());
        }
        self.stage = Stage::Hook;
        let tracker = self.tracker();
        for hook in hooks {
            let what = if hook.name == point.name() {
                format!("{} hook", point.name())
            } else {
                format!("{} hook {:?}", point.name(), hook.name)
            };
            if cancel.is_cancelled() {
                self.say(LogLevel::Warn, format!("cancelled before {what}"));
                return Err(Error::Cancelled {
                    during: format!("before {what}"),
                });
            }
            let cmd = Command {
                timeout: hook.timeout,
                ..self.command(what, &hook.command, release, previous)
            };
            let out = Output {
                log: self.log.clone(),
                stage: Stage::Hook,
                percent: self.percent,
                step: hook.name.clone(),
                budget: self.output.clone(),
            };
            let started = Instant::now();
            let ran = hooks::run(&cmd, &out, Some(&tracker), cancel).await;
            let outcome = match &ran {
                Ok(_) => "succeeded",
                Err(HookError::Cancelled { .. }) => "cancelled",
                Err(HookError::TimedOut { .. }) => "timed_out",
                Err(_) => "failed",
            };
            let (app, took) = (self.app.name(), started.elapsed());
            (self.metrics).hook_ran(app, point.name(), &hook.name, outcome, took);
            match ran {
                Ok(_) => {}
                Err(HookError::Cancelled { what, .. }) => {
                    return Err(Error::Cancelled {
                        during: format!("during {what}"),
                    });
                }
                Err(err) => return Err(err.into()),
            }
        }
        Ok(())
    }

    /// Runs the health check, if any; how long its passing attempt took.
    async fn health_check(
        &mut self,
        release: &str,
        previous: Option<&str>,
    ) -> Result<Option<Duration>, Error> {
        let Some(check) = self.activation.health.clone() else {
            return Ok(None);
        };
        self.stage = Stage::HealthCheck;
        let cmd = self.command(String::new(), "", release, previous);
        let out = Output {
            log: self.log.clone(),
            stage: Stage::HealthCheck,
            percent: self.percent,
            step: HEALTH_STEP.to_owned(),
            budget: self.output.clone(),
        };
        let started = Instant::now();
        let checked = health::check(&check, &cmd, &out, Some(&self.tracker()), &self.cancel).await;
        let result = match &checked {
            Ok(_) => "passed",
            Err(err) if err.cancelled => "cancelled",
            Err(_) => "failed",
        };
        (self.metrics).health_checked(self.app.name(), result, started.elapsed());
        match checked {
            Ok(took) => Ok(Some(took)),
            Err(err) if err.cancelled => Err(Error::Cancelled {
                during: "during the health check".to_owned(),
            }),
            Err(err) => Err(err.into()),
        }
    }

    /// Writes the operation's secrets into release `id` (or removes the
    /// file when there are none) and says so, by count only.
    pub async fn write_secrets(&self, id: &str) -> Result<(), Error> {
        let (root, release) = (self.app.root().to_owned(), self.app.release(id));
        let file = self.activation.secrets_file.clone();
        let secrets = self.activation.secrets.clone();
        let count = secrets.pairs().len();
        let written = blocking(move || {
            file.write(&root, &release, &secrets)
                .map_err(release::ReleaseError::from)
        })
        .await?;
        let path = written.display();
        let message = match count {
            0 => format!("no secrets: removed {path} if it was there"),
            n => format!("wrote {n} secrets to {path} (mode 0600)"),
        };
        self.say(LogLevel::Info, message);
        Ok(())
    }

    /// Switches `current` to `id`.
    async fn switch(&self, id: &str) -> Result<(), Error> {
        let (app, id) = (self.app.clone(), id.to_owned());
        blocking(move || release::switch(&app, &id)).await
    }

    /// Makes `target` current: drain (when it switches), switch (unless it
    /// already is), after-activate hooks, runtime action, health check,
    /// restore. A failed drain leaves `current` alone. When a hook, the
    /// action or the check fails or the operation is cancelled, `current`
    /// goes back to `previous` (or is removed when there was none), whose
    /// after-activate hooks and runtime action run again, the host is
    /// restored, and `target` is marked failed. Once the check passed, a
    /// cancel changes nothing.
    pub async fn activate(
        &mut self,
        target: &str,
        previous: Option<&str>,
        percent: u32,
    ) -> Result<(), Error> {
        self.enter(Stage::Activate, percent);
        self.checkpoint("switching current")?;
        let switched = previous != Some(target);
        let drained = switched && self.activation.drain.is_some();
        if drained {
            self.drain(target, previous).await?;
            self.enter(Stage::Activate, percent);
        }
        if switched {
            if let Err(err) = self.switch(target).await {
                if drained {
                    let _ = self.restore(target, previous).await;
                }
                return Err(err);
            }
            // `current` is synced: recovery rebuilds these states from it.
            self.defer(|data, deployment| {
                data.set_state(target, State::Active, deployment);
                if let Some(old) = previous {
                    data.set_state(old, State::Ready, deployment);
                }
            });
            let was = previous.unwrap_or("nothing");
            self.say(
                LogLevel::Info,
                format!("current now points to {target} (was {was})"),
            );
        } else {
            self.say(
                LogLevel::Info,
                format!("current already points to {target}"),
            );
        }
        self.percent = percent + 2;
        let checked = async {
            self.run_hooks(Point::AfterActivate, target, previous)
                .await?;
            let cancel = self.cancel.clone();
            self.runtime_action(target, previous, &cancel).await?;
            self.percent = percent + 4;
            self.checkpoint("the health check")?;
            self.health_check(target, previous).await
        }
        .await;
        let took = match checked {
            Ok(took) => took,
            Err(cause) => return Err(self.revert(target, previous, cause, drained).await),
        };
        // The live release's check goes on as its continuous probes.
        let probe = self.activation.health.as_ref().map(|check| {
            let (env, vars) = (&self.environment, &self.activation.variables);
            probes::record(check, env, vars, target, took.unwrap_or_default())
        });
        // Written with the outcome; a crash before it interrupts the
        // operation, and its repeat records these again.
        let previous_good = previous.filter(|_| switched).map(str::to_owned);
        self.defer(move |data, _| {
            if previous_good.is_some() {
                data.previous_good = previous_good;
            }
            data.probe = probe;
        });
        if drained {
            self.restore(target, previous).await.inspect_err(|_| {
                let message = format!(
                    "{target} is current and passed its check, but the host stays out of its load balancer until restored"
                );
                self.say(LogLevel::Error, message);
            })?;
        }
        Ok(())
    }

    async fn revert(
        &mut self,
        target: &str,
        previous: Option<&str>,
        cause: Error,
        drained: bool,
    ) -> Error {
        let (stage, percent) = (self.stage, self.percent);
        let failure = chain(&cause);
        let output = cause.output().map(str::to_owned);
        self.enter(Stage::Revert, percent);
        let outcome = match previous {
            Some(previous) if previous == target => {
                format!(
                    "current still points to {target}: there is no other release to switch back to"
                )
            }
            Some(previous) => match self.switch_back(target, previous).await {
                (outcome, true) if drained => match self.restore(previous, Some(target)).await {
                    Ok(()) => format!("{outcome}; the host was restored"),
                    Err(err) => format!("{outcome}; restoring the host failed: {}", chain(&err)),
                },
                (outcome, _) => outcome,
            },
            None => {
                let _ = self.set_state(target, State::Failed).await;
                let app = self.app.clone();
                match blocking(move || release::remove_current(&app)).await {
                    Ok(()) => "current was removed: no release was current before".to_owned(),
                    Err(err) => format!("removing current failed too: {}", chain(&err)),
                }
            }
        };
        self.say(LogLevel::Warn, outcome.clone());
        self.enter(stage, percent);
        Error::Reverted {
            failure,
            outcome,
            output,
        }
    }

    /// Switches back to `previous` and runs its after-activate hooks and
    /// runtime action; what became of it, and whether all of that worked.
    async fn switch_back(&mut self, target: &str, previous: &str) -> (String, bool) {
        // Failed first: a crash after the switch back must not leave it ready.
        let _ = self.set_state(target, State::Failed).await;
        if let Err(err) = self.switch(previous).await {
            let _ = self.set_state(target, State::Active).await;
            let outcome = format!(
                "switching current back to {previous} failed too: {}",
                chain(&err)
            );
            return (outcome, false);
        }
        if let Err(err) = self.set_state(previous, State::Active).await {
            tracing::warn!(error = %chain(&err), "cannot record the switch back");
        }
        self.say(
            LogLevel::Warn,
            format!("switched current back to {previous}"),
        );
        // Not cancellable: after a cancel this restores what ran before.
        let never = Cancel::never();
        let ran = match self
            .run_hooks_with(Point::AfterActivate, previous, Some(target), &never)
            .await
        {
            Ok(()) => self.runtime_action(previous, Some(target), &never).await,
            Err(err) => Err(err),
        };
        self.stage = Stage::Revert;
        match ran {
            Ok(()) => (format!("current was switched back to {previous}"), true),
            Err(err) => (
                format!(
                    "current was switched back to {previous}, but its after-activate hooks or runtime action failed: {}",
                    chain(&err)
                ),
                false,
            ),
        }
    }
}
