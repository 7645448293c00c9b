//! Who is looking: the session cookie (set by a one-time login link) read
//! into a [`Viewer`] with its operator identity, role, CSRF token and
//! language; login, logout and the language switch; the refusal pages.

use axum::{
    extract::{FromRequestParts, Path, State},
    http::{HeaderMap, HeaderValue, StatusCode, header, request::Parts},
    response::{IntoResponse, Redirect, Response},
};
use tonic::Code;

use super::viewer::Viewer;
use super::{
    html::{self, esc},
    i18n::{Lang, Msg, fill},
};
use crate::{Context, sessions, store::dashboard};

/// The session cookie's name.
pub const COOKIE: &str = "slipway_session";
/// The language cookie's name.
const LANG_COOKIE: &str = "slipway_lang";

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// The language of a request: the switch's cookie, else `Accept-Language`,
/// else English.
pub fn language(headers: &HeaderMap) -> Lang {
    cookie(headers, LANG_COOKIE)
        .and_then(Lang::from_code)
        .or_else(|| {
            headers
                .get(header::ACCEPT_LANGUAGE)
                .and_then(|v| v.to_str().ok())
                .and_then(Lang::from_accept)
        })
        .unwrap_or(Lang::En)
}

/// A refusal page with `status` and `msg` (and `detail`, HTML).
pub fn refusal(lang: Lang, status: StatusCode, msg: Msg, detail: &str) -> Response {
    let body = format!(
        "<p class=\"error\" role=\"alert\">{}</p>{detail}<p><a href=\"/\">{}</a></p>",
        msg.text(lang),
        Msg::Back.text(lang)
    );
    (status, html::bare(lang, msg.text(lang), &body)).into_response()
}

/// The answer to a call the domain refused: the status code that matches,
/// with the refusal's message for a person.
pub fn failed(lang: Lang, status: &tonic::Status) -> Response {
    let (code, msg) = match status.code() {
        Code::PermissionDenied => (StatusCode::FORBIDDEN, Msg::Forbidden),
        Code::Unauthenticated => (StatusCode::UNAUTHORIZED, Msg::LoginTitle),
        Code::NotFound => (StatusCode::NOT_FOUND, Msg::NotFound),
        Code::InvalidArgument => (StatusCode::BAD_REQUEST, Msg::BadRequest),
        Code::FailedPrecondition | Code::AlreadyExists | Code::Aborted => {
            (StatusCode::CONFLICT, Msg::Conflict)
        }
        _ => (StatusCode::INTERNAL_SERVER_ERROR, Msg::Failed),
    };
    let detail = format!("<p><bdi>{}</bdi></p>", esc(status.message()));
    refusal(lang, code, msg, &detail)
}

/// The page that says how to log in: the command that prints a link, or
/// the certificate the browser holds.
pub fn sign_in(lang: Lang) -> Response {
    let cmd = "<code>slipctl dashboard login</code>";
    let body = format!(
        "<p>{}</p><p>{}</p><p><a class=\"button\" href=\"/login/certificate\">{}</a></p>",
        fill(Msg::LoginHelp.text(lang), &[("cmd", cmd)]),
        Msg::CertificateLoginHelp.text(lang),
        Msg::CertificateLogin.text(lang),
    );
    (
        StatusCode::UNAUTHORIZED,
        html::bare(lang, Msg::LoginTitle.text(lang), &body),
    )
        .into_response()
}

impl FromRequestParts<Context> for Viewer {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, ctx: &Context) -> Result<Self, Response> {
        let lang = language(&parts.headers);
        let Some(value) = cookie(&parts.headers, COOKIE) else {
            return Err(sign_in(lang));
        };
        match sessions::authenticate(&ctx.store, value) {
            Ok(Some(session)) if sessions::revoked(&session, &ctx.revocations).is_some() => {
                tracing::warn!(operator = %session.name, id = %session.id, "a dashboard session's certificate is revoked");
                Err(sign_in(lang))
            }
            Ok(Some(session)) => Ok(Viewer {
                caller: sessions::caller(&session),
                session,
                lang,
            }),
            Ok(None) => Err(sign_in(lang)),
            Err(err) => {
                tracing::error!(error = %err, "reading a dashboard session failed");
                Err(refusal(
                    lang,
                    StatusCode::INTERNAL_SERVER_ERROR,
                    Msg::Failed,
                    "",
                ))
            }
        }
    }
}

impl Viewer {
    /// The refusal of a write whose form does not carry this session's
    /// CSRF token; None when it does.
    pub fn csrf_refusal(&self, token: Option<&str>) -> Option<Response> {
        let expected = self.session.csrf.as_bytes();
        let ok = token.is_some_and(|t| {
            t.len() == expected.len()
                && t.bytes()
                    .zip(expected)
                    .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                    == 0
        });
        (!ok).then(|| refusal(self.lang, StatusCode::FORBIDDEN, Msg::CsrfRefused, ""))
    }
}

fn set_cookie(value: &str, max_age: u64) -> HeaderValue {
    let cookie =
        format!("{COOKIE}={value}; Path=/; Max-Age={max_age}; HttpOnly; Secure; SameSite=Strict");
    HeaderValue::from_str(&cookie).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// The page that sets the session cookie `value` and goes on to the
/// overview.
pub fn signed_in(lang: Lang, value: &str) -> Response {
    // A page rather than a redirect: the cookie is SameSite=Strict, and a
    // navigation from this same-site page carries it.
    let body = format!(
        "<meta http-equiv=\"refresh\" content=\"0;url=/\"><p><a href=\"/\">{}</a></p>",
        Msg::SignedIn.text(lang)
    );
    let mut response = html::bare(lang, Msg::LoginTitle.text(lang), &body);
    let cookie = set_cookie(value, sessions::SESSION_TTL.as_secs());
    response.headers_mut().insert(header::SET_COOKIE, cookie);
    response
}

/// `GET /login/<token>`: opens a one-time link; a second use is refused.
pub async fn login(
    State(ctx): State<Context>,
    Path(token): Path<String>,
    headers: HeaderMap,
) -> Response {
    let lang = language(&headers);
    match sessions::redeem(&ctx.store, &token).await {
        Ok((session, value)) => {
            tracing::info!(operator = %session.name, role = %session.role, id = %session.id, "dashboard session opened");
            signed_in(lang, &value)
        }
        Err(sessions::LoginError::Refused(why)) => {
            tracing::warn!(reason = ?why, "a login link was refused");
            let msg = match why {
                sessions::Refused::Tampered => Msg::LinkTampered,
                sessions::Refused::Expired => Msg::LinkExpired,
                sessions::Refused::Used => Msg::LinkUsed,
            };
            let cmd = "<code>slipctl dashboard login</code>";
            let detail = format!("<p>{}</p>", fill(msg.text(lang), &[("cmd", cmd)]));
            refusal(lang, StatusCode::UNAUTHORIZED, Msg::LoginRefused, &detail)
        }
        Err(sessions::LoginError::Failed(err)) => {
            tracing::error!(error = %err, "opening a dashboard session failed");
            failed(lang, &err.into())
        }
    }
}

/// The fields of a form that only carries its CSRF token.
#[derive(Debug, serde::Deserialize)]
pub struct CsrfOnly {
    csrf: Option<String>,
}

/// `POST /logout`: ends the session.
pub async fn logout(
    State(ctx): State<Context>,
    viewer: Viewer,
    axum::Form(form): axum::Form<CsrfOnly>,
) -> Response {
    if let Some(refused) = viewer.csrf_refusal(form.csrf.as_deref()) {
        return refused;
    }
    if let Err(err) = ctx
        .store
        .commit(vec![dashboard::delete_session(&viewer.session.id)])
        .await
    {
        tracing::error!(error = %err, "ending a dashboard session failed");
    }
    let mut response = Redirect::to("/").into_response();
    response
        .headers_mut()
        .insert(header::SET_COOKIE, set_cookie("", 0));
    response
}

/// `GET /lang/<code>`: the language switch, remembered in a cookie.
pub async fn language_switch(Path(code): Path<String>, headers: HeaderMap) -> Response {
    let lang = Lang::from_code(&code).unwrap_or(Lang::En);
    let back = headers
        .get(header::REFERER)
        .and_then(|v| v.to_str().ok())
        .and_then(|r| {
            r.find("://")
                .and_then(|i| r[i + 3..].find('/').map(|j| &r[i + 3 + j..]))
        })
        .filter(|path| path.starts_with('/') && !path.starts_with("//"))
        .filter(|path| !path.starts_with("/login"))
        .unwrap_or("/")
        .to_owned();
    let mut response = Redirect::to(&back).into_response();
    let cookie = format!(
        "{LANG_COOKIE}={}; Path=/; Max-Age=31536000; Secure; SameSite=Strict",
        lang.code()
    );
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

/// Any other path.
pub async fn not_found(headers: HeaderMap) -> Response {
    refusal(language(&headers), StatusCode::NOT_FOUND, Msg::NotFound, "")
}
