//! The overview page: running deployments with live progress, then each
//! environment with its apps: the release it runs, who deployed it and
//! when, hosts by health and the last outcome.

use std::fmt::Write as _;

use axum::{extract::State, response::Response};
use slipway_proto::{
    control::v1::{
        AppEnvironmentStatus, Deployment, DeploymentStatus, GetEnvironmentStatusRequest,
        GetEnvironmentStatusResponse, ListEnvironmentsRequest,
        environment_service_server::EnvironmentService as _,
    },
    identity::Role,
};

use super::{
    calls::{Services, call},
    html::{self, data, link, num},
    i18n::{Lang, Msg, fill},
    viewer::Viewer,
};
use crate::Context;

/// Running deployments shown, at most.
const RUNNING_SHOWN: usize = 50;

/// The running deployments: the newest one of each app in each
/// environment while it runs (a lock allows one at a time), read from the
/// environments' summaries rather than a scan of the whole history.
fn running(lang: Lang, statuses: &[GetEnvironmentStatusResponse]) -> String {
    let running: Vec<&Deployment> = statuses
        .iter()
        .flat_map(|s| s.apps.iter())
        .filter_map(|app| app.last.as_ref())
        .filter(|d| d.status() == DeploymentStatus::Running)
        .take(RUNNING_SHOWN)
        .collect();
    let mut body = format!("<section><h2>{}</h2>", Msg::Running.text(lang));
    if running.is_empty() {
        let _ = write!(
            body,
            "<p class=\"empty\">{}</p>",
            Msg::NothingRunning.text(lang)
        );
    } else {
        let rows: Vec<_> = running
            .iter()
            .map(|d| {
                vec![
                    link(&format!("/deployments/{}", d.id), &data(&d.id)),
                    data(&d.app),
                    data(&d.environment),
                    data(&d.release),
                    html::progress(d.percent, Some((&d.id, d.last_event))),
                ]
            })
            .collect();
        let heads = [
            Msg::Deployment,
            Msg::App,
            Msg::Environment,
            Msg::Release,
            Msg::Progress,
        ];
        body.push_str(&html::table(lang, &heads, &rows, "running"));
    }
    body.push_str("</section>");
    body
}

fn environment(viewer: &Viewer, status: &GetEnvironmentStatusResponse) -> String {
    let lang = viewer.lang;
    let name = status
        .environment
        .as_ref()
        .map(|e| e.name.as_str())
        .unwrap_or_default();
    let mut body = format!(
        "<section class=\"env\"><h2>{} {}</h2>",
        Msg::Environment.text(lang),
        data(name)
    );
    if status.apps.is_empty() {
        let _ = write!(body, "<p class=\"empty\">{}</p>", Msg::NoApps.text(lang));
    } else {
        let rows: Vec<_> = status
            .apps
            .iter()
            .map(|app| row(viewer, name, app))
            .collect();
        let mut heads = vec![
            Msg::App,
            Msg::Current,
            Msg::DeployedBy,
            Msg::When,
            Msg::Health,
            Msg::LastOutcome,
        ];
        if viewer.caller.role >= Role::Deployer {
            heads.push(Msg::Deploy);
        }
        body.push_str(&html::table(lang, &heads, &rows, "apps"));
    }
    body.push_str("</section>");
    body
}

/// `GET /`.
pub async fn page(State(ctx): State<Context>, viewer: Viewer) -> Response {
    let services = Services::new(&ctx);
    let lang = viewer.lang;
    let environments = call!(
        &viewer,
        services.environments,
        list_environments,
        ListEnvironmentsRequest {}
    );
    let mut statuses = Vec::with_capacity(environments.environments.len());
    for env in &environments.environments {
        let request = GetEnvironmentStatusRequest {
            name: env.name.clone(),
        };
        statuses.push(call!(
            &viewer,
            services.environments,
            get_environment_status,
            request
        ));
    }
    let mut body = running(lang, &statuses);
    if statuses.is_empty() {
        let cmd = "<code>slipctl env create</code>";
        let text = fill(Msg::NoEnvironments.text(lang), &[("cmd", cmd)]);
        let _ = write!(body, "<p class=\"empty\">{text}</p>");
    }
    for status in &statuses {
        body.push_str(&environment(&viewer, status));
    }
    html::page(&viewer, Msg::Overview.text(lang), &body)
}

fn row(viewer: &Viewer, env: &str, app: &AppEnvironmentStatus) -> Vec<String> {
    let lang = viewer.lang;
    let (release, author, when) = match &app.current {
        Some(d) => (
            link(
                &format!("/releases/{}/{}", app.app, d.release),
                &data(&d.release),
            ),
            data(&d.author),
            html::time(d.finished_at.as_ref()),
        ),
        None => (Msg::None.text(lang).to_owned(), "—".into(), "—".into()),
    };
    let health = app.health.unwrap_or_default();
    let health = format!(
        "{} / {} / {}",
        num(health.healthy),
        num(health.degraded),
        num(health.down)
    );
    let last = match &app.last {
        Some(d) => {
            let live =
                (d.status() == DeploymentStatus::Running).then_some((d.id.as_str(), d.last_event));
            let progress = live.map(|live| html::progress(d.percent, Some(live)));
            format!(
                "{} {}",
                link(
                    &format!("/deployments/{}", d.id),
                    &html::status(lang, d.status)
                ),
                progress.unwrap_or_default()
            )
        }
        None => "—".into(),
    };
    let mut cells = vec![
        link(&format!("/sources/{}", app.app), &data(&app.app)),
        release,
        author,
        when,
        health,
        last,
    ];
    if viewer.caller.role >= Role::Deployer {
        cells.push(actions(lang, env, &app.app));
    }
    cells
}

fn actions(lang: Lang, env: &str, app: &str) -> String {
    let query = format!("app={}&amp;env={}", html::esc(app), html::esc(env));
    format!(
        "<a class=\"button\" href=\"/deploy?{query}\">{}</a> <a class=\"button\" href=\"/rollback?{query}\">{}</a>",
        Msg::Deploy.text(lang),
        Msg::Rollback.text(lang)
    )
}
