//! Logging in to the dashboard: with the operator certificate the browser
//! holds (a session with that certificate's identity and role; no
//! certificate gets a page saying how to log in; a revoked or foreign one
//! is refused at the handshake), and with signed one-time links (an altered
//! or unknown token gets a page saying why).

use slipway_proto::{
    control::v1::{ListSessionsRequest, dashboard_service_client::DashboardServiceClient},
    identity::Role,
};
use slipway_tests::{
    Cluster,
    dashboard::{Browser, login_path, revoke_identity},
    pki::TestPki,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_certificate_opens_a_session_with_its_role() {
    let cluster = Cluster::builder().agents(1).start().await;

    // No certificate: the page says how to log in.
    let mut anonymous = Browser::of(&cluster);
    let login = anonymous.get("/").await;
    assert_eq!(login.status, 401);
    assert!(
        login.body.contains("href=\"/login/certificate\""),
        "{}",
        login.body
    );
    let none = anonymous.login("/login/certificate").await;
    assert_eq!(none.status, 401);
    assert!(
        none.body.contains("presented no certificate"),
        "{}",
        none.body
    );
    assert!(none.body.contains("slipctl dashboard login"));
    assert!(none.set_cookie.is_none());

    // A deployer's certificate: a deployer's session, audited.
    let mut deployer = Browser::with_certificate(&cluster, &cluster.pki.operator(Role::Deployer));
    let opened = deployer.login("/login/certificate").await;
    assert_eq!(opened.status, 200, "{}", opened.body);
    let cookie = opened.set_cookie.clone().expect("a session cookie");
    for attribute in ["HttpOnly", "Secure", "SameSite=Strict", "Max-Age=43200"] {
        assert!(cookie.contains(attribute), "{cookie}");
    }
    let overview = deployer.get("/").await;
    assert_eq!(overview.status, 200, "{}", overview.body);
    assert!(overview.body.contains("deployer-op"));
    let entry = &cluster.audit_trail().await[0];
    assert_eq!(entry.method, "dashboard/LoginWithCertificate");
    assert_eq!(entry.actor, "deployer/deployer-op");
    assert!(!entry.certificate_sha256.is_empty());

    // A viewer's certificate: a viewer's session.
    let mut viewer = Browser::with_certificate(&cluster, &cluster.pki.operator(Role::Viewer));
    assert_eq!(viewer.login("/login/certificate").await.status, 200);
    assert!(viewer.get("/").await.body.contains("viewer-op"));
    let principals: Vec<String> = DashboardServiceClient::new(cluster.channel(Role::Admin).await)
        .list_sessions(ListSessionsRequest {})
        .await
        .unwrap()
        .into_inner()
        .sessions
        .into_iter()
        .map(|s| s.principal)
        .collect();
    for wanted in ["deployer/deployer-op", "viewer/viewer-op"] {
        assert!(principals.iter().any(|p| p == wanted), "{principals:?}");
    }

    // An agent's certificate is not an operator's.
    let agent = Browser::with_certificate(&cluster, &cluster.pki.agent("web-1"));
    let refused = agent.get("/login/certificate").await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(refused.set_cookie.is_none());

    // A foreign CA's certificate fails the handshake.
    let foreign = TestPki::new();
    let stranger = Browser::with_certificate(&cluster, &foreign.operator(Role::Admin));
    assert!(stranger.try_get("/login/certificate").await.is_err());

    // Once revoked, the certificate fails the handshake, and the session it
    // opened ends.
    revoke_identity(&cluster, "deployer/deployer-op", "left the team").await;
    let again = Browser::with_certificate(&cluster, &cluster.pki.operator(Role::Deployer));
    assert!(again.try_get("/login/certificate").await.is_err());
    let mut cookie_only = Browser::of(&cluster);
    cookie_only.cookie = deployer.cookie.clone();
    assert_eq!(cookie_only.get("/").await.status, 401);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_or_used_link_is_refused_with_its_reason() {
    let cluster = Cluster::builder().agents(1).start().await;
    let path = login_path(&cluster, Role::Viewer).await;
    let token = path.strip_prefix("/login/").expect("a login path");
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "id.expiry.signature: {token}");

    // A later expiry under the same signature.
    let longer: u64 = parts[1].parse::<u64>().unwrap() + 3600;
    let extended = format!("/login/{}.{longer}.{}", parts[0], parts[2]);
    let mut browser = Browser::of(&cluster);
    let refused = browser.login(&extended).await;
    assert_eq!(refused.status, 401);
    assert!(refused.body.contains("altered"), "{}", refused.body);
    assert!(refused.set_cookie.is_none());
    let junk = browser.login("/login/not-a-token").await;
    assert_eq!(junk.status, 401);
    assert!(junk.body.contains("altered"), "{}", junk.body);

    // The real link still works once (the refusals did not use it up).
    assert_eq!(browser.login(&path).await.status, 200);
    let used = Browser::of(&cluster).login(&path).await;
    assert_eq!(used.status, 401);
    assert!(used.body.contains("used already"), "{}", used.body);
    cluster.shutdown().await;
}
