//! `slipctl completions SHELL`: the shell completion script, on stdout.

use std::io::Write;

use clap::{Args, ValueEnum};
use clap_complete::Shell as ClapShell;

use crate::output::StdoutError;

/// Flags of `completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete in
    #[arg(value_enum)]
    pub shell: Shell,
}

/// The shells slipctl completes in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Shell {
    /// bash: `source <(slipctl completions bash)`, or save it as
    /// /usr/share/bash-completion/completions/slipctl
    Bash,
    /// zsh: save it as `_slipctl` in a directory of `$fpath`
    Zsh,
    /// fish: save it as ~/.config/fish/completions/slipctl.fish
    Fish,
}

impl From<Shell> for ClapShell {
    fn from(shell: Shell) -> Self {
        match shell {
            Shell::Bash => ClapShell::Bash,
            Shell::Zsh => ClapShell::Zsh,
            Shell::Fish => ClapShell::Fish,
        }
    }
}

/// The completion script of `shell` for slipctl's whole command tree
/// (`command`: `Cli::command()`).
pub fn script(shell: Shell, mut command: clap::Command) -> Vec<u8> {
    let mut out = Vec::new();
    clap_complete::generate(ClapShell::from(shell), &mut command, "slipctl", &mut out);
    out
}

/// Writes the completion script to stdout.
pub fn run(args: &CompletionsArgs, command: clap::Command) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(&script(args.shell, command))
        .and_then(|()| stdout.flush())
        .map_err(StdoutError)?;
    Ok(())
}
