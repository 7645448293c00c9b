//! Text for rollout plans and locks.

use slipway_proto::control::v1::{Lock, PlanDeploymentResponse};

use super::{Table, bytes, fields, or_dash, time};
use crate::commands::policy::describe;

/// What a deploy would do.
pub fn plan(plan: &PlanDeploymentResponse) -> String {
    let release = plan.release.clone().unwrap_or_default();
    let policy = plan.policy.unwrap_or_default();
    let hosts: usize = plan.batches.iter().map(|b| b.hosts.len()).sum();
    let mut out = fields(&[
        (
            "release",
            if release.id.is_empty() {
                "new: the deploy cuts it".to_owned()
            } else {
                release.id.clone()
            },
        ),
        ("commit", release.commit.chars().take(12).collect()),
        ("policy", describe(&policy)),
        ("batches", plan.batches.len().to_string()),
        ("hosts", hosts.to_string()),
        (
            "locked by",
            plan.lock
                .as_ref()
                .map(|l| format!("{} ({})", l.deployment_id, l.holder))
                .unwrap_or_default(),
        ),
    ]);
    let mut table = Table::new(&[
        "BATCH",
        "HOST",
        "CURRENT",
        "FILES CHANGED",
        "OBJECTS MISSING",
        "BYTES TO SEND",
    ]);
    for batch in &plan.batches {
        let label = if batch.canary {
            format!("{} (canary)", batch.number)
        } else {
            batch.number.to_string()
        };
        for host in &batch.hosts {
            if host.reachable {
                table.row(vec![
                    label.clone(),
                    host.host.clone(),
                    or_dash(&host.current_release),
                    host.files_changed.to_string(),
                    host.objects_missing.to_string(),
                    bytes(host.bytes_missing),
                ]);
            } else {
                table.row(vec![
                    label.clone(),
                    host.host.clone(),
                    format!("unreachable: {}", host.error),
                    "-".into(),
                    "-".into(),
                    "-".into(),
                ]);
            }
        }
    }
    out.push('\n');
    out.push_str(&table.render());
    out.push_str("\nnothing was deployed; run the same command without --plan to deploy\n");
    out
}

/// Held locks as a table.
pub fn locks(locks: &[Lock]) -> String {
    if locks.is_empty() {
        return "no locks held\n".to_owned();
    }
    let mut table = Table::new(&[
        "APP",
        "ENV",
        "DEPLOYMENT",
        "HOLDER",
        "SINCE",
        "LEASE UNTIL",
        "TOKEN",
    ]);
    for lock in locks {
        table.row(vec![
            lock.app.clone(),
            lock.environment.clone(),
            lock.deployment_id.clone(),
            or_dash(&lock.holder),
            time(lock.acquired_at.as_ref()),
            lease(lock),
            lock.fencing_token.to_string(),
        ]);
    }
    table.render()
}

/// The lease's end, marked when it has run out.
fn lease(lock: &Lock) -> String {
    let until = time(lock.lease_expires_at.as_ref());
    let expired = lock
        .lease_expires_at
        .as_ref()
        .is_some_and(|t| t.seconds < slipway_proto::now().seconds);
    if expired {
        format!("{until} (expired: the holder is gone; `slipctl lock release --force`)")
    } else {
        until
    }
}
