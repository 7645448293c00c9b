//! The environment summary with real agents: after a deploy, every host
//! runs the current release and is healthy; a release cut since is listed
//! as not deployed; an agent that stops is named as not answering and
//! counted down once sampled; `slipctl env status` prints it all and its
//! JSON carries the same; bad names are refused.

use std::time::{Duration, Instant};

use slipway_proto::{
    control::v1::{
        AppEnvironmentStatus, GetEnvironmentStatusRequest, GetEnvironmentStatusResponse,
        HealthCounts,
    },
    identity::Role,
};
use slipway_tests::{
    Cluster, assert_succeeded,
    cluster::{APP, ENV},
    slipctl,
};
use tonic::Code;

/// How often the control plane samples each host here.
const SAMPLE_EVERY: Duration = Duration::from_millis(200);

async fn status(cluster: &Cluster, name: &str) -> Result<GetEnvironmentStatusResponse, Code> {
    cluster
        .environments(Role::Viewer)
        .await
        .get_environment_status(GetEnvironmentStatusRequest { name: name.into() })
        .await
        .map(|r| r.into_inner())
        .map_err(|s| s.code())
}

/// Asks for the summary until `done` holds of it (at most 30 s): samples
/// arrive on their own schedule.
async fn until(
    cluster: &Cluster,
    what: &str,
    done: impl Fn(&GetEnvironmentStatusResponse) -> bool,
) -> GetEnvironmentStatusResponse {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let answer = status(cluster, ENV).await.expect("environment status");
        if done(&answer) {
            return answer;
        }
        assert!(Instant::now() < deadline, "{what}: {answer:#?}");
        tokio::time::sleep(SAMPLE_EVERY).await;
    }
}

fn web(answer: &GetEnvironmentStatusResponse) -> &AppEnvironmentStatus {
    answer
        .apps
        .iter()
        .find(|a| a.app == APP)
        .expect("the app is summarised")
}

fn counts(healthy: u32, down: u32) -> Option<HealthCounts> {
    Some(HealthCounts {
        healthy,
        down,
        ..Default::default()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_environment_summary_shows_the_release_its_hosts_their_health_and_what_is_not_deployed()
{
    let mut cluster = Cluster::builder()
        .agents(2)
        .health_sample_every(SAMPLE_EVERY)
        .start()
        .await;
    cluster.commit_text("v1");
    let (_, deployed) = cluster.deploy("main").await;
    assert_succeeded(&deployed);

    let answer = until(&cluster, "both hosts healthy", |a| a.hosts == counts(2, 0)).await;
    let app = web(&answer);
    let current = app.current.as_ref().expect("a current deployment");
    assert_eq!(current.id, deployed.id);
    assert_eq!(current.release, deployed.release);
    assert!(current.author.starts_with("admin/"), "{current:?}");
    assert_eq!(app.last.as_ref().map(|d| &d.id), Some(&deployed.id));
    assert_eq!((app.hosts_on_current, app.hosts_total), (2, 2));
    assert!(app.off_current.is_empty() && app.unreachable_hosts.is_empty());
    assert_eq!(app.health, counts(2, 0));
    assert_eq!(app.undeployed_total, 0);

    // A release cut since, not deployed: listed.
    cluster.commit_text("v2");
    let cut = cluster.cut_release("main").await.expect("cut a release");

    // An agent that stops: not answering now, down once sampled.
    let stopped = cluster.agents[1].server.take().expect("in-process agent");
    stopped.shutdown().await;
    let answer = until(&cluster, "web-2 down", |a| a.hosts == counts(1, 1)).await;
    let app = web(&answer);
    assert_eq!((app.hosts_on_current, app.hosts_total), (1, 2));
    assert_eq!(app.unreachable_hosts, ["web-2"]);
    assert_eq!(app.undeployed_total, 1);
    assert_eq!(app.undeployed[0].id, cut.id);
    assert!(
        app.undeployed[0].changes.is_empty(),
        "a summary, not a diff"
    );

    let (ok, text, stderr) = slipctl::run(&cluster, Role::Viewer, &["env", "status", ENV]);
    assert!(ok, "{stderr}");
    assert!(
        text.starts_with(&format!("environment {ENV}: 2 hosts: 1 healthy, 1 down\n")),
        "{text}"
    );
    let row = text
        .lines()
        .find(|l| l.starts_with(&format!("{APP} ")))
        .unwrap_or_else(|| panic!("{text}"));
    for cell in [deployed.release.as_str(), "1/2", "admin/", &deployed.id] {
        assert!(row.contains(cell), "{cell}: {row}");
    }
    assert!(
        text.contains(&format!("{APP}: no answer from web-2\n")),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "{APP}: 1 release(s) not deployed here:\n  {}",
            cut.id
        )),
        "{text}"
    );
    let json_args = ["env", "status", ENV, "-o", "json"];
    let (ok, json, stderr) = slipctl::run(&cluster, Role::Viewer, &json_args);
    assert!(ok, "{stderr}");
    let parsed: serde_json::Value = serde_json::from_str(&json).expect("JSON");
    assert_eq!(parsed["apps"][0]["undeployed"][0]["id"], cut.id.as_str());
    assert_eq!(parsed["apps"][0]["unreachableHosts"][0], "web-2");

    assert_eq!(
        status(&cluster, "nowhere").await.err(),
        Some(Code::NotFound)
    );
    assert_eq!(
        status(&cluster, "../prod").await.err(),
        Some(Code::InvalidArgument)
    );
    cluster.shutdown().await;
}
