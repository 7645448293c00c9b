//! slipctl, the Slipway operator CLI: certificates (`pki`), the catalog
//! (`app`, `env`, `host`, `release`), deployments (`deploy`, `rollback`,
//! `watch`, `history`, `deployment`), the fleet's live state (`status`) and
//! its health over time (`health`).
//! A library so that tests and the demo drive the same code as the binary.
#![forbid(unsafe_code)]

pub mod cli;
pub mod commands;
pub mod confirm;
pub mod connection;
pub mod contexts;
mod dispatch;
pub mod exit;
pub mod output;
pub mod pki;

use std::process::ExitCode;

pub use cli::{Cli, Command};
pub use connection::Connection;
pub use exit::Exit;
pub use output::Output;

/// Runs the command and reports a failure on stderr: one line `error: ...`
/// with every cause, and a `hint: ...` line when there is something to do.
/// The exit code is an [`Exit`] (clap exits 2 on usage errors before this
/// runs).
pub async fn run(cli: Cli) -> ExitCode {
    output::set_color(cli.color);
    // Commands that never reach a control plane do not read the contexts:
    // `context` manages them (one that is gone must not stop it), and the
    // others work on files (a daemon's user may have no readable home).
    let resolved = match &cli.command {
        Command::Context(_) | Command::Completions(_) | Command::Man(_) => {
            Ok(cli.conn.with_context(None))
        }
        Command::Pki(pki) if !pki.connects() => Ok(cli.conn.with_context(None)),
        _ => cli.conn.resolve(),
    };
    let (conn, result) = match resolved {
        Ok(conn) => {
            let result = dispatch::run(&cli, &conn).await;
            (conn, result)
        }
        Err(err) => (cli.conn.with_context(None), Err(err.into())),
    };
    let exit = match result {
        Ok(exit) => exit,
        // `slipctl history | head`: the reader left; nothing to report. A
        // followed deployment's outcome is unknown then, so that is not a success.
        Err(err) if is_broken_pipe(&err) => match cli.command {
            Command::Deploy(_) | Command::Rollback(_) | Command::Watch(_) => Exit::DeploymentFailed,
            _ => Exit::Success,
        },
        Err(err) => {
            eprintln!("error: {}", error_line(&err));
            if let Some(hint) = connection::error_hint(&err, &conn) {
                eprintln!("hint: {hint}");
            }
            Exit::of_error(&err)
        }
    };
    exit.into()
}

/// The error and its causes on one line, like `{err:#}`, but without the
/// repeats that transport errors bring (`tcp connect error: transport error:
/// tcp connect error: ...`, or a message that already ends with its cause).
pub fn error_line(err: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in err.chain() {
        let text = cause.to_string();
        let line = parts.join(": ");
        let seen = line.ends_with(&text) || line.split(": ").any(|part| part == text);
        if !seen {
            parts.push(text);
        }
    }
    parts.join(": ")
}

/// The reader of stdout left; a broken pipe of a socket is not this.
fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<output::StdoutError>()
            .is_some_and(output::StdoutError::reader_left)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Layer(&'static str, Option<Box<Layer>>);

    impl std::fmt::Display for Layer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }

    impl std::error::Error for Layer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            self.1.as_deref().map(|l| l as _)
        }
    }

    #[test]
    fn error_lines_drop_repeated_causes() {
        let io = Layer("Connection refused", None);
        let inner = Layer("tcp connect error", Some(Box::new(io)));
        let outer = Layer("tcp connect error", Some(Box::new(inner)));
        let err = anyhow::Error::new(outer).context("cannot connect to cp:7443");
        assert_eq!(
            error_line(&err),
            "cannot connect to cp:7443: tcp connect error: Connection refused"
        );
        let io = Layer("Connection refused", None);
        let inner = Layer("tcp connect error", Some(Box::new(io)));
        let transport = Layer("transport error", Some(Box::new(inner)));
        let status = Layer("unavailable: tcp connect error", Some(Box::new(transport)));
        assert_eq!(
            error_line(&anyhow::Error::new(status)),
            "unavailable: tcp connect error: transport error: Connection refused"
        );
    }
}
