//! The steps runtime actions and drains add around a switch: the drain
//! before it, the runtime action after the after-activate hooks (and after a
//! switch back), and the restore once the health check passed (or once the
//! previous release is back).

use std::time::Duration;

use slipway_proto::agent::v1::{LogLevel, Stage};

use crate::{
    cancel::Cancel,
    error::Error,
    hooks::{self, HookError, Output},
    operations::Event,
    runtime::{self, Action, Call},
    steps::Ctx,
};

/// Step name of drain events.
pub const DRAIN_STEP: &str = "drain";
/// Step name of restore events.
pub const RESTORE_STEP: &str = "restore";
/// Step name of runtime action events.
pub const ACTION_STEP: &str = "runtime-action";

/// Where a command of these steps runs and what it is.
struct Run<'a> {
    stage: Stage,
    step: &'static str,
    command: &'a str,
    timeout: Duration,
    release: &'a str,
    previous: Option<&'a str>,
}

impl Ctx {
    /// Records an event of `step` at `stage`.
    fn note(&self, stage: Stage, step: &str, level: LogLevel, message: String) {
        self.log.push_event(Event {
            stage,
            percent: self.percent,
            level,
            message,
            step: step.to_owned(),
            output: String::new(),
        });
    }

    /// Takes the host out of its load balancer before switching to `target`
    /// (already prepared). A failure or a timeout fails the operation with
    /// `current` untouched, after an attempt to restore the host: a drain
    /// that half happened must not leave it out.
    pub async fn drain(&mut self, target: &str, previous: Option<&str>) -> Result<(), Error> {
        let Some(drain) = self.activation.drain.clone() else {
            return Ok(());
        };
        self.checkpoint("the drain")?;
        let cancel = self.cancel.clone();
        let drained = self
            .call(
                Stage::Drain,
                DRAIN_STEP,
                &drain.drain,
                drain.timeout,
                target,
                previous,
                &cancel,
            )
            .await;
        if let Err(err) = drained {
            let current = previous.unwrap_or("nothing");
            self.note(
                Stage::Drain,
                DRAIN_STEP,
                LogLevel::Error,
                format!("the drain failed; current was not switched and still points to {current}"),
            );
            if let Err(restore) = self.restore(target, previous).await {
                let chain = slipway_proto::daemon::chain(&restore);
                tracing::warn!(error = %chain, "restore after a failed drain failed");
            }
            return Err(err);
        }
        Ok(())
    }

    /// Puts the host back into its load balancer, with `release` current.
    /// Not cancellable: it restores what a drain took away.
    pub async fn restore(&mut self, release: &str, previous: Option<&str>) -> Result<(), Error> {
        let Some(drain) = self.activation.drain.clone() else {
            return Ok(());
        };
        let never = Cancel::never();
        let call = &drain.restore;
        let timeout = drain.timeout;
        (self.call(
            Stage::Restore,
            RESTORE_STEP,
            call,
            timeout,
            release,
            previous,
            &never,
        ))
        .await
    }

    /// Runs the app's runtime action for `release`, now current.
    pub async fn runtime_action(
        &mut self,
        release: &str,
        previous: Option<&str>,
        cancel: &Cancel,
    ) -> Result<(), Error> {
        let Some(action) = self.activation.runtime.clone() else {
            return Ok(());
        };
        self.stage = Stage::RuntimeAction;
        if let Some(shell) = action.shell() {
            let run = Run {
                stage: Stage::RuntimeAction,
                step: ACTION_STEP,
                command: &shell,
                timeout: action.timeout,
                release,
                previous,
            };
            return self.run_command(run, cancel).await;
        }
        let Action::Signal { pid_file, signal } = &action.action else {
            return Ok(());
        };
        let what = format!("runtime action ({})", action.describe());
        match runtime::send_signal(pid_file, signal) {
            Ok(pid) => {
                let message = format!("sent SIG{signal} to process {pid} ({})", pid_file.display());
                self.note(Stage::RuntimeAction, ACTION_STEP, LogLevel::Info, message);
                Ok(())
            }
            Err(reason) => {
                let message = format!("{what} failed: {reason}");
                self.note(Stage::RuntimeAction, ACTION_STEP, LogLevel::Error, message);
                Err(Error::Runtime { what, reason })
            }
        }
    }

    /// One drain or restore call.
    #[allow(clippy::too_many_arguments)]
    async fn call(
        &mut self,
        stage: Stage,
        step: &'static str,
        call: &Call,
        timeout: Duration,
        release: &str,
        previous: Option<&str>,
        cancel: &Cancel,
    ) -> Result<(), Error> {
        self.stage = stage;
        let (method, url) = match call {
            Call::Command(command) => {
                let run = Run {
                    stage,
                    step,
                    command,
                    timeout,
                    release,
                    previous,
                };
                return self.run_command(run, cancel).await;
            }
            Call::Http { method, url } => (method, self.activation.host.for_host(url)),
        };
        self.note(
            stage,
            step,
            LogLevel::Info,
            format!("{step}: {method} {url}"),
        );
        let answer = tokio::select! {
            answer = runtime::http_call(method, &url, timeout) => answer,
            () = cancel.cancelled() => {
                self.note(stage, step, LogLevel::Warn, format!("{step} cancelled"));
                return Err(Error::Cancelled { during: format!("during the {step}") });
            }
        };
        match answer {
            Ok(status) => {
                let message = format!("{step}: {method} {url} answered {status}");
                self.note(stage, step, LogLevel::Info, message);
                Ok(())
            }
            Err(reason) => {
                let what = format!("{step} ({method} {url})");
                self.note(
                    stage,
                    step,
                    LogLevel::Error,
                    format!("{what} failed: {reason}"),
                );
                Err(Error::Runtime { what, reason })
            }
        }
    }

    /// A command of these steps, run like a hook in `releases/<release>`.
    async fn run_command(&mut self, run: Run<'_>, cancel: &Cancel) -> Result<(), Error> {
        let what = format!("{} command", run.step);
        let cmd = hooks::Command {
            timeout: run.timeout,
            ..self.command(what, run.command, run.release, run.previous)
        };
        let out = Output {
            log: self.log.clone(),
            stage: run.stage,
            percent: self.percent,
            step: run.step.to_owned(),
            budget: self.output.clone(),
        };
        match hooks::run(&cmd, &out, Some(&self.tracker()), cancel).await {
            Ok(_) => Ok(()),
            Err(HookError::Cancelled { what, .. }) => Err(Error::Cancelled {
                during: format!("during {what}"),
            }),
            Err(err) => Err(err.into()),
        }
    }
}
