//! A deployment awaiting approval on its page: who requested it, the
//! approvals so far and required, when the request expires, and the
//! Approve / Reject forms (with a message) for a deployer or admin other
//! than the requester, plus an admin's override. Each decision is the
//! operator API's ApprovalService call as the session's operator, exactly
//! as `slipctl approve` / `slipctl reject` make it.

use std::fmt::Write as _;

use axum::{
    Form,
    extract::{Path, State},
    response::{IntoResponse, Redirect, Response},
};
use slipway_proto::{
    control::v1::{
        ApprovalDecision, ApproveDeploymentRequest, Deployment, DeploymentStatus,
        RejectDeploymentRequest, approval_service_server::ApprovalService as _,
    },
    identity::Role,
};

use super::{
    calls::{Services, call},
    html::{self, data, esc, num},
    i18n::Msg,
    viewer::Viewer,
};
use crate::Context;

/// The operator's name in a principal (`deployer/alice` -> `alice`), as the
/// approval rule compares them.
fn name(principal: &str) -> &str {
    principal.rsplit('/').next().unwrap_or(principal)
}

fn decisions(viewer: &Viewer, d: &Deployment) -> String {
    let lang = viewer.lang;
    if d.approvals.is_empty() {
        return format!("<p>{}</p>", Msg::NoApprovals.text(lang));
    }
    let mut out = String::from("<ul class=\"approvals\">");
    for a in &d.approvals {
        let decision = match (a.decision(), a.admin_override) {
            (_, true) => Msg::Overridden,
            (ApprovalDecision::Rejected, _) => Msg::Rejected,
            _ => Msg::Approved,
        };
        let _ = write!(
            out,
            "<li>{} {} {} {}</li>",
            decision.text(lang),
            data(&a.by),
            html::time(a.at.as_ref()),
            data(&a.message)
        );
    }
    out.push_str("</ul>");
    out
}

fn form(viewer: &Viewer, d: &Deployment, action: &str, label: Msg, extra: &str) -> String {
    format!(
        "<form method=\"post\" action=\"/deployments/{id}/{action}\" class=\"decide\">{csrf}<label for=\"{action}-message\">{message}</label> <input id=\"{action}-message\" name=\"message\" maxlength=\"200\" dir=\"auto\">{extra} <button type=\"submit\">{label}</button></form>",
        id = esc(&d.id),
        csrf = html::csrf(viewer),
        message = Msg::Message.text(viewer.lang),
        label = label.text(viewer.lang),
    )
}

fn controls(viewer: &Viewer, d: &Deployment) -> String {
    let lang = viewer.lang;
    let role = viewer.caller.role;
    if role < Role::Deployer {
        return String::new();
    }
    let own = name(&d.author) == viewer.caller.name;
    let mut out = String::new();
    if own {
        let _ = write!(
            out,
            "<p id=\"own-request\">{}</p>",
            Msg::OwnRequest.text(lang)
        );
    } else {
        out.push_str(&form(viewer, d, "approve", Msg::Approve, ""));
    }
    if role >= Role::Admin {
        let check = format!(
            " <input type=\"hidden\" name=\"admin_override\" value=\"true\"><span>{}</span>",
            Msg::OverrideHelp.text(lang)
        );
        out.push_str(&form(viewer, d, "approve", Msg::Override, &check));
    }
    if !own || role >= Role::Admin {
        out.push_str(&form(viewer, d, "reject", Msg::Reject, ""));
    }
    out
}

/// The approval section of a deployment's page (empty unless it awaits
/// approval).
pub fn section(viewer: &Viewer, d: &Deployment) -> String {
    if d.status() != DeploymentStatus::AwaitingApproval {
        return String::new();
    }
    let lang = viewer.lang;
    let so_far = d
        .approvals
        .iter()
        .filter(|a| a.decision() == ApprovalDecision::Approved && !a.admin_override)
        .count();
    let rows = [
        (Msg::RequestedBy, data(&d.author)),
        (
            Msg::ApprovalsCount,
            format!("{} / {}", num(so_far), num(d.approvals_required)),
        ),
        (Msg::Expires, html::time(d.approval_expires_at.as_ref())),
    ];
    format!(
        "<section id=\"approval\"><h2>{}</h2>{}{}{}</section>",
        Msg::AwaitingApproval.text(lang),
        html::summary(lang, "approval-summary", &rows),
        decisions(viewer, d),
        controls(viewer, d)
    )
}

/// The fields of an approve or reject form.
#[derive(Debug, serde::Deserialize)]
pub struct Decision {
    csrf: Option<String>,
    #[serde(default)]
    message: String,
    #[serde(default)]
    admin_override: bool,
}

/// Makes the decision of `form` on deployment `id` (a rejection when
/// `reject`) and reopens its page.
async fn decide(
    ctx: &Context,
    viewer: &Viewer,
    id: String,
    form: Decision,
    reject: bool,
) -> Response {
    if let Some(refused) = viewer.csrf_refusal(form.csrf.as_deref()) {
        return refused;
    }
    let services = Services::new(ctx);
    let (deployment_id, message) = (id.clone(), form.message);
    if reject {
        let request = RejectDeploymentRequest {
            deployment_id,
            message,
        };
        call!(viewer, services.approvals, reject_deployment, request);
    } else {
        let admin_override = form.admin_override;
        let request = ApproveDeploymentRequest {
            deployment_id,
            message,
            admin_override,
        };
        call!(viewer, services.approvals, approve_deployment, request);
    }
    Redirect::to(&format!("/deployments/{id}")).into_response()
}

/// `POST /deployments/<id>/approve`.
pub async fn approve(
    State(ctx): State<Context>,
    viewer: Viewer,
    Path(id): Path<String>,
    Form(form): Form<Decision>,
) -> Response {
    decide(&ctx, &viewer, id, form, false).await
}

/// `POST /deployments/<id>/reject`.
pub async fn reject(
    State(ctx): State<Context>,
    viewer: Viewer,
    Path(id): Path<String>,
    Form(form): Form<Decision>,
) -> Response {
    decide(&ctx, &viewer, id, form, true).await
}
