//! The history page: deployments newest first, filtered by environment,
//! app, status, kind, author, text (commit, ref, release, message) and a
//! date range, a page at a time; the same filters export CSV or JSON.

use std::fmt::Write as _;

use axum::{
    extract::{Query, State},
    http::header,
    response::{IntoResponse, Response},
};
use slipway_proto::control::v1::{
    Deployment, DeploymentKind, DeploymentStatus, ListDeploymentsRequest,
    deployment_service_server::DeploymentService as _,
};

use super::{
    calls::{Services, call},
    html::{self, data, esc, link},
    i18n::{Lang, Msg},
    viewer::Viewer,
};
use crate::Context;

/// Rows on a page.
const PAGE: u32 = 50;
/// Rows in an export, at most (a page of the API at a time).
pub const EXPORT_MAX: usize = 10_000;

/// The filters, as the form sends them.
#[derive(Debug, Default, serde::Deserialize)]
pub struct Filters {
    #[serde(default)]
    env: String,
    #[serde(default)]
    app: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    author: String,
    #[serde(default)]
    text: String,
    #[serde(default)]
    since: String,
    #[serde(default)]
    until: String,
    #[serde(default)]
    page: String,
    #[serde(default)]
    format: String,
}

fn day(text: &str, end: bool) -> Option<pbjson_types::Timestamp> {
    let date = chrono::NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d").ok()?;
    let date = if end { date.succ_opt()? } else { date };
    let seconds = date.and_hms_opt(0, 0, 0)?.and_utc().timestamp();
    Some(pbjson_types::Timestamp { seconds, nanos: 0 })
}

const STATUSES: [DeploymentStatus; 6] = [
    DeploymentStatus::Running,
    DeploymentStatus::Succeeded,
    DeploymentStatus::Failed,
    DeploymentStatus::Cancelled,
    DeploymentStatus::Interrupted,
    DeploymentStatus::Queued,
];

fn status_code(s: DeploymentStatus) -> String {
    s.as_str_name()
        .trim_start_matches("DEPLOYMENT_STATUS_")
        .to_ascii_lowercase()
}

impl Filters {
    fn request(&self, page_token: String, page_size: u32) -> ListDeploymentsRequest {
        let status = STATUSES
            .into_iter()
            .find(|s| status_code(*s) == self.status)
            .unwrap_or_default();
        let kind = match self.kind.as_str() {
            "deploy" => DeploymentKind::Deploy,
            "rollback" => DeploymentKind::Rollback,
            _ => DeploymentKind::Unspecified,
        };
        ListDeploymentsRequest {
            app: self.app.trim().to_owned(),
            environment: self.env.trim().to_owned(),
            status: status.into(),
            page_size,
            page_token,
            author: self.author.trim().to_owned(),
            text: self.text.trim().to_owned(),
            since: day(&self.since, false),
            until: day(&self.until, true),
            kind: kind.into(),
        }
    }

    /// The query string of these filters (for the next page and exports).
    fn query(&self) -> String {
        let pairs = [
            ("env", &self.env),
            ("app", &self.app),
            ("status", &self.status),
            ("kind", &self.kind),
            ("author", &self.author),
            ("text", &self.text),
            ("since", &self.since),
            ("until", &self.until),
        ];
        let mut out = form_urlencoded::Serializer::new(String::new());
        for (k, v) in pairs.iter().filter(|(_, v)| !v.is_empty()) {
            out.append_pair(k, v);
        }
        out.finish()
    }
}

fn input(lang: Lang, name: &str, label: Msg, value: &str, kind: &str) -> String {
    format!(
        "<label>{} <input type=\"{kind}\" name=\"{name}\" value=\"{}\" maxlength=\"200\" dir=\"auto\"></label>",
        label.text(lang),
        esc(value)
    )
}

fn select(lang: Lang, name: &str, label: Msg, value: &str, options: &[(String, &str)]) -> String {
    let mut out = format!(
        "<label>{} <select name=\"{name}\"><option value=\"\">{}</option>",
        label.text(lang),
        Msg::Any.text(lang)
    );
    for (code, text) in options {
        let selected = if code == value { " selected" } else { "" };
        let _ = write!(out, "<option value=\"{code}\"{selected}>{text}</option>");
    }
    out.push_str("</select></label>");
    out
}

fn form(lang: Lang, f: &Filters) -> String {
    let statuses: Vec<_> = STATUSES
        .iter()
        .map(|s| (status_code(*s), html::status_msg(*s).text(lang)))
        .collect();
    let kinds = [
        ("deploy".to_owned(), Msg::KindDeploy.text(lang)),
        ("rollback".to_owned(), Msg::KindRollback.text(lang)),
    ];
    format!(
        "<form method=\"get\" action=\"/history\" class=\"filters\">{}{}{}{}{}{}{}{}<button type=\"submit\">{}</button></form>",
        input(lang, "env", Msg::Environment, &f.env, "text"),
        input(lang, "app", Msg::App, &f.app, "text"),
        select(lang, "status", Msg::Status, &f.status, &statuses),
        select(lang, "kind", Msg::Kind, &f.kind, &kinds),
        input(lang, "author", Msg::Author, &f.author, "text"),
        input(lang, "text", Msg::Text, &f.text, "search"),
        input(lang, "since", Msg::Since, &f.since, "date"),
        input(lang, "until", Msg::Until, &f.until, "date"),
        Msg::Filter.text(lang),
    )
}

fn row(lang: Lang, d: &Deployment) -> Vec<String> {
    vec![
        link(&format!("/deployments/{}", d.id), &data(&d.id)),
        data(&d.app),
        data(&d.environment),
        link(
            &format!("/releases/{}/{}", d.app, d.release),
            &data(&d.release),
        ),
        html::kind(lang, d.kind).to_owned(),
        html::status(lang, d.status),
        data(&d.author),
        html::time(d.started_at.as_ref()),
        html::duration(d.duration_ms),
        data(&d.message),
    ]
}

/// `GET /history`.
pub async fn page(
    State(ctx): State<Context>,
    viewer: Viewer,
    Query(filters): Query<Filters>,
) -> Response {
    let lang = viewer.lang;
    let services = Services::new(&ctx);
    let request = filters.request(filters.page.clone(), PAGE);
    let answer = call!(&viewer, services.deployments, list_deployments, request);
    let query = filters.query();
    let mut body = form(lang, &filters);
    let _ = write!(
        body,
        "<p class=\"exports\"><a href=\"/history/export?{q}&amp;format=csv\" download>{}</a> <a href=\"/history/export?{q}&amp;format=json\" download>{}</a></p>",
        Msg::ExportCsv.text(lang),
        Msg::ExportJson.text(lang),
        q = esc(&query),
    );
    if answer.deployments.is_empty() {
        let _ = write!(
            body,
            "<p class=\"empty\">{}</p>",
            Msg::NoDeployments.text(lang)
        );
    } else {
        let rows: Vec<_> = answer.deployments.iter().map(|d| row(lang, d)).collect();
        let heads = [
            Msg::Deployment,
            Msg::App,
            Msg::Environment,
            Msg::Release,
            Msg::Kind,
            Msg::Status,
            Msg::Author,
            Msg::Started,
            Msg::Duration,
            Msg::Message,
        ];
        body.push_str(&html::table(lang, &heads, &rows, "history"));
    }
    if !answer.next_page_token.is_empty() {
        let mut next = form_urlencoded::Serializer::new(query);
        next.append_pair("page", &answer.next_page_token);
        let _ = write!(
            body,
            "<p><a rel=\"next\" href=\"/history?{}\">{}</a></p>",
            esc(&next.finish()),
            Msg::Next.text(lang)
        );
    }
    html::page(&viewer, Msg::History.text(lang), &body)
}

fn csv_field(text: &str) -> String {
    // A leading =, +, - or @ would be a formula in a spreadsheet.
    let text = match text.chars().next() {
        Some('=' | '+' | '-' | '@') => format!("'{text}"),
        _ => text.to_owned(),
    };
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text
    }
}

fn rfc3339(ts: Option<&pbjson_types::Timestamp>) -> String {
    ts.and_then(|t| chrono::DateTime::from_timestamp(t.seconds, 0))
        .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default()
}

fn csv(deployments: &[Deployment]) -> String {
    let mut out = String::from(
        "id,app,environment,release,kind,status,author,started,finished,duration_ms,commit,message\n",
    );
    for d in deployments {
        let fields = [
            d.id.clone(),
            d.app.clone(),
            d.environment.clone(),
            d.release.clone(),
            html::kind(Lang::En, d.kind).to_owned(),
            status_code(d.status()),
            d.author.clone(),
            rfc3339(d.started_at.as_ref()),
            rfc3339(d.finished_at.as_ref()),
            d.duration_ms.to_string(),
            d.commit.clone(),
            d.message.clone(),
        ];
        let line: Vec<_> = fields.iter().map(|f| csv_field(f)).collect();
        out.push_str(&line.join(","));
        out.push('\n');
    }
    out
}

/// `GET /history/export?format=csv|json`: every deployment the filters
/// match, up to [`EXPORT_MAX`].
pub async fn export(
    State(ctx): State<Context>,
    viewer: Viewer,
    Query(filters): Query<Filters>,
) -> Response {
    let services = Services::new(&ctx);
    let mut all = Vec::new();
    let mut token = String::new();
    loop {
        let request = filters.request(token, 500);
        let answer = call!(&viewer, services.deployments, list_deployments, request);
        all.extend(answer.deployments);
        token = answer.next_page_token;
        if token.is_empty() || all.len() >= EXPORT_MAX {
            break;
        }
    }
    all.truncate(EXPORT_MAX);
    let (body, kind, name) = if filters.format == "json" {
        let body = serde_json::to_string_pretty(&all).unwrap_or_default();
        (body, "application/json", "deployments.json")
    } else {
        (csv(&all), "text/csv; charset=utf-8", "deployments.csv")
    };
    let disposition = format!("attachment; filename=\"{name}\"");
    (
        [
            (header::CONTENT_TYPE, kind.to_owned()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes_and_defuses() {
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("=cmd()"), "'=cmd()");
        assert_eq!(csv_field("plain"), "plain");
    }

    #[test]
    fn dates_cover_whole_days() {
        let since = day("2026-01-02", false).unwrap();
        let until = day("2026-01-02", true).unwrap();
        assert_eq!(until.seconds - since.seconds, 86_400);
        assert!(day("yesterday", false).is_none());
    }
}
