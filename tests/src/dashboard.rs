//! A browser's view of the dashboard without a browser: one-time login
//! links asked for over mutual TLS, and an HTTPS client that keeps the
//! session cookie and reads the CSRF token of the pages it gets.

use std::net::SocketAddr;

use slipway_proto::{
    control::v1::{
        CreateLoginLinkRequest, RevokeCertificateRequest,
        certificate_service_client::CertificateServiceClient,
        dashboard_service_client::DashboardServiceClient,
    },
    identity::Role,
};

use slipway_proto::tls::TlsPaths;

use crate::Cluster;

/// The dashboard's base URL on the in-process control plane.
pub fn base_url(cluster: &Cluster) -> String {
    format!("https://localhost:{}", cluster.web_addr().port())
}

/// A one-time login link (its path) for the operator of `role`.
pub async fn login_path(cluster: &Cluster, role: Role) -> String {
    login_path_with(cluster, &cluster.pki.operator(role)).await
}

/// A one-time login link (its path) for the operator of the certificate
/// at `paths`.
pub async fn login_path_with(cluster: &Cluster, paths: &TlsPaths) -> String {
    DashboardServiceClient::new(cluster.channel_with(paths).await)
        .create_login_link(CreateLoginLinkRequest {})
        .await
        .expect("a login link")
        .into_inner()
        .path
}

/// Revokes every certificate of the operator `identity` (`role/name`).
pub async fn revoke_identity(cluster: &Cluster, identity: &str, reason: &str) {
    CertificateServiceClient::new(cluster.channel(Role::Admin).await)
        .revoke_certificate(RevokeCertificateRequest {
            fingerprint: String::new(),
            identity: identity.into(),
            reason: reason.into(),
        })
        .await
        .expect("the revocation");
}

/// An answer: status, headers, body.
#[derive(Debug)]
pub struct Page {
    /// HTTP status.
    pub status: u16,
    /// `Set-Cookie`, if any.
    pub set_cookie: Option<String>,
    /// The server's time to answer, from `Server-Timing`, in milliseconds.
    pub server_ms: Option<f64>,
    /// The body.
    pub body: String,
}

impl Page {
    /// The CSRF token of the page's forms.
    pub fn csrf(&self) -> Option<String> {
        let at = self.body.find("name=\"csrf\" value=\"")? + "name=\"csrf\" value=\"".len();
        let end = self.body[at..].find('"')?;
        Some(self.body[at..at + end].to_owned())
    }
}

/// An HTTPS client of the dashboard holding a session cookie.
pub struct Browser {
    client: reqwest::Client,
    base: String,
    /// `slipway_session=...`, once logged in.
    pub cookie: Option<String>,
}

impl Browser {
    /// A client of the web listener at `addr`, trusting the test's CA.
    pub fn new(addr: SocketAddr, ca_pem: &std::path::Path) -> Self {
        Self::built(addr, crate::https::client(addr, ca_pem))
    }

    fn built(addr: SocketAddr, builder: reqwest::ClientBuilder) -> Self {
        let client = builder
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("an HTTPS client");
        Self {
            client,
            base: format!("https://localhost:{}", addr.port()),
            cookie: None,
        }
    }

    /// A client of `cluster`'s dashboard that presents the certificate at
    /// `paths` in the TLS handshake, as a browser holding it does.
    pub fn with_certificate(cluster: &Cluster, paths: &TlsPaths) -> Self {
        let addr = cluster.web_addr();
        let mut pem = std::fs::read(&paths.cert).expect("read the certificate");
        pem.extend(std::fs::read(&paths.key).expect("read the key"));
        let identity = reqwest::Identity::from_pem(&pem).expect("a PEM identity");
        let ca = &cluster.pki.operator(Role::Admin).ca;
        Self::built(addr, crate::https::client(addr, ca).identity(identity))
    }

    /// GETs `path`; the error when the connection is refused (a revoked
    /// or foreign certificate fails the handshake).
    pub async fn try_get(&self, path: &str) -> Result<u16, reqwest::Error> {
        let response = self
            .client
            .get(format!("{}{path}", self.base))
            .send()
            .await?;
        let status = response.status().as_u16();
        response.text().await?;
        Ok(status)
    }

    /// A client of `cluster`'s dashboard.
    pub fn of(cluster: &Cluster) -> Self {
        Self::new(cluster.web_addr(), &cluster.pki.operator(Role::Admin).ca)
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Page {
        let request = match &self.cookie {
            Some(cookie) => request.header("cookie", cookie),
            None => request,
        };
        let response = request.send().await.expect("the web listener answers");
        let status = response.status().as_u16();
        let set_cookie = response
            .headers()
            .get("set-cookie")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let server_ms = response
            .headers()
            .get("server-timing")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split("dur=").nth(1))
            .and_then(|v| v.parse().ok());
        let body = response.text().await.expect("a body");
        Page {
            status,
            set_cookie,
            server_ms,
            body,
        }
    }

    /// GETs `path` with `headers`.
    pub async fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> Page {
        let mut request = self.client.get(format!("{}{path}", self.base));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        self.send(request).await
    }

    /// GETs `path` and hands back the response as it streams (server-sent
    /// events).
    pub async fn stream(&self, path: &str) -> reqwest::Response {
        let mut request = self.client.get(format!("{}{path}", self.base));
        if let Some(cookie) = &self.cookie {
            request = request.header("cookie", cookie);
        }
        request.send().await.expect("the web listener answers")
    }

    /// GETs `path`.
    pub async fn get(&self, path: &str) -> Page {
        self.get_with(path, &[]).await
    }

    /// POSTs the form `fields` to `path`.
    pub async fn post(&self, path: &str, fields: &[(&str, &str)]) -> Page {
        let body: String = fields
            .iter()
            .map(|(k, v)| format!("{k}={}", urlencode(v)))
            .collect::<Vec<_>>()
            .join("&");
        let request = self
            .client
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        self.send(request).await
    }

    /// Opens a login link; keeps the session cookie it sets.
    pub async fn login(&mut self, path: &str) -> Page {
        let page = self.get(path).await;
        if let Some(set) = &page.set_cookie {
            self.cookie = set.split(';').next().map(str::to_owned);
        }
        page
    }

    /// Logs in as the operator of `role` of `cluster`.
    pub async fn logged_in(cluster: &Cluster, role: Role) -> Self {
        Self::logged_in_with(cluster, &cluster.pki.operator(role)).await
    }

    /// Logs in as the operator of the certificate at `paths`.
    pub async fn logged_in_with(cluster: &Cluster, paths: &TlsPaths) -> Self {
        let mut browser = Self::of(cluster);
        let page = browser.login(&login_path_with(cluster, paths).await).await;
        assert_eq!(page.status, 200, "{}", page.body);
        browser
    }
}

fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            b => format!("%{b:02X}"),
        })
        .collect()
}
