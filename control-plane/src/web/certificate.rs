//! Login with the operator certificate the browser holds: the web listener
//! asks for an optional client certificate (the operator API's CA and
//! revocation list; a revoked or foreign one fails the handshake), each
//! connection hands its certificate to the handlers as a [`PeerCertificate`],
//! and `GET /login/certificate` opens a session bound to its identity and
//! role, exactly as a one-time link does.

use axum::{
    Extension,
    extract::State,
    http::{HeaderMap, StatusCode},
    response::Response,
};
use slipway_proto::identity::Identity;
use tonic::Code;

use super::{
    html::esc,
    i18n::{Msg, fill},
    session::{failed, language, refusal, signed_in},
};
use crate::{Context, audit, sessions};

/// The certificate the connection's client presented (DER), if any.
#[derive(Clone, Debug, Default)]
pub struct PeerCertificate(pub Option<Vec<u8>>);

/// `GET /login/certificate`: a session for the operator whose certificate
/// the browser presented; a page saying how to log in when there is none.
pub async fn login(
    State(ctx): State<Context>,
    presented: Option<Extension<PeerCertificate>>,
    headers: HeaderMap,
) -> Response {
    let lang = language(&headers);
    let cmd = "<code>slipctl dashboard login</code>";
    let Some(der) = presented.and_then(|Extension(PeerCertificate(der))| der) else {
        let detail = format!(
            "<p>{}</p>",
            fill(Msg::NoCertificate.text(lang), &[("cmd", cmd)])
        );
        return refusal(lang, StatusCode::UNAUTHORIZED, Msg::LoginTitle, &detail);
    };
    // The handshake checked it already; a revocation since then counts too.
    if let Some(why) = ctx.revocations.check(&der) {
        tracing::warn!(reason = %why, "a revoked certificate asked for a dashboard session");
        let detail = format!("<p><bdi>{}</bdi></p>", esc(&why));
        return refusal(lang, StatusCode::FORBIDDEN, Msg::Forbidden, &detail);
    }
    let (name, role) = match Identity::from_der(&der) {
        Ok(Identity::Operator { name, role }) => (name, role),
        Ok(other) => return not_operator(lang, &other.uri()),
        Err(err) => return not_operator(lang, &err.to_string()),
    };
    let identity = sessions::Identity {
        name,
        role: role.to_string(),
        certificate_der: der,
    };
    match sessions::open(&ctx.store, &identity, Vec::new()).await {
        Ok((session, cookie)) => {
            tracing::info!(operator = %session.name, role = %session.role, id = %session.id, "dashboard session opened with a browser certificate");
            let actor = audit::Actor {
                principal: sessions::caller(&session).principal(),
                role: session.role.clone(),
                certificate_sha256: session.certificate_sha256.clone(),
            };
            let recorded = audit::record(
                &ctx.store,
                &actor,
                "dashboard/LoginWithCertificate",
                &session.id,
                Code::Ok,
                "a dashboard session was opened with a browser certificate",
            )
            .await;
            if let Err(err) = recorded {
                tracing::error!(error = %err, "recording a certificate login failed");
            }
            signed_in(lang, &cookie)
        }
        Err(err) => failed(lang, &err.into()),
    }
}

fn not_operator(lang: super::i18n::Lang, who: &str) -> Response {
    let who = format!("<bdi>{}</bdi>", esc(who));
    let detail = format!(
        "<p>{}</p>",
        fill(Msg::NotOperator.text(lang), &[("who", &who)])
    );
    refusal(lang, StatusCode::FORBIDDEN, Msg::Forbidden, &detail)
}
