//! The dashboard over real HTTPS with real agents, without a browser: a
//! login link opens one session and is refused the second time; the
//! session cookie is HttpOnly, Secure and SameSite=Strict; a viewer's
//! forged write is refused 403, audited with its identity and changes
//! nothing; a session ends when its certificate is revoked; a write without the CSRF token is refused; an admin lists and
//! revokes sessions; the event stream resumes after `Last-Event-ID` with
//! no gap or repeat.

use futures_util::StreamExt as _;
use slipway_proto::{
    control::v1::{
        CheckDriftRequest, DeployGates, DeployResponse, DeploymentEvent, DeploymentStatus,
        ListSessionsRequest, RevokeSessionRequest,
        dashboard_service_client::DashboardServiceClient, drift_service_client::DriftServiceClient,
    },
    identity::Role,
};
use slipway_tests::{
    Cluster, assert_succeeded,
    cluster::{APP, ENV},
    dashboard::{Browser, login_path, revoke_identity},
    events::wait_for_event,
    slipctl, spec,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_link_opens_one_session_bound_to_its_identity() {
    let cluster = Cluster::builder().agents(1).start().await;
    let path = login_path(&cluster, Role::Viewer).await;
    let mut browser = Browser::of(&cluster);
    let anonymous = browser.get("/").await;
    assert_eq!(anonymous.status, 401);
    assert!(anonymous.body.contains("slipctl dashboard login"));

    let first = browser.login(&path).await;
    assert_eq!(first.status, 200);
    let cookie = first.set_cookie.expect("a session cookie");
    for attribute in ["HttpOnly", "Secure", "SameSite=Strict", "Max-Age=43200"] {
        assert!(cookie.contains(attribute), "{cookie}");
    }
    let overview = browser.get("/").await;
    assert_eq!(overview.status, 200, "{}", overview.body);
    assert!(overview.body.contains("viewer-op"));

    let again = Browser::of(&cluster).login(&path).await;
    assert_eq!(again.status, 401, "a second use is refused");
    assert!(again.set_cookie.is_none());

    // The admin sees the session and revokes it; the cookie stops working.
    let mut admin = DashboardServiceClient::new(cluster.channel(Role::Admin).await);
    let sessions = admin
        .list_sessions(ListSessionsRequest {})
        .await
        .unwrap()
        .into_inner()
        .sessions;
    let session = sessions
        .iter()
        .find(|s| s.principal == "viewer/viewer-op")
        .expect("the viewer's session");
    let (ok, out, err) = slipctl::run(&cluster, Role::Admin, &["dashboard", "sessions"]);
    assert!(ok && out.contains(&session.id), "{out}{err}");
    let refused = DashboardServiceClient::new(cluster.channel(Role::Viewer).await)
        .list_sessions(ListSessionsRequest {})
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::PermissionDenied);
    admin
        .revoke_session(RevokeSessionRequest {
            id: session.id.clone(),
        })
        .await
        .unwrap();
    assert_eq!(browser.get("/").await.status, 401);
    let (ok, out, _) = slipctl::run(&cluster, Role::Viewer, &["dashboard", "login"]);
    assert!(
        ok && out.trim().starts_with("https://") && out.contains("/login/"),
        "{out}"
    );

    // A session ends the moment its certificate is revoked.
    let deployer = Browser::logged_in(&cluster, Role::Deployer).await;
    assert_eq!(deployer.get("/").await.status, 200);
    revoke_identity(&cluster, "deployer/deployer-op", "left the team").await;
    assert_eq!(deployer.get("/").await.status, 401);
    cluster.shutdown().await;
}

#[tokio::test]
async fn writes_need_the_role_and_the_csrf_token_and_are_audited() {
    let cluster = Cluster::builder().agents(2).start().await;
    cluster.commit_text("v1");
    let (_, first) = cluster.deploy("main").await;
    assert_succeeded(&first);
    cluster.commit_text("v2");
    let (_, second) = cluster.deploy("main").await;
    assert_succeeded(&second);
    let before = cluster.history().await.len();

    let viewer = Browser::logged_in(&cluster, Role::Viewer).await;
    let overview = viewer.get("/").await;
    assert!(!overview.body.contains("/rollback?"), "no write controls");
    let csrf = overview.csrf().expect("the logout form's token");
    let fields = [
        ("csrf", csrf.as_str()),
        ("app", APP),
        ("env", ENV),
        ("release", first.release.as_str()),
    ];
    let forged = viewer.post("/rollback/confirm", &fields).await;
    assert_eq!(forged.status, 403, "{}", forged.body);
    assert_eq!(cluster.history().await.len(), before, "nothing started");
    let entry = &cluster.audit_trail().await[0];
    assert_eq!(
        entry.method,
        "slipway.control.v1.DeploymentService/Rollback"
    );
    assert_eq!(entry.actor, "viewer/viewer-op");
    assert_eq!(entry.outcome, "PermissionDenied");
    assert!(!entry.certificate_sha256.is_empty());

    let deployer = Browser::logged_in(&cluster, Role::Deployer).await;
    let no_token = [
        ("app", APP),
        ("env", ENV),
        ("release", first.release.as_str()),
    ];
    let refused = deployer.post("/rollback/confirm", &no_token).await;
    assert_eq!(refused.status, 403);
    let wrong = [("csrf", "0000"), ("app", APP), ("env", ENV)];
    assert_eq!(deployer.post("/rollback/confirm", &wrong).await.status, 403);
    assert_eq!(cluster.history().await.len(), before, "nothing started");

    // With the token the rollback runs, audited as the deployer.
    let form = deployer
        .get(&format!("/rollback?app={APP}&env={ENV}"))
        .await;
    let csrf = form.csrf().expect("a token");
    let fields = [
        ("csrf", csrf.as_str()),
        ("app", APP),
        ("env", ENV),
        ("release", first.release.as_str()),
    ];
    let preview = deployer.post("/rollback/preview", &fields).await;
    assert_eq!(preview.status, 200, "{}", preview.body);
    assert!(preview.body.contains(&first.release) && preview.body.contains(">2</bdi> hosts"));
    let started = deployer.post("/rollback/confirm", &fields).await;
    assert_eq!(started.status, 303, "{}", started.body);
    let entry = &cluster.audit_trail().await[0];
    assert_eq!(entry.actor, "deployer/deployer-op");
    assert_eq!(entry.outcome, "OK");

    // A release marked bad from its page, audited the same way.
    let path = format!("/releases/{APP}/{}", second.release);
    let page = deployer.get(&path).await;
    assert!(page.body.contains(&second.commit), "{}", page.body);
    let csrf = page.csrf().expect("a token");
    let fields = [
        ("csrf", csrf.as_str()),
        ("mark", "bad"),
        ("reason", "broke login"),
    ];
    let marked = deployer.post(&format!("{path}/mark"), &fields).await;
    assert_eq!(marked.status, 303, "{}", marked.body);
    let entry = &cluster.audit_trail().await[0];
    assert_eq!(
        entry.method,
        "slipway.control.v1.ReleaseService/MarkRelease"
    );
    assert_eq!(entry.actor, "deployer/deployer-op");
    assert!(deployer.get(&path).await.body.contains(">bad<"));
    let source = deployer.get(&format!("/sources/{APP}")).await;
    assert_eq!(source.status, 200, "{}", source.body);
    cluster.shutdown().await;
}

/// The ids of a server-sent event stream's events, in order.
fn ids(stream: &str) -> Vec<u64> {
    stream
        .lines()
        .filter_map(|l| l.strip_prefix("id: "))
        .map(|id| id.trim().parse().expect("a number"))
        .collect()
}

#[tokio::test]
async fn the_event_stream_resumes_after_the_last_event_id() {
    let cluster = Cluster::builder().agents(3).start().await;
    cluster.commit_text("v1");
    let (events, deployment) = cluster.deploy("main").await;
    assert_succeeded(&deployment);
    let browser = Browser::logged_in(&cluster, Role::Viewer).await;
    let path = format!("/deployments/{}/events", deployment.id);
    let all = browser.get(&path).await;
    assert_eq!(all.status, 200);
    let total = events.len() as u64;
    assert_eq!(ids(&all.body), (1..=total).collect::<Vec<_>>());
    assert!(all.body.contains("event: end"));

    let resumed = browser.get_with(&path, &[("last-event-id", "5")]).await;
    assert_eq!(ids(&resumed.body), (6..=total).collect::<Vec<_>>());
    let query = browser.get(&format!("{path}?after=7")).await;
    assert_eq!(ids(&query.body), (8..=total).collect::<Vec<_>>());
    let page = browser
        .get(&format!("/deployments/{}", deployment.id))
        .await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains(&format!("data-after=\"{total}\"")));
    cluster.shutdown().await;
}

/// A deploy of a new commit held in the second agent's before-activate
/// hook: the gate that releases it, its stream and the holding event.
async fn held_deploy(
    cluster: &Cluster,
) -> (
    std::path::PathBuf,
    tonic::Streaming<DeployResponse>,
    DeploymentEvent,
) {
    cluster.commit_text("v1");
    let gate = cluster.hold_in_hook(1, spec::before_activate).await;
    let mut stream = cluster.deploy_stream("main").await;
    let mut seen = Vec::new();
    let held = wait_for_event(&mut stream, &mut seen, "the hook holding", |e| {
        e.message.contains("holding")
    })
    .await;
    (gate, stream, held)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployer_cancels_a_running_deployment_from_its_page() {
    let cluster = Cluster::builder().agents(2).start().await;
    let (_gate, _stream, held) = held_deploy(&cluster).await;
    let path = format!("/deployments/{}", held.deployment_id);

    let viewer = Browser::logged_in(&cluster, Role::Viewer).await;
    assert!(!viewer.get(&path).await.body.contains("/cancel"));
    let deployer = Browser::logged_in(&cluster, Role::Deployer).await;
    let page = deployer.get(&path).await;
    assert!(
        page.body.contains(&format!("{path}/cancel")),
        "{}",
        page.body
    );
    let csrf = page.csrf().expect("a token");
    let fields = [("csrf", csrf.as_str()), ("reason", "wrong branch")];
    let cancelled = deployer.post(&format!("{path}/cancel"), &fields).await;
    assert_eq!(cancelled.status, 303, "{}", cancelled.body);
    let record = cluster.deployment(&held.deployment_id).await;
    assert_eq!(record.status(), DeploymentStatus::Cancelled);
    assert!(record.reason.contains("wrong branch"), "{}", record.reason);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_deployer_approves_from_the_dashboard_the_requester_cannot() {
    let cluster = Cluster::builder().agents(1).start().await;
    let gates = DeployGates {
        approvals_required: 1,
        approval_expiry_seconds: 3600,
        ..Default::default()
    };
    slipway_tests::gates::set_gates(&cluster, gates).await;
    let (mut stream, first) = slipway_tests::gates::request_deploy(&cluster).await;
    let id = first.deployment_id;
    let path = format!("/deployments/{id}");

    // The requester sees the request, and no approve form of its own.
    let requester = Browser::logged_in(&cluster, Role::Deployer).await;
    let page = requester.get(&path).await;
    assert_eq!(page.status, 200, "{}", page.body);
    for shown in [
        "Awaiting approval",
        "deployer/deployer-op",
        "<bdi dir=\"ltr\">0</bdi> / <bdi dir=\"ltr\">1</bdi>",
        "id=\"own-request\"",
        "<time datetime=",
    ] {
        assert!(page.body.contains(shown), "{shown}: {}", page.body);
    }
    assert!(!page.body.contains(&format!("{path}/approve")));
    let csrf = page.csrf().expect("a token");
    let fields = [("csrf", csrf.as_str()), ("message", "mine")];
    let own = requester.post(&format!("{path}/approve"), &fields).await;
    assert_eq!(own.status, 403, "{}", own.body);
    assert!(own.body.contains("cannot approve it"), "{}", own.body);
    let waiting = cluster.deployment(&id).await;
    assert_eq!(waiting.status(), DeploymentStatus::AwaitingApproval);
    assert!(waiting.approvals.is_empty(), "nothing changed");

    // A viewer sees no forms; an admin sees the override.
    let viewer = Browser::logged_in(&cluster, Role::Viewer).await;
    assert!(!viewer.get(&path).await.body.contains("/approve"));
    let admin = Browser::logged_in(&cluster, Role::Admin).await;
    assert!(
        admin
            .get(&path)
            .await
            .body
            .contains("name=\"admin_override\"")
    );

    // Another deployer approves without its token: refused; with it, the
    // deployment starts and succeeds, audited as that deployer.
    let now = time::OffsetDateTime::now_utc();
    let other = cluster.pki.operator_valid(
        "deployer-2",
        Role::Deployer,
        now - time::Duration::hours(1),
        now + time::Duration::days(1),
    );
    let other = Browser::logged_in_with(&cluster, &other).await;
    let page = other.get(&path).await;
    assert!(
        page.body.contains(&format!("{path}/approve")),
        "{}",
        page.body
    );
    let no_token = [("message", "ship it")];
    let refused = other.post(&format!("{path}/approve"), &no_token).await;
    assert_eq!(refused.status, 403);
    let csrf = page.csrf().expect("a token");
    let fields = [("csrf", csrf.as_str()), ("message", "ship it")];
    let approved = other.post(&format!("{path}/approve"), &fields).await;
    assert_eq!(approved.status, 303, "{}", approved.body);
    while let Some(next) = stream.next().await {
        next.expect("event");
    }
    let d = cluster.deployment(&id).await;
    assert_succeeded(&d);
    assert_eq!(d.approvals.len(), 1);
    assert_eq!(d.approvals[0].by, "deployer/deployer-2");
    assert_eq!(d.approvals[0].message, "ship it");
    let entry = cluster
        .audit_trail()
        .await
        .into_iter()
        .find(|e| e.method.ends_with("ApprovalService/ApproveDeployment") && e.outcome == "OK")
        .expect("the approval audited");
    assert_eq!(entry.actor, "deployer/deployer-2");
    assert!(!entry.certificate_sha256.is_empty());
    cluster.shutdown().await;
}

/// The row of the Hosts page's drift table for `host`.
fn drift_row<'a>(page: &'a str, host: &str) -> &'a str {
    let table = &page[page.find("class=\"drift\"").expect("the drift table")..];
    table
        .split("<tr>")
        .find(|row| row.contains(&format!(">{host}<")))
        .expect("a row for the host")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hosts_page_shows_the_latest_drift_finding_per_host() {
    let cluster = Cluster::builder().agents(2).start().await;
    cluster.commit_text("v1");
    let (_, deployed) = cluster.deploy("main").await;
    assert_succeeded(&deployed);
    let viewer = Browser::logged_in(&cluster, Role::Viewer).await;
    let before = viewer.get("/hosts").await;
    assert_eq!(before.status, 200, "{}", before.body);
    assert!(before.body.contains("No drift check has run yet."));

    let current = cluster.agents[1].app_root().join("current");
    std::fs::write(current.join("notes.txt"), "left here\n").expect("add");
    std::fs::write(current.join("more.txt"), "and here\n").expect("add");
    let report = DriftServiceClient::new(cluster.channel(Role::Viewer).await)
        .check_drift(CheckDriftRequest {
            environment: ENV.into(),
            app: String::new(),
        })
        .await
        .expect("check drift")
        .into_inner();
    assert_eq!(report.drifted, 1, "{report:?}");

    let page = viewer.get("/hosts").await;
    assert_eq!(page.status, 200, "{}", page.body);
    let (clean, drifted) = (&cluster.agents[0].name, &cluster.agents[1].name);
    let row = drift_row(&page.body, drifted);
    for shown in [">drifted<", APP, ">2</bdi>", "<time datetime="] {
        assert!(row.contains(shown), "{shown}: {row}");
    }
    let row = drift_row(&page.body, clean);
    assert!(row.contains(">clean<") && row.contains(">0</bdi>"), "{row}");
    let arabic = viewer
        .get_with("/hosts", &[("accept-language", "ar")])
        .await;
    assert!(arabic.body.contains("منحرف"), "{}", arabic.body);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_sent_to_each_host_reach_the_page_live() {
    let cluster = Cluster::builder().agents(2).start().await;
    let (gate, mut stream, held) = held_deploy(&cluster).await;
    let id = held.deployment_id;
    let record = cluster.deployment(&id).await;
    assert_eq!(record.status(), DeploymentStatus::Running);
    let browser = Browser::logged_in(&cluster, Role::Viewer).await;
    let page = browser.get(&format!("/deployments/{id}")).await;
    assert!(page.body.contains("class=\"sent\""), "{}", page.body);

    // While it runs, the stream carries each host's bytes sent so far.
    let mut live = browser.stream(&format!("/deployments/{id}/events")).await;
    let mut text = String::new();
    // One transfer event per host, naming it and its total so far.
    let wanted: Vec<[String; 2]> = record
        .hosts
        .iter()
        .map(|h| {
            assert!(h.bytes_sent > 0, "{h:?}");
            [
                format!("\"bytes_sent\":{},", h.bytes_sent),
                format!("\"host\":\"{}\"", h.host),
            ]
        })
        .collect();
    let shown = |text: &str, [bytes, host]: &[String; 2]| {
        text.lines()
            .any(|l| l.contains(bytes.as_str()) && l.contains(host.as_str()))
    };
    while !wanted.iter().all(|w| shown(&text, w)) {
        let chunk = live.chunk().await.expect("the stream").expect("open");
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(!text.contains("event: end"), "the deployment still runs");
    drop(live);
    std::fs::write(&gate, "").expect("open the gate");
    while let Some(next) = stream.next().await {
        next.expect("event");
    }
    assert_succeeded(&cluster.deployment(&id).await);
    cluster.shutdown().await;
}
