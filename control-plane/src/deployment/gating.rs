//! What a deploy request must pass before it is recorded: a scheduled time
//! in the future (within a year), and its environment's deploy windows and
//! freezes at the moment it would start, unless an admin forces it.

use std::time::{Duration, SystemTime};

use slipway_proto::{
    control::v1::{DeployGates, DeploymentKind},
    identity::Role,
    validate::InvalidField,
};

use crate::{auth::Caller, error::Error, windows};

/// How far ahead a deploy may be scheduled.
const MAX_AHEAD: Duration = Duration::from_secs(366 * 86_400);

/// The time a deploy asks to start at, checked: in the future, within a
/// year; None for now.
pub(super) fn run_at(
    at: Option<&pbjson_types::Timestamp>,
) -> Result<Option<SystemTime>, InvalidField> {
    let Some(at) = at else { return Ok(None) };
    let now = SystemTime::now();
    let secs = u64::try_from(at.seconds).unwrap_or(0);
    let when = SystemTime::UNIX_EPOCH + Duration::new(secs, at.nanos.clamp(0, 999_999_999) as u32);
    if when <= now {
        return Err(InvalidField::new(
            "run_at",
            "is in the past; give a time to come (e.g. 2026-12-01T02:00Z)",
        ));
    }
    if when > now + MAX_AHEAD {
        return Err(InvalidField::new("run_at", "is more than a year ahead"));
    }
    Ok(Some(when))
}

/// Whether a deploy may start when it asks to under `gates`: Ok(None) when
/// it may, Ok(Some(why)) when an admin forced it past a window or freeze.
/// Rollbacks are recovery: windows and freezes do not hold them.
pub(super) fn windows(
    caller: &Caller,
    (kind, run_at, force): (DeploymentKind, Option<SystemTime>, bool),
    gates: &DeployGates,
) -> Result<Option<String>, Error> {
    if kind != DeploymentKind::Deploy {
        return Ok(None);
    }
    let at = run_at.unwrap_or_else(SystemTime::now);
    let Some(why) = windows::refusal(gates, at) else {
        return Ok(None);
    };
    if !force {
        return Err(Error::Precondition(why));
    }
    if caller.role < Role::Admin {
        return Err(Error::Denied(format!(
            "only an admin may --force a deploy: {why}"
        )));
    }
    Ok(Some(why))
}
