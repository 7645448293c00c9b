//! The restart after a swap: the agent re-executes its executable in place
//! (execve keeps the pid, so a parent or a service manager that tracks the
//! main pid keeps tracking it) with the same arguments, except that the
//! listen address is the one it had bound, so an ephemeral port stays.

use std::{net::SocketAddr, os::unix::process::CommandExt, path::PathBuf, sync::Mutex};

/// What the process runs after its server stopped for an upgrade.
#[derive(Clone, Debug)]
pub struct Restart {
    /// The executable (now the new binary).
    pub exe: PathBuf,
    /// The arguments, the program name first.
    pub argv: Vec<String>,
    /// The listen address bound before.
    pub listen: Option<String>,
}

static REQUESTED: Mutex<Option<Restart>> = Mutex::new(None);

/// Records the restart the binary's `main` makes once serving has stopped.
pub fn request(restart: Restart) {
    *REQUESTED.lock().unwrap_or_else(|e| e.into_inner()) = Some(restart);
}

/// The restart an upgrade asked for, if any.
pub fn take_restart() -> Option<Restart> {
    REQUESTED.lock().unwrap_or_else(|e| e.into_inner()).take()
}

/// Whether a service manager (systemd) runs this process.
pub fn under_systemd() -> bool {
    std::env::var_os("INVOCATION_ID").is_some() || std::env::var_os("NOTIFY_SOCKET").is_some()
}

/// How the restart happens, for a person.
pub fn how() -> &'static str {
    if under_systemd() {
        "re-exec under systemd"
    } else {
        "re-exec"
    }
}

/// `argv` with the value of `--listen` replaced by `listen`.
pub fn argv_with_listen(argv: &[String], listen: Option<SocketAddr>) -> Vec<String> {
    let Some(listen) = listen.map(|a| a.to_string()) else {
        return argv.to_vec();
    };
    let mut out = Vec::with_capacity(argv.len());
    let mut args = argv.iter();
    while let Some(arg) = args.next() {
        if arg == "--listen" {
            out.push(arg.clone());
            if args.next().is_some() {
                out.push(listen.clone());
            }
        } else if arg.starts_with("--listen=") {
            out.push(format!("--listen={listen}"));
        } else {
            out.push(arg.clone());
        }
    }
    out
}

impl Restart {
    /// Replaces this process with the executable; returns only on failure.
    /// The listen address also goes in `SLIPWAY_AGENT_LISTEN`, for an agent
    /// whose address came from its environment or config file.
    pub fn exec(self) -> std::io::Error {
        tracing::info!(exe = %self.exe.display(), how = how(), "restarting the agent");
        let mut command = std::process::Command::new(&self.exe);
        command.args(self.argv.iter().skip(1));
        if let Some(listen) = &self.listen {
            command.env("SLIPWAY_AGENT_LISTEN", listen);
        }
        command.exec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bound_address_replaces_the_listen_flag() {
        let argv: Vec<String> = [
            "agent",
            "--listen",
            "127.0.0.1:0",
            "--x",
            "--listen=1.2.3.4:0",
        ]
        .map(str::to_owned)
        .to_vec();
        let addr = "127.0.0.1:4711".parse().ok();
        assert_eq!(
            argv_with_listen(&argv, addr),
            [
                "agent",
                "--listen",
                "127.0.0.1:4711",
                "--x",
                "--listen=127.0.0.1:4711"
            ]
        );
        assert_eq!(argv_with_listen(&argv, None), argv);
    }
}
