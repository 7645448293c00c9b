//! UploadAgentBinary and UpgradeAgent requests, checked and carried out
//! through the agent's upgrade state.

use std::time::Duration;

use slipway_proto::{
    agent::v1::{UpgradeAgentRequest, UploadAgentBinaryRequest, UploadAgentBinaryResponse},
    validate::InvalidField,
};
use tonic::Streaming;

use crate::{
    binaries::check_sha256,
    error::Error,
    stamp,
    upgrade::{UpgradePlan, Upgrades},
};

/// Receives a binary into the store; answers at once when it is there.
pub async fn upload_binary(
    upgrades: &Upgrades,
    mut stream: Streaming<UploadAgentBinaryRequest>,
) -> Result<UploadAgentBinaryResponse, Error> {
    let first = stream
        .message()
        .await
        .map_err(Error::Client)?
        .ok_or_else(|| InvalidField::new("sha256", "is required: the stream was empty"))?;
    check_sha256("sha256", &first.sha256)?;
    let binaries = upgrades.binaries().clone();
    if binaries.has(&first.sha256) {
        return Ok(UploadAgentBinaryResponse {
            already_present: true,
            bytes: 0,
        });
    }
    let (sha256, size) = (first.sha256.clone(), first.size);
    let mut incoming =
        tokio::task::spawn_blocking(move || binaries.receive(&sha256, size)).await??;
    let mut next = Some(first);
    while let Some(message) = next {
        let data = message.data;
        incoming = tokio::task::spawn_blocking(move || {
            incoming.push(&data)?;
            Ok::<_, Error>(incoming)
        })
        .await??;
        next = stream.message().await.map_err(Error::Client)?;
    }
    let bytes = tokio::task::spawn_blocking(move || incoming.finish()).await??;
    tracing::info!(bytes, "agent binary stored");
    Ok(UploadAgentBinaryResponse {
        already_present: false,
        bytes,
    })
}

/// An UpgradeAgent checked.
pub fn upgrade_plan(request: UpgradeAgentRequest) -> Result<UpgradePlan, InvalidField> {
    check_sha256("sha256", &request.sha256)?;
    if !stamp::valid(&request.expected_version) {
        return Err(InvalidField::new(
            "expected_version",
            "must be 1-64 characters of letters, digits and .-+_~",
        ));
    }
    if !(1..=600).contains(&request.deadline_seconds) {
        return Err(InvalidField::new("deadline_seconds", "must be 1-600"));
    }
    if !(1..=3600).contains(&request.idle_timeout_seconds) {
        return Err(InvalidField::new("idle_timeout_seconds", "must be 1-3600"));
    }
    Ok(UpgradePlan {
        sha256: request.sha256,
        expected_version: request.expected_version,
        deadline: Duration::from_secs(request.deadline_seconds.into()),
        idle_timeout: Duration::from_secs(request.idle_timeout_seconds.into()),
    })
}
