//! The deployment page: the record (release, author, status, batches,
//! errors), each host's status, stage, percentage and bytes, and the event
//! log and each host's hook output, which the page's script follows live
//! over [`super::live`] (errors with a hint, see [`super::hooks`]); the
//! cancel button for a deployer while it runs.

use std::fmt::Write as _;

use axum::{
    Form,
    extract::{Path, State},
    response::{IntoResponse, Redirect, Response},
};
use slipway_proto::{
    control::v1::{
        CancelDeploymentRequest, Deployment, DeploymentEvent, DeploymentStatus,
        GetDeploymentRequest, ListDeploymentEventsRequest,
        deployment_service_server::DeploymentService as _,
    },
    identity::Role,
};

use super::{
    calls::{Services, call},
    html::{self, data, esc, num},
    i18n::{Lang, Msg},
    viewer::Viewer,
};
use crate::Context;

/// Events rendered with the page; the script receives the rest live.
const EVENTS_RENDERED: u32 = 500;

fn running(d: &Deployment) -> bool {
    matches!(
        d.status(),
        DeploymentStatus::Running | DeploymentStatus::Pending | DeploymentStatus::Queued
    )
}

fn summary(lang: Lang, d: &Deployment) -> String {
    let release = html::link(
        &format!("/releases/{}/{}", d.app, d.release),
        &data(&d.release),
    );
    let mut rows = vec![
        (Msg::Deployment, data(&d.id)),
        (Msg::App, data(&d.app)),
        (Msg::Environment, data(&d.environment)),
        (Msg::Release, release),
        (Msg::Kind, html::kind(lang, d.kind).to_owned()),
        (
            Msg::Status,
            format!(
                "<span id=\"status\">{}</span>",
                html::status(lang, d.status)
            ),
        ),
        (
            Msg::Progress,
            html::progress(
                d.percent,
                running(d).then_some((d.id.as_str(), d.last_event)),
            ),
        ),
        (Msg::Author, data(&d.author)),
        (Msg::Message, data(&d.message)),
        (Msg::Started, html::time(d.started_at.as_ref())),
        (Msg::Finished, html::time(d.finished_at.as_ref())),
        (Msg::Duration, html::duration(d.duration_ms)),
        (Msg::Batch, num(d.batches)),
    ];
    if !d.error.is_empty() {
        rows.push((Msg::Error, data(&d.error)));
    }
    html::summary(lang, "summary", &rows)
}

/// The hosts' table (also re-read by the script when the deployment ends).
fn hosts(lang: Lang, d: &Deployment, events: &[DeploymentEvent]) -> String {
    let mut out = format!(
        "<div class=\"scroll\" id=\"hosts\" tabindex=\"0\"><table><thead><tr><th scope=\"col\">{}</th><th scope=\"col\">{}</th><th scope=\"col\">{}</th><th scope=\"col\">{}</th><th scope=\"col\">{}</th><th scope=\"col\">{}</th><th scope=\"col\">{}</th></tr></thead><tbody>",
        Msg::Host.text(lang),
        Msg::Status.text(lang),
        Msg::Stage.text(lang),
        Msg::Progress.text(lang),
        Msg::Bytes.text(lang),
        Msg::Batch.text(lang),
        Msg::Error.text(lang),
    );
    for h in &d.hosts {
        let _ = write!(
            out,
            "<tr data-host=\"{name}\"><th scope=\"row\">{host}</th><td class=\"st\">{status}</td><td class=\"stage\">{stage}</td><td>{progress}</td><td class=\"sent\">{bytes}</td><td>{batch}</td><td class=\"error\">{error}</td></tr>",
            name = esc(&h.host),
            host = data(&h.host),
            status = html::status(lang, h.status),
            stage = data(&h.stage),
            progress = html::progress(h.percent, None),
            bytes = num(h.bytes_sent),
            batch = num(h.batch),
            error = super::hooks::error(lang, h, events),
        );
    }
    out.push_str("</tbody></table></div>");
    out
}

/// One line of the event log.
pub fn line(e: &DeploymentEvent) -> String {
    let host = if e.host.is_empty() { "*" } else { &e.host };
    let text = format!(
        "#{} {host} {} {}% {}",
        e.sequence, e.stage, e.percent, e.message
    );
    format!(
        "<li data-seq=\"{}\">{}</li>",
        e.sequence,
        data(text.trim_end())
    )
}

fn cancel_form(viewer: &Viewer, d: &Deployment) -> String {
    if viewer.caller.role < Role::Deployer || !running(d) {
        return String::new();
    }
    let lang = viewer.lang;
    format!(
        "<form method=\"post\" action=\"/deployments/{id}/cancel\" class=\"cancel\">{csrf}<label for=\"reason\">{reason}</label> <input id=\"reason\" name=\"reason\" maxlength=\"200\"> <button type=\"submit\" class=\"danger\">{cancel}</button></form>",
        id = esc(&d.id),
        csrf = html::csrf(viewer),
        reason = Msg::CancelReason.text(lang),
        cancel = Msg::Cancel.text(lang),
    )
}

/// `GET /deployments/<id>`.
pub async fn page(State(ctx): State<Context>, viewer: Viewer, Path(id): Path<String>) -> Response {
    let services = Services::new(&ctx);
    let lang = viewer.lang;
    let request = GetDeploymentRequest {
        deployment_id: id.clone(),
    };
    let record = call!(&viewer, services.deployments, get_deployment, request);
    let Some(d) = record.deployment else {
        return Redirect::to("/").into_response();
    };
    let request = ListDeploymentEventsRequest {
        deployment_id: id,
        page_size: EVENTS_RENDERED,
        ..Default::default()
    };
    let events = call!(
        &viewer,
        services.deployments,
        list_deployment_events,
        request
    );
    let after = events.events.last().map_or(0, |e| e.sequence);
    let lines: String = events.events.iter().map(line).collect();
    let body = format!(
        "{summary}{approval}{cancel}<h2>{hosts_title}</h2>{hosts}{hooks}<h2>{events_title}</h2><ol id=\"log\" class=\"log\" tabindex=\"0\" data-deployment=\"{id}\" data-after=\"{after}\" data-follow=\"{follow}\" aria-live=\"polite\">{lines}</ol>",
        summary = summary(lang, &d),
        approval = super::approvals::section(&viewer, &d),
        cancel = cancel_form(&viewer, &d),
        hosts_title = Msg::Hosts.text(lang),
        hosts = hosts(lang, &d, &events.events),
        hooks = super::hooks::sections(lang, &d, &events.events),
        events_title = Msg::Events.text(lang),
        id = esc(&d.id),
        follow = running(&d) || !events.next_page_token.is_empty(),
    );
    html::page(&viewer, Msg::Deployment.text(lang), &body)
}

/// The cancel form's fields.
#[derive(Debug, serde::Deserialize)]
pub struct CancelForm {
    csrf: Option<String>,
    #[serde(default)]
    reason: String,
}

/// `POST /deployments/<id>/cancel`.
pub async fn cancel(
    State(ctx): State<Context>,
    viewer: Viewer,
    Path(id): Path<String>,
    Form(form): Form<CancelForm>,
) -> Response {
    if let Some(refused) = viewer.csrf_refusal(form.csrf.as_deref()) {
        return refused;
    }
    let services = Services::new(&ctx);
    let request = CancelDeploymentRequest {
        deployment_id: id.clone(),
        reason: form.reason,
        grace_seconds: 0,
    };
    call!(&viewer, services.deployments, cancel_deployment, request);
    Redirect::to(&format!("/deployments/{id}")).into_response()
}
