//! Outgoing notifications: a webhook receiver that is down while
//! deployments fail and succeed gets every notification once it is back,
//! each once, in order, signed with the subscription's secret.

use std::time::Duration;

use slipway_proto::{
    control::v1::{
        CreateSubscriptionRequest, DeleteSubscriptionRequest, Delivery, DeploymentStatus,
        ListDeliveriesRequest, ListSubscriptionsRequest, TestSubscriptionRequest,
        notification_service_client::NotificationServiceClient,
    },
    identity::Role,
};
use slipway_tests::{Cluster, assert_succeeded, repo::Change, slipctl, spec, webhook::Receiver};
use tonic::{Code, transport::Channel};

/// How long a test waits for a condition before it fails.
const WITHIN: Duration = Duration::from_secs(30);

async fn notify(cluster: &Cluster, role: Role) -> NotificationServiceClient<Channel> {
    NotificationServiceClient::new(cluster.channel(role).await)
}

/// The delivery log of `ops` once `done` holds of it, asked every 50 ms
/// for at most [`WITHIN`].
async fn deliveries_until(
    client: &mut NotificationServiceClient<Channel>,
    done: impl Fn(&[Delivery]) -> bool,
) -> Vec<Delivery> {
    let deadline = tokio::time::Instant::now() + WITHIN;
    loop {
        let log = client
            .list_deliveries(ListDeliveriesRequest { name: "ops".into() })
            .await
            .expect("deliveries")
            .into_inner()
            .deliveries;
        if done(&log) {
            return log;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "delivery log: {log:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_was_down_gets_every_notification_once_in_order_signed() {
    // A release holding `fail` fails its before-activate hook.
    let cluster = Cluster::builder()
        .agents(1)
        .activation(spec::hooks(vec![spec::before_activate(
            "guard",
            "test ! -e fail",
        )]))
        .start()
        .await;
    let receiver = Receiver::start().await;
    let mut admin = notify(&cluster, Role::Admin).await;
    let created = admin
        .create_subscription(CreateSubscriptionRequest {
            name: "ops".into(),
            url: receiver.url(),
            app: "web".into(),
            ..Default::default()
        })
        .await
        .expect("subscribe")
        .into_inner();
    let sub = created.subscription.expect("subscription");
    receiver.set_secret(&created.secret);

    // The secret is shown once; a viewer lists the subscription without it.
    let listed = notify(&cluster, Role::Viewer)
        .await
        .list_subscriptions(ListSubscriptionsRequest {})
        .await
        .expect("list")
        .into_inner();
    assert_eq!(listed.subscriptions.len(), 1);
    assert_eq!(listed.subscriptions[0].name, "ops");

    receiver.set_up(false);
    cluster
        .repo
        .commit("broken", &[Change::File("fail", b"1\n")]);
    let (_, failed) = cluster.deploy("main").await;
    assert_eq!(failed.status(), DeploymentStatus::Failed, "{failed:?}");
    cluster.repo.commit("fixed", &[Change::Delete("fail")]);
    let (_, succeeded) = cluster.deploy("main").await;
    assert_succeeded(&succeeded);

    // Down: the first notification is retried, and only it.
    let first_key = |_: &[_], refused: &[String]| refused.len() >= 3;
    assert!(receiver.wait_for(WITHIN, first_key).await, "retries");
    let refused = receiver.refused();
    assert!(
        refused.iter().all(|k| *k == refused[0]),
        "only the oldest is retried: {refused:?}"
    );
    assert!(receiver.taken().is_empty());

    receiver.set_up(true);
    let all_four = |taken: &[_], _: &[String]| taken.len() >= 4;
    assert!(receiver.wait_for(WITHIN, all_four).await, "delivered");
    let taken = receiver.taken();
    let seen: Vec<(&str, &str)> = taken
        .iter()
        .map(|r| (r.event.as_str(), r.body["deployment_id"].as_str().unwrap()))
        .collect();
    assert_eq!(
        seen,
        [
            ("deployment.started", failed.id.as_str()),
            ("deployment.failed", failed.id.as_str()),
            ("deployment.started", succeeded.id.as_str()),
            ("deployment.succeeded", succeeded.id.as_str()),
        ]
    );
    assert_eq!(receiver.bad_signatures(), 0, "every signature verified");
    assert_eq!(refused[0], taken[0].key, "the refused one was the first");
    let mut keys = Vec::new();
    for r in &taken {
        assert_eq!(r.body["schema"], "slipway.notification/v1");
        assert_eq!(r.body["event"], r.event.as_str());
        assert_eq!(r.body["idempotency_key"], r.key.as_str());
        assert_eq!(r.body["app"], "web");
        let cursor = r.body["cursor"].as_u64().unwrap();
        assert_eq!(r.key, format!("{}:{cursor}", sub.id));
        keys.push(cursor);
    }
    assert!(
        keys.windows(2).all(|w| w[0] < w[1]),
        "in feed order: {keys:?}"
    );

    // The delivery log tells the refusals and the deliveries, newest first
    // (the last is recorded just after the receiver answered it).
    let log = deliveries_until(&mut admin, |log| {
        log.iter().filter(|d| d.delivered).count() == 4
    })
    .await;
    assert!(
        log[0].delivered && log[0].http_status == 200,
        "{:?}",
        log[0]
    );
    assert!(log.iter().any(|d| !d.delivered && d.http_status == 503));

    // A test delivery is signed and answered now.
    let tested = admin
        .test_subscription(TestSubscriptionRequest { name: "ops".into() })
        .await
        .expect("test")
        .into_inner()
        .delivery
        .expect("delivery");
    assert!(tested.delivered, "{tested:?}");
    assert_eq!(receiver.taken().len(), 5);
    assert_eq!(receiver.taken()[4].event, "test");
    assert_eq!(receiver.bad_signatures(), 0);

    admin
        .delete_subscription(DeleteSubscriptionRequest { name: "ops".into() })
        .await
        .expect("remove");
    let gone = admin
        .list_deliveries(ListDeliveriesRequest { name: "ops".into() })
        .await
        .expect_err("removed");
    assert_eq!(gone.code(), Code::NotFound);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_subscriptions_are_refused_and_viewers_cannot_subscribe() {
    let cluster = Cluster::builder().agents(1).start().await;
    let mut admin = notify(&cluster, Role::Admin).await;
    let good = CreateSubscriptionRequest {
        name: "ops".into(),
        url: "http://127.0.0.1:9/hook".into(),
        ..Default::default()
    };
    for (bad, field) in [
        (
            CreateSubscriptionRequest {
                url: "file:///etc/passwd".into(),
                ..good.clone()
            },
            "url",
        ),
        (
            CreateSubscriptionRequest {
                events: vec!["deployment.exploded".into()],
                ..good.clone()
            },
            "events",
        ),
        (
            CreateSubscriptionRequest {
                name: "Bad Name".into(),
                ..good.clone()
            },
            "name",
        ),
    ] {
        let err = admin.create_subscription(bad).await.expect_err("refused");
        assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
        assert!(err.message().contains(field), "{err:?}");
    }
    let err = notify(&cluster, Role::Viewer)
        .await
        .create_subscription(good.clone())
        .await
        .expect_err("viewer");
    assert_eq!(err.code(), Code::PermissionDenied);
    let listed = admin
        .list_subscriptions(ListSubscriptionsRequest {})
        .await
        .expect("list")
        .into_inner();
    assert!(listed.subscriptions.is_empty(), "nothing was created");

    admin
        .create_subscription(good.clone())
        .await
        .expect("create");
    let err = admin.create_subscription(good).await.expect_err("taken");
    assert_eq!(err.code(), Code::AlreadyExists);
    let err = admin
        .test_subscription(TestSubscriptionRequest {
            name: "nobody".into(),
        })
        .await
        .expect_err("unknown");
    assert_eq!(err.code(), Code::NotFound);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slipctl_adds_tests_lists_and_removes_a_slack_webhook() {
    let cluster = Cluster::builder().agents(1).start().await;
    let receiver = Receiver::start().await;
    let url = receiver.url();
    let add = ["notify", "add", "chat", "--url", &url, "--format", "slack"];
    let (ok, _, err) = slipctl::run(&cluster, Role::Viewer, &add);
    assert!(!ok && err.contains("permission denied"), "{err}");
    let (ok, out, err) = slipctl::run(&cluster, Role::Admin, &add);
    assert!(ok, "{err}");
    let secret = out
        .lines()
        .find_map(|l| l.strip_prefix("secret: "))
        .expect("the secret is shown");
    receiver.set_secret(secret);

    let (ok, out, err) = slipctl::run(&cluster, Role::Admin, &["notify", "test", "chat"]);
    assert!(ok, "{out}{err}");
    let taken = receiver.taken();
    assert_eq!(taken.len(), 1);
    let text = taken[0].body["text"].as_str().expect("slack text");
    assert!(text.starts_with("slipway test"), "{text}");

    let (ok, out, _) = slipctl::run(&cluster, Role::Viewer, &["notify", "list"]);
    assert!(ok && out.contains("chat") && out.contains(&url), "{out}");
    assert!(!out.contains(secret), "the secret is never listed");
    let deliveries = ["notify", "deliveries", "chat"];
    let (ok, out, _) = slipctl::run(&cluster, Role::Viewer, &deliveries);
    assert!(
        ok && out.contains("delivered") && out.contains("200"),
        "{out}"
    );

    receiver.set_up(false);
    let (ok, out, _) = slipctl::run(&cluster, Role::Admin, &["notify", "test", "chat"]);
    assert!(!ok && out.contains("503"), "a refused test fails: {out}");

    let (ok, _, err) = slipctl::run(&cluster, Role::Admin, &["notify", "remove", "chat"]);
    assert!(ok, "{err}");
    let (ok, _, err) = slipctl::run(&cluster, Role::Viewer, &deliveries);
    assert!(!ok && err.contains("not found"), "{err}");
}
