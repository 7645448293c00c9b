//! Flags for an app's runtime action and drain (`app create` and `app
//! update`): what makes the service take up a release after the switch, and
//! what takes the host out of its load balancer before it.

use clap::Args;
use slipway_proto::agent::v1::{
    ActivationSpec, Drain, DrainCall, HttpCall, RuntimeAction, SignalAction, SystemdAction,
    SystemdVerb, drain_call, runtime_action,
};

/// Runtime action and drain flags; on `app update`, flags not given keep the
/// app's current settings.
#[derive(Debug, Default, Args)]
#[command(next_help_heading = "Runtime action and drain")]
pub struct RuntimeArgs {
    /// After the switch: `systemctl restart UNIT`
    #[arg(long, value_name = "UNIT", group = "runtime")]
    pub restart_systemd: Option<String>,
    /// After the switch: `systemctl reload UNIT`
    #[arg(long, value_name = "UNIT", group = "runtime")]
    pub reload_systemd: Option<String>,
    /// After the switch: send this signal (HUP, USR2, TERM...) to the pid in
    /// --pid-file
    #[arg(long, value_name = "SIGNAL", group = "runtime", requires = "pid_file")]
    pub reload_signal: Option<String>,
    /// Absolute path of the pid file --reload-signal reads
    #[arg(long, value_name = "PATH", requires = "reload_signal")]
    pub pid_file: Option<String>,
    /// After the switch: a command run like a hook
    #[arg(long, value_name = "COMMAND", group = "runtime")]
    pub reload_command: Option<String>,
    /// Seconds the runtime action may take (default 60)
    #[arg(long, value_name = "SECONDS")]
    pub runtime_timeout: Option<u32>,
    /// Remove the runtime action
    #[arg(long, conflicts_with = "runtime")]
    pub no_runtime_action: bool,
    /// Before the switch: a command that takes the host out of its load
    /// balancer (the host's name is in $SLIPWAY_HOST)
    #[arg(long, value_name = "COMMAND", conflicts_with = "drain_url")]
    pub drain_command: Option<String>,
    /// Before the switch: an HTTP call (expecting 2xx) that takes the host
    /// out; {host} in it becomes each host's name
    #[arg(long, value_name = "URL")]
    pub drain_url: Option<String>,
    /// After the health check passed: a command that puts the host back
    #[arg(long, value_name = "COMMAND", conflicts_with = "restore_url")]
    pub restore_command: Option<String>,
    /// After the health check passed: an HTTP call that puts the host back;
    /// {host} in it becomes each host's name
    #[arg(long, value_name = "URL")]
    pub restore_url: Option<String>,
    /// Method of --drain-url and --restore-url (default POST)
    #[arg(long, value_name = "METHOD")]
    pub drain_method: Option<String>,
    /// Seconds each drain or restore call may take (default 30)
    #[arg(long, value_name = "SECONDS")]
    pub drain_timeout: Option<u32>,
    /// Remove the drain
    #[arg(long, conflicts_with_all = ["drain_command", "drain_url", "restore_command", "restore_url"])]
    pub no_drain: bool,
}

impl RuntimeArgs {
    /// Applies the flags to `spec`.
    pub fn apply(&self, spec: &mut ActivationSpec) {
        if self.no_runtime_action {
            spec.runtime_action = None;
        } else if let Some(action) = self.action() {
            let timeout_seconds = spec
                .runtime_action
                .as_ref()
                .map_or(0, |a| a.timeout_seconds);
            spec.runtime_action = Some(RuntimeAction {
                action: Some(action),
                timeout_seconds,
            });
        }
        if let (Some(action), Some(timeout)) = (spec.runtime_action.as_mut(), self.runtime_timeout)
        {
            action.timeout_seconds = timeout;
        }
        if self.no_drain {
            spec.drain = None;
        } else if let Some(drain) = self.drain(spec.drain.take()) {
            spec.drain = Some(drain);
        }
    }

    fn action(&self) -> Option<runtime_action::Action> {
        let systemd = |unit: &String, verb: SystemdVerb| {
            runtime_action::Action::Systemd(SystemdAction {
                unit: unit.clone(),
                verb: verb as i32,
            })
        };
        if let Some(unit) = &self.restart_systemd {
            return Some(systemd(unit, SystemdVerb::Restart));
        }
        if let Some(unit) = &self.reload_systemd {
            return Some(systemd(unit, SystemdVerb::Reload));
        }
        if let Some(signal) = &self.reload_signal {
            return Some(runtime_action::Action::Signal(SignalAction {
                pid_file: self.pid_file.clone().unwrap_or_default(),
                signal: signal.clone(),
            }));
        }
        self.reload_command
            .clone()
            .map(runtime_action::Action::Command)
    }

    /// The drain the flags make from the app's present one (`None` when
    /// there is neither).
    fn drain(&self, current: Option<Drain>) -> Option<Drain> {
        let method = self.drain_method.clone().unwrap_or_default();
        let call = |command: &Option<String>, url: &Option<String>| {
            let call = match (command, url) {
                (Some(command), _) => drain_call::Call::Command(command.clone()),
                (None, Some(url)) => drain_call::Call::Http(HttpCall {
                    url: url.clone(),
                    method: method.clone(),
                }),
                (None, None) => return None,
            };
            Some(DrainCall { call: Some(call) })
        };
        let drain = call(&self.drain_command, &self.drain_url);
        let restore = call(&self.restore_command, &self.restore_url);
        let touched = drain.is_some() || restore.is_some() || self.drain_timeout.is_some();
        if !touched && self.drain_method.is_none() {
            return current;
        }
        let mut next = current.unwrap_or_default();
        next.drain = drain.or(next.drain);
        next.restore = restore.or(next.restore);
        next.timeout_seconds = self.drain_timeout.unwrap_or(next.timeout_seconds);
        if let Some(method) = &self.drain_method {
            for call in [next.drain.as_mut(), next.restore.as_mut()]
                .into_iter()
                .flatten()
            {
                if let Some(drain_call::Call::Http(http)) = call.call.as_mut() {
                    http.method.clone_from(method);
                }
            }
        }
        Some(next)
    }
}

/// One line per setting, for `app show`.
pub fn describe(spec: &ActivationSpec) -> Vec<(&'static str, String)> {
    let mut lines = Vec::new();
    if let Some(action) = &spec.runtime_action {
        let what = match &action.action {
            Some(runtime_action::Action::Systemd(s)) => {
                let verb = if s.verb == SystemdVerb::Reload as i32 {
                    "reload"
                } else {
                    "restart"
                };
                format!("systemctl {verb} {}", s.unit)
            }
            Some(runtime_action::Action::Signal(s)) => {
                format!("SIG{} to the pid in {}", s.signal, s.pid_file)
            }
            Some(runtime_action::Action::Command(c)) => c.clone(),
            None => "none".to_owned(),
        };
        let timeout = match action.timeout_seconds {
            0 => 60,
            s => s,
        };
        lines.push(("runtime action", format!("{what} (timeout {timeout}s)")));
    }
    if let Some(drain) = &spec.drain {
        let show = |call: &Option<DrainCall>| match call.as_ref().and_then(|c| c.call.as_ref()) {
            Some(drain_call::Call::Command(c)) => c.clone(),
            Some(drain_call::Call::Http(h)) => {
                let method = if h.method.is_empty() {
                    "POST"
                } else {
                    &h.method
                };
                format!("{method} {}", h.url)
            }
            None => "none".to_owned(),
        };
        let timeout = match drain.timeout_seconds {
            0 => 30,
            s => s,
        };
        lines.push((
            "drain",
            format!("{} (timeout {timeout}s)", show(&drain.drain)),
        ));
        lines.push(("restore", show(&drain.restore)));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_make_an_action_and_a_drain_and_clear_them() {
        let args = RuntimeArgs {
            reload_signal: Some("USR2".into()),
            pid_file: Some("/run/web.pid".into()),
            drain_url: Some("http://lb:9000/out".into()),
            restore_command: Some("lb-in web-1".into()),
            drain_timeout: Some(10),
            ..Default::default()
        };
        let mut spec = ActivationSpec::default();
        args.apply(&mut spec);
        slipway_proto::activation::validate("spec", &spec).expect("valid");
        let lines = describe(&spec);
        assert_eq!(
            lines[0],
            (
                "runtime action",
                "SIGUSR2 to the pid in /run/web.pid (timeout 60s)".into()
            )
        );
        assert_eq!(
            lines[1],
            ("drain", "POST http://lb:9000/out (timeout 10s)".into())
        );
        assert_eq!(lines[2], ("restore", "lb-in web-1".into()));

        // An update of the timeout keeps the rest.
        let update = RuntimeArgs {
            runtime_timeout: Some(5),
            drain_method: Some("DELETE".into()),
            ..Default::default()
        };
        update.apply(&mut spec);
        assert_eq!(spec.runtime_action.as_ref().unwrap().timeout_seconds, 5);
        assert_eq!(
            describe(&spec)[1].1,
            "DELETE http://lb:9000/out (timeout 10s)"
        );

        let clear = RuntimeArgs {
            no_runtime_action: true,
            no_drain: true,
            ..Default::default()
        };
        clear.apply(&mut spec);
        assert_eq!(spec, ActivationSpec::default());
    }
}
