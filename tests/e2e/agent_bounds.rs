//! What a hook can do to a real agent process, bounded: output past the
//! app's limit becomes one summary and its last lines, a line past the line
//! limit is cut, and hooks never see the agent's own environment.

use slipway_proto::agent::v1::{ActivationSpec, EnvVar, HookOutputLimits};
use slipway_tests::{Cluster, assert_succeeded, repo::Change, spec};

/// The stdout lines and other events of hook `step` on the only host.
fn hook_events(
    events: &[slipway_proto::control::v1::DeploymentEvent],
    step: &str,
) -> Vec<(String, String)> {
    events
        .iter()
        .filter(|e| e.step == step && !e.host.is_empty())
        .map(|e| (e.output.clone(), e.message.clone()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hook_output_past_the_bound_is_one_summary_and_the_last_lines() {
    // A 20,000-byte line, then 5,000 numbered lines; the app records 50.
    let hook = "head -c 20000 /dev/zero | tr '\\0' x; echo; seq 1 5000";
    let cluster = Cluster::builder()
        .agents(1)
        .process_agents()
        .activation(ActivationSpec {
            hooks: vec![spec::before_activate("print", hook)],
            output_limits: Some(HookOutputLimits {
                max_lines: 50,
                max_bytes: 0,
            }),
            ..Default::default()
        })
        .start()
        .await;
    cluster.repo.commit("one", &[Change::File("a.txt", b"a\n")]);
    let (events, deployment) = cluster.deploy("main").await;
    assert_succeeded(&deployment);

    let seen = hook_events(&events, "print");
    let stdout: Vec<&str> = seen
        .iter()
        .filter(|(output, _)| output == "stdout")
        .map(|(_, message)| message.as_str())
        .collect();
    assert_eq!(stdout.len(), 50 + 100, "50 lines, then the last 100");
    let cut = format!("{} [... line cut: 3,616 more bytes]", "x".repeat(16_384));
    assert_eq!(stdout[0], cut, "the long line is cut at 16 KiB");
    let first: Vec<String> = (1..=49).map(|i| i.to_string()).collect();
    assert_eq!(stdout[1..50], first);
    let last: Vec<String> = (4901..=5000).map(|i| i.to_string()).collect();
    assert_eq!(stdout[50..], last);

    // Between them, one summary, in order.
    let at = |wanted: &str| {
        seen.iter()
            .position(|(_, m)| m == wanted)
            .unwrap_or_else(|| panic!("{wanted:?} in {seen:?}"))
    };
    let summary_at = seen
        .iter()
        .position(|(_, m)| m.starts_with("... "))
        .expect("a summary");
    let (_, summary) = &seen[summary_at];
    let skipped_bytes: usize = (50..=5000).map(|i| format!("{i}\n").len()).sum();
    assert_eq!(
        summary,
        &format!(
            "... 4,951 more lines, {:.1} kB of output past the limit, last 100 lines follow",
            skipped_bytes as f64 / 1e3
        )
    );
    assert!(at("49") < summary_at && summary_at < at("4901"));
    let summaries = seen.iter().filter(|(_, m)| m.starts_with("... ")).count();
    assert_eq!(summaries, 1);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hooks_run_with_a_clean_environment_not_the_agents() {
    let cluster = Cluster::builder()
        .agents(1)
        .process_agents()
        .activation(ActivationSpec {
            hooks: vec![spec::before_activate("env", "env | sort")],
            variables: vec![EnvVar {
                name: "APP_MODE".into(),
                value: "blue".into(),
            }],
            ..Default::default()
        })
        .start()
        .await;
    let mut cluster = cluster;
    // The agent's own environment carries a secret a hook must not see.
    let agent = cluster.agents[0].process();
    agent.set_env("SLIPWAY_TEST_CANARY", "agent-secret");
    agent.set_env("CANARY_TOKEN", "agent-secret");
    agent.kill_9();
    agent.restart().await;

    cluster.repo.commit("one", &[Change::File("a.txt", b"a\n")]);
    let (events, deployment) = cluster.deploy("main").await;
    assert_succeeded(&deployment);
    let env: Vec<String> = hook_events(&events, "env")
        .into_iter()
        .filter(|(output, _)| output == "stdout")
        .map(|(_, line)| line)
        .collect();
    assert!(
        env.iter().all(|line| !line.contains("agent-secret")),
        "the agent's environment leaked into the hook: {env:#?}"
    );
    let names: Vec<&str> = env
        .iter()
        .filter_map(|line| line.split_once('=').map(|(name, _)| name))
        .filter(|name| !matches!(*name, "PWD" | "SHLVL" | "_"))
        .collect();
    assert_eq!(
        names,
        [
            "APP_MODE",
            "HOME",
            "LANG",
            "PATH",
            "SLIPWAY_AGENT_INSTANCE",
            "SLIPWAY_APP",
            "SLIPWAY_DEPLOYMENT_ID",
            "SLIPWAY_ENVIRONMENT",
            "SLIPWAY_HOST",
            "SLIPWAY_PREVIOUS_RELEASE",
            "SLIPWAY_RELEASE_DIR",
            "SLIPWAY_RELEASE_ID",
        ],
        "{env:#?}"
    );
    assert!(env.contains(&"APP_MODE=blue".to_owned()));
    assert!(env.contains(&format!("HOME={}", cluster.agents[0].app_root().display())));
    cluster.shutdown().await;
}
