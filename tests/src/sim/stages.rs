//! The progress a real agent streams: the in-memory host reports one
//! "working" event and its result; on the wire each operation goes through
//! the stages a real agent's does (for an app without hooks or health
//! check), numbered from 1 within the run, then the final event.

use futures_util::StreamExt;
use slipway_control_plane::agents::ProgressStream;
use slipway_proto::agent::v1::{LogLevel, ProgressEvent, Stage};

/// One event before the result: stage, percent, message.
pub(super) type Step = (Stage, u32, &'static str);

/// PrepareRelease and RepairRelease.
pub(super) const PREPARE: &[Step] = &[
    (
        Stage::Prepare,
        0,
        "checking the manifest and the object store",
    ),
    (Stage::Materialise, 40, "materialising the release"),
    (Stage::LinkShared, 80, "linking shared paths"),
];

/// ActivateRelease, Rollback and ApplySecrets.
pub(super) const ACTIVATE: &[Step] = &[
    (Stage::Activate, 50, "switching current"),
    (Stage::Prune, 90, "pruning old releases"),
];

/// `stream` with its working event replaced by `steps`, every event
/// numbered in order.
pub(super) fn staged(stream: ProgressStream, steps: &'static [Step]) -> ProgressStream {
    let mut sequence = 0;
    let mut number = move |mut event: ProgressEvent| {
        sequence += 1;
        event.sequence = sequence;
        event.time = Some(slipway_proto::now());
        let failed = event.result.as_ref().is_some_and(|r| !r.success);
        if event.level == 0 {
            event.level = if failed {
                LogLevel::Error
            } else {
                LogLevel::Info
            } as i32;
        }
        event
    };
    Box::pin(stream.flat_map(move |item| {
        let events: Vec<_> = match item {
            Ok(event) if event.result.is_none() => steps
                .iter()
                .map(|&(stage, percent, message)| {
                    Ok(number(ProgressEvent {
                        run_id: event.run_id.clone(),
                        stage: stage as i32,
                        percent,
                        message: message.to_owned(),
                        ..Default::default()
                    }))
                })
                .collect(),
            Ok(event) => vec![Ok(number(event))],
            Err(status) => vec![Err(status)],
        };
        futures_util::stream::iter(events)
    }))
}
