//! The engine against simulated agents: batches and their two phases, the
//! canary gate, the failure budget, retries, cancel, a rollback's target
//! check and a connection lost after the switch. Time is paused, so
//! backoffs and deadlines pass at once.

use std::sync::Arc;

use slipway_proto::control::v1::{
    App, DeploymentEvent, DeploymentKind, DeploymentStatus, Host, Release, RolloutPolicy,
    RolloutStrategy,
};
use tokio::sync::mpsc;

use super::{Done, Outcome, Plan, Update};
use crate::{
    agents::{
        Agents,
        simulated::{Behaviour, Fleet},
    },
    domain::manifest::Manifest,
    policy::Policy,
    running::{Running, StopRequest},
};

const RELEASE: &str = "r2";

fn hosts(n: usize) -> Vec<Host> {
    (1..=n)
        .map(|i| Host {
            name: format!("web-{i}"),
            address: format!("10.0.0.{i}:7444"),
            environment: "prod".into(),
            ..Default::default()
        })
        .collect()
}

fn plan(kind: DeploymentKind, policy: RolloutPolicy) -> Plan {
    Plan {
        deployment_id: "dep-0000000002".into(),
        kind,
        app: App {
            name: "web".into(),
            deploy_root: "/srv/web".into(),
            ..Default::default()
        },
        environment: "prod".into(),
        release: Release {
            id: RELEASE.into(),
            ..Default::default()
        },
        // No files: nothing to read from git, nothing to send.
        manifest: Arc::new(Manifest { files: Vec::new() }),
        base: None,
        policy: Policy::new(policy),
        fencing_token: 2,
        done: Done::default(),
        repair: false,
        secrets: Default::default(),
    }
}

fn rolling(batch_size: u32) -> RolloutPolicy {
    RolloutPolicy {
        strategy: RolloutStrategy::Rolling as i32,
        batch_size,
        ..Default::default()
    }
}

/// A rollout's outcome and every event it reported.
struct Run {
    outcome: Outcome,
    events: Vec<DeploymentEvent>,
}

impl Run {
    fn host_statuses(&self, host: &str) -> Vec<(DeploymentStatus, String)> {
        self.events
            .iter()
            .filter(|e| {
                e.host == host && e.kind == slipway_proto::control::v1::EventKind::Status as i32
            })
            .map(|e| (e.status(), e.stage.clone()))
            .collect()
    }

    fn switched(&self) -> Vec<String> {
        self.outcome
            .switched
            .iter()
            .map(|h| h.name.clone())
            .collect()
    }
}

async fn run_with(fleet: &Arc<Fleet>, plan: Plan, hosts: Vec<Host>, running: &Running) -> Run {
    let control = running.register(&plan.deployment_id);
    let (tx, mut rx) = mpsc::channel(64);
    let agents = Agents::with(Arc::new(fleet.clone()));
    let engine = tokio::spawn(super::run(agents, Arc::new(plan), hosts, control, tx));
    let mut events = Vec::new();
    while let Some(update) = rx.recv().await {
        if let Update::Event(event) = update {
            events.push(event);
        }
    }
    Run {
        outcome: engine.await.expect("the engine finished"),
        events,
    }
}

async fn roll(fleet: &Arc<Fleet>, plan: Plan, hosts: Vec<Host>) -> Run {
    run_with(fleet, plan, hosts, &Running::default()).await
}

#[tokio::test(start_paused = true)]
async fn all_at_once_prepares_every_host_then_switches_every_host() {
    let fleet = Fleet::new();
    let run = roll(
        &fleet,
        plan(DeploymentKind::Deploy, RolloutPolicy::default()),
        hosts(3),
    )
    .await;
    assert_eq!(run.outcome.status, DeploymentStatus::Succeeded);
    assert_eq!(run.switched(), ["web-1", "web-2", "web-3"]);
    let operations = fleet.operations();
    let first_activate = operations
        .iter()
        .position(|o| o.contains("activate"))
        .unwrap();
    assert_eq!(
        first_activate, 3,
        "every host prepared before any switched: {operations:?}"
    );
    for host in ["web-1", "web-2", "web-3"] {
        assert_eq!(fleet.host(host).current(), RELEASE);
    }
}

#[tokio::test(start_paused = true)]
async fn rolling_batches_finish_one_batch_before_the_next_starts() {
    let fleet = Fleet::new();
    let run = roll(&fleet, plan(DeploymentKind::Deploy, rolling(2)), hosts(4)).await;
    assert_eq!(run.outcome.status, DeploymentStatus::Succeeded);
    let operations: Vec<String> = fleet
        .operations()
        .iter()
        .map(|o| o.replace(&format!(" {RELEASE}"), ""))
        .collect();
    let batch = |a: &[&str]| {
        let mut a: Vec<String> = a.iter().map(|s| (*s).to_owned()).collect();
        a.sort();
        a
    };
    let sorted = |range: std::ops::Range<usize>| {
        let mut part = operations[range].to_vec();
        part.sort();
        part
    };
    assert_eq!(sorted(0..2), batch(&["web-1 prepare", "web-2 prepare"]));
    assert_eq!(sorted(2..4), batch(&["web-1 activate", "web-2 activate"]));
    assert_eq!(sorted(4..6), batch(&["web-3 prepare", "web-4 prepare"]));
    assert_eq!(sorted(6..8), batch(&["web-3 activate", "web-4 activate"]));
}

#[tokio::test(start_paused = true)]
async fn a_failed_canary_stops_the_rollout_and_skips_the_rest() {
    let fleet = Fleet::new();
    fleet
        .host("web-1")
        .on_prepare(Behaviour::Fail("disk full".into()));
    let policy = RolloutPolicy {
        canary: true,
        ..rolling(1)
    };
    let run = roll(&fleet, plan(DeploymentKind::Deploy, policy), hosts(3)).await;
    assert_eq!(run.outcome.status, DeploymentStatus::Failed);
    assert!(
        run.outcome.message.contains("canary"),
        "{}",
        run.outcome.message
    );
    assert!(
        run.outcome.message.contains("disk full"),
        "{}",
        run.outcome.message
    );
    assert!(run.switched().is_empty());
    for host in ["web-2", "web-3"] {
        assert_eq!(
            run.host_statuses(host),
            [(DeploymentStatus::Cancelled, "skipped".to_owned())],
            "never started: skipped"
        );
        assert!(
            fleet.host(host).calls().is_empty(),
            "{host} was never called"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn the_failure_budget_tolerates_what_the_policy_allows() {
    let fleet = Fleet::new();
    fleet
        .host("web-2")
        .on_activate(Behaviour::Fail("health check failed".into()));
    let policy = RolloutPolicy {
        max_failed_hosts: 1,
        ..rolling(2)
    };
    let run = roll(&fleet, plan(DeploymentKind::Deploy, policy), hosts(4)).await;
    assert_eq!(run.outcome.status, DeploymentStatus::Succeeded);
    assert_eq!(run.switched(), ["web-1", "web-3", "web-4"]);
    assert!(
        run.outcome.message.contains("3 of 4"),
        "{}",
        run.outcome.message
    );

    let fleet = Fleet::new();
    fleet
        .host("web-1")
        .on_activate(Behaviour::Fail("health check failed".into()));
    fleet
        .host("web-2")
        .on_activate(Behaviour::Fail("health check failed".into()));
    let policy = RolloutPolicy {
        max_failed_hosts: 1,
        ..rolling(2)
    };
    let run = roll(&fleet, plan(DeploymentKind::Deploy, policy), hosts(4)).await;
    assert_eq!(run.outcome.status, DeploymentStatus::Failed);
    assert!(
        run.outcome.message.contains("more than the 1 tolerated"),
        "{}",
        run.outcome.message
    );
    assert!(
        fleet.host("web-3").calls().is_empty(),
        "the next batch never started"
    );
}

#[tokio::test(start_paused = true)]
async fn transient_failures_are_retried_within_the_attempts() {
    let fleet = Fleet::new();
    let host = fleet.host("web-1");
    host.on_prepare(Behaviour::Unavailable);
    host.on_prepare(Behaviour::Unavailable);
    let run = roll(
        &fleet,
        plan(DeploymentKind::Deploy, RolloutPolicy::default()),
        hosts(1),
    )
    .await;
    assert_eq!(run.outcome.status, DeploymentStatus::Succeeded);
    let prepares = host
        .calls()
        .iter()
        .filter(|c| c.starts_with("prepare"))
        .count();
    assert_eq!(prepares, 3);
    let retries = run
        .events
        .iter()
        .filter(|e| e.host == "web-1" && e.message.contains("; attempt "))
        .count();
    assert_eq!(retries, 2, "each retry is an event");

    // A policy's attempts cap the retries.
    let fleet = Fleet::new();
    let host = fleet.host("web-1");
    for _ in 0..3 {
        host.on_prepare(Behaviour::Unavailable);
    }
    let capped = RolloutPolicy {
        retry_attempts: 3,
        ..Default::default()
    };
    let run = roll(&fleet, plan(DeploymentKind::Deploy, capped), hosts(1)).await;
    assert_eq!(run.outcome.status, DeploymentStatus::Failed);
    assert!(
        run.outcome.message.contains("unavailable"),
        "{}",
        run.outcome.message
    );
}

#[tokio::test(start_paused = true)]
async fn a_failed_operation_is_final_and_not_retried() {
    let fleet = Fleet::new();
    let host = fleet.host("web-1");
    host.install("r1");
    host.on_activate(Behaviour::Fail("health check failed".into()));
    let run = roll(
        &fleet,
        plan(DeploymentKind::Deploy, RolloutPolicy::default()),
        hosts(1),
    )
    .await;
    assert_eq!(run.outcome.status, DeploymentStatus::Failed);
    let activations = host
        .calls()
        .iter()
        .filter(|c| c.starts_with("activate"))
        .count();
    assert_eq!(activations, 1);
    assert_eq!(host.current(), "r1", "the agent switched back");
}

#[tokio::test(start_paused = true)]
async fn cancel_stops_a_hung_host_through_its_agent() {
    let fleet = Fleet::new();
    fleet.host("web-1").on_prepare(Behaviour::Hang);
    let running = Running::default();
    let plan = plan(DeploymentKind::Deploy, rolling(1));
    let id = plan.deployment_id.clone();
    let stopper = {
        let (running, host) = (running.clone(), fleet.host("web-1"));
        tokio::spawn(async move {
            // Yields until the host hangs in its prepare.
            while !host.calls().iter().any(|c| c.starts_with("prepare")) {
                tokio::task::yield_now().await;
            }
            let request = StopRequest {
                by: "deployer/alice".into(),
                reason: "wrong branch".into(),
                grace_seconds: 1,
            };
            running.stop(&id, request).await
        })
    };
    let run = run_with(&fleet, plan, hosts(2), &running).await;
    running.finish("dep-0000000002");
    assert!(stopper.await.unwrap());
    assert_eq!(run.outcome.status, DeploymentStatus::Cancelled);
    assert!(
        run.outcome.message.contains("wrong branch"),
        "{}",
        run.outcome.message
    );
    assert!(fleet.host("web-1").calls().contains(&"cancel".to_owned()));
    assert_eq!(
        run.host_statuses("web-2"),
        [(DeploymentStatus::Cancelled, "skipped".to_owned())]
    );
}

#[tokio::test(start_paused = true)]
async fn a_rollback_checks_its_target_everywhere_before_any_switch() {
    let fleet = Fleet::new();
    for host in ["web-1", "web-2"] {
        fleet.host(host).install(RELEASE);
        fleet.host(host).install("r3");
    }
    let run = roll(
        &fleet,
        plan(DeploymentKind::Rollback, RolloutPolicy::default()),
        hosts(2),
    )
    .await;
    assert_eq!(run.outcome.status, DeploymentStatus::Succeeded);
    for host in ["web-1", "web-2"] {
        let calls = fleet.host(host).calls();
        assert_eq!(
            calls.first().map(String::as_str),
            Some("status"),
            "{calls:?}"
        );
        assert!(
            !calls.iter().any(|c| c.starts_with("prepare")),
            "on disk: nothing shipped: {calls:?}"
        );
        assert_eq!(fleet.host(host).current(), RELEASE);
    }
}

#[tokio::test(start_paused = true)]
async fn a_connection_lost_after_the_switch_is_asked_again_and_reports_the_truth() {
    let fleet = Fleet::new();
    let host = fleet.host("web-1");
    host.install("r1");
    host.on_activate(Behaviour::LoseConnection);
    let run = roll(
        &fleet,
        plan(DeploymentKind::Deploy, RolloutPolicy::default()),
        hosts(1),
    )
    .await;
    assert_eq!(host.current(), RELEASE);
    assert_eq!(
        run.outcome.status,
        DeploymentStatus::Succeeded,
        "{}",
        run.outcome.message
    );
    assert_eq!(
        run.switched(),
        ["web-1"],
        "the record says what the host did"
    );
}

#[tokio::test(start_paused = true)]
async fn a_host_lost_after_its_switch_is_unknown_not_failed() {
    let fleet = Fleet::new();
    for host in ["web-1", "web-2", "web-3"] {
        fleet.host(host).install("r1");
    }
    fleet.host("web-3").on_activate(Behaviour::Vanish);
    let policy = RolloutPolicy {
        max_failed_hosts: 1,
        ..RolloutPolicy::default()
    };
    let run = roll(&fleet, plan(DeploymentKind::Deploy, policy), hosts(3)).await;
    assert_eq!(fleet.host("web-3").current(), RELEASE, "it did switch");
    assert_eq!(
        run.switched(),
        ["web-1", "web-2"],
        "only what hosts reported"
    );
    let last = run.host_statuses("web-3").pop().unwrap();
    assert_eq!(last, (DeploymentStatus::Unknown, "unknown".to_owned()));
    assert!(
        run.outcome.message.contains("1 unknown"),
        "{}",
        run.outcome.message
    );
    assert_eq!(
        run.outcome.status,
        DeploymentStatus::Succeeded,
        "within the budget"
    );
    let asked = fleet
        .host("web-3")
        .calls()
        .iter()
        .filter(|c| *c == "status")
        .count();
    assert_eq!(
        asked, 0,
        "down: every question failed before the agent saw it"
    );
}

#[tokio::test(start_paused = true)]
async fn a_host_that_answers_again_is_recorded_as_it_reports() {
    // The connection breaks after the switch; the agent answers the next
    // question, which settles the host as switched.
    let fleet = Fleet::new();
    let host = fleet.host("web-1");
    host.install("r1");
    for _ in 0..4 {
        host.on_activate(Behaviour::LoseConnection);
    }
    let capped = RolloutPolicy {
        retry_attempts: 3,
        ..Default::default()
    };
    let run = roll(&fleet, plan(DeploymentKind::Deploy, capped), hosts(1)).await;
    assert_eq!(
        run.outcome.status,
        DeploymentStatus::Succeeded,
        "{}",
        run.outcome.message
    );
    assert_eq!(run.switched(), ["web-1"]);
    assert!(
        host.calls().contains(&"status".to_owned()),
        "{:?}",
        host.calls()
    );
    let settled = run.events.iter().any(|e| {
        e.message
            .contains("asked again, the agent reports r2 current")
    });
    assert!(settled, "the record says how it was settled");
}

#[tokio::test(start_paused = true)]
async fn a_new_run_of_an_operation_is_relayed_in_full() {
    // The first prepare's stream breaks; the retry starts the operation
    // again (as an agent restarted mid-operation would): a new run, whose
    // events are numbered from 1 again and must not be taken for replays.
    let fleet = Fleet::new();
    let host = fleet.host("web-1");
    host.on_prepare(Behaviour::LoseConnection);
    let run = roll(
        &fleet,
        plan(DeploymentKind::Deploy, RolloutPolicy::default()),
        hosts(1),
    )
    .await;
    assert_eq!(
        run.outcome.status,
        DeploymentStatus::Succeeded,
        "{}",
        run.outcome.message
    );
    let working = run
        .events
        .iter()
        .filter(|e| e.host == "web-1" && e.message == "working (simulated)")
        .count();
    assert_eq!(working, 3, "one per run: two prepares and the activation");
}

#[tokio::test(start_paused = true)]
async fn a_resumed_rollout_counts_the_hosts_that_finished_before() {
    let fleet = Fleet::new();
    let mut resumed = plan(DeploymentKind::Deploy, RolloutPolicy::default());
    resumed.done = Done {
        switched: hosts(1),
        failed: Vec::new(),
        relayed: Default::default(),
    };
    let rest: Vec<Host> = hosts(3).split_off(1);
    let run = roll(&fleet, resumed, rest).await;
    assert_eq!(run.outcome.status, DeploymentStatus::Succeeded);
    assert_eq!(run.switched(), ["web-1", "web-2", "web-3"]);
    assert!(
        fleet.host("web-1").calls().is_empty(),
        "finished: not asked again"
    );

    // Failures before the restart spent the budget: nothing more runs.
    let fleet = Fleet::new();
    let mut resumed = plan(DeploymentKind::Deploy, RolloutPolicy::default());
    resumed.done.failed = vec!["web-1: health check failed".into()];
    let run = roll(&fleet, resumed, hosts(3).split_off(1)).await;
    assert_eq!(
        run.outcome.status,
        DeploymentStatus::Failed,
        "{}",
        run.outcome.message
    );
    assert!(fleet.operations().is_empty());
    assert_eq!(
        run.host_statuses("web-2"),
        [(DeploymentStatus::Cancelled, "skipped".to_owned())]
    );
}

#[tokio::test(start_paused = true)]
async fn by_default_a_host_is_retried_until_its_step_deadline() {
    // An agent restarting for a while: retried as long as the deadline
    // allows, then it finishes its step.
    let fleet = Fleet::new();
    let host = fleet.host("web-1");
    for _ in 0..12 {
        host.on_prepare(Behaviour::Unavailable);
    }
    let run = roll(
        &fleet,
        plan(DeploymentKind::Deploy, RolloutPolicy::default()),
        hosts(1),
    )
    .await;
    assert_eq!(
        run.outcome.status,
        DeploymentStatus::Succeeded,
        "{}",
        run.outcome.message
    );

    // Gone for good: it fails once the deadline leaves no room for another
    // attempt, not before.
    let fleet = Fleet::new();
    fleet.host("web-1").set_down(true);
    let policy = RolloutPolicy {
        step_timeout_seconds: 30,
        ..Default::default()
    };
    let started = tokio::time::Instant::now();
    let run = roll(&fleet, plan(DeploymentKind::Deploy, policy), hosts(1)).await;
    assert_eq!(run.outcome.status, DeploymentStatus::Failed);
    let took = started.elapsed();
    assert!(
        took >= std::time::Duration::from_secs(20) && took <= std::time::Duration::from_secs(30),
        "{took:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_repair_discards_ships_and_rebuilds_before_the_switch() {
    let fleet = Fleet::new();
    fleet.host("web-1").install(RELEASE);
    let mut repair = plan(DeploymentKind::Deploy, RolloutPolicy::default());
    repair.repair = true;
    let run = roll(&fleet, repair, hosts(1)).await;
    assert_eq!(run.outcome.status, DeploymentStatus::Succeeded);
    assert_eq!(
        fleet.host("web-1").calls(),
        [
            "check-drift".to_owned(),
            "missing".into(),
            format!("repair {RELEASE}"),
            format!("activate {RELEASE}"),
        ]
    );
}
