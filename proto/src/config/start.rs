//! What both daemons' `main` do with their keys before serving: parse the
//! command line, load and check the configuration (or print it for
//! `--check-config`), start logging with the live keys, and reload on
//! SIGHUP.

use std::process::ExitCode;

use clap::{ArgMatches, CommandFactory, FromArgMatches};

use super::{ConfigError, Key, Layered, args, reload, show};
use crate::daemon::{self, EXIT_CONFIG};

/// The daemon's own arguments (`A`) and the matches that hold its keys'
/// flags and variables; on `--help`, `--version`, a usage error or the
/// hidden `--print-man` (the package and the tarball ship the page), the
/// code to exit with.
pub fn parse<A: CommandFactory + FromArgMatches>(
    keys: &'static [Key],
) -> Result<(A, ArgMatches), ExitCode> {
    if daemon::man_requested() {
        return Err(daemon::print_man(command::<A>(keys)));
    }
    let usage = |err: clap::Error| {
        let _ = err.print();
        if err.use_stderr() {
            ExitCode::from(EXIT_CONFIG as u8)
        } else {
            ExitCode::SUCCESS
        }
    };
    let matches = command::<A>(keys).try_get_matches().map_err(usage)?;
    let args = A::from_arg_matches(&matches).map_err(usage)?;
    Ok((args, matches))
}

/// The daemon's whole command line: its own arguments and one flag per key.
pub fn command<A: CommandFactory>(keys: &'static [Key]) -> clap::Command {
    A::command().args(args::args(keys))
}

/// Loads the configuration with `load` (which resolves the layers and
/// checks them into the daemon's config `C`). With `check_config`, prints
/// it and returns the code to exit with; else starts logging (`json`: the
/// daemon's `log_json`), applies the live keys and reloads on SIGHUP.
pub fn start<C>(
    check_config: bool,
    mut load: impl FnMut() -> Result<(Layered, C), ConfigError> + Send + 'static,
    json: impl Fn(&C) -> bool,
) -> Result<C, ExitCode> {
    let (layered, config) = load().map_err(|err| {
        eprintln!("error: {}", daemon::chain(&err));
        ExitCode::from(EXIT_CONFIG as u8)
    })?;
    if check_config {
        print!("{}", show::effective(&layered));
        return Err(ExitCode::SUCCESS);
    }
    let live = reload::Live::of(&layered).map_err(|err| {
        eprintln!("error: {}", daemon::chain(&err));
        ExitCode::from(EXIT_CONFIG as u8)
    })?;
    let log = daemon::init_tracing(json(&config), live.log_level.as_deref());
    live.apply(&log);
    let reloads = reload::on_hangup(layered, move || load().map(|(layered, _)| layered), log);
    tokio::spawn(reloads);
    Ok(config)
}
