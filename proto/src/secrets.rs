//! What both sides agree on about secrets: the rules for a secret's name,
//! value and count, the secrets file of an activation spec, and `Debug`
//! forms of the messages that carry values, which print names only.

use crate::{
    agent::v1::{Secret, SecretsFile},
    control::v1::SetSecretRequest,
    validate::{self, InvalidField},
};

/// Longest secret value, in bytes.
pub const MAX_VALUE: usize = 64 * 1024;
/// Most secrets per (app, environment).
pub const MAX_PER_ENVIRONMENT: usize = 100;
/// The secrets file when the app names none.
pub const DEFAULT_FILE: &str = ".env";

/// A secret's name: a shell variable name, not `SLIPWAY_*`.
pub fn name(field: &str, name: &str) -> Result<(), InvalidField> {
    if !validate::is_shell_name(name) {
        return Err(InvalidField::new(
            field,
            format!(
                "must be an environment variable name (letters, digits, _; not starting with a digit; at most {} bytes)",
                validate::MAX_ENV_NAME
            ),
        ));
    }
    if name.starts_with("SLIPWAY_") {
        return Err(InvalidField::new(
            field,
            format!("{name}: SLIPWAY_* variables are set by the agent"),
        ));
    }
    Ok(())
}

/// A secret's value: bounded, without NUL. The error never quotes it.
pub fn value(field: &str, value: &str) -> Result<(), InvalidField> {
    if value.len() > MAX_VALUE || value.contains('\0') {
        return Err(InvalidField::new(
            field,
            format!(
                "must be at most {MAX_VALUE} bytes of UTF-8 without NUL (got {} bytes)",
                value.len()
            ),
        ));
    }
    Ok(())
}

/// The secrets of a request to an agent: at most [`MAX_PER_ENVIRONMENT`],
/// each valid, no name twice.
pub fn shipped(field: &str, secrets: &[Secret]) -> Result<(), InvalidField> {
    validate::count(field, secrets.len(), MAX_PER_ENVIRONMENT)?;
    let mut names = std::collections::HashSet::new();
    for (i, secret) in secrets.iter().enumerate() {
        name(&format!("{field}[{i}].name"), &secret.name)?;
        value(&format!("{field}[{i}].value"), &secret.value)?;
        if !names.insert(secret.name.as_str()) {
            return Err(InvalidField::new(
                format!("{field}[{i}].name"),
                format!("{} appears twice", secret.name),
            ));
        }
    }
    Ok(())
}

/// Longest owner or group name of a secrets file.
pub const MAX_OWNER: usize = 64;

/// An activation spec's secrets file: a clean relative path, bounded
/// owner and group names. Checked with the spec (see [`spec`]).
pub fn file(field: &str, file: &SecretsFile) -> Result<(), InvalidField> {
    if !file.path.is_empty() {
        validate::relative_path(&format!("{field}.path"), &file.path)?;
    }
    for (what, value) in [("owner", &file.owner), ("group", &file.group)] {
        let ok = value.len() <= MAX_OWNER
            && value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c));
        if !ok {
            return Err(InvalidField::new(
                format!("{field}.{what}"),
                format!(
                    "must be a user or group name or id (letters, digits, _-.; at most {MAX_OWNER} bytes)"
                ),
            ));
        }
    }
    Ok(())
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Secret")
            .field("name", &self.name)
            .field("value", &"<redacted>")
            .finish()
    }
}

impl std::fmt::Debug for SetSecretRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SetSecretRequest")
            .field("app", &self.app)
            .field("environment", &self.environment)
            .field("name", &self.name)
            .field("value", &"<redacted>")
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_env_var_names_outside_slipway() {
        for good in ["DB_URL", "_X", "a1"] {
            name("name", good).unwrap();
        }
        for bad in ["", "1X", "A-B", "SLIPWAY_APP", &"A".repeat(129)] {
            assert!(name("name", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn values_are_bounded_and_never_quoted_in_errors() {
        value("value", &"x".repeat(MAX_VALUE)).unwrap();
        let canary = format!("canary-{}", "y".repeat(MAX_VALUE));
        let err = value("value", &canary).unwrap_err();
        assert!(!err.to_string().contains("canary"), "{err}");
        assert!(value("value", "a\0b").is_err());
    }

    #[test]
    fn debug_never_shows_a_value() {
        let secret = Secret {
            name: "K".into(),
            value: "canary-value".into(),
        };
        assert!(!format!("{secret:?}").contains("canary"));
        let request = SetSecretRequest {
            value: "canary-value".into(),
            ..Default::default()
        };
        assert!(!format!("{request:?}").contains("canary"));
    }

    #[test]
    fn shipped_secrets_are_counted_and_unique() {
        let s = |n: &str| Secret {
            name: n.into(),
            value: "v".into(),
        };
        shipped("secrets", &[s("A"), s("B")]).unwrap();
        assert!(shipped("secrets", &[s("A"), s("A")]).is_err());
        let many: Vec<Secret> = (0..=MAX_PER_ENVIRONMENT)
            .map(|i| s(&format!("S{i}")))
            .collect();
        assert!(shipped("secrets", &many).is_err());
    }

    #[test]
    fn the_file_path_is_relative_and_owners_are_names() {
        let f = |path: &str, owner: &str| SecretsFile {
            path: path.into(),
            owner: owner.into(),
            ..Default::default()
        };
        file("f", &f("config/secrets.json", "www-data")).unwrap();
        assert!(file("f", &f("../x", "")).is_err());
        assert!(file("f", &f("/etc/x", "")).is_err());
        assert!(file("f", &f("", "a b")).is_err());
    }
}
