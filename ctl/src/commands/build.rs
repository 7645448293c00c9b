//! An app's build flags (`app create --build-*`, `app set-build`) and how a
//! build is shown.

use std::collections::HashMap;

use clap::Args;
use slipway_proto::control::v1::{Build, BuildSpec, BuildStatus};

/// The build flags of `app create`.
#[derive(Debug, Args)]
pub struct BuildArgs {
    /// Build each commit on the control plane with this shell command (run
    /// with `sh -c` in a checkout, as the unprivileged build user); the
    /// release is then the files of --build-output
    #[arg(long, value_name = "COMMAND", requires = "build_output")]
    pub build_command: Option<String>,
    /// Directory of the checkout whose files become the release (relative)
    #[arg(long, value_name = "DIR", requires = "build_command")]
    pub build_output: Option<String>,
    /// An environment variable of the build, NAME=VALUE (repeatable)
    #[arg(long, value_name = "NAME=VALUE", value_parser = parse_env)]
    pub build_env: Vec<(String, String)>,
    /// Kill the build and everything it started after this long, e.g. 90s,
    /// 10m, 1h (default 10m)
    #[arg(long, value_name = "DURATION", value_parser = parse_timeout)]
    pub build_timeout: Option<u32>,
}

impl BuildArgs {
    /// The spec the flags declare, if any.
    pub fn spec(&self) -> Option<BuildSpec> {
        let (command, output) = (self.build_command.clone()?, self.build_output.clone()?);
        Some(BuildSpec {
            command,
            output,
            env: self.build_env.iter().cloned().collect::<HashMap<_, _>>(),
            timeout_seconds: self.build_timeout.unwrap_or_default(),
        })
    }
}

/// Flags of `app set-build`: the same build flags as `app create`.
#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("what").required(true).args(["build_command", "no_build"]))]
pub struct SetBuildArgs {
    /// App name
    pub name: String,
    /// The build.
    #[command(flatten)]
    pub build: BuildArgs,
    /// Stop building: releases are the commit's files again
    #[arg(long, conflicts_with_all = ["build_command", "build_output", "build_env", "build_timeout"])]
    pub no_build: bool,
}

impl SetBuildArgs {
    /// The spec the flags declare; None with --no-build.
    pub fn spec(&self) -> Option<BuildSpec> {
        self.build.spec()
    }
}

fn parse_env(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((name, value)) if !name.is_empty() => Ok((name.to_owned(), value.to_owned())),
        _ => Err(format!("{text:?} is not NAME=VALUE")),
    }
}

/// "90", "90s", "10m", "1h" as seconds.
fn parse_timeout(text: &str) -> Result<u32, String> {
    let (digits, unit) = match text.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => text.split_at(i),
        None => (text, "s"),
    };
    let n: u32 = digits
        .parse()
        .map_err(|_| format!("{text:?} is not a duration such as 90s, 10m or 1h"))?;
    let scale = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        _ => return Err(format!("{text:?}: the unit is s, m or h")),
    };
    match n.checked_mul(scale) {
        Some(0) | None => Err(format!("{text:?}: between 1 s and a day")),
        Some(s) => Ok(s),
    }
}

/// The build rows of `app show`.
pub fn describe(spec: Option<&BuildSpec>) -> Vec<(&'static str, String)> {
    let Some(spec) = spec else {
        return Vec::new();
    };
    let mut env: Vec<String> = spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
    env.sort();
    let timeout = match spec.timeout_seconds {
        0 => 600,
        s => s,
    };
    let mut rows = vec![
        ("build", spec.command.clone()),
        ("build output", spec.output.clone()),
        ("build timeout", format!("{timeout}s")),
    ];
    if !env.is_empty() {
        rows.push(("build env", env.join(" ")));
    }
    rows
}

/// A build's outcome and log tail, as `release create --build` prints it.
pub fn outcome(build: &Build, built: bool) -> String {
    let how = if built { "built" } else { "build cached" };
    let status = if build.status() == BuildStatus::Succeeded {
        "succeeded"
    } else {
        "failed"
    };
    let mut text = format!(
        "{how}: {} {status}, {} files in {} ms\n",
        build.id, build.file_count, build.duration_ms
    );
    if !build.log_tail.is_empty() {
        text.push_str("log tail:\n");
        for line in build.log_tail.lines() {
            text.push_str("  ");
            text.push_str(line);
            text.push('\n');
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_take_a_unit_and_variables_an_equals_sign() {
        assert_eq!(parse_timeout("90"), Ok(90));
        assert_eq!(parse_timeout("10m"), Ok(600));
        assert_eq!(parse_timeout("1h"), Ok(3600));
        assert!(parse_timeout("0s").is_err() && parse_timeout("5d").is_err());
        assert_eq!(parse_env("A=b=c"), Ok(("A".into(), "b=c".into())));
        assert!(parse_env("novalue").is_err());
    }
}
