//! Rules for names, ids and paths that arrive over the wire. The control plane
//! checks them before it records anything and the agent checks them again
//! before it touches the filesystem.

use std::path::{Component, Path};

use crate::limits::{self, shown};

/// A field that failed validation, named so the caller can fix it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {field}: {reason}")]
pub struct InvalidField {
    /// The request field, e.g. `app.name`.
    pub field: String,
    /// What is wrong with it.
    pub reason: String,
}

impl InvalidField {
    /// A new violation for `field`.
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

impl From<InvalidField> for tonic::Status {
    fn from(err: InvalidField) -> Self {
        tonic::Status::invalid_argument(err.to_string())
    }
}

/// A free text of at most `max` bytes (a message, a reason).
pub fn bounded(field: &str, value: &str, max: usize) -> Result<(), InvalidField> {
    if value.len() <= max {
        Ok(())
    } else {
        Err(InvalidField::new(
            field,
            format!("{} bytes, longer than the {max} allowed", value.len()),
        ))
    }
}

/// A repeated field with at most `max` items.
pub fn count(field: &str, items: usize, max: usize) -> Result<(), InvalidField> {
    if items <= max {
        Ok(())
    } else {
        Err(InvalidField::new(
            field,
            format!("{items} items, more than the {max} allowed"),
        ))
    }
}

/// Name of an app or environment: `[a-z][a-z0-9-]{0,62}`.
pub fn name(field: &str, value: &str) -> Result<(), InvalidField> {
    let ok = (1..=63).contains(&value.len())
        && value.starts_with(|c: char| c.is_ascii_lowercase())
        && value
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if ok {
        Ok(())
    } else {
        Err(InvalidField::new(
            field,
            format!(
                "{} must be 1-63 lowercase letters, digits or '-', starting with a letter",
                shown(value)
            ),
        ))
    }
}

/// Host name: a DNS name (labels of `[a-z0-9-]`, separated by dots), because
/// the agent's certificate must carry it as a DNS SAN.
pub fn host_name(field: &str, value: &str) -> Result<(), InvalidField> {
    let label_ok = |label: &str| {
        (1..=63).contains(&label.len())
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    };
    if value.len() <= 253 && value.split('.').all(label_ok) {
        Ok(())
    } else {
        Err(InvalidField::new(
            field,
            format!(
                "{} must be a lowercase DNS name such as web-1 or web-1.example.com",
                shown(value)
            ),
        ))
    }
}

/// Release id: `[A-Za-z0-9._-]`, 1-128 characters, not starting with '.'.
pub fn release_id(field: &str, value: &str) -> Result<(), InvalidField> {
    let ok = (1..=128).contains(&value.len())
        && !value.starts_with('.')
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(InvalidField::new(
            field,
            format!(
                "{} must be 1-128 letters, digits, '.', '_' or '-', not starting with '.'",
                shown(value)
            ),
        ))
    }
}

/// Lowercase hex SHA-256.
pub fn sha256(field: &str, value: &str) -> Result<(), InvalidField> {
    if value.len() == 64 && value.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f')) {
        Ok(())
    } else {
        Err(InvalidField::new(
            field,
            format!("{} is not a lowercase hex SHA-256", shown(value)),
        ))
    }
}

/// A path inside a release: relative, '/'-separated, made only of normal
/// components (no `..`, no `.`, no empty parts), no NUL, at most 4096 bytes.
pub fn relative_path(field: &str, value: &str) -> Result<(), InvalidField> {
    let fail = |reason: &str| {
        Err(InvalidField::new(
            field,
            format!("{} {reason}", shown(value)),
        ))
    };
    if value.is_empty() || value.len() > 4096 {
        return fail("must be 1-4096 bytes");
    }
    if value.contains('\0') || value.contains('\\') {
        return fail("must not contain NUL or backslash");
    }
    if value.starts_with('/') {
        return fail("must be relative, not absolute");
    }
    for part in value.split('/') {
        match part {
            "" => return fail("must not contain empty components"),
            "." | ".." => return fail("must not contain '.' or '..' components"),
            _ => {}
        }
    }
    Ok(())
}

/// Whether a symlink at `link` (relative to the release root) with `target`
/// resolves inside the release, by lexical resolution.
pub fn symlink_stays_inside(link: &str, target: &str) -> bool {
    if target.is_empty() || Path::new(target).is_absolute() {
        return false;
    }
    // Depth of the directory holding the link, then walk the target.
    let mut depth: i64 = link.split('/').count() as i64 - 1;
    for component in Path::new(target).components() {
        match component {
            Component::Normal(_) => depth += 1,
            Component::CurDir => {}
            Component::ParentDir => {
                depth -= 1;
                if depth < 0 {
                    return false;
                }
            }
            Component::RootDir | Component::Prefix(_) => return false,
        }
    }
    true
}

/// A symlink target as agents accept it for the link at `link`: UTF-8 (the
/// caller has checked), no NUL, at most [`limits::SYMLINK_TARGET`] bytes,
/// relative, `../` components only at the start, then names, and staying
/// inside the release. Lexical resolution is only sound for that shape: in
/// `a/s/../..`, `..` applies to wherever symlink `s` points.
pub fn symlink_target(field: &str, link: &str, target: &str) -> Result<(), InvalidField> {
    let fail = |reason: &str| {
        Err(InvalidField::new(
            field,
            format!("symlink {} -> {} {reason}", shown(link), shown(target)),
        ))
    };
    if target.len() > limits::SYMLINK_TARGET {
        return fail(&format!(
            "has a target longer than {} bytes",
            limits::SYMLINK_TARGET
        ));
    }
    if target.contains('\0') {
        return fail("has a target containing NUL");
    }
    let mut seen_name = false;
    let shape_ok = Path::new(target).components().all(|c| match c {
        Component::ParentDir => !seen_name,
        Component::Normal(_) => {
            seen_name = true;
            true
        }
        Component::CurDir => true,
        Component::RootDir | Component::Prefix(_) => false,
    });
    if !shape_ok || !symlink_stays_inside(link, target) {
        return fail(
            "would leave the release (targets must be relative, '../' only at the start, \
             and stay inside the release)",
        );
    }
    Ok(())
}

/// An absolute path without `..` or `.` components.
pub fn absolute_path(field: &str, value: &str) -> Result<(), InvalidField> {
    bounded(field, value, limits::PATH)?;
    // Split the text itself: `Path::components` silently drops inner `.`.
    let clean = value.starts_with('/')
        && !value.contains('\0')
        && value
            .split('/')
            .skip(1)
            .all(|part| !matches!(part, "." | ".."));
    if clean {
        Ok(())
    } else {
        Err(InvalidField::new(
            field,
            format!(
                "{} must be an absolute path without '.' or '..' components",
                shown(value)
            ),
        ))
    }
}

/// An app's activation spec: shared paths are release paths, hooks have a
/// point and a command, a health check is an http:// URL or a command.
/// `field` is the prefix for violations, e.g. `app.activation`. The runtime
/// action and drain are [`crate::runtime`]'s; [`crate::activation::validate`]
/// checks both.
pub fn activation(
    field: &str,
    spec: &crate::agent::v1::ActivationSpec,
) -> Result<(), InvalidField> {
    use crate::agent::v1::{HookPoint, MaterialiseMode, SharedKind};
    count(
        &format!("{field}.shared_paths"),
        spec.shared_paths.len(),
        limits::SHARED_PATHS,
    )?;
    count(&format!("{field}.hooks"), spec.hooks.len(), limits::HOOKS)?;
    for (i, shared) in spec.shared_paths.iter().enumerate() {
        let at = format!("{field}.shared_paths[{i}]");
        relative_path(&format!("{at}.path"), &shared.path)?;
        if SharedKind::try_from(shared.kind).is_err() {
            return Err(InvalidField::new(format!("{at}.kind"), "unknown kind"));
        }
        if shared.path == ".slipway" || shared.path.starts_with(".slipway/") {
            return Err(InvalidField::new(format!("{at}.path"), "is reserved"));
        }
    }
    for (i, hook) in spec.hooks.iter().enumerate() {
        let at = format!("{field}.hooks[{i}]");
        bounded(&format!("{at}.name"), &hook.name, limits::NAME)?;
        bounded(&format!("{at}.command"), &hook.command, limits::COMMAND)?;
        match HookPoint::try_from(hook.point) {
            Ok(HookPoint::BeforeActivate | HookPoint::AfterActivate) => {}
            _ => {
                return Err(InvalidField::new(
                    format!("{at}.point"),
                    "must be before-activate or after-activate",
                ));
            }
        }
        if hook.command.trim().is_empty() {
            return Err(InvalidField::new(
                format!("{at}.command"),
                "must not be empty",
            ));
        }
    }
    if let Some(check) = &spec.health_check {
        let at = format!("{field}.health_check");
        bounded(&format!("{at}.http_url"), &check.http_url, limits::URL)?;
        bounded(&format!("{at}.command"), &check.command, limits::COMMAND)?;
        match (check.http_url.is_empty(), check.command.trim().is_empty()) {
            (true, true) => return Err(InvalidField::new(at, "needs http_url or command")),
            (false, false) => {
                return Err(InvalidField::new(at, "takes http_url or command, not both"));
            }
            _ => {}
        }
        let web = ["http://", "https://"];
        if !check.http_url.is_empty() && !web.iter().any(|s| check.http_url.starts_with(s)) {
            return Err(InvalidField::new(
                format!("{at}.http_url"),
                format!(
                    "{} must start with http:// or https://",
                    shown(&check.http_url)
                ),
            ));
        }
        if check.probe_interval_seconds > MAX_PROBE_INTERVAL_SECONDS {
            return Err(InvalidField::new(
                format!("{at}.probe_interval_seconds"),
                format!("is above {MAX_PROBE_INTERVAL_SECONDS} (0 means 30)"),
            ));
        }
    }
    if MaterialiseMode::try_from(spec.mode).is_err() {
        return Err(InvalidField::new(format!("{field}.mode"), "unknown mode"));
    }
    if let Some(output) = &spec.output_limits {
        if output.max_lines > limits::HOOK_OUTPUT_LINES {
            return Err(InvalidField::new(
                format!("{field}.output_limits.max_lines"),
                format!("is above {}", limits::HOOK_OUTPUT_LINES),
            ));
        }
        if output.max_bytes > limits::HOOK_OUTPUT_BYTES {
            return Err(InvalidField::new(
                format!("{field}.output_limits.max_bytes"),
                format!("is above {} bytes", limits::HOOK_OUTPUT_BYTES),
            ));
        }
    }
    env_vars(&format!("{field}.variables"), &spec.variables)
}

/// The longest pause between two continuous probes of an app's health.
pub const MAX_PROBE_INTERVAL_SECONDS: u32 = 3600;

/// Most variables an app may give its hooks.
pub const MAX_ENV_VARS: usize = 64;
/// Longest variable name.
pub const MAX_ENV_NAME: usize = 128;
/// Longest variable value.
pub const MAX_ENV_VALUE: usize = 4096;

/// Whether `name` is a shell variable name within [`MAX_ENV_NAME`].
pub fn is_shell_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_ENV_NAME
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// An app's hook variables: shell names, not `SLIPWAY_*`, bounded.
pub fn env_vars(field: &str, vars: &[crate::agent::v1::EnvVar]) -> Result<(), InvalidField> {
    if vars.len() > MAX_ENV_VARS {
        return Err(InvalidField::new(
            field,
            format!(
                "has {} variables; at most {MAX_ENV_VARS} are allowed",
                vars.len()
            ),
        ));
    }
    for (i, var) in vars.iter().enumerate() {
        let at = format!("{field}[{i}]");
        if !is_shell_name(&var.name) {
            return Err(InvalidField::new(
                format!("{at}.name"),
                format!(
                    "must be a shell variable name (letters, digits, _; at most {MAX_ENV_NAME} bytes)"
                ),
            ));
        }
        if var.name.starts_with("SLIPWAY_") {
            return Err(InvalidField::new(
                format!("{at}.name"),
                format!("{}: SLIPWAY_* variables are set by the agent", var.name),
            ));
        }
        if var.value.len() > MAX_ENV_VALUE || var.value.contains('\0') {
            return Err(InvalidField::new(
                format!("{at}.value"),
                format!("must be at most {MAX_ENV_VALUE} bytes, without NUL"),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_apps_hook_output_limits_have_a_ceiling() {
        use crate::agent::v1::{ActivationSpec, HookOutputLimits};
        let spec = |max_lines, max_bytes| ActivationSpec {
            output_limits: Some(HookOutputLimits {
                max_lines,
                max_bytes,
            }),
            ..Default::default()
        };
        assert!(activation("app.activation", &spec(1_000_000, 256 << 20)).is_ok());
        let err = activation("app.activation", &spec(1_000_001, 0)).unwrap_err();
        assert_eq!(err.field, "app.activation.output_limits.max_lines");
        let err = activation("app.activation", &spec(0, (256 << 20) + 1)).unwrap_err();
        assert_eq!(err.field, "app.activation.output_limits.max_bytes");
    }

    #[test]
    fn hook_variables() {
        use crate::agent::v1::EnvVar;
        let var = |name: &str, value: &str| EnvVar {
            name: name.into(),
            value: value.into(),
        };
        assert!(env_vars("v", &[var("RAILS_ENV", "production"), var("_X1", "")]).is_ok());
        for bad in ["", "1X", "A-B", "SLIPWAY_APP", &"A".repeat(129)] {
            let err = env_vars("v", &[var(bad, "x")]).unwrap_err();
            assert_eq!(err.field, "v[0].name", "{bad}");
        }
        let err = env_vars("v", &[var("A", "nul\0")]).unwrap_err();
        assert_eq!(err.field, "v[0].value");
        let many: Vec<EnvVar> = (0..65).map(|i| var(&format!("V{i}"), "")).collect();
        assert!(env_vars("v", &many).is_err());
    }

    #[test]
    fn names() {
        assert!(name("n", "web").is_ok());
        assert!(name("n", "web-2").is_ok());
        for bad in ["", "Web", "2web", "web_app", "a/b", &"a".repeat(64)] {
            assert!(name("n", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn host_names() {
        assert!(host_name("h", "web-1").is_ok());
        assert!(host_name("h", "web-1.prod.example.com").is_ok());
        for bad in ["", "-web", "web..1", "WEB", "web_1", "a/b"] {
            assert!(host_name("h", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn relative_paths() {
        for ok in ["a", "a/b.txt", "dir/.hidden", "a..b"] {
            assert!(relative_path("p", ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "a/../../x",
            "a//b",
            "./a",
            "a/.",
            "a\0b",
        ] {
            assert!(relative_path("p", bad).is_err(), "{bad}");
        }
        let err = relative_path("files[3].path", "../x").unwrap_err();
        assert!(err.to_string().contains("files[3].path"));
    }

    #[test]
    fn symlinks() {
        assert!(symlink_stays_inside("a/link", "../b"));
        assert!(symlink_stays_inside("link", "b/c"));
        assert!(!symlink_stays_inside("link", "../b"));
        assert!(!symlink_stays_inside("a/link", "../../b"));
        assert!(!symlink_stays_inside("a/link", "/etc/passwd"));
        assert!(!symlink_stays_inside("a/link", "b/../../.."));
    }

    #[test]
    fn absolute_paths() {
        assert!(absolute_path("r", "/srv/web").is_ok());
        for bad in ["srv/web", "/srv/../etc", "/srv/./web", ""] {
            assert!(absolute_path("r", bad).is_err(), "{bad}");
        }
    }
}

#[cfg(test)]
#[path = "validate_props.rs"]
mod props;
