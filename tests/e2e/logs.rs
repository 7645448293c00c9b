//! Both daemons' JSON logs tell one deployment's whole story, found by its
//! id: the control plane logs its start, batches, each host's outcome and
//! its end; every agent line about it names the agent's host.

use serde_json::Value;
use slipway_tests::{Cluster, assert_succeeded, repo::Change};

/// The JSON lines of `log` that mention `id` anywhere (fields or spans).
fn lines_about(log: &str, id: &str) -> Vec<Value> {
    log.lines()
        .filter(|line| line.contains(id))
        .map(|line| {
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"))
        })
        .collect()
}

/// A field of a line: its own, else the innermost span's that has it.
fn field<'a>(line: &'a Value, name: &str) -> Option<&'a str> {
    if let Some(value) = line["fields"][name].as_str() {
        return Some(value);
    }
    line["spans"]
        .as_array()?
        .iter()
        .rev()
        .find_map(|span| span[name].as_str())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_deployment_is_found_by_its_id_across_both_daemons_json_logs() {
    let mut cluster = Cluster::builder()
        .agents(2)
        .process_agents()
        .process_control_plane()
        .json_logs()
        .start()
        .await;
    cluster.repo.commit("one", &[Change::File("a.txt", b"1\n")]);
    let (_, deployment) = cluster.deploy("main").await;
    assert_succeeded(&deployment);
    let id = deployment.id.as_str();

    let cp_log = cluster.control_plane_process().log();
    let told = lines_about(&cp_log, id);
    let said = |host: &str, status: &str| {
        told.iter().any(|l| {
            field(l, "host") == Some(host)
                && field(l, "status") == Some(status)
                && field(l, "app") == Some("web")
                && field(l, "environment") == Some("prod")
                && field(l, "release") == Some(deployment.release.as_str())
        })
    };
    assert!(said("", "PENDING"), "its start:\n{cp_log}");
    assert!(
        told.iter().any(|l| field(l, "stage") == Some("batch")),
        "its batch:\n{cp_log}"
    );
    assert!(said("web-1", "SUCCEEDED"), "web-1's outcome:\n{cp_log}");
    assert!(said("web-2", "SUCCEEDED"), "web-2's outcome:\n{cp_log}");
    assert!(said("", "SUCCEEDED"), "its end:\n{cp_log}");

    for agent in &mut cluster.agents {
        let name = agent.name.clone();
        let log = agent.process().log();
        let lines = lines_about(&log, id);
        assert!(!lines.is_empty(), "{name} says nothing of {id}:\n{log}");
        for line in &lines {
            assert_eq!(field(line, "host"), Some(name.as_str()), "{line}");
        }
        assert!(
            lines.iter().any(|l| field(l, "deployment_id") == Some(id)
                || l["fields"]["deployment"].as_str() == Some(id)),
            "{name}:\n{log}"
        );
    }
    cluster.shutdown().await;
}
