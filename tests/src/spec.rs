//! Short constructors for an app's activation spec (shared paths, hooks,
//! health check, materialise mode), so tests read as what they configure.

use slipway_proto::agent::v1::{
    ActivationSpec, HealthCheck, Hook, HookPoint, MaterialiseMode, SharedKind, SharedPath,
};

/// A shared directory (created under `shared/` when missing).
pub fn shared_dir(path: &str) -> SharedPath {
    SharedPath {
        path: path.into(),
        kind: SharedKind::Directory as i32,
        required: false,
    }
}

/// A shared file; a required one that is missing fails the deploy before
/// any switch.
pub fn shared_file(path: &str, required: bool) -> SharedPath {
    SharedPath {
        path: path.into(),
        kind: SharedKind::File as i32,
        required,
    }
}

/// A before-activate hook named `name` (default timeout).
pub fn before_activate(name: &str, command: &str) -> Hook {
    Hook {
        point: HookPoint::BeforeActivate as i32,
        name: name.into(),
        command: command.into(),
        timeout_seconds: 0,
    }
}

/// An after-activate hook named `name` (default timeout).
pub fn after_activate(name: &str, command: &str) -> Hook {
    Hook {
        point: HookPoint::AfterActivate as i32,
        name: name.into(),
        command: command.into(),
        timeout_seconds: 0,
    }
}

/// A command health check: `attempts` tries `interval_ms` apart, at most
/// `timeout_seconds` in all.
pub fn health_command(command: &str, attempts: u32, interval_ms: u32) -> HealthCheck {
    HealthCheck {
        http_url: String::new(),
        command: command.into(),
        attempts,
        interval_ms,
        timeout_seconds: 30,
        probe_interval_seconds: 0,
    }
}

/// A spec with only hooks.
pub fn hooks(hooks: Vec<Hook>) -> ActivationSpec {
    ActivationSpec {
        hooks,
        ..Default::default()
    }
}

/// A spec that materialises private writable copies.
pub fn copy_mode() -> ActivationSpec {
    ActivationSpec {
        mode: MaterialiseMode::Copy as i32,
        ..Default::default()
    }
}

/// A shell loop that waits for `file` to exist, polling every 50 ms, and
/// gives up after `seconds`: hooks that hold an operation never outlive a
/// failed test by much.
pub fn wait_for_file(file: &std::path::Path, seconds: u32) -> String {
    let polls = seconds * 20;
    format!(
        "i=0; while [ ! -f '{}' ] && [ $i -lt {polls} ]; do sleep 0.05; i=$((i+1)); done; [ -f '{}' ]",
        file.display(),
        file.display()
    )
}

/// A hook command that, on the agent whose apps directory is `apps_dir`
/// only, prints `line` and then holds until `gate` exists: a test stops a
/// rollout on one host at a known moment.
pub fn hold_on(apps_dir: &std::path::Path, line: &str, gate: &std::path::Path) -> String {
    format!(
        "case \"$SLIPWAY_RELEASE_DIR\" in '{}'/*) echo {line}; {};; esac",
        apps_dir.display(),
        wait_for_file(gate, 120)
    )
}
