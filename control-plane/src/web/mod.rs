//! The web listener: HTTPS with the control plane's server certificate (the
//! one in force: a reload applies to new connections), an optional client
//! certificate (an operator's, for [`certificate`] login), HTTP/1.1. It serves the browser dashboard (sessions
//! opened by one-time login links, see [`session`]) and the webhooks of git
//! servers and CI at `POST /hooks/<app>`, each delivery proved by the app's
//! secret ([`crate::triggers::webhook`]). Bodies are bounded by
//! [`MAX_BODY`]; connections by the shared HTTP server's limits.

mod approvals;
mod assets;
mod calls;
mod certificate;
mod charts;
mod deployment;
mod drift;
mod forms;
mod history;
mod hooks;
mod html;
mod i18n;
mod live;
mod overview;
mod pages;
mod release;
mod session;
mod source;
mod viewer;

use axum::{
    Router,
    body::Bytes,
    extract::{DefaultBodyLimit, Path, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use slipway_proto::tls::{self, TlsMaterial};
use tokio::net::TcpListener;

use crate::{
    Context,
    triggers::{sender::Headers, webhook},
};

/// The largest delivery body taken (push payloads list commits: a big push
/// is a few hundred KiB); a larger one is answered 413.
pub const MAX_BODY: usize = 4 << 20;

struct Request<'a>(&'a HeaderMap);

impl Headers for Request<'_> {
    fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).and_then(|v| v.to_str().ok())
    }
}

async fn hook(
    State(ctx): State<Context>,
    Path(app): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let answer = webhook::handle(&ctx, &app, &Request(&headers), &body).await;
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut text = answer.body.to_string();
    text.push('\n');
    (status, [(header::CONTENT_TYPE, "application/json")], text).into_response()
}

/// The routes of the web listener.
pub fn router(ctx: Context) -> Router {
    Router::new()
        .route("/hooks/{app}", post(hook))
        .merge(dashboard())
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(ctx)
}

/// The dashboard's routes.
fn dashboard() -> Router<Context> {
    Router::new()
        .route("/", get(overview::page))
        .route("/login/certificate", get(certificate::login))
        .route("/login/{token}", get(session::login))
        .route("/logout", post(session::logout))
        .route("/lang/{code}", get(session::language_switch))
        .route("/assets/{name}", get(assets::serve))
        .route("/deployments/{id}", get(deployment::page))
        .route("/deployments/{id}/events", get(live::events))
        .route("/deployments/{id}/cancel", post(deployment::cancel))
        .route("/deployments/{id}/approve", post(approvals::approve))
        .route("/deployments/{id}/reject", post(approvals::reject))
        .route("/history", get(history::page))
        .route("/history/export", get(history::export))
        .route("/rollbacks", get(pages::rollbacks))
        .route("/releases/{app}/{id}", get(release::page))
        .route("/releases/{app}/{id}/mark", post(release::mark))
        .route("/releases/{app}/{id}/pin", post(release::pin))
        .route("/sources/{app}", get(source::page))
        .route("/hosts", get(pages::hosts))
        .route("/hosts/{name}", get(pages::host))
        .route("/audit", get(pages::audit))
        .route("/deploy", get(forms::deploy_form))
        .route("/deploy/preview", post(forms::deploy_preview))
        .route("/deploy/confirm", post(forms::deploy_confirm))
        .route("/rollback", get(forms::rollback_form))
        .route("/rollback/preview", post(forms::rollback_preview))
        .route("/rollback/confirm", post(forms::rollback_confirm))
        .fallback(session::not_found)
        .layer(axum::middleware::from_fn(guard))
}

/// What every dashboard answer carries: no script, style or frame from
/// anywhere but the control plane, and the server's time to answer
/// (`Server-Timing`, read by the benchmark and the browser's tools).
async fn guard(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let started = std::time::Instant::now();
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    let fixed = [
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
        ),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "same-origin"),
    ];
    for (name, value) in fixed {
        headers.insert(name, header::HeaderValue::from_static(value));
    }
    let timing = format!("app;dur={:.2}", started.elapsed().as_secs_f64() * 1000.0);
    if let Ok(value) = header::HeaderValue::from_str(&timing) {
        headers.insert("server-timing", value);
    }
    response
}

/// Serves the web listener on `listener` with `material`'s certificate
/// until `shutdown` resolves.
pub async fn serve(
    ctx: Context,
    material: &TlsMaterial,
    listener: TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send,
) {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "web listener serving (dashboard at /, webhooks at /hooks/<app>)");
    }
    let config = tls::browser_server_config(material, ctx.revocations.clone());
    let connections = tls::Incoming::new(listener, config);
    let routes = router(ctx);
    // Each connection's handlers see the certificate its client presented.
    let per_connection = move |stream: &tls::ServerStream| {
        let der = tls::client_certificate(stream);
        routes
            .clone()
            .layer(axum::Extension(certificate::PeerCertificate(der)))
    };
    slipway_proto::observe::serve_per_connection("web", connections, per_connection, shutdown)
        .await;
}
