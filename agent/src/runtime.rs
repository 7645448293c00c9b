//! An app's runtime action and drain (agent contract 5), validated from the
//! wire with their defaults, and the two acts that are not commands: a
//! signal to the process named by a pid file, and an HTTP drain call.

use std::{
    io::Read,
    path::{Path, PathBuf},
    time::Duration,
};

use rustix::process::{Pid, Signal, kill_process, test_kill_process};
use slipway_proto::{
    agent::v1::{self, SystemdVerb, drain_call, runtime_action},
    runtime::signal_name,
};

/// A runtime action's timeout when the spec says 0.
pub const DEFAULT_ACTION_TIMEOUT: Duration = Duration::from_secs(60);
/// A drain or restore call's timeout when the spec says 0.
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
/// Bytes of a pid file read at most.
const PID_FILE_BYTES: u64 = 64;

/// What makes the service take up the release.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// `systemctl <verb> <unit>`.
    Systemd {
        /// The unit (validated: no shell metacharacters).
        unit: String,
        /// `restart` or `reload`.
        verb: &'static str,
    },
    /// kill(2) of the pid in `pid_file`.
    Signal {
        /// Absolute path.
        pid_file: PathBuf,
        /// Canonical name, e.g. `USR2`.
        signal: &'static str,
    },
    /// `sh -c`, like a hook.
    Command(String),
}

/// The app's runtime action.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuntimeAction {
    /// What to do.
    pub action: Action,
    /// How long it may take.
    pub timeout: Duration,
}

impl RuntimeAction {
    /// How events and errors name it, e.g. `systemctl reload web.service`.
    pub fn describe(&self) -> String {
        match &self.action {
            Action::Systemd { unit, verb } => format!("systemctl {verb} {unit}"),
            Action::Signal { pid_file, signal } => {
                format!("SIG{signal} to the pid in {}", pid_file.display())
            }
            Action::Command(command) => format!("command: {command}"),
        }
    }

    /// The shell command of a systemd or command action; None for a signal.
    pub fn shell(&self) -> Option<String> {
        match &self.action {
            // The unit holds no quote (validated), so single quotes suffice.
            Action::Systemd { unit, verb } => Some(format!("systemctl {verb} '{unit}'")),
            Action::Command(command) => Some(command.clone()),
            Action::Signal { .. } => None,
        }
    }
}

/// One call of a drain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Call {
    /// `sh -c`, like a hook.
    Command(String),
    /// An HTTP request expecting 2xx.
    Http {
        /// The URL.
        url: String,
        /// GET, POST, PUT or DELETE.
        method: String,
    },
}

/// Out of the load balancer before the switch, back in after the check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Drain {
    /// Takes the host out.
    pub drain: Call,
    /// Puts it back.
    pub restore: Call,
    /// How long each call may take.
    pub timeout: Duration,
}

/// The runtime action of a validated spec, if it has one.
pub fn action_from_wire(action: Option<v1::RuntimeAction>) -> Option<RuntimeAction> {
    let wire = action?;
    let action = match wire.action? {
        runtime_action::Action::Systemd(s) => Action::Systemd {
            verb: match SystemdVerb::try_from(s.verb) {
                Ok(SystemdVerb::Reload) => "reload",
                _ => "restart",
            },
            unit: s.unit,
        },
        runtime_action::Action::Signal(s) => Action::Signal {
            signal: signal_name("signal", &s.signal).unwrap_or("HUP"),
            pid_file: PathBuf::from(s.pid_file),
        },
        runtime_action::Action::Command(command) => Action::Command(command),
    };
    Some(RuntimeAction {
        action,
        timeout: seconds(wire.timeout_seconds, DEFAULT_ACTION_TIMEOUT),
    })
}

/// The drain of a validated spec, if it has one.
pub fn drain_from_wire(drain: Option<v1::Drain>) -> Option<Drain> {
    let wire = drain?;
    Some(Drain {
        drain: call(wire.drain?)?,
        restore: call(wire.restore?)?,
        timeout: seconds(wire.timeout_seconds, DEFAULT_DRAIN_TIMEOUT),
    })
}

fn call(call: v1::DrainCall) -> Option<Call> {
    Some(match call.call? {
        drain_call::Call::Command(command) => Call::Command(command),
        drain_call::Call::Http(http) => Call::Http {
            url: http.url,
            method: match http.method.as_str() {
                "" => "POST".to_owned(),
                method => method.to_owned(),
            },
        },
    })
}

fn seconds(value: u32, default: Duration) -> Duration {
    match value {
        0 => default,
        s => Duration::from_secs(s.into()),
    }
}

/// Sends `signal` to the process whose pid `pid_file` holds: at most 64
/// bytes are read, the pid must be above 1 and name a running process.
/// Returns the pid.
pub fn send_signal(pid_file: &Path, signal: &str) -> Result<i32, String> {
    let shown = pid_file.display();
    let mut text = String::new();
    std::fs::File::open(pid_file)
        .and_then(|f| f.take(PID_FILE_BYTES).read_to_string(&mut text))
        .map_err(|err| format!("cannot read pid file {shown}: {err}"))?;
    let raw: i32 = text
        .trim()
        .parse()
        .map_err(|_| format!("pid file {shown} does not hold a pid: {:?}", text.trim()))?;
    let pid = (raw > 1)
        .then(|| Pid::from_raw(raw))
        .flatten()
        .ok_or_else(|| format!("pid file {shown} holds {raw}; a pid above 1 is needed"))?;
    test_kill_process(pid).map_err(|err| {
        format!("the process {raw} named by {shown} cannot be signalled (not running?): {err}")
    })?;
    kill_process(pid, signal_of(signal))
        .map_err(|err| format!("sending SIG{signal} to {raw} failed: {err}"))?;
    Ok(raw)
}

fn signal_of(name: &str) -> Signal {
    match name {
        "INT" => Signal::INT,
        "QUIT" => Signal::QUIT,
        "USR1" => Signal::USR1,
        "USR2" => Signal::USR2,
        "TERM" => Signal::TERM,
        "WINCH" => Signal::WINCH,
        "TTIN" => Signal::TTIN,
        "TTOU" => Signal::TTOU,
        "CONT" => Signal::CONT,
        _ => Signal::HUP,
    }
}

/// One HTTP call of a drain within `timeout`; the status line when 2xx.
pub async fn http_call(method: &str, url: &str, timeout: Duration) -> Result<String, String> {
    let method = reqwest::Method::from_bytes(method.as_bytes())
        .map_err(|_| format!("{method:?} is not an HTTP method"))?;
    let client = crate::health::http::shared()?;
    crate::health::http::request(client, method, url, timeout).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_reach_a_running_process_and_bad_pid_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("app.pid");
        let mut child = std::process::Command::new("sh")
            .args(["-c", "trap 'exit 7' USR2; while :; do sleep 0.05; done"])
            .spawn()
            .unwrap();
        // The trap is set before the loop; a signal before it would kill sh
        // with status "signal", so wait for the first sleep to exist.
        std::fs::write(&pid_file, format!("{}\n", child.id())).unwrap();
        let status = loop {
            send_signal(&pid_file, "USR2").unwrap();
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            std::thread::yield_now();
        };
        assert!(
            status.code() == Some(7) || status.code().is_none(),
            "{status}"
        );
        // The process is gone now (reaped): refused, not "sent".
        let err = send_signal(&pid_file, "HUP").unwrap_err();
        assert!(err.contains("cannot be signalled"), "{err}");
        for (text, needle) in [
            ("1", "above 1"),
            ("web", "does not hold a pid"),
            ("-5", "above 1"),
        ] {
            std::fs::write(&pid_file, text).unwrap();
            let err = send_signal(&pid_file, "HUP").unwrap_err();
            assert!(err.contains(needle), "{text}: {err}");
        }
        std::fs::write(&pid_file, "9".repeat(100)).unwrap();
        let err = send_signal(&pid_file, "HUP").unwrap_err();
        assert!(err.contains("does not hold a pid"), "{err}");
        let err = send_signal(&dir.path().join("none.pid"), "HUP").unwrap_err();
        assert!(err.contains("cannot read pid file"), "{err}");
    }
}
