//! One signed POST to a receiver: a timeout on the whole request, no
//! redirects followed, and at most [`ERROR_BODY`] bytes of an error answer
//! read.

use std::time::Duration;

use slipway_proto::control::v1::Delivery;

use super::sign;

/// How long one request may take, connection included.
pub const TIMEOUT: Duration = Duration::from_secs(10);
/// Bytes of a refusal's body kept for the delivery log.
const ERROR_BODY: usize = 512;

/// The HTTP client of every notifier.
#[derive(Clone)]
pub struct Sender {
    client: reqwest::Client,
}

impl Default for Sender {
    fn default() -> Self {
        let client = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .connect_timeout(TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("slipway/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_default();
        Self { client }
    }
}

/// One notification ready to send.
pub struct Outgoing<'a> {
    pub url: &'a str,
    pub secret: &'a [u8],
    pub event: &'a str,
    pub key: &'a str,
    pub body: &'a [u8],
}

impl Sender {
    /// POSTs `out`, signed now; the attempt as the delivery log records it.
    pub async fn post(&self, out: &Outgoing<'_>, attempt: u32) -> Delivery {
        let now = slipway_proto::now();
        let signature = sign::signature(out.secret, now.seconds, out.body);
        let sent = self
            .client
            .post(out.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(sign::SIGNATURE, signature)
            .header(sign::IDEMPOTENCY_KEY, out.key)
            .header(sign::EVENT, out.event)
            .body(out.body.to_vec())
            .send()
            .await;
        let mut delivery = Delivery {
            time: Some(now),
            idempotency_key: out.key.to_owned(),
            event: out.event.to_owned(),
            attempt,
            ..Default::default()
        };
        match sent {
            Ok(response) => {
                let status = response.status();
                delivery.http_status = u32::from(status.as_u16());
                delivery.delivered = status.is_success();
                if !delivery.delivered {
                    delivery.error = format!("answered {status}: {}", head(response).await);
                }
            }
            Err(err) => delivery.error = slipway_proto::daemon::chain(&err),
        }
        delivery
    }
}

/// The first bytes of an answer's body, as text.
async fn head(mut response: reqwest::Response) -> String {
    let mut kept = Vec::new();
    while kept.len() < ERROR_BODY {
        match response.chunk().await {
            Ok(Some(chunk)) => kept.extend_from_slice(&chunk),
            _ => break,
        }
    }
    kept.truncate(ERROR_BODY);
    String::from_utf8_lossy(&kept).trim().to_owned()
}
