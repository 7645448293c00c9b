//! Flags for what an app asks of each host around a switch: shared paths,
//! hooks, health check and materialise mode (`app create` and `app update`).

use clap::Args;
use slipway_proto::agent::v1::{
    ActivationSpec, EnvVar, HealthCheck, Hook, HookPoint, MaterialiseMode, SecretsFormat,
    SharedKind, SharedPath,
};

/// Activation flags. On `app update`, a list flag given at all replaces that
/// list; flags not given keep the app's current settings.
#[derive(Debug, Default, Args)]
#[command(next_help_heading = "Activation")]
pub struct ActivationArgs {
    /// Directory kept across releases under <root>/shared/ and linked into
    /// every release, e.g. log (repeatable)
    #[arg(long = "shared-dir", value_name = "PATH")]
    pub shared_dirs: Vec<String>,
    /// File kept across releases under <root>/shared/; the deploy fails
    /// before any switch when it is missing, e.g. .env (repeatable)
    #[arg(long = "shared-file", value_name = "PATH")]
    pub shared_files: Vec<String>,
    /// Command run in the new release before `current` switches; a failure
    /// leaves `current` alone (repeatable)
    #[arg(long = "before-activate", value_name = "COMMAND")]
    pub before_activate: Vec<String>,
    /// Command run after the switch, e.g. restarting the service; a failure
    /// switches back (repeatable)
    #[arg(long = "after-activate", value_name = "COMMAND")]
    pub after_activate: Vec<String>,
    /// Seconds before a hook is killed with its process group (default 300)
    #[arg(long, value_name = "SECONDS")]
    pub hook_timeout: Option<u32>,
    /// Health check after the switch, then probed continuously: http:// or
    /// https:// URL that must answer 2xx (redirects followed)
    #[arg(long, value_name = "URL", conflicts_with = "health_command")]
    pub health_url: Option<String>,
    /// Health check after the switch, then probed continuously: command
    /// that must exit 0
    #[arg(long, value_name = "COMMAND")]
    pub health_command: Option<String>,
    /// Health check attempts (default 5)
    #[arg(long, value_name = "N")]
    pub health_attempts: Option<u32>,
    /// Pause between health check attempts in milliseconds (default 1000)
    #[arg(long, value_name = "MS")]
    pub health_interval_ms: Option<u32>,
    /// Deadline for all health check attempts in seconds (default 60)
    #[arg(long, value_name = "SECONDS")]
    pub health_timeout: Option<u32>,
    /// Seconds between continuous probes of the live release (default 30)
    #[arg(long, value_name = "SECONDS")]
    pub health_probe_interval: Option<u32>,
    /// Remove the health check
    #[arg(long, conflicts_with_all = ["health_url", "health_command"])]
    pub no_health_check: bool,
    /// Materialise releases as private writable copies instead of hard links
    /// (for software that edits its files in place)
    #[arg(long, conflicts_with = "hardlink")]
    pub copy: bool,
    /// Materialise releases as hard links into the object store (default)
    #[arg(long)]
    pub hardlink: bool,
    /// Variable in the environment of hooks and the health check command,
    /// which otherwise holds only PATH, HOME, LANG and SLIPWAY_* (repeatable)
    #[arg(long = "hook-env", value_name = "NAME=VALUE", value_parser = parse_var)]
    pub hook_env: Vec<(String, String)>,
    /// Lines of hook output a deployment records per host (default: the
    /// agent's, 10000); the rest is summarised with its last 100 lines
    #[arg(long, value_name = "N")]
    pub hook_output_max_lines: Option<u64>,
    /// Bytes of hook output a deployment records per host (default: the
    /// agent's, 4 MiB)
    #[arg(long, value_name = "BYTES")]
    pub hook_output_max_bytes: Option<u64>,
    /// Runtime action and drain.
    #[command(flatten)]
    pub runtime: super::runtime::RuntimeArgs,
    /// Where each release gets the environment's secrets, relative to the
    /// release (default .env)
    #[arg(long, value_name = "PATH")]
    pub secrets_file: Option<String>,
    /// Format of the secrets file (default dotenv)
    #[arg(long, value_name = "FORMAT")]
    pub secrets_format: Option<SecretsFormatArg>,
    /// User that owns the secrets file (name or uid; default the agent's)
    #[arg(long, value_name = "USER")]
    pub secrets_owner: Option<String>,
    /// Group of the secrets file (name or gid; default the owner's)
    #[arg(long, value_name = "GROUP")]
    pub secrets_group: Option<String>,
}

/// Format of the secrets file.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum SecretsFormatArg {
    /// `NAME="value"` lines
    Dotenv,
    /// One JSON object
    Json,
}

fn parse_var(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((name, value)) if !name.is_empty() => Ok((name.to_owned(), value.to_owned())),
        _ => Err(format!("{text:?} is not NAME=VALUE")),
    }
}

impl ActivationArgs {
    /// The spec these flags make from `current` (the app's present settings).
    pub fn apply(&self, current: Option<ActivationSpec>) -> Option<ActivationSpec> {
        let mut spec = current.unwrap_or_default();
        if !self.shared_dirs.is_empty() || !self.shared_files.is_empty() {
            let dirs = self.shared_dirs.iter().map(|p| SharedPath {
                path: trim(p),
                kind: SharedKind::Directory as i32,
                required: false,
            });
            let files = self.shared_files.iter().map(|p| SharedPath {
                path: trim(p),
                kind: SharedKind::File as i32,
                required: true,
            });
            spec.shared_paths = dirs.chain(files).collect();
        }
        if !self.before_activate.is_empty() || !self.after_activate.is_empty() {
            let timeout = self.hook_timeout.unwrap_or_default();
            let hooks = |commands: &[String], point: HookPoint, name: &str| -> Vec<Hook> {
                commands
                    .iter()
                    .enumerate()
                    .map(|(i, command)| Hook {
                        point: point as i32,
                        name: if i == 0 {
                            name.to_owned()
                        } else {
                            format!("{name}-{}", i + 1)
                        },
                        command: command.clone(),
                        timeout_seconds: timeout,
                    })
                    .collect()
            };
            let before = hooks(
                &self.before_activate,
                HookPoint::BeforeActivate,
                "before-activate",
            );
            let after = hooks(
                &self.after_activate,
                HookPoint::AfterActivate,
                "after-activate",
            );
            spec.hooks = before.into_iter().chain(after).collect();
        } else if let Some(timeout) = self.hook_timeout {
            spec.hooks
                .iter_mut()
                .for_each(|h| h.timeout_seconds = timeout);
        }
        if self.no_health_check {
            spec.health_check = None;
        } else if self.health_url.is_some() || self.health_command.is_some() {
            spec.health_check = Some(HealthCheck {
                http_url: self.health_url.clone().unwrap_or_default(),
                command: self.health_command.clone().unwrap_or_default(),
                ..spec.health_check.unwrap_or_default()
            });
        }
        if let Some(check) = spec.health_check.as_mut() {
            check.attempts = self.health_attempts.unwrap_or(check.attempts);
            check.interval_ms = self.health_interval_ms.unwrap_or(check.interval_ms);
            check.timeout_seconds = self.health_timeout.unwrap_or(check.timeout_seconds);
            check.probe_interval_seconds = self
                .health_probe_interval
                .unwrap_or(check.probe_interval_seconds);
        }
        if !self.hook_env.is_empty() {
            spec.variables = self
                .hook_env
                .iter()
                .map(|(name, value)| EnvVar {
                    name: name.clone(),
                    value: value.clone(),
                })
                .collect();
        }
        if self.hook_output_max_lines.is_some() || self.hook_output_max_bytes.is_some() {
            let limits = spec.output_limits.get_or_insert_with(Default::default);
            limits.max_lines = self.hook_output_max_lines.unwrap_or(limits.max_lines);
            limits.max_bytes = self.hook_output_max_bytes.unwrap_or(limits.max_bytes);
        }
        self.runtime.apply(&mut spec);
        self.apply_secrets_file(&mut spec);
        if self.copy {
            spec.mode = MaterialiseMode::Copy as i32;
        } else if self.hardlink {
            spec.mode = MaterialiseMode::Hardlink as i32;
        }
        (spec != ActivationSpec::default()).then_some(spec)
    }
}

impl ActivationArgs {
    fn apply_secrets_file(&self, spec: &mut ActivationSpec) {
        let given = self.secrets_file.is_some()
            || self.secrets_format.is_some()
            || self.secrets_owner.is_some()
            || self.secrets_group.is_some();
        if !given {
            return;
        }
        let file = spec.secrets_file.get_or_insert_with(Default::default);
        if let Some(path) = &self.secrets_file {
            file.path = path.clone();
        }
        if let Some(format) = self.secrets_format {
            file.format = match format {
                SecretsFormatArg::Dotenv => SecretsFormat::Dotenv,
                SecretsFormatArg::Json => SecretsFormat::Json,
            } as i32;
        }
        if let Some(owner) = &self.secrets_owner {
            file.owner = owner.clone();
        }
        if let Some(group) = &self.secrets_group {
            file.group = group.clone();
        }
    }
}

/// `log/` and `log` name the same shared path.
fn trim(path: &str) -> String {
    path.trim_end_matches('/').to_owned()
}

/// One line per setting, for `app show`.
pub fn describe(spec: Option<&ActivationSpec>) -> Vec<(&'static str, String)> {
    let Some(spec) = spec else { return Vec::new() };
    let mut lines = Vec::new();
    for shared in &spec.shared_paths {
        let kind = if shared.kind == SharedKind::File as i32 {
            "file"
        } else {
            "dir"
        };
        let required = if shared.required { ", required" } else { "" };
        lines.push(("shared", format!("{} ({kind}{required})", shared.path)));
    }
    for hook in &spec.hooks {
        let timeout = match hook.timeout_seconds {
            0 => String::new(),
            s => format!(" (timeout {s}s)"),
        };
        lines.push(("hook", format!("{}: {}{timeout}", hook.name, hook.command)));
    }
    if let Some(check) = &spec.health_check {
        let what = if check.http_url.is_empty() {
            &check.command
        } else {
            &check.http_url
        };
        let every = match check.probe_interval_seconds {
            0 => 30,
            s => s,
        };
        lines.push(("health check", format!("{what} (probed every {every}s)")));
    }
    for var in &spec.variables {
        lines.push(("hook env", format!("{}={}", var.name, var.value)));
    }
    if let Some(limits) = &spec.output_limits {
        let or_agent = |n: u64| match n {
            0 => "agent default".to_owned(),
            n => n.to_string(),
        };
        lines.push((
            "hook output",
            format!(
                "{} lines, {} bytes",
                or_agent(limits.max_lines),
                or_agent(limits.max_bytes)
            ),
        ));
    }
    lines.extend(super::runtime::describe(spec));
    if let Some(file) = &spec.secrets_file {
        let format = if file.format == SecretsFormat::Json as i32 {
            "json"
        } else {
            "dotenv"
        };
        let path = if file.path.is_empty() {
            ".env"
        } else {
            &file.path
        };
        let owner = match (file.owner.as_str(), file.group.as_str()) {
            ("", "") => String::new(),
            (owner, "") => format!(", owner {owner}"),
            (owner, group) => format!(", owner {owner}:{group}"),
        };
        lines.push(("secrets file", format!("{path} ({format}{owner})")));
    }
    let mode = if spec.mode == MaterialiseMode::Copy as i32 {
        "copy"
    } else {
        "hardlink"
    };
    lines.push(("materialise", mode.to_owned()));
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_build_a_spec_and_update_keeps_what_is_not_given() {
        let args = ActivationArgs {
            shared_dirs: vec!["log/".into()],
            shared_files: vec![".env".into()],
            before_activate: vec!["make assets".into()],
            after_activate: vec!["systemctl restart web".into()],
            hook_timeout: Some(30),
            health_url: Some("http://127.0.0.1:8080/health".into()),
            copy: true,
            ..Default::default()
        };
        let spec = args.apply(None).expect("spec");
        assert_eq!(spec.shared_paths.len(), 2);
        assert_eq!(spec.shared_paths[0].path, "log");
        assert!(spec.shared_paths[1].required);
        assert_eq!(spec.hooks[0].point, HookPoint::BeforeActivate as i32);
        assert_eq!(spec.hooks[1].timeout_seconds, 30);
        assert_eq!(spec.mode, MaterialiseMode::Copy as i32);
        slipway_proto::activation::validate("spec", &spec).expect("valid");

        let update = ActivationArgs {
            health_attempts: Some(9),
            health_probe_interval: Some(5),
            ..Default::default()
        };
        let updated = update.apply(Some(spec.clone())).expect("spec");
        assert_eq!(updated.hooks, spec.hooks);
        let lines = describe(Some(&updated));
        let check = updated.health_check.expect("check");
        assert_eq!((check.attempts, check.probe_interval_seconds), (9, 5));
        assert!(lines.contains(&(
            "health check",
            "http://127.0.0.1:8080/health (probed every 5s)".into()
        )));
        assert_eq!(ActivationArgs::default().apply(None), None);
    }

    #[test]
    fn hook_environment_and_output_limits() {
        let args = ActivationArgs {
            hook_env: vec![parse_var("RAILS_ENV=production").unwrap()],
            hook_output_max_lines: Some(500),
            ..Default::default()
        };
        let spec = args.apply(None).expect("spec");
        assert_eq!(spec.variables[0].name, "RAILS_ENV");
        assert_eq!(spec.variables[0].value, "production");
        let limits = spec.output_limits.expect("limits");
        assert_eq!((limits.max_lines, limits.max_bytes), (500, 0));
        slipway_proto::activation::validate("spec", &spec).expect("valid");
        assert!(parse_var("=x").is_err());
        let lines = describe(Some(&spec));
        assert!(lines.contains(&("hook output", "500 lines, agent default bytes".into())));
    }
}
