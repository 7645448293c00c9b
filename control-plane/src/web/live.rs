//! A deployment's events as server-sent events: the store's event log
//! replayed after the client's `Last-Event-ID` (or `?after=`), then live
//! ones as they are recorded, each with its sequence number as its id, and
//! heartbeats while nothing happens. A dropped connection resumes from the
//! last id the browser saw, with no gap and no repeat.

use std::{convert::Infallible, time::Duration};

use axum::{
    extract::{Path, Query, State},
    http::HeaderMap,
    response::{
        IntoResponse, Response,
        sse::{Event, KeepAlive, Sse},
    },
};
use futures_util::StreamExt as _;
use slipway_proto::control::v1::{
    DeploymentEvent, DeploymentStatus, WatchDeploymentRequest,
    deployment_service_server::DeploymentService as _,
};

use super::{
    calls::{Services, call},
    html,
    i18n::Lang,
    viewer::Viewer,
};
use crate::Context;

/// How often a quiet stream sends a comment, so that proxies and the
/// browser keep it open and a dead one is noticed.
pub const HEARTBEAT: Duration = Duration::from_secs(10);

/// Where to resume.
#[derive(Debug, serde::Deserialize)]
pub struct After {
    after: Option<u64>,
}

/// The sequence a stream starts after: the browser's `Last-Event-ID` when
/// it reconnects, else `?after=`, else 0 (every event).
fn resume_from(headers: &HeaderMap, query: &After) -> u64 {
    headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
        .or(query.after)
        .unwrap_or(0)
}

/// An event as the page's script reads it.
pub fn json(lang: Lang, event: &DeploymentEvent) -> serde_json::Value {
    let status = DeploymentStatus::try_from(event.status).unwrap_or_default();
    serde_json::json!({
        "seq": event.sequence,
        "time_ms": event.time.map_or(0, |t| t.seconds * 1000 + i64::from(t.nanos / 1_000_000)),
        "host": event.host,
        "status": status.as_str_name().trim_start_matches("DEPLOYMENT_STATUS_").to_ascii_lowercase(),
        "status_text": html::status_msg(status).text(lang),
        "stage": event.stage,
        "percent": event.percent,
        "bytes_sent": event.host_bytes_sent,
        "message": event.message,
        "step": event.step,
        "output": event.output,
        "kind": event.kind,
        "level": event.level,
    })
}

fn sse(lang: Lang, event: &DeploymentEvent) -> Event {
    Event::default()
        .id(event.sequence.to_string())
        .event("deployment")
        .data(json(lang, event).to_string())
}

/// `GET /deployments/<id>/events`.
pub async fn events(
    State(ctx): State<Context>,
    viewer: Viewer,
    Path(id): Path<String>,
    Query(query): Query<After>,
    headers: HeaderMap,
) -> Response {
    let services = Services::new(&ctx);
    let request = WatchDeploymentRequest {
        deployment_id: id,
        after_event: resume_from(&headers, &query),
    };
    let stream = call!(&viewer, services.deployments, watch_deployment, request);
    let lang = viewer.lang;
    let events = stream
        .map(move |item| {
            Ok::<_, Infallible>(match item {
                Ok(answer) => answer
                    .event
                    .map_or_else(|| Event::default().comment("empty"), |e| sse(lang, &e)),
                Err(status) => Event::default().event("failure").data(status.message()),
            })
        })
        .chain(futures_util::stream::once(async {
            Ok(Event::default().event("end").data("done"))
        }));
    Sse::new(events)
        .keep_alive(KeepAlive::new().interval(HEARTBEAT))
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_event_id_wins_over_the_query() {
        let mut headers = HeaderMap::new();
        assert_eq!(resume_from(&headers, &After { after: None }), 0);
        assert_eq!(resume_from(&headers, &After { after: Some(4) }), 4);
        headers.insert("last-event-id", "17".parse().unwrap());
        assert_eq!(resume_from(&headers, &After { after: Some(4) }), 17);
    }
}
