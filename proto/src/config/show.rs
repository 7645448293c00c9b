//! How a configuration is shown to a person: `--check-config` prints every
//! key with its effective value and where it came from; the README's
//! Configuration table has one row per key.

use std::fmt::Write as _;

use super::{Key, Layered, Source};

/// Every key, one per line: `key = value  # source`, in TOML syntax so the
/// lines can be pasted into a file. Keys no layer set show their default
/// (commented out when there is none).
pub fn effective(layered: &Layered) -> String {
    let mut out = String::new();
    if let Some(file) = layered.file() {
        let _ = writeln!(out, "# configuration file: {}", file.display());
    }
    for key in layered.keys() {
        let (value, source) = match layered.get(key.name) {
            Some((value, source)) => (value.to_string(), source.clone()),
            None if key.default.is_empty() => ("(not set)".to_owned(), Source::Default),
            None => (key.default.to_owned(), Source::Default),
        };
        let live = if key.live { ", live" } else { "" };
        let _ = writeln!(out, "{} = {value}  # {source}{live}", key.name);
    }
    out
}

/// The README row of `key` for daemon `daemon`: TOML key, flag,
/// environment variable, default, whether SIGHUP applies it, help.
pub fn readme_row(daemon: &str, key: &Key) -> String {
    let default = if key.default.is_empty() {
        "-".to_owned()
    } else {
        format!("`{}`", key.default)
    };
    let live = if key.live { "yes" } else { "restart" };
    format!(
        "| {daemon} | `{}` | `--{}` | `{}` | {default} | {live} | {} |",
        key.name, key.flag, key.env, key.help
    )
}
