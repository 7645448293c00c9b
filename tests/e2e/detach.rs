//! `slipctl deploy --detach` and `slipctl rollback --detach`: the id (or the
//! record with `-o json`) at once, exit 0, while the deployment goes on.

use slipway_proto::{control::v1::DeploymentStatus, identity::Role};
use slipway_tests::{Cluster, assert_succeeded, slipctl, spec};

/// Runs slipctl off the async runtime.
async fn slipctl(cluster: &Cluster, args: &[&str]) -> (bool, String, String) {
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    tokio::task::block_in_place(|| {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        slipctl::run(cluster, Role::Deployer, &args)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn detach_returns_the_id_while_the_deployment_holds_then_it_finishes() {
    let cluster = Cluster::builder().agents(2).start().await;
    cluster.commit_text("v1");
    let (_, first) = cluster.deploy("main").await;
    assert_succeeded(&first);
    // web-2 holds in its hook until the gate exists: the deployment cannot
    // finish before slipctl returns.
    let gate = cluster.hold_in_hook(1, spec::before_activate).await;
    cluster.commit_text("v2");
    let (ok, stdout, stderr) =
        slipctl(&cluster, &["deploy", "web", "--env", "prod", "--detach"]).await;
    assert!(ok, "{stderr}");
    let id = stdout.trim().to_owned();
    assert!(id.starts_with("dep-"), "{stdout}");
    let running = cluster.deployment(&id).await;
    assert!(
        !matches!(
            running.status(),
            DeploymentStatus::Succeeded | DeploymentStatus::Failed
        ),
        "{:?}",
        running.status()
    );
    std::fs::write(&gate, b"go").expect("open the gate");
    let (_, done) = cluster.watch(&id).await;
    assert_succeeded(&done);

    // A rollback, detached, as JSON: the record with its id.
    let (ok, stdout, stderr) = slipctl(
        &cluster,
        &[
            "-o", "json", "rollback", "web", "--env", "prod", "--detach", "--yes",
        ],
    )
    .await;
    assert!(ok, "{stderr}");
    let json: serde_json::Value = serde_json::from_str(&stdout).expect("one JSON object");
    let id = json["deployment"]["id"].as_str().expect("id").to_owned();
    let (_, rolled) = cluster.watch(&id).await;
    assert_succeeded(&rolled);
    assert_eq!(rolled.release, first.release);
    cluster.shutdown().await;
}
