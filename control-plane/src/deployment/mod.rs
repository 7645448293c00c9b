//! Deployments: starting one under the (app, environment) lock (a drift
//! repair included), the record and its event fold, the supervisor that
//! owns the lease for a deployment's whole life (automatic rollback
//! included), cancel, reading deployments back, and reconciliation after a
//! restart.

pub mod admit;
mod again;
mod approval;
mod auto_rollback;
mod cancel;
mod create;
mod gating;
mod lease;
mod prepare;
mod queries;
mod queue;
pub mod recheck;
mod reconcile;
mod record;
mod relay;
mod repair;
mod resolve;
mod resume;
mod run;
mod schedule;
mod start;
mod story;
mod supervisor;

pub use approval::{MAX_EXPIRY_SECONDS, MAX_REQUIRED, approve, reject};
pub use cancel::cancel;
pub use lease::Lease;
pub use queries::{get, last_succeeded, previous_good};
pub use queue::{is_waiting, list as queued};
pub use reconcile::{Reconciled, reconcile};
pub use record::Recorder;
pub use repair::{Repair, repair};
pub use resolve::{Resolved, Start, Target, resolve_preview, resolve_start};
pub use start::start;

#[cfg(test)]
mod tests;
