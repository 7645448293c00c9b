//! The whole check of an app's activation spec: the rules of
//! [`crate::validate::activation`], those of [`crate::runtime`] and the
//! secrets file's ([`crate::secrets::file`]).

use crate::{
    agent::v1::ActivationSpec,
    runtime, secrets,
    validate::{self, InvalidField},
};

/// Checks every field of an activation spec; `field` prefixes violations
/// (`app.activation`).
pub fn validate(field: &str, spec: &ActivationSpec) -> Result<(), InvalidField> {
    validate::activation(field, spec)?;
    runtime::validate(field, spec)?;
    match &spec.secrets_file {
        Some(file) => secrets::file(&format!("{field}.secrets_file"), file),
        None => Ok(()),
    }
}
