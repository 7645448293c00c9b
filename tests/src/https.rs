//! A client of the control plane's web listener: HTTPS to `localhost`
//! pinned to the listener's address, trusting only the test's CA, as a git
//! server or a CI job calls a webhook.

use std::{net::SocketAddr, path::Path};

/// An HTTPS client builder for `localhost` at `addr`, trusting only the
/// CA in `ca_pem`.
pub fn client(addr: SocketAddr, ca_pem: &Path) -> reqwest::ClientBuilder {
    let pem = std::fs::read(ca_pem).expect("read the CA");
    let ca = reqwest::Certificate::from_pem(&pem).expect("a PEM certificate");
    reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(ca)
        .resolve("localhost", addr)
}

/// Posts to the control plane's web listener.
pub struct WebClient {
    client: reqwest::Client,
    base: String,
}

/// An answer: the status and the JSON body (null when not JSON).
#[derive(Debug)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// The body as JSON.
    pub body: serde_json::Value,
}

impl WebClient {
    /// A client of the listener at `addr` whose certificate chains to the
    /// CA in `ca_pem`.
    pub fn new(addr: SocketAddr, ca_pem: &Path) -> Self {
        let client = client(addr, ca_pem).build().expect("an HTTPS client");
        Self {
            client,
            base: format!("https://localhost:{}", addr.port()),
        }
    }

    /// POSTs `body` to `path` with `headers`.
    pub async fn post(&self, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Answer {
        let mut request = self
            .client
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .body(body.to_vec());
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.expect("the web listener answers");
        let status = response.status().as_u16();
        let text = response.text().await.expect("a body");
        let body = serde_json::from_str(&text).unwrap_or(serde_json::Value::Null);
        Answer { status, body }
    }
}
