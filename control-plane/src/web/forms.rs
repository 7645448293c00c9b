//! Deploy and roll back from the browser in three steps: a form, the plan
//! preview (batches, what each host lacks) with a confirmation that names
//! the app, environment, release and host count, and the confirmed start,
//! which opens the deployment's live page. Each step is the operator API's
//! call (PlanDeployment, Deploy, Rollback) as the session's operator.

use std::fmt::Write as _;

use axum::{
    Form,
    extract::{Query, State},
    response::{IntoResponse, Redirect, Response},
};
use futures_util::StreamExt as _;
use slipway_proto::control::v1::{
    DeployRequest, DeploymentStatus, ListDeploymentsRequest, ListReleasesRequest,
    PlanDeploymentRequest, PlanDeploymentResponse, RollbackRequest,
    deployment_service_server::DeploymentService as _, release_service_server::ReleaseService as _,
};

use super::{
    calls::{Services, call, refused},
    html::{self, data, esc, num},
    i18n::{Lang, Msg, fill},
    viewer::Viewer,
};
use crate::Context;

/// The fields of every step (each step carries them on).
#[derive(Debug, Default, serde::Deserialize)]
pub struct Fields {
    csrf: Option<String>,
    #[serde(default)]
    app: String,
    #[serde(default)]
    env: String,
    #[serde(default)]
    git_ref: String,
    #[serde(default)]
    release: String,
    #[serde(default)]
    message: String,
}

fn hidden(name: &str, value: &str) -> String {
    format!(
        "<input type=\"hidden\" name=\"{name}\" value=\"{}\">",
        esc(value)
    )
}

fn field(lang: Lang, id: &str, label: Msg, value: &str) -> String {
    format!(
        "<p><label for=\"{id}\">{}</label><br><input id=\"{id}\" name=\"{id}\" value=\"{}\" maxlength=\"200\" dir=\"auto\"></p>",
        label.text(lang),
        esc(value)
    )
}

fn target(lang: Lang, f: &Fields) -> String {
    format!(
        "<p>{} {} · {} {}</p>{}{}",
        Msg::App.text(lang),
        data(&f.app),
        Msg::Environment.text(lang),
        data(&f.env),
        hidden("app", &f.app),
        hidden("env", &f.env)
    )
}

/// `GET /deploy?app=&env=`.
pub async fn deploy_form(viewer: Viewer, Query(f): Query<Fields>) -> Response {
    let lang = viewer.lang;
    let body = format!(
        "<form method=\"post\" action=\"/deploy/preview\">{}{}{}{}{}<button type=\"submit\">{}</button></form>",
        html::csrf(&viewer),
        target(lang, &f),
        field(lang, "git_ref", Msg::GitRef, &f.git_ref),
        field(lang, "release", Msg::ReleaseOptional, &f.release),
        field(lang, "message", Msg::Message, &f.message),
        Msg::Preview.text(lang),
    );
    html::page(&viewer, Msg::Deploy.text(lang), &body)
}

/// `GET /rollback?app=&env=`: the releases of the app to choose from, the
/// previous one selected.
pub async fn rollback_form(
    State(ctx): State<Context>,
    viewer: Viewer,
    Query(f): Query<Fields>,
) -> Response {
    let lang = viewer.lang;
    let services = Services::new(&ctx);
    let last = call!(
        &viewer,
        services.deployments,
        list_deployments,
        ListDeploymentsRequest {
            app: f.app.clone(),
            environment: f.env.clone(),
            status: DeploymentStatus::Succeeded.into(),
            page_size: 1,
            ..Default::default()
        }
    );
    let previous = last
        .deployments
        .first()
        .map(|d| d.previous_release.clone())
        .unwrap_or_default();
    let request = ListReleasesRequest {
        app: f.app.clone(),
        limit: 30,
    };
    let releases = call!(&viewer, services.releases, list_releases, request);
    let mut options = String::new();
    for r in &releases.releases {
        let selected = if r.id == previous { " selected" } else { "" };
        let _ = write!(
            options,
            "<option value=\"{id}\"{selected}>{id}</option>",
            id = esc(&r.id)
        );
    }
    let body = format!(
        "<form method=\"post\" action=\"/rollback/preview\">{}{}<p><label for=\"release\">{}</label><br><select id=\"release\" name=\"release\" dir=\"ltr\">{options}</select></p>{}<button type=\"submit\">{}</button></form>",
        html::csrf(&viewer),
        target(lang, &f),
        Msg::RollbackTo.text(lang),
        field(lang, "message", Msg::Message, &f.message),
        Msg::Preview.text(lang),
    );
    html::page(&viewer, Msg::Rollback.text(lang), &body)
}

fn plan_table(lang: Lang, plan: &PlanDeploymentResponse) -> String {
    let yes_no = |b: bool| if b { Msg::Yes } else { Msg::No }.text(lang).to_owned();
    let rows: Vec<_> = plan
        .batches
        .iter()
        .flat_map(|b| b.hosts.iter().map(move |h| (b.number, h)))
        .map(|(batch, h)| {
            vec![
                num(batch),
                data(&h.host),
                yes_no(h.reachable),
                data(&h.current_release),
                num(h.files_changed),
                num(h.objects_missing),
                num(h.bytes_missing),
            ]
        })
        .collect();
    let heads = [
        Msg::Batch,
        Msg::Host,
        Msg::Reachable,
        Msg::Current,
        Msg::FilesChanged,
        Msg::HostsMissing,
        Msg::Bytes,
    ];
    html::table(lang, &heads, &rows, "plan")
}

async fn preview(ctx: &Context, viewer: &Viewer, f: &Fields, rollback: bool) -> Response {
    if let Some(refusal) = viewer.csrf_refusal(f.csrf.as_deref()) {
        return refusal;
    }
    let lang = viewer.lang;
    let services = Services::new(ctx);
    let deploy = DeployRequest {
        app: f.app.clone(),
        environment: f.env.clone(),
        git_ref: f.git_ref.clone(),
        release_id: f.release.clone(),
        message: f.message.clone(),
        ..Default::default()
    };
    let request = PlanDeploymentRequest {
        deploy: Some(deploy),
        ..Default::default()
    };
    let plan = call!(viewer, services.deployments, plan_deployment, request);
    // Planning records nothing: a commit without a release yet is confirmed
    // by its sha, so the deploy cuts exactly the commit that was planned.
    let planned = plan.release.clone().unwrap_or_default();
    let (release, commit) = if planned.id.is_empty() {
        (String::new(), planned.commit)
    } else {
        (planned.id, String::new())
    };
    let shown = if release.is_empty() {
        commit.chars().take(12).collect()
    } else {
        release.clone()
    };
    let hosts: usize = plan.batches.iter().map(|b| b.hosts.len()).sum();
    let (question, action) = if rollback {
        (Msg::ConfirmRollback, "/rollback/confirm")
    } else {
        (Msg::ConfirmDeploy, "/deploy/confirm")
    };
    let question = fill(
        question.text(lang),
        &[
            ("app", &data(&f.app)),
            ("env", &data(&f.env)),
            ("release", &data(&shown)),
            ("hosts", &num(hosts)),
        ],
    );
    let body = format!(
        "<h2>{}</h2>{}<form method=\"post\" action=\"{action}\" class=\"confirm\"><p id=\"question\">{question}</p>{}{}{}{}<button type=\"submit\">{}</button> <a href=\"/\">{}</a></form>",
        Msg::Plan.text(lang),
        plan_table(lang, &plan),
        html::csrf(viewer),
        hidden("app", &f.app),
        hidden("env", &f.env),
        hidden("release", &release) + &hidden("git_ref", &commit) + &hidden("message", &f.message),
        Msg::Confirm.text(lang),
        Msg::Back.text(lang),
    );
    let title = if rollback { Msg::Rollback } else { Msg::Deploy };
    html::page(viewer, title.text(lang), &body)
}

/// `POST /deploy/preview`.
pub async fn deploy_preview(
    State(ctx): State<Context>,
    viewer: Viewer,
    Form(f): Form<Fields>,
) -> Response {
    preview(&ctx, &viewer, &f, false).await
}

/// `POST /rollback/preview`.
pub async fn rollback_preview(
    State(ctx): State<Context>,
    viewer: Viewer,
    Form(f): Form<Fields>,
) -> Response {
    preview(&ctx, &viewer, &f, true).await
}

/// Opens the page of the deployment whose first event `stream` yields.
async fn opened<S, T>(viewer: &Viewer, mut stream: S, id: fn(T) -> Option<String>) -> Response
where
    S: futures_util::Stream<Item = Result<T, tonic::Status>> + Unpin,
{
    // The deployment goes on without this stream: only its id is needed.
    match stream.next().await {
        Some(Ok(first)) => match id(first) {
            Some(id) => Redirect::to(&format!("/deployments/{id}")).into_response(),
            None => Redirect::to("/").into_response(),
        },
        Some(Err(status)) => refused(viewer, &status),
        None => Redirect::to("/history").into_response(),
    }
}

/// Starts the confirmed deploy or rollback and opens its page.
async fn confirm(ctx: &Context, viewer: &Viewer, f: Fields, rollback: bool) -> Response {
    if let Some(refusal) = viewer.csrf_refusal(f.csrf.as_deref()) {
        return refusal;
    }
    let services = Services::new(ctx);
    let (app, environment, release_id, message) = (f.app, f.env, f.release, f.message);
    let git_ref = f.git_ref;
    if rollback {
        let request = RollbackRequest {
            app,
            environment,
            release_id,
            message,
            ..Default::default()
        };
        let stream = call!(viewer, services.deployments, rollback, request);
        opened(viewer, stream, |r| r.event.map(|e| e.deployment_id)).await
    } else {
        let request = DeployRequest {
            app,
            environment,
            git_ref,
            release_id,
            message,
            ..Default::default()
        };
        let stream = call!(viewer, services.deployments, deploy, request);
        opened(viewer, stream, |r| r.event.map(|e| e.deployment_id)).await
    }
}

/// `POST /deploy/confirm`.
pub async fn deploy_confirm(
    State(ctx): State<Context>,
    viewer: Viewer,
    Form(f): Form<Fields>,
) -> Response {
    confirm(&ctx, &viewer, f, false).await
}

/// `POST /rollback/confirm`.
pub async fn rollback_confirm(
    State(ctx): State<Context>,
    viewer: Viewer,
    Form(f): Form<Fields>,
) -> Response {
    confirm(&ctx, &viewer, f, true).await
}
