//! Phase one of a drift repair on one host: the stored contents that a hand
//! edit reached are discarded (the agent re-hashes the objects behind the
//! files that drifted), what the host then lacks is sent, and the release is
//! built afresh and swapped in for the drifted copy (RepairRelease). Phase
//! two is the usual switch.

use slipway_proto::{
    agent::v1::{CheckDriftRequest, RepairReleaseRequest},
    control::v1::LogLevel,
};

use super::{
    host::{Failure, HostRun, Seen},
    transfer::file_entry,
};
use crate::{agents::AgentClient, domain::event::host_log};

impl HostRun {
    /// Discards the corrupted contents, ships what is missing, rebuilds.
    pub(super) async fn prepare_repair(
        &self,
        client: &AgentClient,
        seen: &mut Seen,
    ) -> Result<(), Failure> {
        let plan = self.plan();
        let request = CheckDriftRequest {
            app: Some(self.target()),
            release_id: plan.release.id.clone(),
            max_findings: 1,
            discard_corrupt_objects: true,
            fencing_token: plan.fencing_token,
            fencing_epoch: String::new(),
        };
        let checked = self.call("CheckDrift", client.check_drift(request)).await?;
        if checked.objects_discarded > 0 {
            let message = format!(
                "discarded {} stored contents that no longer matched their hash; sending them again",
                checked.objects_discarded
            );
            self.emit(host_log(
                &self.host.name,
                "transfer",
                LogLevel::Warn,
                message,
            ))
            .await;
        }
        let files: Vec<_> = plan.manifest.files.iter().collect();
        self.transfer(client, &files).await?;
        let files = files.into_iter().map(file_entry).collect();
        let request = RepairReleaseRequest {
            release: Some(self.prepare_request(files, String::new(), Vec::new())),
        };
        let stream = self
            .call("RepairRelease", client.repair_release(request))
            .await?;
        self.follow(client, stream, super::host::Phase::Prepare, seen)
            .await
    }
}
