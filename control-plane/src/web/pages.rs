//! The reading pages: rollbacks timeline, hosts (live state, drift and
//! health charts) and the audit trail (admin).

use std::fmt::Write as _;

use axum::{
    extract::{Path, Query, State},
    response::Response,
};
use slipway_proto::control::v1::{
    GetFleetStatusRequest, GetHealthSeriesRequest, GetRollbackTimelineRequest,
    ListAuditEventsRequest, ListDriftFindingsRequest, audit_service_server::AuditService as _,
    deployment_service_server::DeploymentService as _, drift_service_server::DriftService as _,
    host_service_server::HostService as _,
};

use super::{
    calls::{Services, call},
    charts,
    html::{self, data, esc, link, num},
    i18n::{Lang, Msg},
    viewer::Viewer,
};
use crate::Context;

/// An app and environment, optional.
#[derive(Debug, Default, serde::Deserialize)]
pub struct Scope {
    #[serde(default)]
    app: String,
    #[serde(default)]
    env: String,
    #[serde(default)]
    period: String,
}

/// `GET /rollbacks?app=&env=`.
pub async fn rollbacks(
    State(ctx): State<Context>,
    viewer: Viewer,
    Query(scope): Query<Scope>,
) -> Response {
    let lang = viewer.lang;
    let services = Services::new(&ctx);
    let request = GetRollbackTimelineRequest {
        app: scope.app,
        environment: scope.env,
    };
    let timeline = call!(
        &viewer,
        services.deployments,
        get_rollback_timeline,
        request
    );
    let body = if timeline.rollbacks.is_empty() {
        format!("<p class=\"empty\">{}</p>", Msg::NoRollbacks.text(lang))
    } else {
        let rows: Vec<_> = timeline
            .rollbacks
            .iter()
            .map(|r| {
                let d = r.rollback.clone().unwrap_or_default();
                let how = if r.automatic {
                    Msg::Automatic
                } else {
                    Msg::Manual
                };
                vec![
                    html::time(d.started_at.as_ref()),
                    link(&format!("/deployments/{}", d.id), &data(&d.id)),
                    data(&d.app),
                    data(&d.environment),
                    format!("{} → {}", data(&r.from_release), data(&r.to_release)),
                    how.text(lang).to_owned(),
                    data(&r.reason),
                    html::status(lang, d.status),
                    html::duration(r.time_to_recovery_ms),
                ]
            })
            .collect();
        let heads = [
            Msg::When,
            Msg::Deployment,
            Msg::App,
            Msg::Environment,
            Msg::FromTo,
            Msg::Kind,
            Msg::Reason,
            Msg::Status,
            Msg::TimeToRecovery,
        ];
        html::table(lang, &heads, &rows, "timeline")
    };
    html::page(&viewer, Msg::Rollbacks.text(lang), &body)
}

/// `GET /hosts`: every host as its agent answers now.
pub async fn hosts(State(ctx): State<Context>, viewer: Viewer) -> Response {
    let lang = viewer.lang;
    let services = Services::new(&ctx);
    let fleet = call!(
        &viewer,
        services.hosts,
        get_fleet_status,
        GetFleetStatusRequest::default()
    );
    let rows: Vec<_> = fleet
        .hosts
        .iter()
        .map(|h| {
            let host = h.host.clone().unwrap_or_default();
            let yes_no = if h.reachable { Msg::Yes } else { Msg::No };
            vec![
                link(&format!("/hosts/{}", host.name), &data(&host.name)),
                data(&host.environment),
                data(&host.address),
                yes_no.text(lang).to_owned(),
                data(&h.agent_version),
                html::time(h.certificate_expires_at.as_ref()),
                num(format!("{:.2}", h.load_average)),
            ]
        })
        .collect();
    let heads = [
        Msg::Host,
        Msg::Environment,
        Msg::Address,
        Msg::Reachable,
        Msg::AgentVersion,
        Msg::CertExpiry,
        Msg::Load,
    ];
    let request = ListDriftFindingsRequest::default();
    let drift = call!(&viewer, services.drift, list_drift_findings, request);
    let body =
        html::table(lang, &heads, &rows, "hosts") + &super::drift::section(lang, &drift.findings);
    html::page(&viewer, Msg::Hosts.text(lang), &body)
}

/// `GET /hosts/<name>?period=24h|7d|30d`: health charts.
pub async fn host(
    State(ctx): State<Context>,
    viewer: Viewer,
    Path(name): Path<String>,
    Query(scope): Query<Scope>,
) -> Response {
    let lang = viewer.lang;
    let services = Services::new(&ctx);
    let days = match scope.period.as_str() {
        "7d" => 7,
        "30d" => 30,
        _ => 1,
    };
    let now = chrono::Utc::now().timestamp();
    let request = GetHealthSeriesRequest {
        host: name.clone(),
        from: Some(pbjson_types::Timestamp {
            seconds: now - days * 86_400,
            nanos: 0,
        }),
        ..Default::default()
    };
    let series = call!(&viewer, services.hosts, get_health_series, request);
    let mut body = format!(
        "<p>{} {} · <a href=\"?period=24h\">{}</a> · <a href=\"?period=7d\">{}</a> · <a href=\"?period=30d\">{}</a></p>",
        Msg::Host.text(lang),
        data(&name),
        Msg::Period24h.text(lang),
        Msg::Period7d.text(lang),
        Msg::Period30d.text(lang),
    );
    let points: Vec<_> = series.hosts.iter().flat_map(|h| h.points.iter()).collect();
    if points.is_empty() {
        let _ = write!(body, "<p class=\"empty\">{}</p>", Msg::NoSamples.text(lang));
    }
    let at = |p: &&slipway_proto::control::v1::HealthPoint| p.time.map_or(0, |t| t.seconds);
    let series = |f: fn(&slipway_proto::control::v1::HealthPoint) -> f64| {
        points.iter().map(|p| (at(p), f(p))).collect::<Vec<_>>()
    };
    let availability = series(|p| f64::from(p.reachable) / f64::from(p.samples.max(1)) * 100.0);
    let load = series(|p| p.load_average.map_or(0.0, |m| m.avg));
    let memory = series(|p| p.memory_available_bytes.map_or(0.0, |m| m.avg) / 1e6);
    let disk = series(|p| p.disk_free_bytes.map_or(0.0, |m| m.avg) / 1e9);
    body.push_str(&charts::line(
        Msg::Availability.text(lang),
        "%",
        &availability,
    ));
    body.push_str(&charts::line(Msg::Load.text(lang), "", &load));
    body.push_str(&charts::line(Msg::Memory.text(lang), "MB", &memory));
    body.push_str(&charts::line(Msg::Disk.text(lang), "GB", &disk));
    body.push_str(&app_charts(lang, &points));
    html::page(&viewer, Msg::HealthChart.text(lang), &body)
}

/// Points of a chart: (unix seconds, value).
type Series = Vec<(i64, f64)>;

/// Per app probed on the host: the response time of its passed probes
/// (mean per step) and its availability (passed / probed per step).
fn app_charts(lang: Lang, points: &[&slipway_proto::control::v1::HealthPoint]) -> String {
    let mut apps: std::collections::BTreeMap<&str, (Series, Series)> = Default::default();
    for p in points {
        let at = p.time.map_or(0, |t| t.seconds);
        for a in &p.apps {
            let (response, available) = apps.entry(a.app.as_str()).or_default();
            if let Some(ms) = a.response_ms.filter(|_| a.ok > 0) {
                response.push((at, ms.avg));
            }
            let probed = a.ok + a.errors;
            if probed > 0 {
                available.push((at, f64::from(a.ok) / f64::from(probed) * 100.0));
            }
        }
    }
    let mut out = String::new();
    for (app, (response, available)) in apps {
        let _ = write!(out, "<h2><bdi>{}</bdi></h2>", esc(app));
        let title = |msg: Msg| format!("{app} · {}", msg.text(lang));
        out.push_str(&charts::line(&title(Msg::ResponseTime), "ms", &response));
        out.push_str(&charts::line(&title(Msg::Availability), "%", &available));
    }
    out
}

/// `GET /audit` (admin).
pub async fn audit(State(ctx): State<Context>, viewer: Viewer) -> Response {
    let lang = viewer.lang;
    let services = Services::new(&ctx);
    let request = ListAuditEventsRequest {
        page_size: 100,
        ..Default::default()
    };
    let trail = call!(&viewer, services.audit, list_audit_events, request);
    let rows: Vec<_> = trail
        .events
        .iter()
        .map(|e| {
            vec![
                html::time(e.time.as_ref()),
                data(&e.actor),
                data(&e.method),
                data(&e.target),
                data(&e.outcome),
                data(&e.message),
            ]
        })
        .collect();
    let heads = [
        Msg::Time,
        Msg::Actor,
        Msg::Method,
        Msg::Target,
        Msg::Outcome,
        Msg::Message,
    ];
    let body = html::table(lang, &heads, &rows, "audit");
    html::page(&viewer, Msg::Audit.text(lang), &body)
}
