//! HTML building blocks of the dashboard: escaping, the page layout (skip
//! link, navigation, language switch, logout), times, statuses and values
//! kept left to right inside right-to-left text.

use std::fmt::Write as _;

use axum::response::{Html, IntoResponse, Response};
use pbjson_types::Timestamp;
use slipway_proto::{
    control::v1::{DeploymentKind, DeploymentStatus},
    identity::Role,
};

use super::{
    i18n::{Lang, Msg},
    viewer::Viewer,
};

/// `text` with the five HTML-special characters escaped.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A value from the data (a name, an id, a number), isolated and kept
/// left to right inside text of either direction.
pub fn data(text: &str) -> String {
    format!("<bdi dir=\"ltr\">{}</bdi>", esc(text))
}

/// A number, kept left to right.
pub fn num(n: impl std::fmt::Display) -> String {
    format!("<bdi dir=\"ltr\">{n}</bdi>")
}

/// A `<time>` element: UTC in the text and on hover; the page's script
/// rewrites the text in the viewer's zone.
pub fn time(ts: Option<&Timestamp>) -> String {
    let Some(ts) = ts.filter(|t| t.seconds > 0) else {
        return "—".to_owned();
    };
    let Some(at) = chrono::DateTime::from_timestamp(ts.seconds, 0) else {
        return "—".to_owned();
    };
    let iso = at.format("%Y-%m-%dT%H:%M:%SZ");
    let utc = at.format("%Y-%m-%d %H:%M:%S UTC");
    format!("<time datetime=\"{iso}\" title=\"{utc}\" dir=\"ltr\">{utc}</time>")
}

/// A duration in milliseconds, as seconds.
pub fn duration(ms: u64) -> String {
    match ms {
        0 => "—".to_owned(),
        ms => num(format!("{:.1} s", ms as f64 / 1000.0)),
    }
}

/// A link to `href` with `text` (HTML already).
pub fn link(href: &str, text: &str) -> String {
    format!("<a href=\"{}\">{text}</a>", esc(href))
}

/// The message of a deployment status.
pub fn status_msg(status: DeploymentStatus) -> Msg {
    use DeploymentStatus as S;
    match status {
        S::Pending => Msg::StatusPending,
        S::Running => Msg::StatusRunning,
        S::Succeeded => Msg::StatusSucceeded,
        S::Failed => Msg::StatusFailed,
        S::Cancelled => Msg::StatusCancelled,
        S::Interrupted => Msg::StatusInterrupted,
        S::Queued => Msg::StatusQueued,
        S::Unspecified => Msg::StatusUnknown,
        _ => Msg::StatusWaiting,
    }
}

/// A status badge.
pub fn status(lang: Lang, status: i32) -> String {
    let status = DeploymentStatus::try_from(status).unwrap_or_default();
    let class = status
        .as_str_name()
        .trim_start_matches("DEPLOYMENT_STATUS_");
    format!(
        "<span class=\"badge s-{}\">{}</span>",
        class.to_ascii_lowercase(),
        status_msg(status).text(lang)
    )
}

/// The name of a deployment kind.
pub fn kind(lang: Lang, kind: i32) -> &'static str {
    match DeploymentKind::try_from(kind).unwrap_or_default() {
        DeploymentKind::Rollback => Msg::KindRollback.text(lang),
        _ => Msg::KindDeploy.text(lang),
    }
}

/// A progress bar with its percentage; `live` (a deployment's id and its
/// last event) makes the page's script follow it from there.
pub fn progress(percent: u32, live: Option<(&str, u64)>) -> String {
    let live = live
        .map(|(id, after)| format!(" data-live=\"{}\" data-after=\"{after}\"", esc(id)))
        .unwrap_or_default();
    format!(
        "<span class=\"progress\"{live}><progress max=\"100\" value=\"{percent}\">{percent}%</progress> <bdi dir=\"ltr\" class=\"pct\">{percent}%</bdi></span>"
    )
}

/// A table with headings `heads` and `rows` (each its cells' HTML).
pub fn table(lang: Lang, heads: &[Msg], rows: &[Vec<String>], class: &str) -> String {
    let mut out =
        format!("<div class=\"scroll\" tabindex=\"0\"><table class=\"{class}\"><thead><tr>");
    for head in heads {
        let _ = write!(out, "<th scope=\"col\">{}</th>", head.text(lang));
    }
    out.push_str("</tr></thead><tbody>");
    for row in rows {
        out.push_str("<tr>");
        for cell in row {
            let _ = write!(out, "<td>{cell}</td>");
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table></div>");
    out
}

/// A definition list of `rows` (label, value HTML) with the element id `id`.
pub fn summary(lang: Lang, id: &str, rows: &[(Msg, String)]) -> String {
    let mut out = format!("<dl class=\"summary\" id=\"{id}\">");
    for (label, value) in rows {
        let class = if *label == Msg::Error {
            " class=\"error\""
        } else {
            ""
        };
        let _ = write!(
            out,
            "<div><dt>{}</dt><dd{class}>{value}</dd></div>",
            label.text(lang)
        );
    }
    out.push_str("</dl>");
    out
}

/// A hidden CSRF field for a write form.
pub fn csrf(viewer: &Viewer) -> String {
    format!(
        "<input type=\"hidden\" name=\"csrf\" value=\"{}\">",
        esc(&viewer.session.csrf)
    )
}

fn nav(viewer: &Viewer) -> String {
    let lang = viewer.lang;
    let mut items = vec![
        ("/", Msg::Overview),
        ("/history", Msg::History),
        ("/rollbacks", Msg::Rollbacks),
        ("/hosts", Msg::Hosts),
    ];
    if viewer.caller.role >= Role::Admin {
        items.push(("/audit", Msg::Audit));
    }
    let mut out = format!("<nav aria-label=\"{}\"><ul>", Msg::Navigation.text(lang));
    for (href, msg) in items {
        let _ = write!(out, "<li><a href=\"{href}\">{}</a></li>", msg.text(lang));
    }
    out.push_str("</ul></nav>");
    out
}

fn role(lang: Lang, role: Role) -> &'static str {
    match role {
        Role::Viewer => Msg::Viewer.text(lang),
        Role::Deployer => Msg::Deployer.text(lang),
        Role::Admin => Msg::Admin.text(lang),
    }
}

fn switch(lang: Lang) -> String {
    format!(
        "<span class=\"langs\" aria-label=\"{}\"><a href=\"/lang/en\" lang=\"en\" hreflang=\"en\">{}</a> · <a href=\"/lang/ar\" lang=\"ar\" hreflang=\"ar\">{}</a></span>",
        Msg::Language.text(lang),
        Msg::English.text(Lang::En),
        Msg::Arabic.text(Lang::Ar),
    )
}

fn user(viewer: &Viewer) -> String {
    let lang = viewer.lang;
    format!(
        "<form method=\"post\" action=\"/logout\" class=\"user\">{} {} ({}) {}<button type=\"submit\">{}</button></form>",
        Msg::SignedInAs.text(lang),
        data(&viewer.caller.name),
        role(lang, viewer.caller.role),
        csrf(viewer),
        Msg::Logout.text(lang),
    )
}

/// A whole page for a signed-in viewer.
pub fn page(viewer: &Viewer, title: &str, body: &str) -> Response {
    let header = format!(
        "<header><a class=\"brand\" href=\"/\">{}</a>{}{}{}</header>",
        Msg::Brand.text(viewer.lang),
        nav(viewer),
        switch(viewer.lang),
        user(viewer)
    );
    document(viewer.lang, title, &header, body)
}

/// A page with no session (sign in, refusals).
pub fn bare(lang: Lang, title: &str, body: &str) -> Response {
    let header = format!(
        "<header><span class=\"brand\">{}</span>{}</header>",
        Msg::Brand.text(lang),
        switch(lang)
    );
    document(lang, title, &header, body)
}

fn document(lang: Lang, title: &str, header: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html><html lang=\"{code}\" dir=\"{dir}\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<title>{title} · {brand}</title><link rel=\"stylesheet\" href=\"/assets/app.css\">\
<script src=\"/assets/app.js\" defer></script></head><body>\
<a class=\"skip\" href=\"#main\">{skip}</a>{header}<main id=\"main\"><h1>{title}</h1>{body}</main></body></html>",
        title = esc(title),
        code = lang.code(),
        dir = lang.dir(),
        brand = Msg::Brand.text(lang),
        skip = Msg::SkipToContent.text(lang),
    );
    Html(html).into_response()
}
