//! The whole check of an app's activation spec: the rules of
//! [`crate::validate::activation`] and those of [`crate::runtime`].

use crate::{
    agent::v1::ActivationSpec,
    runtime,
    validate::{self, InvalidField},
};

/// Checks every field of an activation spec; `field` prefixes violations
/// (`app.activation`).
pub fn validate(field: &str, spec: &ActivationSpec) -> Result<(), InvalidField> {
    validate::activation(field, spec)?;
    runtime::validate(field, spec)
}
