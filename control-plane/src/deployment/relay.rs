//! Recording what a task reports on a channel as a deployment's events
//! until the channel closes, renewing the deployment's lease meanwhile.

use tokio::sync::mpsc;

use super::{Lease, Recorder, record::Entry};
use crate::{locks, store::StoreError};

/// Records every report of `rx` (as `entry` makes it an event), at most
/// `most` in one commit, renewing `lease` on time, until `rx` closes.
pub(super) async fn relay<T>(
    rx: &mut mpsc::Receiver<T>,
    recorder: &mut Recorder,
    lease: &mut Lease,
    most: usize,
    entry: impl Fn(T) -> Entry,
) -> Result<(), StoreError> {
    let mut renew = tokio::time::interval(locks::RENEW_EVERY);
    renew.tick().await;
    loop {
        let report = tokio::select! {
            report = rx.recv() => report,
            _ = renew.tick() => {
                lease.renew().await?;
                continue;
            }
        };
        let Some(report) = report else {
            return Ok(());
        };
        // Group commit: whatever arrived while the last commit was being
        // flushed goes into this one.
        let mut entries = vec![entry(report)];
        while entries.len() < most {
            match rx.try_recv() {
                Ok(report) => entries.push(entry(report)),
                Err(_) => break,
            }
        }
        recorder.record_all(entries, Vec::new()).await?;
    }
}
