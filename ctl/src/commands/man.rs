//! `slipctl man --out DIR`: roff man pages of slipctl and of each of its
//! subcommands (`slipctl.1`, `slipctl-deploy.1`, ...).

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;

use crate::output;

/// Flags of `man`.
#[derive(Debug, Args)]
pub struct ManArgs {
    /// Directory to write the pages into (created when missing), e.g.
    /// /usr/local/share/man/man1
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
}

/// Writes the pages of `command` (`Cli::command()`) into `dir` and returns
/// their file names, sorted.
pub fn write_pages(dir: &Path, command: clap::Command) -> anyhow::Result<Vec<String>> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    clap_mangen::generate_to(command, dir)
        .with_context(|| format!("cannot write man pages into {}", dir.display()))?;
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if name.starts_with("slipctl") && name.ends_with(".1") {
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
}

/// Writes the pages and says how many, and where.
pub fn run(args: &ManArgs, command: clap::Command) -> anyhow::Result<()> {
    let names = write_pages(&args.out, command)?;
    output::emit(&format!(
        "wrote {} man pages to {} (slipctl.1 and one per subcommand)",
        names.len(),
        args.out.display()
    ))?;
    Ok(())
}
