//! Reading a deployment's event stream: waiting for a step while it runs,
//! and picking out a host's messages of one stage.

use futures_util::StreamExt;
use slipway_proto::control::v1::{DeployResponse, DeploymentEvent};
use tonic::Streaming;

/// Reads `stream` until an event matches `wanted`, keeping every event read
/// in `seen`; panics (naming `what`) if the deployment ends first.
pub async fn wait_for_event(
    stream: &mut Streaming<DeployResponse>,
    seen: &mut Vec<DeploymentEvent>,
    what: &str,
    wanted: impl Fn(&DeploymentEvent) -> bool,
) -> DeploymentEvent {
    while let Some(item) = stream.next().await {
        let event = item.expect("event").event.expect("event set");
        seen.push(event.clone());
        if wanted(&event) {
            return event;
        }
    }
    let messages: Vec<String> = seen
        .iter()
        .map(|e| format!("[{} {}] {}", e.host, e.stage, e.message))
        .collect();
    panic!(
        "the deployment ended before {what}; events:\n{}",
        messages.join("\n")
    );
}

/// Messages of the events of `host` in `stage`.
pub fn messages<'a>(events: &'a [DeploymentEvent], host: &str, stage: &str) -> Vec<&'a str> {
    events
        .iter()
        .filter(|e| e.host == host && e.stage == stage)
        .map(|e| e.message.as_str())
        .collect()
}
