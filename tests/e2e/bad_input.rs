//! Bad input gets a clear status with the right code and changes nothing.

use futures_util::StreamExt;
use slipway_proto::{
    agent::v1::{
        AppTarget, DeployRequest as AgentDeploy, FileEntry, FileKind,
        agent_service_client::AgentServiceClient,
    },
    control::v1::{
        AddHostRequest, App, CreateAppRequest, CreateEnvironmentRequest, DeployRequest,
        DeploymentStatus, Environment, GetHostRequest, GetReleaseRequest, Host, ListAppsRequest,
        ListDeploymentsRequest, WatchDeploymentRequest,
    },
    identity::Role,
    tls,
};
use slipway_tests::assert_succeeded;
use slipway_tests::{
    Cluster, TestPki,
    cluster::{APP, ENV},
    repo::Change,
};
use tonic::Code;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_names_are_not_found() {
    let cluster = Cluster::builder().agents(1).start().await;
    cluster.repo.commit("one", &[Change::File("a.txt", b"a\n")]);
    let mut deployments = cluster.deployments(Role::Admin).await;

    let status = deployments
        .deploy(DeployRequest {
            app: "nope".into(),
            environment: ENV.into(),
            ..Default::default()
        })
        .await
        .expect_err("unknown app");
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    assert!(
        status.message().contains("app \"nope\""),
        "{}",
        status.message()
    );

    let status = deployments
        .deploy(DeployRequest {
            app: APP.into(),
            environment: ENV.into(),
            release_id: "20200101T000000Z-abcdef0".into(),
            ..Default::default()
        })
        .await
        .expect_err("unknown release");
    assert_eq!(status.code(), Code::NotFound, "{status:?}");

    let status = deployments
        .deploy(DeployRequest {
            app: APP.into(),
            environment: ENV.into(),
            git_ref: "no-such-branch".into(),
            ..Default::default()
        })
        .await
        .expect_err("unknown ref");
    assert_eq!(status.code(), Code::NotFound, "{status:?}");

    let status = cluster
        .hosts(Role::Viewer)
        .await
        .get_host(GetHostRequest {
            name: "web-7".into(),
        })
        .await
        .expect_err("unknown host");
    assert_eq!(status.code(), Code::NotFound, "{status:?}");

    let status = cluster
        .releases(Role::Viewer)
        .await
        .get_release(GetReleaseRequest {
            app: APP.into(),
            id: "20200101T000000Z-abcdef0".into(),
            include_manifest: false,
        })
        .await
        .expect_err("unknown release");
    assert_eq!(status.code(), Code::NotFound, "{status:?}");

    let status = deployments
        .watch_deployment(WatchDeploymentRequest {
            deployment_id: "dep-0000009999".into(),
            after_event: 0,
        })
        .await
        .expect_err("unknown deployment");
    assert_eq!(status.code(), Code::NotFound, "{status:?}");

    let listed = deployments
        .list_deployments(ListDeploymentsRequest::default())
        .await
        .expect("list")
        .into_inner();
    assert!(listed.deployments.is_empty(), "no deployment was recorded");
    assert_eq!(cluster.agents[0].current(), None);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_fields_are_named_and_nothing_is_written() {
    let cluster = Cluster::builder().agents(1).start().await;
    let mut apps = cluster.apps(Role::Admin).await;
    let repo = cluster.repo.path().display().to_string();
    let app = |name: &str, root: &str| CreateAppRequest {
        app: Some(App {
            name: name.into(),
            repository: repo.clone(),
            deploy_root: root.into(),
            ..Default::default()
        }),
    };

    let status = apps
        .create_app(app("Bad_Name", ""))
        .await
        .expect_err("invalid name");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().contains("app.name"),
        "{}",
        status.message()
    );

    let status = apps
        .create_app(app("api", "/srv/../etc"))
        .await
        .expect_err("dot-dot root");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().contains("app.deploy_root"),
        "{}",
        status.message()
    );

    let status = apps
        .create_app(CreateAppRequest {
            app: Some(App {
                name: "api".into(),
                repository: "/no/such/repo".into(),
                ..Default::default()
            }),
        })
        .await
        .expect_err("missing repository");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().contains("app.repository"),
        "{}",
        status.message()
    );

    let status = cluster
        .hosts(Role::Admin)
        .await
        .add_host(AddHostRequest {
            host: Some(Host {
                name: "web_2".into(),
                address: "127.0.0.1:1".into(),
                environment: ENV.into(),
                ..Default::default()
            }),
            enroll: false,
        })
        .await
        .expect_err("invalid host name");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().contains("host.name"),
        "{}",
        status.message()
    );

    // An oversized message is refused before anything is cut or recorded.
    let status = cluster
        .deployments(Role::Deployer)
        .await
        .deploy(DeployRequest {
            app: APP.into(),
            environment: ENV.into(),
            message: "x".repeat(64 << 10),
            ..Default::default()
        })
        .await
        .expect_err("oversized message");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("message"), "{}", status.message());
    assert!(status.message().len() < 200, "the answer is bounded too");
    let recorded = cluster
        .deployments(Role::Viewer)
        .await
        .list_deployments(ListDeploymentsRequest::default())
        .await
        .expect("history")
        .into_inner()
        .deployments;
    assert!(recorded.is_empty(), "nothing recorded: {recorded:?}");

    let names: Vec<String> = apps
        .list_apps(ListAppsRequest {})
        .await
        .expect("list")
        .into_inner()
        .apps
        .into_iter()
        .map(|a| a.name)
        .collect();
    assert_eq!(names, [APP], "only the registered app exists");

    // The agent checks every path from the wire itself: `..` never reaches the disk.
    let agent = &cluster.agents[0];
    let addr = agent.server.as_ref().expect("agent").addr.to_string();
    let material = TestPki::material(&cluster.pki.control_plane_client());
    let channel = tls::endpoint(&addr, tls::Peer::Agent("web-1".into()), &material)
        .expect("endpoint")
        .connect_lazy();
    let request = AgentDeploy {
        deployment_id: "dep-evil".into(),
        app: Some(AppTarget {
            name: APP.into(),
            deploy_root: String::new(),
        }),
        release_id: "r1".into(),
        files: vec![FileEntry {
            path: "../../escape".into(),
            kind: FileKind::Regular as i32,
            mode: 0o644,
            size: 1,
            sha256: "a".repeat(64),
        }],
        keep_releases: 0,
        ..Default::default()
    };
    let status = AgentServiceClient::new(channel)
        .deploy(request)
        .await
        .expect_err("dot-dot path");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(
        status.message().contains("files[0].path"),
        "{}",
        status.message()
    );
    let leftovers: Vec<_> = std::fs::read_dir(&agent.apps_dir)
        .expect("apps dir")
        .collect();
    assert!(
        leftovers.is_empty(),
        "nothing written under the apps dir: {leftovers:?}"
    );
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_concurrent_deploy_is_refused() {
    let cluster = Cluster::builder().agents(1).start().await;
    cluster.repo.commit("one", &[Change::File("a.txt", b"a\n")]);
    // A host whose "agent" accepts TCP but never answers TLS keeps the first
    // deployment running (until the connect timeout) while the second arrives.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    cluster
        .environments(Role::Admin)
        .await
        .create_environment(CreateEnvironmentRequest {
            environment: Some(Environment {
                name: "slow".into(),
                ..Default::default()
            }),
        })
        .await
        .expect("env");
    cluster
        .hosts(Role::Admin)
        .await
        .add_host(AddHostRequest {
            host: Some(Host {
                name: "silent".into(),
                address: silent.local_addr().expect("addr").to_string(),
                environment: "slow".into(),
                ..Default::default()
            }),
            enroll: false,
        })
        .await
        .expect("host");
    let mut client = cluster.deployments(Role::Deployer).await;
    let request = DeployRequest {
        app: APP.into(),
        environment: "slow".into(),
        // The silent host fails once retries no longer fit in its deadline.
        policy: Some(slipway_proto::control::v1::RolloutPolicy {
            step_timeout_seconds: 3,
            ..Default::default()
        }),
        ..Default::default()
    };
    let mut first = client
        .deploy(request.clone())
        .await
        .expect("first deploy")
        .into_inner();
    let started = first
        .next()
        .await
        .expect("event")
        .expect("ok")
        .event
        .expect("set");

    let status = client.deploy(request).await.expect_err("second deploy");
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    assert!(
        status.message().contains(&started.deployment_id),
        "{}",
        status.message()
    );

    // Other environments are not locked.
    let (_, other) = cluster.deploy("main").await;
    assert_succeeded(&other);
    // The refused deploy took no deployment number.
    let number = |id: &str| {
        id.trim_start_matches("dep-")
            .parse::<u64>()
            .expect("number")
    };
    assert_eq!(number(&other.id), number(&started.deployment_id) + 1);

    let rest: Vec<_> = first
        .map(|r| r.expect("event").event.expect("set"))
        .collect()
        .await;
    assert_eq!(
        rest.last().expect("final").status,
        DeploymentStatus::Failed as i32
    );
    let listed = client
        .list_deployments(ListDeploymentsRequest::default())
        .await
        .expect("list")
        .into_inner();
    assert_eq!(
        listed.deployments.len(),
        2,
        "the refused deploy recorded nothing"
    );
    drop(silent);
    cluster.shutdown().await;
}
