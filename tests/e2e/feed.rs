//! The live feed: every deployment and host status change with a dense
//! cursor, filtered, resumed after a dropped stream with no gap and no
//! duplicate, and followed by `slipctl events`.

use futures_util::StreamExt;
use slipway_proto::{
    control::v1::{
        DeploymentStatus, FeedItem, FeedKind, WatchEventsRequest,
        feed_service_client::FeedServiceClient,
    },
    identity::Role,
};
use slipway_tests::{Cluster, assert_succeeded, repo::Change, slipctl};
use tonic::{Code, transport::Channel};

async fn feed(cluster: &Cluster) -> FeedServiceClient<Channel> {
    FeedServiceClient::new(cluster.channel(Role::Viewer).await)
}

/// Every item of a finite watch.
async fn read_all(
    client: &mut FeedServiceClient<Channel>,
    request: WatchEventsRequest,
) -> Vec<FeedItem> {
    let stream = client
        .watch_events(request)
        .await
        .expect("watch")
        .into_inner();
    stream
        .map(|m| m.expect("message").item.expect("an item"))
        .collect()
        .await
}

fn cursors(items: &[FeedItem]) -> Vec<u64> {
    items.iter().map(|i| i.cursor).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_feed_tells_every_status_change_in_order_and_resumes_without_a_gap() {
    let cluster = Cluster::builder().agents(2).start().await;
    let mut client = feed(&cluster).await;
    cluster.repo.commit("one", &[Change::File("a.txt", b"1\n")]);

    // A follower from now on, dropped after its first items.
    let mut follower = client
        .watch_events(WatchEventsRequest {
            from_now: true,
            follow: true,
            ..Default::default()
        })
        .await
        .expect("follow")
        .into_inner();
    let (_, first) = cluster.deploy("main").await;
    assert_succeeded(&first);
    let mut seen = Vec::new();
    for _ in 0..3 {
        let item = follower.next().await.expect("an item").expect("ok");
        seen.push(item.item.expect("an item"));
    }
    drop(follower);

    let all = read_all(&mut client, WatchEventsRequest::default()).await;
    let expected: Vec<u64> = (1..=all.len() as u64).collect();
    assert_eq!(cursors(&all), expected, "dense cursors from 1");
    assert_eq!(
        cursors(&seen),
        [1, 2, 3],
        "from now: the deploy's first items"
    );
    let of = |kind: FeedKind, host: &str, status: DeploymentStatus| {
        all.iter().any(|i| {
            i.kind() == kind
                && i.host == host
                && i.status() == status
                && i.app == "web"
                && i.environment == "prod"
                && i.deployment_id == first.id
                && i.release == first.release
        })
    };
    assert!(
        of(FeedKind::Deployment, "", DeploymentStatus::Pending),
        "{all:#?}"
    );
    assert!(
        of(FeedKind::Deployment, "", DeploymentStatus::Succeeded),
        "{all:#?}"
    );
    for host in ["web-1", "web-2"] {
        assert!(
            of(FeedKind::Host, host, DeploymentStatus::Running),
            "{all:#?}"
        );
        assert!(
            of(FeedKind::Host, host, DeploymentStatus::Succeeded),
            "{all:#?}"
        );
    }
    assert_eq!(
        all.iter()
            .filter(|i| i.kind() == FeedKind::Host
                && i.host == "web-1"
                && i.status() == DeploymentStatus::Running)
            .count(),
        1,
        "a change, not every event: {all:#?}"
    );

    // Resumed after the last item seen: the rest of the first deploy, then
    // the second, each once.
    cluster.repo.commit("two", &[Change::File("a.txt", b"2\n")]);
    let (_, second) = cluster.deploy("main").await;
    assert_succeeded(&second);
    let rest = read_all(
        &mut client,
        WatchEventsRequest {
            after: 3,
            ..Default::default()
        },
    )
    .await;
    let whole: Vec<u64> = cursors(&seen).into_iter().chain(cursors(&rest)).collect();
    let expected: Vec<u64> = (1..=whole.len() as u64).collect();
    assert_eq!(whole, expected, "no gap and no duplicate");
    assert!(rest.iter().any(|i| i.deployment_id == second.id));

    // Filters.
    let deployments = read_all(
        &mut client,
        WatchEventsRequest {
            kinds: vec![FeedKind::Deployment as i32],
            ..Default::default()
        },
    )
    .await;
    assert!(!deployments.is_empty());
    assert!(
        deployments
            .iter()
            .all(|i| i.kind() == FeedKind::Deployment && i.host.is_empty())
    );
    let other = read_all(
        &mut client,
        WatchEventsRequest {
            app: "other".into(),
            ..Default::default()
        },
    )
    .await;
    assert!(other.is_empty());

    // Bad input changes nothing and says why.
    for bad in [
        WatchEventsRequest {
            kinds: vec![99],
            ..Default::default()
        },
        WatchEventsRequest {
            from_now: true,
            after: 2,
            ..Default::default()
        },
        WatchEventsRequest {
            app: "../web".into(),
            ..Default::default()
        },
    ] {
        let refused = client.watch_events(bad).await.expect_err("refused");
        assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
    }

    // slipctl prints the same items as JSON lines.
    let (ok, stdout, stderr) = slipctl::run(
        &cluster,
        Role::Viewer,
        &["events", "-o", "json", "--kind", "deployment"],
    );
    assert!(ok, "{stderr}");
    let printed: Vec<u64> = stdout
        .lines()
        .map(|line| {
            let item: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
            item["cursor"]
                .as_str()
                .expect("cursor")
                .parse()
                .expect("a number")
        })
        .collect();
    assert_eq!(printed, cursors(&deployments));
    cluster.shutdown().await;
}
