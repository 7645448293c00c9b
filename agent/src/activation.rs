//! An app's activation spec from the wire, validated and with its defaults
//! applied: shared paths, hooks, the health check, the materialise mode, the
//! runtime action and the drain.

use std::time::Duration;

use crate::{
    hook_env::HookHost,
    hook_output::OutputLimits,
    runtime::{self, Drain, RuntimeAction},
    secrets::{Secrets, SecretsFile},
};
use slipway_proto::{
    agent::v1::{self, HookPoint, MaterialiseMode, SharedKind},
    validate::InvalidField,
};

/// A hook's timeout when the spec says 0.
pub const DEFAULT_HOOK_TIMEOUT: Duration = Duration::from_secs(300);
/// Health check attempts when the spec says 0.
pub const DEFAULT_ATTEMPTS: u32 = 5;
/// Pause between health check attempts when the spec says 0.
pub const DEFAULT_INTERVAL: Duration = Duration::from_millis(1000);
/// Deadline of a health check when the spec says 0.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(60);
/// Pause between continuous probes of a live release when the spec says 0.
pub const DEFAULT_PROBE_INTERVAL: Duration = Duration::from_secs(30);

/// A path that persists across releases under `<root>/shared/`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SharedPath {
    /// Relative, clean path.
    pub path: String,
    /// A file (never created by the agent) rather than a directory.
    pub file: bool,
    /// For a file: a deploy fails before any switch when it is missing.
    pub required: bool,
}

/// When a hook runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Point {
    /// After materialising, before the switch.
    BeforeActivate,
    /// After the switch.
    AfterActivate,
}

impl Point {
    /// The name used in events and as a hook's default name.
    pub fn name(self) -> &'static str {
        match self {
            Point::BeforeActivate => "before-activate",
            Point::AfterActivate => "after-activate",
        }
    }
}

/// A command run in the release directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hook {
    /// When.
    pub point: Point,
    /// Name shown in events.
    pub name: String,
    /// Passed to `sh -c`.
    pub command: String,
    /// Killed with its process group after this long.
    pub timeout: Duration,
}

/// What a health check probes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Probe {
    /// GET of an http:// URL, expecting 2xx.
    Http(String),
    /// A shell command, expecting exit 0.
    Command(String),
}

/// The health check after a switch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HealthCheck {
    /// What to probe.
    pub probe: Probe,
    /// Attempts at most.
    pub attempts: u32,
    /// Pause between attempts.
    pub interval: Duration,
    /// Deadline for all attempts.
    pub deadline: Duration,
    /// Pause between continuous probes once the release is live.
    pub probe_interval: Duration,
}

/// Everything an app asks of the host around a switch.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Activation {
    /// Shared paths, in request order.
    pub shared: Vec<SharedPath>,
    /// Hooks, in request order.
    pub hooks: Vec<Hook>,
    /// Health check, if any.
    pub health: Option<HealthCheck>,
    /// Private writable copies instead of hard links.
    pub copy: bool,
    /// Hook output lines recorded per operation (0: the agent's default).
    pub output_max_lines: u64,
    /// Hook output bytes recorded per operation (0: the agent's default).
    pub output_max_bytes: u64,
    /// The app's variables for hooks and the check command, in order.
    pub variables: Vec<(String, String)>,
    /// What makes the service take up a release after a switch.
    pub runtime: Option<RuntimeAction>,
    /// Out of the load balancer before the switch, back after the check.
    pub drain: Option<Drain>,
    /// What every hook of this agent runs with; set by the agent, not the
    /// wire.
    pub host: HookHost,
    /// Where the environment's secrets go in a release.
    pub secrets_file: SecretsFile,
    /// The environment's secrets, from the request (not the spec): written
    /// to `secrets_file` and added to hooks' and the check's environment.
    pub secrets: Secrets,
}

impl Activation {
    /// Validates a spec from the wire; `field` prefixes violations (`spec`).
    /// An absent spec is the empty one.
    pub fn from_wire(field: &str, spec: Option<v1::ActivationSpec>) -> Result<Self, InvalidField> {
        let Some(spec) = spec else {
            return Ok(Self::default());
        };
        slipway_proto::activation::validate(field, &spec)?;
        let shared: Vec<SharedPath> = spec
            .shared_paths
            .iter()
            .map(|s| SharedPath {
                path: s.path.clone(),
                file: s.kind() == SharedKind::File,
                required: s.required,
            })
            .collect();
        // One shared path inside another would be linked through the
        // other's symlink, into shared/ itself.
        for (i, a) in shared.iter().enumerate() {
            for b in &shared[..i] {
                let nested = |outer: &str, inner: &str| {
                    inner == outer
                        || inner
                            .strip_prefix(outer)
                            .is_some_and(|r| r.starts_with('/'))
                };
                if nested(&a.path, &b.path) || nested(&b.path, &a.path) {
                    return Err(InvalidField::new(
                        format!("{field}.shared_paths[{i}].path"),
                        format!(
                            "{:?} overlaps shared path {:?}; shared paths must not contain each other",
                            a.path, b.path
                        ),
                    ));
                }
            }
        }
        let hooks = spec
            .hooks
            .iter()
            .map(|h| {
                let point = match h.point() {
                    HookPoint::BeforeActivate => Point::BeforeActivate,
                    _ => Point::AfterActivate,
                };
                Hook {
                    point,
                    name: match h.name.trim() {
                        "" => point.name().to_owned(),
                        name => name.to_owned(),
                    },
                    command: h.command.clone(),
                    timeout: match h.timeout_seconds {
                        0 => DEFAULT_HOOK_TIMEOUT,
                        s => Duration::from_secs(s.into()),
                    },
                }
            })
            .collect();
        let copy = spec.mode() == MaterialiseMode::Copy;
        let health = spec.health_check.map(|c| HealthCheck {
            probe: if c.http_url.is_empty() {
                Probe::Command(c.command)
            } else {
                Probe::Http(c.http_url)
            },
            attempts: match c.attempts {
                0 => DEFAULT_ATTEMPTS,
                n => n,
            },
            interval: match c.interval_ms {
                0 => DEFAULT_INTERVAL,
                ms => Duration::from_millis(ms.into()),
            },
            deadline: match c.timeout_seconds {
                0 => DEFAULT_DEADLINE,
                s => Duration::from_secs(s.into()),
            },
            probe_interval: match c.probe_interval_seconds {
                0 => DEFAULT_PROBE_INTERVAL,
                s => Duration::from_secs(s.into()),
            },
        });
        let limits = spec.output_limits.unwrap_or_default();
        let runtime = runtime::action_from_wire(spec.runtime_action);
        let drain = runtime::drain_from_wire(spec.drain);
        let secrets_file = SecretsFile::from_wire(spec.secrets_file.as_ref());
        Ok(Self {
            runtime,
            drain,
            shared,
            hooks,
            health,
            copy,
            output_max_lines: limits.max_lines,
            output_max_bytes: limits.max_bytes,
            variables: spec
                .variables
                .into_iter()
                .map(|v| (v.name, v.value))
                .collect(),
            host: HookHost::default(),
            secrets_file,
            secrets: Secrets::default(),
        })
    }

    /// The spec of `spec` with the request's `secrets`.
    pub fn with_secrets(
        spec: Option<v1::ActivationSpec>,
        secrets: Vec<v1::Secret>,
    ) -> Result<Self, InvalidField> {
        let mut activation = Self::from_wire("spec", spec)?;
        activation.secrets = Secrets::from_wire("secrets", secrets)?;
        Ok(activation)
    }

    /// The app's variables, then the secrets (which replace a variable of
    /// the same name): what hooks and the check command see of the app.
    pub fn command_variables(&self) -> Vec<(String, String)> {
        let mut vars = self.variables.clone();
        for (name, value) in self.secrets.pairs() {
            vars.retain(|(n, _)| n != name);
            vars.push((name.clone(), value.clone()));
        }
        vars
    }

    /// The output limits of one operation.
    pub fn output_limits(&self) -> OutputLimits {
        self.host
            .limits(self.output_max_lines, self.output_max_bytes)
    }

    /// The hooks that run at `point`, in request order.
    pub fn hooks_at(&self, point: Point) -> impl Iterator<Item = &Hook> {
        self.hooks.iter().filter(move |h| h.point == point)
    }
}

#[cfg(test)]
mod tests {
    use v1::{
        ActivationSpec, HealthCheck as WireCheck, Hook as WireHook, SharedPath as WireShared,
    };

    use super::*;

    fn shared(path: &str) -> WireShared {
        WireShared {
            path: path.into(),
            kind: SharedKind::Directory as i32,
            required: false,
        }
    }

    #[test]
    fn defaults_are_applied() {
        let spec = ActivationSpec {
            shared_paths: vec![shared("log")],
            hooks: vec![WireHook {
                point: HookPoint::AfterActivate as i32,
                name: String::new(),
                command: "true".into(),
                timeout_seconds: 0,
            }],
            health_check: Some(WireCheck {
                http_url: "http://127.0.0.1:1/".into(),
                ..WireCheck::default()
            }),
            mode: MaterialiseMode::Copy as i32,
            ..ActivationSpec::default()
        };
        let a = Activation::from_wire("spec", Some(spec)).unwrap();
        assert!(a.copy);
        assert_eq!(a.hooks[0].name, "after-activate");
        assert_eq!(a.hooks[0].timeout, DEFAULT_HOOK_TIMEOUT);
        let health = a.health.unwrap();
        assert_eq!(
            (health.attempts, health.interval, health.deadline),
            (DEFAULT_ATTEMPTS, DEFAULT_INTERVAL, DEFAULT_DEADLINE)
        );
        assert_eq!(health.probe_interval, DEFAULT_PROBE_INTERVAL);
        assert_eq!(
            Activation::from_wire("spec", None).unwrap(),
            Activation::default()
        );
    }

    #[test]
    fn bad_specs_name_the_field() {
        let spec = ActivationSpec {
            shared_paths: vec![shared("../log")],
            ..ActivationSpec::default()
        };
        let err = Activation::from_wire("spec", Some(spec)).unwrap_err();
        assert_eq!(err.field, "spec.shared_paths[0].path");
        let spec = ActivationSpec {
            shared_paths: vec![shared("var/log"), shared("tmp"), shared("var")],
            ..ActivationSpec::default()
        };
        let err = Activation::from_wire("spec", Some(spec)).unwrap_err();
        assert_eq!(err.field, "spec.shared_paths[2].path");
        assert!(err.reason.contains("overlaps"), "{err}");
        let spec = ActivationSpec {
            shared_paths: vec![shared("var/log"), shared("var/logs")],
            ..ActivationSpec::default()
        };
        assert!(Activation::from_wire("spec", Some(spec)).is_ok());
    }
}
