//! Health over time with real agents (and drawn on the dashboard's host
//! page): an app whose health endpoint (served
//! by this test) is probed every second and a control plane that samples
//! every 200 ms. Samples appear; the endpoint starts failing and its hosts
//! turn degraded within the intervals; an agent that stops turns its host
//! down; the live feed records each change and a webhook is notified of
//! each (degraded, recovered, down); both daemons export it as
//! metrics; `slipctl health` prints it; and
//! with the clock run ahead on the control plane's store, the samples are
//! aggregated into 5-minute points that outlive them.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant, SystemTime},
};

use futures_util::StreamExt;
use slipway_control_plane::{
    observe::maintenance::maintain,
    store::health::{self, Series},
};
use slipway_proto::{
    agent::v1::{ActivationSpec, AppHealthState, HealthCheck},
    control::v1::{
        CreateSubscriptionRequest, FeedItem, FeedKind, GetHealthSeriesRequest,
        GetHealthSeriesResponse, HostHealthState, WatchEventsRequest,
        feed_service_client::FeedServiceClient,
        notification_service_client::NotificationServiceClient,
    },
    identity::Role,
};
use slipway_tests::{
    Cluster, assert_succeeded,
    cluster::ENV,
    dashboard::Browser,
    scrape::Scrape,
    slipctl,
    webhook::{Received, Receiver},
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
};

/// How often the control plane samples each host here.
const SAMPLE_EVERY: Duration = Duration::from_millis(200);
/// How often each agent probes the app here (the least an app may ask).
const PROBE_EVERY: Duration = Duration::from_secs(1);
/// How long a test waits for a notification before it fails.
const WITHIN: Duration = Duration::from_secs(30);

/// An HTTP endpoint answering 200 while `healthy` holds, else 500.
async fn endpoint(healthy: Arc<AtomicBool>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}/health", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let healthy = healthy.load(Ordering::SeqCst);
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0; 1024];
                while !head.ends_with(b"\r\n\r\n") {
                    match conn.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let answer = if healthy {
                    "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
                } else {
                    "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 11\r\n\
                     Connection: close\r\n\r\ndb is down\n"
                };
                let _ = conn.write_all(answer.as_bytes()).await;
            });
        }
    });
    url
}

async fn series(
    cluster: &Cluster,
    from: SystemTime,
    to: SystemTime,
    step: u32,
) -> GetHealthSeriesResponse {
    let request = GetHealthSeriesRequest {
        environment: ENV.into(),
        from: Some(slipway_proto::timestamp(from)),
        to: Some(slipway_proto::timestamp(to)),
        step_seconds: step,
        ..Default::default()
    };
    let mut hosts = cluster.hosts(Role::Viewer).await;
    let answer = hosts
        .get_health_series(request)
        .await
        .expect("health series");
    answer.into_inner()
}

/// Polls the last minute's series until `done` holds (at most 30 s): the
/// samples arrive on their own schedule.
async fn until(
    cluster: &Cluster,
    what: &str,
    done: impl Fn(&GetHealthSeriesResponse) -> bool,
) -> GetHealthSeriesResponse {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let now = SystemTime::now();
        let answer = series(cluster, now - Duration::from_secs(60), now, 1).await;
        if done(&answer) {
            return answer;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting: {what}\n{answer:#?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn states(answer: &GetHealthSeriesResponse) -> Vec<HostHealthState> {
    answer.hosts.iter().map(|h| h.state()).collect()
}

// Two workers: slipctl runs as a process while the control plane serves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hosts_are_sampled_turn_degraded_and_down_and_samples_are_downsampled() {
    let healthy = Arc::new(AtomicBool::new(true));
    let url = endpoint(healthy.clone()).await;
    let spec = ActivationSpec {
        health_check: Some(HealthCheck {
            http_url: url,
            attempts: 3,
            interval_ms: 100,
            timeout_seconds: 10,
            probe_interval_seconds: PROBE_EVERY.as_secs() as u32,
            ..Default::default()
        }),
        ..Default::default()
    };
    let mut cluster = Cluster::builder()
        .agents(2)
        .activation(spec)
        .health_sample_every(SAMPLE_EVERY)
        .start()
        .await;
    let receiver = Receiver::start().await;
    let created = NotificationServiceClient::new(cluster.channel(Role::Admin).await)
        .create_subscription(CreateSubscriptionRequest {
            name: "pager".into(),
            url: receiver.url(),
            events: ["host.degraded", "host.recovered", "host.down"]
                .map(String::from)
                .to_vec(),
            ..Default::default()
        })
        .await
        .expect("subscribe")
        .into_inner();
    receiver.set_secret(&created.secret);
    let started = SystemTime::now();
    cluster.commit_text("v1");
    let (_, deployment) = cluster.deploy("main").await;
    assert_succeeded(&deployment);

    // Samples appear, with each host's facts and the app's probe.
    let answer = until(&cluster, "both hosts healthy", |a| {
        states(a) == [HostHealthState::Healthy; 2]
            && a.hosts
                .iter()
                .all(|h| h.latest.as_ref().is_some_and(|l| !l.apps.is_empty()))
    })
    .await;
    let web = &answer.hosts[0];
    let latest = web.latest.as_ref().unwrap();
    assert!(latest.reachable && latest.memory_total_bytes > 0 && latest.disk_free_bytes > 0);
    assert_eq!(latest.agent_version, env!("CARGO_PKG_VERSION"));
    let app = &latest.apps[0];
    assert_eq!(
        (app.app.as_str(), app.state()),
        ("web", AppHealthState::Healthy)
    );
    assert_eq!(app.release_id, deployment.release);
    assert!(!web.points.is_empty());

    // The host's page draws the app's response time and availability next
    // to the host's own charts.
    let viewer = Browser::logged_in(&cluster, Role::Viewer).await;
    let page = viewer.get(&format!("/hosts/{}?period=24h", web.host)).await;
    assert_eq!(page.status, 200, "{}", page.body);
    for chart in [
        "aria-label=\"Availability: ",
        "aria-label=\"Load: ",
        "aria-label=\"web · Response time: ",
        "aria-label=\"web · Availability: ",
    ] {
        assert!(page.body.contains(chart), "{chart}: {}", page.body);
    }

    // The endpoint fails: within a probe and a sample, the hosts are degraded.
    healthy.store(false, Ordering::SeqCst);
    let failed_at = Instant::now();
    let answer = until(&cluster, "both hosts degraded", |a| {
        states(a) == [HostHealthState::Degraded; 2]
    })
    .await;
    let took = failed_at.elapsed();
    let slack = Duration::from_secs(3);
    assert!(
        took < PROBE_EVERY + SAMPLE_EVERY + slack,
        "degraded after {took:?}"
    );
    let app = &answer.hosts[0].latest.as_ref().unwrap().apps[0];
    assert_eq!(app.state(), AppHealthState::Failing);
    assert_eq!(
        app.error,
        "answered HTTP/1.1 500 Internal Server Error: db is down"
    );

    // The change is in the live feed, with the app to blame.
    let mut feed = FeedServiceClient::new(cluster.channel(Role::Viewer).await);
    let request = WatchEventsRequest {
        kinds: vec![FeedKind::Health as i32],
        app: "web".into(),
        ..Default::default()
    };
    let items: Vec<FeedItem> = feed
        .watch_events(request)
        .await
        .expect("watch the feed")
        .into_inner()
        .map(|m| m.expect("message").item.expect("an item"))
        .collect()
        .await;
    let degraded = "web-1 is degraded: app web failing: answered HTTP/1.1 500";
    assert!(
        items.iter().any(|i| i.message.starts_with(degraded)),
        "{items:#?}"
    );

    // And it is a notification, one per host, signed.
    let notified = |events: &[(&str, &str)]| {
        let events: Vec<(String, String)> = events
            .iter()
            .map(|(e, h)| (e.to_string(), h.to_string()))
            .collect();
        move |taken: &[Received], _: &[String]| {
            let seen: Vec<(String, String)> = taken
                .iter()
                .map(|r| {
                    (
                        r.event.clone(),
                        r.body["host"].as_str().unwrap_or("").to_owned(),
                    )
                })
                .collect();
            events.iter().all(|e| seen.contains(e))
        }
    };
    let degraded = [("host.degraded", "web-1"), ("host.degraded", "web-2")];
    assert!(
        receiver.wait_for(WITHIN, notified(&degraded)).await,
        "{:#?}",
        receiver.taken()
    );
    assert_eq!(receiver.bad_signatures(), 0);

    let cp = Scrape::of(cluster.metrics_addr()).await;
    let web_1 = [("app", "web"), ("environment", ENV), ("host", "web-1")];
    assert_eq!(
        cp.value("slipway_app_health", &web_1),
        Some(0.0),
        "{}",
        cp.0
    );
    let degraded = [("environment", ENV), ("state", "degraded")];
    assert_eq!(cp.value("slipway_hosts_by_health", &degraded), Some(2.0));
    let agent = Scrape::of(cluster.agents[0].metrics_addr()).await;
    let failed = [("app", "web"), ("result", "failed")];
    assert!(
        agent.sum("slipway_agent_health_probes_total", &failed) >= 1.0,
        "{}",
        agent.0
    );
    assert_eq!(
        agent.value("slipway_agent_app_healthy", &[("app", "web")]),
        Some(0.0)
    );

    healthy.store(true, Ordering::SeqCst);
    until(&cluster, "healthy again", |a| {
        states(a) == [HostHealthState::Healthy; 2]
    })
    .await;

    // An agent that stops answering: its host is down, with the reason.
    let stopped = cluster.agents[1].server.take().expect("in-process agent");
    stopped.shutdown().await;
    let answer = until(&cluster, "web-2 down", |a| {
        states(a) == [HostHealthState::Healthy, HostHealthState::Down]
    })
    .await;
    assert!(!answer.hosts[1].latest.as_ref().unwrap().error.is_empty());
    let after = [
        ("host.recovered", "web-1"),
        ("host.recovered", "web-2"),
        ("host.down", "web-2"),
    ];
    assert!(
        receiver.wait_for(WITHIN, notified(&after)).await,
        "{:#?}",
        receiver.taken()
    );
    assert!(
        receiver
            .taken()
            .iter()
            .all(|r| r.body["host"] != "web-1" || r.event != "host.down"),
        "web-1 never went down"
    );

    // The whole range in figures: web-2 was not always up; web-1 failed
    // some probes.
    let now = SystemTime::now();
    let answer = series(&cluster, started, now, 0).await;
    let summary = |i: usize| answer.hosts[i].summary.unwrap();
    assert_eq!(summary(0).uptime_percent, 100.0);
    assert!(summary(0).error_rate_percent > 0.0 && summary(0).error_rate_percent < 100.0);
    assert!(summary(0).response_p50_ms > 0.0);
    assert!(summary(1).uptime_percent < 100.0);

    let (ok, text, stderr) = slipctl::run(
        &cluster,
        Role::Viewer,
        &["health", "--env", ENV, "--since", "1h"],
    );
    assert!(ok, "{stderr}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("web-1") && l.contains("healthy")),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("web-2") && l.contains("down")),
        "{text}"
    );
    assert!(text.contains("uptime") && text.contains('█'), "{text}");
    let health_json = ["health", "--host", "web-1", "-o", "json"];
    let (ok, json, stderr) = slipctl::run(&cluster, Role::Viewer, &health_json);
    assert!(ok, "{stderr}");
    let parsed: serde_json::Value = serde_json::from_str(&json).expect("JSON");
    assert_eq!(parsed["hosts"][0]["state"], "HOST_HEALTH_STATE_HEALTHY");

    // The clock run ahead on the store: ten minutes on, the raw samples are
    // 5-minute aggregates too; a day on, only the aggregates are left.
    let (raw, ahead) = cluster
        .with_control_plane_stopped(async |store| {
            let sampled = health::samples(store, "web-1", (0, u64::MAX), 1_000_000).unwrap();
            let now = SystemTime::now();
            let soon = maintain(store, now + Duration::from_secs(600))
                .await
                .unwrap();
            assert!(soon.aggregated >= 2, "{soon:?}");
            let later = now + Duration::from_secs(25 * 3600);
            let day = maintain(store, later).await.unwrap();
            assert!(day.expired_samples >= sampled.len(), "{day:?}");
            assert_eq!(health::footprint(store, Series::Raw).unwrap().0, 0);
            (sampled.len() as u32, later)
        })
        .await;
    let back = series(&cluster, started - Duration::from_secs(600), ahead, 300).await;
    let web = &back.hosts[0];
    assert_eq!(web.summary.as_ref().unwrap().samples, raw);
    assert!(web.points.iter().all(|p| p.samples > 0));
    cluster.shutdown().await;
}
