//! Webhooks from git servers, over real HTTPS to the control plane's web
//! listener, with real agents: a signed push to `main` deploys the pushed
//! commit to the environment that auto-deploys `main`, recorded as
//! `webhook/web`; a redelivery, a bad signature, a missing signature or
//! delivery id and an unknown app are refused and start nothing; a push to
//! a branch nobody deploys and a ping are acknowledged; GitLab's token and
//! Gitea's signature are understood; the secret is never read back. A push
//! while the app is deploying is refused, or queued when the environment's
//! gate says so, and runs once the lock is free.

use slipway_control_plane::triggers::sender::github_signature;
use slipway_proto::{
    control::v1::{
        DeployGates, DeploymentStatus, GetTriggersRequest, RotateWebhookSecretRequest,
        SetAutoDeployRequest, trigger_service_client::TriggerServiceClient,
    },
    identity::Role,
};
use slipway_tests::{
    Cluster, assert_succeeded,
    cluster::{APP, ENV},
    events::wait_for_event,
    gates::set_gates,
    https::{Answer, WebClient},
    slipctl, spec,
};
use tonic::{Code, transport::Channel};

async fn triggers(cluster: &Cluster, role: Role) -> TriggerServiceClient<Channel> {
    TriggerServiceClient::new(cluster.channel(role).await)
}

/// A GitHub push body of `commit` to `branch`.
fn push(branch: &str, commit: &str) -> Vec<u8> {
    serde_json::json!({
        "ref": format!("refs/heads/{branch}"),
        "after": commit,
        "pusher": {"name": "alice"},
        "head_commit": {"id": commit, "message": "v2\n\nbody"},
    })
    .to_string()
    .into_bytes()
}

/// Posts `body` to `/hooks/<app>` as GitHub does, signed with `secret`.
async fn github(web: &WebClient, app: &str, secret: &str, delivery: &str, body: &[u8]) -> Answer {
    let signature = github_signature(secret.as_bytes(), body);
    let headers = [
        ("x-github-event", "push"),
        ("x-github-delivery", delivery),
        ("x-hub-signature-256", signature.as_str()),
    ];
    web.post(&format!("/hooks/{app}"), &headers, body).await
}

/// Enables the app's webhook with `main` deployed to the environment;
/// returns the secret.
async fn enable(cluster: &Cluster) -> String {
    let mut admin = triggers(cluster, Role::Admin).await;
    let secret = admin
        .rotate_webhook_secret(RotateWebhookSecretRequest { app: APP.into() })
        .await
        .expect("enable the webhook")
        .into_inner()
        .secret;
    admin
        .set_auto_deploy(SetAutoDeployRequest {
            app: APP.into(),
            environment: ENV.into(),
            branch: "main".into(),
        })
        .await
        .expect("auto-deploy main");
    secret
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_push_deploys_and_bad_deliveries_change_nothing() {
    let cluster = Cluster::builder().agents(2).start().await;
    let web = WebClient::new(cluster.web_addr(), &cluster.pki.dir().join("ca.crt"));
    let hook = format!("/hooks/{APP}");

    // Before the webhook is enabled: refused.
    let body = push("main", &cluster.commit_text("v1"));
    let refused = github(&web, APP, "guess", "d-0", &body).await;
    assert_eq!(refused.status, 404, "{refused:?}");

    let secret = enable(&cluster).await;
    assert_eq!(secret.len(), 64, "{secret}");

    // A signed push to main: the pushed commit is deployed, by the webhook.
    let commit = cluster.commit_text("v2");
    let body = push("main", &commit);
    let accepted = github(&web, APP, &secret, "d-1", &body).await;
    assert_eq!(accepted.status, 202, "{accepted:?}");
    let id = accepted.body["deployment_ids"][0]
        .as_str()
        .expect("a deployment id")
        .to_owned();
    let (_, deployment) = cluster.watch(&id).await;
    assert_succeeded(&deployment);
    assert_eq!(deployment.author, "webhook/web");
    assert_eq!(deployment.commit, commit);
    assert_eq!(deployment.message, "push to main by alice: v2");
    for agent in &cluster.agents {
        assert_eq!(
            agent.current().as_deref(),
            Some(deployment.release.as_str())
        );
    }
    let deployments = cluster.history().await.len();

    // Refusals: each changes nothing.
    let replay = github(&web, APP, &secret, "d-1", &body).await;
    assert_eq!(replay.status, 409, "{replay:?}");
    assert_eq!(replay.body["deployment_ids"][0], id.as_str());
    let forged = github(&web, APP, "not-the-secret", "d-2", &body).await;
    assert_eq!(forged.status, 401, "{forged:?}");
    let tampered = {
        let signature = github_signature(secret.as_bytes(), &body);
        let other = push("main", &"ab".repeat(20));
        let headers = [
            ("x-github-event", "push"),
            ("x-github-delivery", "d-3"),
            ("x-hub-signature-256", signature.as_str()),
        ];
        web.post(&hook, &headers, &other).await
    };
    assert_eq!(tampered.status, 401, "{tampered:?}");
    let unsigned = web
        .post(&hook, &[("x-github-delivery", "d-4")], &body)
        .await;
    assert_eq!(unsigned.status, 401, "{unsigned:?}");
    let signature = github_signature(secret.as_bytes(), &body);
    let anonymous = [
        ("x-github-event", "push"),
        ("x-hub-signature-256", signature.as_str()),
    ];
    let no_id = web.post(&hook, &anonymous, &body).await;
    assert_eq!(no_id.status, 400, "{no_id:?}");
    let unknown = github(&web, "nope", &secret, "d-5", &body).await;
    assert_eq!(unknown.status, 404, "{unknown:?}");
    let garbage = github(&web, APP, &secret, "d-6", b"{\"ref\": 1}").await;
    assert_eq!(garbage.status, 400, "{garbage:?}");
    assert_eq!(
        cluster.history().await.len(),
        deployments,
        "nothing started"
    );

    // Acknowledged, nothing to deploy: another branch (GitLab's token), a
    // ping (Gitea's signature).
    let feature = push("feature", &commit);
    let gitlab = [
        ("x-gitlab-event", "Push Hook"),
        ("x-gitlab-event-uuid", "g-1"),
        ("x-gitlab-token", secret.as_str()),
    ];
    let other_branch = web.post(&hook, &gitlab, &feature).await;
    assert_eq!(other_branch.status, 200, "{other_branch:?}");
    assert_eq!(
        other_branch.body["message"],
        "no environment auto-deploys branch feature"
    );
    let ping = b"{\"zen\": \"ok\"}";
    let gitea_signature = github_signature(secret.as_bytes(), ping);
    let gitea = [
        ("x-gitea-event", "ping"),
        ("x-gitea-delivery", "t-1"),
        (
            "x-gitea-signature",
            gitea_signature.trim_start_matches("sha256="),
        ),
    ];
    let pong = web.post(&hook, &gitea, ping).await;
    assert_eq!((pong.status, &pong.body["message"]), (200, &"pong".into()));
    assert_eq!(cluster.history().await.len(), deployments);

    // Recorded: the deliveries handled, newest first, and the audit trail.
    let shown = triggers(&cluster, Role::Viewer)
        .await
        .get_triggers(GetTriggersRequest { app: APP.into() })
        .await
        .expect("triggers")
        .into_inner();
    let ids: Vec<&str> = shown
        .deliveries
        .iter()
        .map(|d| d.delivery_id.as_str())
        .collect();
    assert_eq!(ids, ["t-1", "g-1", "d-1"]);
    assert_eq!(
        shown.deliveries[2].deployment_ids,
        std::slice::from_ref(&id)
    );
    let trail = cluster.audit_trail().await;
    let by_webhook: Vec<(&str, &str)> = trail
        .iter()
        .filter(|e| e.actor == "webhook/web")
        .map(|e| (e.method.as_str(), e.outcome.as_str()))
        .collect();
    assert_eq!(
        by_webhook,
        [
            ("webhook/ping", "OK"),
            ("webhook/Push Hook", "OK"),
            ("webhook/push", "OK")
        ]
    );

    // The secret is never read back.
    let (ok, text, stderr) = slipctl::run(&cluster, Role::Viewer, &["webhook", "show", APP]);
    assert!(ok, "{stderr}");
    assert!(text.contains(&format!("{ENV} <- main")), "{text}");
    assert!(text.contains("d-1"), "{text}");
    let show_json = ["webhook", "show", APP, "-o", "json"];
    let (ok, json, _) = slipctl::run(&cluster, Role::Viewer, &show_json);
    assert!(ok);
    assert!(!json.contains(&secret) && !text.contains(&secret));

    // Only an admin configures it.
    let refused = triggers(&cluster, Role::Deployer)
        .await
        .rotate_webhook_secret(RotateWebhookSecretRequest { app: APP.into() })
        .await
        .expect_err("a deployer may not");
    assert_eq!(refused.code(), Code::PermissionDenied);
    let bad_branch = triggers(&cluster, Role::Admin)
        .await
        .set_auto_deploy(SetAutoDeployRequest {
            app: APP.into(),
            environment: ENV.into(),
            branch: "../main".into(),
        })
        .await
        .expect_err("not a branch");
    assert_eq!(bad_branch.code(), Code::InvalidArgument);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_while_deploying_is_refused_or_queued_by_the_environments_gate() {
    let cluster = Cluster::builder().agents(2).start().await;
    let web = WebClient::new(cluster.web_addr(), &cluster.pki.dir().join("ca.crt"));
    let secret = enable(&cluster).await;
    cluster.commit_text("v1");
    let gate = cluster.hold_in_hook(1, spec::before_activate).await;
    let mut holder = cluster.deploy_stream("main").await;
    let mut seen = Vec::new();
    wait_for_event(&mut holder, &mut seen, "web-2 holds", |e| {
        e.host == "web-2" && e.message == "holding"
    })
    .await;

    // Busy, no queue: refused, nothing started, the reason in the answer.
    let commit = cluster.commit_text("v2");
    let body = push("main", &commit);
    let busy = github(&web, APP, &secret, "b-1", &body).await;
    assert_eq!(busy.status, 409, "{busy:?}");
    assert_eq!(busy.body["deployment_ids"], serde_json::json!([]));
    let reason = busy.body["message"].as_str().unwrap_or_default();
    assert!(reason.starts_with(&format!("{ENV}: ")), "{reason}");

    // With the environment's queue: queued behind the holder, then run.
    set_gates(
        &cluster,
        DeployGates {
            queue: true,
            ..Default::default()
        },
    )
    .await;
    let queued = github(&web, APP, &secret, "b-2", &body).await;
    assert_eq!(queued.status, 202, "{queued:?}");
    let id = queued.body["deployment_ids"][0]
        .as_str()
        .expect("a deployment id")
        .to_owned();
    assert_eq!(
        cluster.deployment(&id).await.status(),
        DeploymentStatus::Queued
    );
    std::fs::write(&gate, b"").expect("open the gate");
    let (_, deployment) = cluster.watch(&id).await;
    assert_succeeded(&deployment);
    assert_eq!(deployment.commit, commit);
    for agent in &cluster.agents {
        assert_eq!(
            agent.current().as_deref(),
            Some(deployment.release.as_str())
        );
    }
    cluster.shutdown().await;
}
