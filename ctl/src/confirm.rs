//! Asking before a step that is hard to undo (rollback, cancel, a forced
//! lock release, deploying a release marked bad): on a terminal the
//! operator answers y or n; `--yes` answers for scripts; without a terminal
//! and without `--yes` the command is refused before anything is sent.

use std::io::{self, BufRead, IsTerminal, Read, Write};

/// Longest answer read from the terminal; the rest of a longer line is
/// not kept.
const MAX_ANSWER: u64 = 64;

/// Why a step was not confirmed.
#[derive(Debug, thiserror::Error)]
pub enum NotConfirmed {
    /// No terminal to ask on and no `--yes`.
    #[error("{action}: refused without a terminal to confirm on; pass --yes to confirm")]
    NoTerminal {
        /// What would have been done.
        action: String,
    },
    /// The operator answered no.
    #[error("{action}: not confirmed; nothing was done")]
    Declined {
        /// What would have been done.
        action: String,
    },
}

/// Asks `question` (about doing `action`) unless `yes`; `Ok` when the step
/// may go ahead. `warning` lines are printed first, also with `--yes`.
pub async fn confirm(action: &str, warning: &[String], yes: bool) -> Result<(), NotConfirmed> {
    for line in warning {
        eprintln!("warning: {line}");
    }
    if yes {
        return Ok(());
    }
    if !io::stdin().is_terminal() {
        return Err(NotConfirmed::NoTerminal {
            action: action.to_owned(),
        });
    }
    let prompt = format!("{action}? [y/N] ");
    let answer = tokio::task::spawn_blocking(move || ask(&prompt))
        .await
        .unwrap_or_default();
    if is_yes(&answer) {
        Ok(())
    } else {
        Err(NotConfirmed::Declined {
            action: action.to_owned(),
        })
    }
}

/// Prints `prompt` on stderr and reads one bounded line from stdin; empty on
/// end of input or an error (a no).
fn ask(prompt: &str) -> String {
    let mut err = io::stderr().lock();
    let _ = err.write_all(prompt.as_bytes());
    let _ = err.flush();
    let mut line = String::new();
    let _ = io::stdin().lock().take(MAX_ANSWER).read_line(&mut line);
    line
}

/// `y` or `yes`, in any case; everything else is a no.
fn is_yes(answer: &str) -> bool {
    matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_y_and_yes_confirm() {
        for yes in ["y\n", "Y", " yes \n", "YES"] {
            assert!(is_yes(yes), "{yes:?}");
        }
        for no in ["", "\n", "n", "no", "yep", "y es", "ja"] {
            assert!(!is_yes(no), "{no:?}");
        }
    }

    #[tokio::test]
    async fn yes_skips_the_question() {
        confirm("roll back web in prod", &[], true).await.unwrap();
    }
}
