//! The metrics listeners of both daemons with real agents: after a deploy
//! and a failed deploy that rolls back by itself, `/metrics` on the control
//! plane and on each agent shows what happened, with the right labels;
//! `/healthz` and `/readyz` answer for load balancers; and a real
//! Prometheus server scrapes both daemons and answers a query.

use slipway_proto::{
    control::v1::{DeploymentStatus, GetDeploymentRequest, RolloutPolicy},
    identity::Role,
};
use slipway_tests::{
    Cluster, assert_succeeded,
    cluster::{APP, ENV},
    prometheus::Prometheus,
    scrape::{Scrape, get},
    spec,
};

/// Labels of the cluster's app in its environment, and `more`.
fn target<'a>(more: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut labels = vec![("app", APP), ("environment", ENV)];
    labels.extend_from_slice(more);
    labels
}

#[tokio::test]
async fn both_daemons_serve_health_and_readiness() {
    let cluster = Cluster::builder().agents(1).start().await;
    let missing = cluster
        .deployments(Role::Viewer)
        .await
        .get_deployment(GetDeploymentRequest {
            deployment_id: "dep-0000000042".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), tonic::Code::NotFound);
    let cp = Scrape::of(cluster.metrics_addr()).await;
    let not_found = [
        (
            "method",
            "/slipway.control.v1.DeploymentService/GetDeployment",
        ),
        ("code", "NotFound"),
    ];
    assert_eq!(
        cp.value("slipway_grpc_calls_total", &not_found),
        Some(1.0),
        "{}",
        cp.0
    );
    let addrs = [cluster.metrics_addr(), cluster.agents[0].metrics_addr()];
    for addr in addrs {
        let health = get(addr, "/healthz").await;
        assert_eq!((health.status, health.body.as_str()), (200, "ok\n"));
        let ready = get(addr, "/readyz").await;
        assert_eq!((ready.status, ready.body.as_str()), (200, "ready\n"));
        let metrics = get(addr, "/metrics").await;
        assert_eq!(metrics.status, 200);
        assert!(
            metrics
                .content_type
                .starts_with("application/openmetrics-text"),
            "{}",
            metrics.content_type
        );
        assert!(metrics.body.ends_with("# EOF\n"), "{}", metrics.body);
        assert_eq!(get(addr, "/nothing").await.status, 404);
    }
    cluster.shutdown().await;
}

#[tokio::test]
async fn deployments_and_rollbacks_are_counted_by_app_environment_kind_and_status() {
    let cluster = Cluster::builder().agents(2).start().await;
    // Every host answers its health check, except web-2 once it finds
    // `fail-health` in its apps directory.
    let marker = cluster.agents[1].apps_dir.join("fail-health");
    let check = format!(
        r#"case "$SLIPWAY_RELEASE_DIR" in */web-2/*) test ! -e '{}';; esac"#,
        marker.display()
    );
    let activation = spec::hooks(vec![spec::after_activate("warm", "true")]);
    cluster
        .update_app(|app| {
            app.activation = Some(slipway_proto::agent::v1::ActivationSpec {
                health_check: Some(spec::health_command(&check, 1, 0)),
                ..activation
            });
        })
        .await;
    cluster.commit_text("v1");
    let (_, good) = cluster.deploy("main").await;
    assert_succeeded(&good);

    std::fs::write(&marker, "").unwrap();
    cluster.commit_text("v2");
    let policy = RolloutPolicy {
        auto_rollback: true,
        ..Default::default()
    };
    let (_, bad) = cluster.deploy_with("main", policy).await;
    assert_eq!(bad.status(), DeploymentStatus::Failed, "{}", bad.error);
    assert!(!bad.rolled_back_by.is_empty(), "{}", bad.error);

    let cp = Scrape::of(cluster.metrics_addr()).await;
    let deployments = |kind, status| {
        let labels = target(&[("kind", kind), ("status", status)]);
        cp.value("slipway_deployments_total", &labels)
    };
    assert_eq!(deployments("deploy", "succeeded"), Some(1.0), "{}", cp.0);
    assert_eq!(deployments("deploy", "failed"), Some(1.0), "{}", cp.0);
    assert_eq!(deployments("rollback", "succeeded"), Some(1.0), "{}", cp.0);
    let durations = target(&[("kind", "deploy")]);
    assert_eq!(
        cp.sum("slipway_deployment_duration_seconds_count", &durations),
        2.0
    );
    let automatic = target(&[("automatic", "true"), ("status", "succeeded")]);
    assert_eq!(cp.value("slipway_rollbacks_total", &automatic), Some(1.0));
    let recovered = cp.value("slipway_time_to_recovery_seconds_count", &target(&[]));
    assert_eq!(recovered, Some(1.0), "{}", cp.0);
    let checks = |host, result| {
        let labels = target(&[("host", host), ("result", result)]);
        cp.value("slipway_health_checks_total", &labels)
    };
    assert_eq!(checks("web-1", "passed"), Some(3.0), "{}", cp.0);
    assert_eq!(checks("web-2", "passed"), Some(1.0), "{}", cp.0);
    assert_eq!(checks("web-2", "failed"), Some(1.0), "{}", cp.0);
    let steps = cp.sum(
        "slipway_host_step_duration_seconds_count",
        &[("kind", "deploy")],
    );
    assert!(steps > 0.0, "{}", cp.0);
    assert!(cp.value("slipway_events_recorded_total", &[]).unwrap() > 10.0);
    assert!(cp.value("slipway_store_size_bytes", &[]).unwrap() > 0.0);
    assert!(
        cp.value("slipway_store_commit_duration_seconds_count", &[])
            .unwrap()
            > 10.0
    );
    let up = [("environment", ENV), ("state", "up")];
    assert_eq!(cp.value("slipway_hosts", &up), Some(2.0), "{}", cp.0);
    let down = [("environment", ENV), ("state", "down")];
    assert_eq!(cp.value("slipway_hosts", &down), Some(0.0), "{}", cp.0);
    assert_eq!(
        cp.value("slipway_agent_up", &[("host", "web-1")]),
        Some(1.0)
    );
    let deploy_call = [
        ("method", "/slipway.control.v1.DeploymentService/Deploy"),
        ("code", "OK"),
    ];
    assert_eq!(
        cp.value("slipway_grpc_calls_total", &deploy_call),
        Some(2.0),
        "{}",
        cp.0
    );

    // web-1 checked v1, v2 and v1 again after the automatic rollback.
    let passed = [("app", APP), ("result", "passed")];
    let web1 = Scrape::of(cluster.agents[0].metrics_addr()).await;
    let checks = web1.value("slipway_agent_health_checks_total", &passed);
    assert_eq!(checks, Some(3.0), "{}", web1.0);
    let agent = Scrape::of(cluster.agents[1].metrics_addr()).await;
    let failed = [("app", APP), ("result", "failed")];
    assert_eq!(
        agent.value("slipway_agent_health_checks_total", &failed),
        Some(1.0)
    );
    assert_eq!(
        agent.value("slipway_agent_health_checks_total", &passed),
        Some(1.0)
    );
    let operations = agent.sum(
        "slipway_agent_operations_total",
        &[("outcome", "succeeded")],
    );
    assert!(operations >= 2.0, "{}", agent.0);
    assert_eq!(
        agent.sum("slipway_agent_operations_total", &[("outcome", "failed")]),
        1.0,
        "{}",
        agent.0
    );
    assert!(
        agent
            .value("slipway_agent_received_bytes_total", &[])
            .unwrap()
            > 0.0
    );
    assert!(
        agent
            .value("slipway_agent_received_objects_total", &[])
            .unwrap()
            > 0.0
    );
    let store = agent.value("slipway_agent_store_size_bytes", &[("app", APP)]);
    assert!(store.unwrap() > 0.0, "{}", agent.0);
    let hook = [("app", APP), ("hook", "warm"), ("outcome", "succeeded")];
    assert!(
        agent
            .value("slipway_agent_hook_duration_seconds_count", &hook)
            .unwrap()
            >= 2.0
    );
    let upload = [
        ("method", "/slipway.agent.v1.AgentService/UploadObjects"),
        ("code", "OK"),
    ];
    assert!(agent.value("slipway_grpc_calls_total", &upload).unwrap() >= 1.0);
    cluster.shutdown().await;
}

#[tokio::test]
async fn a_real_prometheus_scrapes_both_daemons() {
    // Fails (naming the package) rather than passing without Prometheus.
    slipway_tests::prometheus::binary();
    let cluster = Cluster::builder().agents(1).start().await;
    cluster.commit_text("v1");
    let (_, deployed) = cluster.deploy("main").await;
    assert_succeeded(&deployed);
    let prometheus = Prometheus::scraping(&[
        ("slipway-control-plane", cluster.metrics_addr()),
        ("slipway-agent", cluster.agents[0].metrics_addr()),
    ])
    .await;

    let result = prometheus
        .wait_for("slipway_deployments_total", |r| !r.is_empty())
        .await;
    assert_eq!(result.len(), 1, "{result:?}");
    let metric = &result[0]["metric"];
    assert_eq!(metric["app"], APP, "{result:?}");
    assert_eq!(metric["environment"], ENV);
    assert_eq!(metric["kind"], "deploy");
    assert_eq!(metric["status"], "succeeded");
    assert_eq!(result[0]["value"][1], "1", "{result:?}");

    // Both daemons are scraped.
    let up = prometheus.wait_for("up", |r| r.len() == 2).await;
    for target in &up {
        assert_eq!(target["value"][1], "1", "{up:?}");
    }
    let operations = prometheus
        .wait_for("slipway_agent_operations_total", |r| !r.is_empty())
        .await;
    assert!(
        operations
            .iter()
            .all(|o| o["metric"]["job"] == "slipway-agent")
    );
    drop(prometheus);
    cluster.shutdown().await;
}
