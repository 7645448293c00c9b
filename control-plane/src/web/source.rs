//! The source page of an app: its repository, the branch tip, the last
//! fetch, and per environment the release it runs and the commits not
//! deployed there yet.

use axum::{
    extract::{Path, State},
    response::Response,
};
use slipway_proto::control::v1::{
    CommitSummary, GetSourceStatusRequest, source_service_server::SourceService as _,
};

use super::{
    calls::call,
    html::{self, data, esc, num},
    i18n::{Lang, Msg},
    viewer::Viewer,
};
use crate::{Context, api};

/// Commits listed per environment, at most.
const COMMITS: u32 = 20;

fn commit(c: &CommitSummary) -> String {
    format!(
        "<code>{}</code> {} — {} {}",
        esc(&c.short_id),
        data(&c.subject),
        data(&c.author),
        html::time(c.time.as_ref())
    )
}

fn environments(lang: Lang, status: &slipway_proto::control::v1::SourceStatus) -> String {
    let rows: Vec<_> = status
        .environments
        .iter()
        .map(|e| {
            let commits: String = e
                .undeployed
                .iter()
                .map(|c| format!("<li>{}</li>", commit(c)))
                .collect();
            vec![
                data(&e.environment),
                data(&e.release_id),
                num(e.behind),
                format!("<ul>{commits}</ul>"),
            ]
        })
        .collect();
    let heads = [Msg::Environment, Msg::Current, Msg::Behind, Msg::Changes];
    html::table(lang, &heads, &rows, "sources")
}

/// `GET /sources/<app>`.
pub async fn page(State(ctx): State<Context>, viewer: Viewer, Path(app): Path<String>) -> Response {
    let lang = viewer.lang;
    let service = api::Sources(ctx.clone());
    let ask = GetSourceStatusRequest {
        app,
        max_commits: COMMITS,
    };
    let answer = call!(&viewer, service, get_source_status, ask);
    let status = answer.status.unwrap_or_default();
    let tip = status.tip.as_ref().map(commit).unwrap_or_default();
    let fetch = status
        .last_fetch
        .as_ref()
        .map(|f| html::time(f.at.as_ref()))
        .unwrap_or_else(|| "—".to_owned());
    let rows = [
        (Msg::App, data(&status.app)),
        (Msg::Repository, data(&status.repository)),
        (Msg::GitRef, data(&status.default_branch)),
        (Msg::Branch, tip),
        (Msg::LastFetch, fetch),
    ];
    let mut body = html::summary(lang, "source", &rows);
    body.push_str(&environments(lang, &status));
    html::page(&viewer, Msg::Source.text(lang), &body)
}
