//! A deployment's page splits hook output by host: each host's section
//! holds exactly the hook lines its agent sent (and the event stream the
//! page follows carries each line's host, step and stream); a host that
//! failed in a hook shows its error with the hint of that stage.

use slipway_proto::{
    control::v1::{DeploymentEvent, DeploymentStatus, EventKind},
    identity::Role,
};
use slipway_tests::{Cluster, assert_succeeded, dashboard::Browser, spec};

/// The `data-seq` numbers inside the hook section of `host` on `page`.
fn section_seqs(page: &str, host: &str) -> Vec<u64> {
    let start = page
        .find(&format!("data-hooks=\"{host}\""))
        .unwrap_or_else(|| panic!("a hook section for {host}: {page}"));
    let section = &page[start..];
    let section = &section[..section.find("</section>").expect("the section's end")];
    section
        .split("data-seq=\"")
        .skip(1)
        .filter_map(|s| s.split('"').next()?.parse().ok())
        .collect()
}

fn hook_seqs(events: &[DeploymentEvent], host: &str) -> Vec<u64> {
    events
        .iter()
        .filter(|e| e.kind() == EventKind::Log && e.host == host && !e.step.is_empty())
        .map(|e| e.sequence)
        .collect()
}

#[tokio::test]
async fn each_hosts_hook_output_has_its_own_section() {
    let cluster = Cluster::builder()
        .agents(2)
        .activation(spec::hooks(vec![spec::before_activate(
            "announce",
            r#"echo "from $SLIPWAY_DEPLOYMENT_ID"; echo "warn" >&2"#,
        )]))
        .start()
        .await;
    cluster.commit_text("v1");
    let (events, deployment) = cluster.deploy("main").await;
    assert_succeeded(&deployment);
    let browser = Browser::logged_in(&cluster, Role::Viewer).await;
    let page = browser
        .get(&format!("/deployments/{}", deployment.id))
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    for agent in &cluster.agents {
        let expected = hook_seqs(&events, &agent.name);
        assert!(expected.len() >= 2, "{}: {events:#?}", agent.name);
        assert_eq!(section_seqs(&page.body, &agent.name), expected);
    }
    assert!(
        page.body.contains("announce [stderr] warn"),
        "{}",
        page.body
    );

    // The stream the page follows names each line's host, step and stream.
    let stream = browser
        .get(&format!("/deployments/{}/events", deployment.id))
        .await;
    let hook_line = stream
        .body
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str::<serde_json::Value>(d).ok())
        .find(|e| e["step"] == "announce" && e["output"] == "stderr")
        .expect("a hook line in the stream");
    assert!(hook_line["host"].as_str().is_some_and(|h| !h.is_empty()));
    cluster.shutdown().await;
}

#[tokio::test]
async fn a_host_that_failed_in_a_hook_shows_the_hint() {
    let cluster = Cluster::builder()
        .agents(1)
        .activation(spec::hooks(vec![spec::before_activate(
            "migrate",
            r#"echo "no database" >&2; exit 3"#,
        )]))
        .start()
        .await;
    cluster.commit_text("v1");
    let (_, deployment) = cluster.deploy("main").await;
    assert_eq!(deployment.status(), DeploymentStatus::Failed);
    let browser = Browser::logged_in(&cluster, Role::Viewer).await;
    let page = browser
        .get(&format!("/deployments/{}", deployment.id))
        .await;
    assert!(
        page.body.contains("migrate [stderr] no database"),
        "{}",
        page.body
    );
    assert!(
        page.body
            .contains("A hook failed: its output is in this host"),
        "{}",
        page.body
    );
    cluster.shutdown().await;
}
