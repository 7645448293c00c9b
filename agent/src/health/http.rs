//! The HTTP GET of a health check, with a maintained client (reqwest on
//! rustls with ring): http and https (verified against the system's CA
//! certificates, which `SSL_CERT_FILE` / `SSL_CERT_DIR` may point
//! elsewhere), redirects, chunked bodies and a timeout per request.

use std::{sync::OnceLock, time::Duration};

use reqwest::{Client, redirect::Policy};

/// Redirects followed at most.
const MAX_REDIRECTS: usize = 10;
/// Bytes of a failing answer's body read at most.
const MAX_BODY: usize = 64 * 1024;
/// Bytes of a body quoted in messages at most.
const MAX_QUOTE: usize = 512;

/// The client every check of this process uses, made on first use.
pub fn shared() -> Result<&'static Client, String> {
    static CLIENT: OnceLock<Result<Client, String>> = OnceLock::new();
    CLIENT
        .get_or_init(|| client(&[]))
        .as_ref()
        .map_err(Clone::clone)
}

/// A client that also trusts the PEM certificates in `roots`.
pub fn client(roots: &[&[u8]]) -> Result<Client, String> {
    let mut builder = Client::builder()
        .redirect(Policy::limited(MAX_REDIRECTS))
        // A fresh connection per check: a kept one could reach the process
        // an after-activate hook just replaced.
        .pool_max_idle_per_host(0)
        // Checks go to the app itself, never through the agent's proxy.
        .no_proxy()
        .user_agent(concat!("slipway-agent/", env!("CARGO_PKG_VERSION")));
    for pem in roots {
        let root = reqwest::Certificate::from_pem(pem)
            .map_err(|err| format!("not a PEM certificate: {err}"))?;
        builder = builder.add_root_certificate(root);
    }
    builder
        .build()
        .map_err(|err| format!("cannot make the HTTP client: {}", chain(&err)))
}

/// One GET of `url` within `timeout`; Ok with the status line for 2xx (after
/// redirects), Err with what went wrong otherwise.
pub async fn get(client: &Client, url: &str, timeout: Duration) -> Result<String, String> {
    request(client, reqwest::Method::GET, url, timeout).await
}

/// One request without a body of `url` within `timeout`; Ok with the
/// status line for 2xx (after redirects), Err with what went wrong
/// otherwise.
pub async fn request(
    client: &Client,
    method: reqwest::Method,
    url: &str,
    timeout: Duration,
) -> Result<String, String> {
    let response = client
        .request(method.clone(), url)
        .timeout(timeout)
        .send()
        .await
        .map_err(|err| describe(&err, &method, url, timeout))?;
    let status_line = format!("{:?} {}", response.version(), response.status());
    if response.status().is_success() {
        return Ok(status_line);
    }
    let body = body(response).await;
    let body = body.trim();
    if body.is_empty() {
        Err(format!("answered {status_line}"))
    } else {
        Err(format!("answered {status_line}: {}", quote(body)))
    }
}

/// The start of a body, as text; what cannot be read is left out.
async fn body(mut response: reqwest::Response) -> String {
    let mut bytes = Vec::new();
    while bytes.len() < MAX_BODY {
        match response.chunk().await {
            Ok(Some(chunk)) => bytes.extend_from_slice(&chunk),
            Ok(None) | Err(_) => break,
        }
    }
    bytes.truncate(MAX_BODY);
    String::from_utf8_lossy(&bytes).into_owned()
}

/// A failed request in words a person can act on.
fn describe(
    err: &reqwest::Error,
    method: &reqwest::Method,
    url: &str,
    timeout: Duration,
) -> String {
    if err.is_builder() {
        format!("{url:?} is not a usable URL: {}", chain(err))
    } else if err.is_timeout() {
        format!(
            "no answer before the deadline ({} s)",
            timeout.as_secs_f32()
        )
    } else if err.is_redirect() {
        format!("more than {MAX_REDIRECTS} redirects from {url}")
    } else if err.is_connect() {
        let at = err.url().map_or(url, reqwest::Url::as_str);
        format!("cannot connect to {at}: {}", chain(err))
    } else {
        format!("{method} {url} failed: {}", chain(err))
    }
}

/// The causes of `err` after its own message, joined with `: `.
fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = Vec::new();
    let mut next = err.source();
    while let Some(cause) = next {
        let text = cause.to_string();
        if !parts.contains(&text) {
            parts.push(text);
        }
        next = cause.source();
    }
    if parts.is_empty() {
        err.to_string()
    } else {
        parts.join(": ")
    }
}

/// `text` cut to [`MAX_QUOTE`] bytes at a character boundary.
pub fn quote(text: &str) -> &str {
    if text.len() <= MAX_QUOTE {
        return text;
    }
    let mut cut = MAX_QUOTE;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    &text[..cut]
}
