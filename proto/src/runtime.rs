//! Runtime actions and drains of an app's activation spec: the rules both
//! the control plane (before it records an app) and the agent (before it
//! acts) check, the signal names, and whether a spec needs agent contract 5.

use crate::{
    agent::v1::{
        ActivationSpec, Drain, DrainCall, RuntimeAction, SystemdVerb, drain_call, runtime_action,
    },
    limits::{self, shown},
    validate::{InvalidField, absolute_path, bounded},
};

/// The agent contract that carries runtime actions and drains.
pub const CONTRACT: u32 = 5;

/// The signals a runtime action may send (names without `SIG`). KILL and
/// STOP are left out: neither lets a service take up a release.
pub const SIGNALS: &[&str] = &[
    "HUP", "INT", "QUIT", "USR1", "USR2", "TERM", "WINCH", "TTIN", "TTOU", "CONT",
];

/// The methods a drain or restore HTTP call may use.
pub const METHODS: &[&str] = &["GET", "POST", "PUT", "DELETE"];

/// Longest runtime action or drain call timeout, in seconds.
pub const MAX_TIMEOUT_SECONDS: u32 = 3600;

/// Longest systemd unit name (systemd's own bound).
const MAX_UNIT: usize = 256;

/// Whether the spec asks for something only contract 5 agents do.
pub fn needs_contract(spec: &ActivationSpec) -> bool {
    spec.drain.is_some()
        || spec
            .runtime_action
            .as_ref()
            .is_some_and(|a| a.action.is_some())
}

/// Checks the runtime action and the drain of a spec; `field` prefixes
/// violations (`app.activation`).
pub fn validate(field: &str, spec: &ActivationSpec) -> Result<(), InvalidField> {
    if let Some(action) = &spec.runtime_action {
        runtime(&format!("{field}.runtime_action"), action)?;
    }
    if let Some(drain) = &spec.drain {
        self::drain(&format!("{field}.drain"), drain)?;
    }
    Ok(())
}

fn runtime(field: &str, action: &RuntimeAction) -> Result<(), InvalidField> {
    timeout(&format!("{field}.timeout_seconds"), action.timeout_seconds)?;
    match &action.action {
        None => Err(InvalidField::new(
            field,
            "needs systemd, signal or command (omit runtime_action for none)",
        )),
        Some(runtime_action::Action::Systemd(systemd)) => {
            unit(&format!("{field}.systemd.unit"), &systemd.unit)?;
            match SystemdVerb::try_from(systemd.verb) {
                Ok(SystemdVerb::Restart | SystemdVerb::Reload) => Ok(()),
                _ => Err(InvalidField::new(
                    format!("{field}.systemd.verb"),
                    "must be restart or reload",
                )),
            }
        }
        Some(runtime_action::Action::Signal(signal)) => {
            let at = format!("{field}.signal");
            absolute_path(&format!("{at}.pid_file"), &signal.pid_file)?;
            signal_name(&format!("{at}.signal"), &signal.signal).map(|_| ())
        }
        Some(runtime_action::Action::Command(command)) => {
            self::command(&format!("{field}.command"), command)
        }
    }
}

fn drain(field: &str, drain: &Drain) -> Result<(), InvalidField> {
    timeout(&format!("{field}.timeout_seconds"), drain.timeout_seconds)?;
    let Some(call) = &drain.drain else {
        return Err(InvalidField::new(
            format!("{field}.drain"),
            "is required: a command or an HTTP call that takes the host out",
        ));
    };
    self::call(&format!("{field}.drain"), call)?;
    match &drain.restore {
        Some(restore) => self::call(&format!("{field}.restore"), restore),
        None => Err(InvalidField::new(
            format!("{field}.restore"),
            "is required: a command or an HTTP call that puts the host back",
        )),
    }
}

fn call(field: &str, call: &DrainCall) -> Result<(), InvalidField> {
    match &call.call {
        None => Err(InvalidField::new(field, "needs a command or an http call")),
        Some(drain_call::Call::Command(command)) => {
            self::command(&format!("{field}.command"), command)
        }
        Some(drain_call::Call::Http(http)) => {
            url(&format!("{field}.http.url"), &http.url)?;
            let method = if http.method.is_empty() {
                "POST"
            } else {
                &http.method
            };
            if METHODS.contains(&method) {
                Ok(())
            } else {
                Err(InvalidField::new(
                    format!("{field}.http.method"),
                    format!("{} is not one of {}", shown(method), METHODS.join(", ")),
                ))
            }
        }
    }
}

fn timeout(field: &str, seconds: u32) -> Result<(), InvalidField> {
    if seconds > MAX_TIMEOUT_SECONDS {
        return Err(InvalidField::new(
            field,
            format!("is above {MAX_TIMEOUT_SECONDS} seconds"),
        ));
    }
    Ok(())
}

fn command(field: &str, command: &str) -> Result<(), InvalidField> {
    bounded(field, command, limits::COMMAND)?;
    if command.trim().is_empty() || command.contains('\0') {
        return Err(InvalidField::new(
            field,
            "must be a non-empty command without NUL bytes",
        ));
    }
    Ok(())
}

/// A systemd unit name: `[A-Za-z0-9@._:\\-]`, at most 256 bytes, with a dot
/// (a unit type suffix such as `.service`).
pub fn unit(field: &str, unit: &str) -> Result<(), InvalidField> {
    bounded(field, unit, MAX_UNIT)?;
    let allowed = |c: char| c.is_ascii_alphanumeric() || "@._:-\\".contains(c);
    if unit.is_empty() || unit.starts_with('-') || !unit.chars().all(allowed) {
        return Err(InvalidField::new(
            field,
            format!(
                "{} is not a systemd unit name (letters, digits, @._:-\\)",
                shown(unit)
            ),
        ));
    }
    Ok(())
}

/// A signal name of [`SIGNALS`], with or without `SIG`, in any case; the
/// canonical name.
pub fn signal_name(field: &str, name: &str) -> Result<&'static str, InvalidField> {
    let upper = name.to_ascii_uppercase();
    let bare = upper.strip_prefix("SIG").unwrap_or(&upper);
    SIGNALS
        .iter()
        .find(|s| **s == bare)
        .copied()
        .ok_or_else(|| {
            InvalidField::new(
                field,
                format!(
                    "{} is not a signal a runtime action may send ({})",
                    shown(name),
                    SIGNALS.join(", ")
                ),
            )
        })
}

/// An http:// or https:// URL with a host and no whitespace.
pub fn url(field: &str, url: &str) -> Result<(), InvalidField> {
    bounded(field, url, limits::URL)?;
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"));
    let host = rest.map(|r| r.split(['/', '?', '#']).next().unwrap_or_default());
    let clean = !url.chars().any(|c| c.is_whitespace() || c.is_control());
    match host {
        Some(host) if !host.is_empty() && clean => Ok(()),
        _ => Err(InvalidField::new(
            field,
            format!(
                "{} is not an http:// or https:// URL with a host",
                shown(url)
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::v1::{HttpCall, SignalAction, SystemdAction};

    fn with_action(action: runtime_action::Action) -> ActivationSpec {
        ActivationSpec {
            runtime_action: Some(RuntimeAction {
                action: Some(action),
                timeout_seconds: 0,
            }),
            ..ActivationSpec::default()
        }
    }

    fn field_of(spec: &ActivationSpec) -> String {
        validate("app.activation", spec).unwrap_err().field
    }

    #[test]
    fn good_actions_pass_and_need_contract_5() {
        let specs = [
            with_action(runtime_action::Action::Systemd(SystemdAction {
                unit: "puma@web.service".into(),
                verb: SystemdVerb::Reload as i32,
            })),
            with_action(runtime_action::Action::Signal(SignalAction {
                pid_file: "/run/web/puma.pid".into(),
                signal: "sigusr2".into(),
            })),
            with_action(runtime_action::Action::Command("kill -HUP 1".into())),
        ];
        for spec in &specs {
            validate("a", spec).expect("valid");
            assert!(needs_contract(spec));
        }
        assert!(!needs_contract(&ActivationSpec::default()));
        assert_eq!(signal_name("s", "SIGHUP"), Ok("HUP"));
    }

    #[test]
    fn bad_actions_name_the_field() {
        let bad_signal = with_action(runtime_action::Action::Signal(SignalAction {
            pid_file: "/run/web.pid".into(),
            signal: "KILL".into(),
        }));
        assert_eq!(
            field_of(&bad_signal),
            "app.activation.runtime_action.signal.signal"
        );
        let relative = with_action(runtime_action::Action::Signal(SignalAction {
            pid_file: "run/web.pid".into(),
            signal: "HUP".into(),
        }));
        assert_eq!(
            field_of(&relative),
            "app.activation.runtime_action.signal.pid_file"
        );
        let unit = with_action(runtime_action::Action::Systemd(SystemdAction {
            unit: "web; rm -rf /".into(),
            verb: SystemdVerb::Restart as i32,
        }));
        assert_eq!(
            field_of(&unit),
            "app.activation.runtime_action.systemd.unit"
        );
        let big = with_action(runtime_action::Action::Command("x".repeat(5000)));
        assert_eq!(field_of(&big), "app.activation.runtime_action.command");
    }

    #[test]
    fn drains_need_both_calls_and_good_urls() {
        let http = |url: &str, method: &str| DrainCall {
            call: Some(drain_call::Call::Http(HttpCall {
                url: url.into(),
                method: method.into(),
            })),
        };
        let spec = |drain: DrainCall, restore: Option<DrainCall>| ActivationSpec {
            drain: Some(Drain {
                drain: Some(drain),
                restore,
                timeout_seconds: 10,
            }),
            ..ActivationSpec::default()
        };
        let good = spec(
            http("http://lb:8080/out", ""),
            Some(http("https://lb/in", "PUT")),
        );
        validate("a", &good).expect("valid");
        assert!(needs_contract(&good));
        let no_restore = spec(http("http://lb/out", ""), None);
        assert_eq!(field_of(&no_restore), "app.activation.drain.restore");
        let bad_url = spec(http("ftp://lb/out", ""), Some(http("http://lb/in", "")));
        assert_eq!(field_of(&bad_url), "app.activation.drain.drain.http.url");
        let no_host = spec(http("http:///out", ""), Some(http("http://lb/in", "")));
        assert_eq!(field_of(&no_host), "app.activation.drain.drain.http.url");
        let method = spec(
            http("http://lb/out", "PATCH"),
            Some(http("http://lb/in", "")),
        );
        assert_eq!(field_of(&method), "app.activation.drain.drain.http.method");
    }
}
