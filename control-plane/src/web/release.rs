//! The release page: commit, author, message, file changes with +/- lines
//! and its mark; a deployer marks it good or bad (the operator API's
//! MarkRelease, audited) and pins it on an environment's hosts.

use std::fmt::Write as _;

use axum::{
    Form,
    extract::{Path, State},
    response::{IntoResponse, Redirect, Response},
};
use slipway_proto::{
    control::v1::{
        ChangeKind, GetReleaseRequest, MarkReleaseRequest, PinReleaseRequest, ReleaseMark,
        release_service_server::ReleaseService as _,
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

fn mark_name(lang: Lang, mark: ReleaseMark) -> String {
    match mark {
        ReleaseMark::Good => Msg::MarkGood.text(lang).to_owned(),
        ReleaseMark::Bad => Msg::MarkBad.text(lang).to_owned(),
        _ => Msg::None.text(lang).to_owned(),
    }
}

fn mark_form(viewer: &Viewer, app: &str, id: &str) -> String {
    if viewer.caller.role < Role::Deployer {
        return String::new();
    }
    let lang = viewer.lang;
    format!(
        "<h2>{marks}</h2><form method=\"post\" action=\"/releases/{app}/{id}/mark\" class=\"mark\">{csrf}<label for=\"mark\">{marks}</label> <select id=\"mark\" name=\"mark\"><option value=\"good\">{good}</option><option value=\"bad\">{bad}</option><option value=\"\">{none}</option></select> <label for=\"reason\">{reason}</label> <input id=\"reason\" name=\"reason\" maxlength=\"200\" dir=\"auto\"> <button type=\"submit\">{marks}</button></form>\
<h2>{pin}</h2><form method=\"post\" action=\"/releases/{app}/{id}/pin\" class=\"pin\">{csrf}<label for=\"env\">{env}</label> <input id=\"env\" name=\"env\" maxlength=\"64\" dir=\"ltr\"> <label><input type=\"checkbox\" name=\"pinned\" value=\"true\" checked> {pin}</label> <button type=\"submit\">{pin}</button></form>",
        app = esc(app),
        id = esc(id),
        csrf = html::csrf(viewer),
        marks = Msg::Marks.text(lang),
        good = Msg::MarkGood.text(lang),
        bad = Msg::MarkBad.text(lang),
        none = Msg::None.text(lang),
        reason = Msg::Reason.text(lang),
        pin = Msg::Pin.text(lang),
        env = Msg::Environment.text(lang),
    )
}

fn change(lang: Lang, kind: i32) -> &'static str {
    match ChangeKind::try_from(kind).unwrap_or_default() {
        ChangeKind::Added => Msg::Added.text(lang),
        ChangeKind::Deleted => Msg::Deleted.text(lang),
        _ => Msg::Modified.text(lang),
    }
}

/// `GET /releases/<app>/<id>`.
pub async fn page(
    State(ctx): State<Context>,
    viewer: Viewer,
    Path((app, id)): Path<(String, String)>,
) -> Response {
    let lang = viewer.lang;
    let services = Services::new(&ctx);
    let request = GetReleaseRequest {
        app,
        id,
        include_manifest: false,
    };
    let answer = call!(&viewer, services.releases, get_release, request);
    let r = answer.release.unwrap_or_default();
    let rows = [
        (Msg::Release, data(&r.id)),
        (Msg::App, data(&r.app)),
        (Msg::Commit, format!("<code>{}</code>", esc(&r.commit))),
        (Msg::GitRef, data(&r.git_ref)),
        (Msg::Author, data(&r.author)),
        (Msg::Message, data(&r.message)),
        (Msg::Started, html::time(r.created_at.as_ref())),
        (Msg::Files, num(r.file_count)),
        (Msg::Marks, mark_name(lang, r.mark())),
    ];
    let mut body = html::summary(lang, "release", &rows);
    let changes: Vec<_> = r
        .changes
        .iter()
        .map(|c| {
            vec![
                data(&c.path),
                change(lang, c.kind).to_owned(),
                num(format!("+{} −{}", c.lines_added, c.lines_removed)),
            ]
        })
        .collect();
    let _ = write!(body, "<h2>{}</h2>", Msg::Changes.text(lang));
    body.push_str(&html::table(
        lang,
        &[Msg::Path, Msg::Kind, Msg::Lines],
        &changes,
        "changes",
    ));
    body.push_str(&mark_form(&viewer, &r.app, &r.id));
    html::page(&viewer, Msg::Release.text(lang), &body)
}

/// The mark form's fields.
#[derive(Debug, serde::Deserialize)]
pub struct MarkForm {
    csrf: Option<String>,
    #[serde(default)]
    mark: String,
    #[serde(default)]
    reason: String,
}

/// `POST /releases/<app>/<id>/mark`.
pub async fn mark(
    State(ctx): State<Context>,
    viewer: Viewer,
    Path((app, id)): Path<(String, String)>,
    Form(form): Form<MarkForm>,
) -> Response {
    if let Some(refusal) = viewer.csrf_refusal(form.csrf.as_deref()) {
        return refusal;
    }
    let mark = match form.mark.as_str() {
        "good" => ReleaseMark::Good,
        "bad" => ReleaseMark::Bad,
        _ => ReleaseMark::Unspecified,
    };
    let request = MarkReleaseRequest {
        app: app.clone(),
        release_id: id.clone(),
        mark: mark.into(),
        reason: form.reason,
    };
    let answer = call!(&viewer, Services::new(&ctx).releases, mark_release, request);
    let release = answer.release.unwrap_or_default();
    Redirect::to(&format!("/releases/{}/{}", release.app, release.id)).into_response()
}

/// The pin form's fields.
#[derive(Debug, serde::Deserialize)]
pub struct PinForm {
    csrf: Option<String>,
    #[serde(default)]
    env: String,
    #[serde(default)]
    pinned: String,
}

/// `POST /releases/<app>/<id>/pin`: keeps the release on the
/// environment's hosts whatever the retention (or lets it go).
pub async fn pin(
    State(ctx): State<Context>,
    viewer: Viewer,
    Path((app, id)): Path<(String, String)>,
    Form(form): Form<PinForm>,
) -> Response {
    if let Some(refusal) = viewer.csrf_refusal(form.csrf.as_deref()) {
        return refusal;
    }
    let request = PinReleaseRequest {
        app,
        id,
        environment: form.env,
        pinned: form.pinned == "true",
    };
    let answer = call!(&viewer, Services::new(&ctx).releases, pin_release, request);
    let lang = viewer.lang;
    let rows: Vec<_> = answer
        .hosts
        .iter()
        .map(|h| vec![data(&h.host), data(&h.error)])
        .collect();
    let body = html::table(lang, &[Msg::Host, Msg::Error], &rows, "pinned");
    html::page(&viewer, Msg::Pin.text(lang), &body)
}
