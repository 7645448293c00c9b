//! Rollout policies with real agents: batches in two phases, the canary
//! gate, the failure budget at every moment, automatic rollback as a linked
//! deployment, exactly one winner among concurrent deploys, cancel, the
//! plan, and the lock with its forced release.

use std::{collections::HashSet, path::Path};

use futures_util::StreamExt;
use slipway_proto::{
    agent::v1::ActivationSpec,
    control::v1::{
        CancelDeploymentRequest, DeployRequest, Deployment, DeploymentEvent, DeploymentKind,
        DeploymentStatus, EventKind, GetLockRequest, ListAuditEventsRequest,
        ListDeploymentsRequest, ListReleasesRequest, PlanDeploymentRequest, ReleaseLockRequest,
        RolloutPolicy, RolloutStrategy, lock_service_client::LockServiceClient,
    },
    identity::Role,
};
use slipway_tests::{
    Cluster, assert_succeeded,
    cluster::{APP, ENV},
    events::wait_for_event,
    repo::Change,
    spec,
};
use tonic::Code;

fn rolling(batch_size: u32) -> RolloutPolicy {
    RolloutPolicy {
        strategy: RolloutStrategy::Rolling as i32,
        batch_size,
        ..Default::default()
    }
}

/// Index of the first host status event of `host` at `stage`.
fn first(events: &[DeploymentEvent], host: &str, stage: &str) -> usize {
    events
        .iter()
        .position(|e| e.host == host && e.stage == stage && e.kind == EventKind::Status as i32)
        .unwrap_or_else(|| panic!("{host} has no {stage} event"))
}

/// A shell test that is true on host `name` only: hooks run in the
/// release, whose path names the host's directory.
fn on_host(name: &str) -> String {
    format!(r#"case "$SLIPWAY_RELEASE_DIR" in */{name}/*) true;; *) false;; esac"#)
}

/// A cluster of `agents` hosts on which `main` was deployed successfully.
async fn with_a_good_release(agents: usize) -> (Cluster, Deployment) {
    let cluster = Cluster::builder().agents(agents).start().await;
    cluster.commit_text("v1");
    let (_, good) = cluster.deploy("main").await;
    assert_succeeded(&good);
    (cluster, good)
}

/// Every deployment recorded, newest first.
async fn every_deployment(cluster: &Cluster) -> Vec<Deployment> {
    cluster
        .deployments(Role::Viewer)
        .await
        .list_deployments(ListDeploymentsRequest::default())
        .await
        .expect("list deployments")
        .into_inner()
        .deployments
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_batches_prepare_every_host_before_any_of_them_switches() {
    let cluster = Cluster::builder().agents(4).start().await;
    cluster.commit_text("v1");
    let (events, deployment) = cluster.deploy_with("main", rolling(2)).await;
    assert_succeeded(&deployment);
    assert_eq!(deployment.batches, 2);
    let names = ["web-1", "web-2", "web-3", "web-4"];
    for (i, name) in names.iter().enumerate() {
        let progress = deployment.hosts.iter().find(|h| h.host == *name).unwrap();
        assert_eq!(progress.batch, i as u32 / 2 + 1, "{name}");
        assert!(progress.switched, "{name}");
    }
    for batch in names.chunks(2) {
        let last_prepared = batch.iter().map(|h| first(&events, h, "prepared")).max();
        let first_switch = batch.iter().map(|h| first(&events, h, "switch")).min();
        assert!(
            last_prepared < first_switch,
            "every host of {batch:?} is prepared before any switches"
        );
    }
    let batch_one_done = ["web-1", "web-2"]
        .iter()
        .map(|h| first(&events, h, "done"))
        .max();
    let batch_two_starts = ["web-3", "web-4"]
        .iter()
        .map(|h| first(&events, h, "prepare"))
        .min();
    assert!(
        batch_one_done < batch_two_starts,
        "batches run one after another"
    );
    for host in &cluster.agents {
        assert_eq!(host.current().as_deref(), Some(deployment.release.as_str()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_canary_stops_the_rollout_before_other_hosts_get_anything() {
    let (cluster, good) = with_a_good_release(4).await;
    cluster
        .update_app(|app| {
            app.activation = Some(spec::hooks(vec![spec::before_activate(
                "smoke",
                &format!(
                    "if {}; then echo 'smoke test failed' >&2; exit 3; fi",
                    on_host("web-1")
                ),
            )]));
        })
        .await;
    cluster.commit_text("v2");
    let policy = RolloutPolicy {
        canary: true,
        ..rolling(1)
    };
    let (_, deployment) = cluster.deploy_with("main", policy).await;
    assert_eq!(
        deployment.status,
        DeploymentStatus::Failed as i32,
        "{deployment:?}"
    );
    assert!(deployment.error.contains("canary"), "{}", deployment.error);
    for host in &cluster.agents {
        assert_eq!(
            host.current().as_deref(),
            Some(good.release.as_str()),
            "{}",
            host.name
        );
        let progress = deployment
            .hosts
            .iter()
            .find(|h| h.host == host.name)
            .unwrap();
        if host.name == "web-1" {
            assert_eq!(progress.status, DeploymentStatus::Failed as i32);
        } else {
            // Nothing beyond preparation; here, nothing at all.
            assert_eq!(
                progress.status,
                DeploymentStatus::Cancelled as i32,
                "{progress:?}"
            );
            assert_eq!(progress.stage, "skipped");
            assert!(
                !host.release_dir(&deployment.release).exists(),
                "{}",
                host.name
            );
            assert_eq!(progress.bytes_sent, 0);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hosts_prepared_in_a_batch_that_does_not_switch_are_recorded_as_not_switched() {
    let (cluster, good) = with_a_good_release(4).await;
    cluster
        .update_app(|app| {
            app.activation = Some(spec::hooks(vec![spec::before_activate(
                "smoke",
                &format!("if {}; then exit 3; fi", on_host("web-1")),
            )]));
        })
        .await;
    cluster.commit_text("v2");
    let policy = RolloutPolicy {
        canary: true,
        ..rolling(2)
    };
    let (_, deployment) = cluster.deploy_with("main", policy).await;
    assert_eq!(deployment.status, DeploymentStatus::Failed as i32);
    let progress = |name: &str| {
        deployment
            .hosts
            .iter()
            .find(|h| h.host == name)
            .expect("host")
            .clone()
    };
    // web-2 prepared the release beside web-1 and never switched: the
    // record says so, not "running".
    let web2 = progress("web-2");
    assert_eq!(web2.status, DeploymentStatus::Cancelled as i32, "{web2:?}");
    assert_eq!(web2.stage, "not switched");
    assert!(cluster.agents[1].release_dir(&deployment.release).exists());
    for name in ["web-3", "web-4"] {
        assert_eq!(progress(name).stage, "skipped");
    }
    for host in &cluster.agents {
        assert_eq!(host.current().as_deref(), Some(good.release.as_str()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_hosts_never_exceed_the_policy_at_any_moment() {
    let (cluster, good) = with_a_good_release(6).await;
    let broken = format!(
        "if {} || {}; then exit 1; fi",
        on_host("web-3"),
        on_host("web-4")
    );
    cluster
        .update_app(|app| {
            app.activation = Some(spec::hooks(vec![spec::before_activate("check", &broken)]));
        })
        .await;
    cluster.commit_text("v2");
    let (batch_size, max_failed) = (2, 1);
    let policy = RolloutPolicy {
        max_failed_hosts: max_failed,
        ..rolling(batch_size)
    };
    let (events, deployment) = cluster.deploy_with("main", policy).await;
    assert_eq!(deployment.status, DeploymentStatus::Failed as i32);

    // Replay the log: hosts failed plus hosts switching (out of service)
    // never exceed one batch plus the failures tolerated, and no host
    // starts switching once the budget is spent.
    let mut failed = HashSet::new();
    let mut switching = HashSet::new();
    for event in events.iter().filter(|e| e.kind == EventKind::Status as i32) {
        match (
            event.stage.as_str(),
            DeploymentStatus::try_from(event.status),
        ) {
            ("switch", _) => {
                assert!(
                    failed.len() <= max_failed as usize,
                    "{} starts switching with {} hosts failed",
                    event.host,
                    failed.len()
                );
                switching.insert(event.host.clone());
            }
            (_, Ok(DeploymentStatus::Failed)) if !event.host.is_empty() => {
                switching.remove(&event.host);
                failed.insert(event.host.clone());
            }
            ("done", _) => {
                switching.remove(&event.host);
            }
            _ => {}
        }
        assert!(
            failed.len() + switching.len() <= (batch_size + max_failed) as usize,
            "{failed:?} failed and {switching:?} switching"
        );
    }
    assert_eq!(
        failed,
        HashSet::from(["web-3".to_owned(), "web-4".to_owned()])
    );
    for host in &cluster.agents {
        let expected = match host.name.as_str() {
            "web-1" | "web-2" => &deployment.release,
            _ => &good.release,
        };
        assert_eq!(
            host.current().as_deref(),
            Some(expected.as_str()),
            "{}",
            host.name
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_rollback_switches_back_the_hosts_that_took_the_release() {
    let (cluster, good) = with_a_good_release(4).await;
    cluster
        .update_app(|app| {
            app.activation = Some(ActivationSpec {
                health_check: Some(spec::health_command(
                    &format!(
                        r#"if {} && [ "$SLIPWAY_RELEASE_ID" != "{}" ]; then exit 1; fi"#,
                        on_host("web-3"),
                        good.release
                    ),
                    1,
                    10,
                )),
                ..Default::default()
            });
        })
        .await;
    cluster.commit_text("v2");
    let policy = RolloutPolicy {
        auto_rollback: true,
        ..rolling(2)
    };
    let (_, failed) = cluster.deploy_with("main", policy).await;
    assert_eq!(failed.status, DeploymentStatus::Failed as i32, "{failed:?}");
    assert!(!failed.rolled_back_by.is_empty(), "linked to its rollback");
    let rollback = cluster.deployment(&failed.rolled_back_by).await;
    assert_succeeded(&rollback);
    assert_eq!(rollback.kind, DeploymentKind::Rollback as i32);
    assert_eq!(rollback.rollback_of, failed.id);
    assert_eq!(rollback.release, good.release);
    let mut rolled: Vec<&str> = rollback.hosts.iter().map(|h| h.host.as_str()).collect();
    rolled.sort_unstable();
    assert_eq!(
        rolled,
        ["web-1", "web-2", "web-4"],
        "only the hosts that switched"
    );
    for host in &cluster.agents {
        assert_eq!(
            host.current().as_deref(),
            Some(good.release.as_str()),
            "{}",
            host.name
        );
    }
    assert!(cluster.lock().await.is_none(), "the lock is free");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_deploys_have_exactly_one_winner() {
    let cluster = Cluster::builder().agents(2).start().await;
    cluster.commit_text("v1");
    let attempts = (0..6).map(|_| async {
        cluster
            .deployments(Role::Admin)
            .await
            .deploy(DeployRequest {
                app: APP.into(),
                environment: ENV.into(),
                git_ref: "main".into(),
                ..Default::default()
            })
            .await
    });
    let results = futures_util::future::join_all(attempts).await;
    let mut winners = Vec::new();
    let mut refusals = Vec::new();
    for result in results {
        match result {
            Ok(stream) => winners.push(stream.into_inner()),
            Err(status) => refusals.push(status),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one winner: {refusals:?}");
    let (events, deployment) = cluster.finish(Vec::new(), winners.remove(0)).await;
    assert_succeeded(&deployment);
    for refused in &refusals {
        assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
        assert!(
            refused.message().contains(&events[0].deployment_id),
            "names the holder: {}",
            refused.message()
        );
    }
    let history = every_deployment(&cluster).await;
    assert_eq!(history.len(), 1, "the losers recorded nothing");
    let releases = cluster
        .releases(Role::Viewer)
        .await
        .list_releases(ListReleasesRequest {
            app: APP.into(),
            limit: 0,
        })
        .await
        .expect("list releases")
        .into_inner()
        .releases;
    assert_eq!(releases.len(), 1, "one release for the ref, cut once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_terminates_hooks_and_reports_cancelled_once_nothing_runs() {
    let (cluster, good) = with_a_good_release(2).await;
    let marks = cluster.agents[0]
        .apps_dir
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("marks");
    std::fs::create_dir_all(&marks).unwrap();
    let hook = format!(
        r#"echo $$ > "{marks}/$$.pid"; echo started; {wait}"#,
        marks = marks.display(),
        wait = spec::wait_for_file(&marks.join("never"), 600)
    );
    cluster
        .update_app(|app| {
            app.activation = Some(spec::hooks(vec![spec::before_activate("migrate", &hook)]));
        })
        .await;
    cluster.commit_text("v2");
    let mut stream = cluster.deploy_stream("main").await;
    let mut seen = Vec::new();
    let mut started = HashSet::new();
    while started.len() < cluster.agents.len() {
        // The line comes after the pid file is written.
        let event = wait_for_event(&mut stream, &mut seen, "both hooks started", |e| {
            e.output == "stdout" && e.message == "started"
        })
        .await;
        started.insert(event.host.clone());
    }
    let id = seen[0].deployment_id.clone();
    let pids: Vec<i32> = std::fs::read_dir(&marks)
        .unwrap()
        .map(|e| {
            std::fs::read_to_string(e.unwrap().path())
                .unwrap()
                .trim()
                .parse()
                .unwrap()
        })
        .collect();
    assert_eq!(pids.len(), 2, "both hooks wrote their pid");
    let cancelled = cluster
        .deployments(Role::Deployer)
        .await
        .cancel_deployment(CancelDeploymentRequest {
            deployment_id: id.clone(),
            reason: "wrong branch".into(),
            grace_seconds: 1,
        })
        .await
        .expect("cancel")
        .into_inner()
        .deployment
        .unwrap();
    assert_eq!(
        cancelled.status,
        DeploymentStatus::Cancelled as i32,
        "{cancelled:?}"
    );
    assert_eq!(cancelled.reason, "wrong branch");
    assert!(!cancelled.cancelled_by.is_empty());
    // Reported only once nothing runs: the hooks are gone already.
    for pid in pids {
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "hook {pid} is gone"
        );
    }
    for host in &cluster.agents {
        assert_eq!(
            host.current().as_deref(),
            Some(good.release.as_str()),
            "{}",
            host.name
        );
    }
    let rest: Vec<_> = stream.collect().await;
    assert!(rest.iter().all(|r| r.is_ok()), "the stream ends cleanly");
    // The lock is free: the next deploy starts.
    cluster.update_app(|app| app.activation = None).await;
    let (_, next) = cluster.deploy("main").await;
    assert_succeeded(&next);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_plan_shows_batches_and_what_each_host_lacks_and_changes_nothing() {
    let (cluster, good) = with_a_good_release(3).await;
    let v2 = cluster.repo.commit(
        "v2",
        &[
            Change::File("index.html", b"v2, changed\n"),
            Change::File("new.txt", b"a new file\n"),
        ],
    );
    let plan = cluster
        .deployments(Role::Deployer)
        .await
        .plan_deployment(PlanDeploymentRequest {
            deploy: Some(DeployRequest {
                app: APP.into(),
                environment: ENV.into(),
                git_ref: "main".into(),
                policy: Some(RolloutPolicy {
                    canary: true,
                    ..rolling(2)
                }),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .expect("plan")
        .into_inner();
    assert_eq!(plan.batches.len(), 2);
    assert!(plan.batches[0].canary && !plan.batches[1].canary);
    let hosts: Vec<_> = plan.batches.iter().flat_map(|b| &b.hosts).collect();
    assert_eq!(hosts.len(), 3);
    for host in hosts {
        assert!(host.reachable, "{host:?}");
        assert_eq!(host.current_release, good.release);
        assert_eq!(host.files_changed, 2, "{host:?}");
        assert_eq!(host.objects_missing, 2, "{host:?}");
        assert_eq!(
            host.bytes_missing,
            (b"v2, changed\n".len() + b"a new file\n".len()) as u64
        );
    }
    let release = plan.release.unwrap();
    assert_eq!(release.id, "", "a release not cut yet has no id");
    assert_eq!(release.commit, v2);
    assert_eq!(release.previous_release, good.release);
    for host in &cluster.agents {
        assert_eq!(host.current().as_deref(), Some(good.release.as_str()));
    }
    let history = every_deployment(&cluster).await;
    assert_eq!(history.len(), 1, "planning records no deployment");
    let releases = cluster.releases_of_app().await;
    assert_eq!(releases.len(), 1, "planning records no release");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forced_lock_release_is_audited_stops_the_holder_and_raises_the_token() {
    let (cluster, first) = with_a_good_release(1).await;
    let gate = cluster.agents[0].apps_dir.join("gate");
    cluster
        .update_app(|app| {
            app.activation = Some(spec::hooks(vec![spec::before_activate(
                "hold",
                &spec::wait_for_file(&gate, 600),
            )]));
        })
        .await;
    cluster.commit_text("v2");
    let mut stream = cluster.deploy_stream("main").await;
    let mut seen = Vec::new();
    wait_for_event(&mut stream, &mut seen, "the hook started", |e| {
        e.stage == "hook"
    })
    .await;
    let holder = seen[0].deployment_id.clone();
    let mut locks = cluster.locks().await;
    let lock = locks
        .get_lock(GetLockRequest {
            app: APP.into(),
            environment: ENV.into(),
        })
        .await
        .unwrap()
        .into_inner()
        .lock
        .expect("held");
    assert_eq!(lock.deployment_id, holder);
    assert!(!lock.holder.is_empty());
    assert!(lock.fencing_token > first.fencing_token);
    assert!(lock.lease_expires_at.unwrap().seconds > lock.acquired_at.unwrap().seconds);

    let refused = locks
        .release_lock(ReleaseLockRequest {
            app: APP.into(),
            environment: ENV.into(),
            force: false,
            reason: String::new(),
        })
        .await
        .expect_err("without force");
    assert_eq!(refused.code(), Code::InvalidArgument);
    let mut deployer_locks = LockServiceClient::new(cluster.channel(Role::Deployer).await);
    let refused = deployer_locks
        .release_lock(ReleaseLockRequest {
            app: APP.into(),
            environment: ENV.into(),
            force: true,
            reason: "no".into(),
        })
        .await
        .expect_err("a deployer may not");
    assert_eq!(refused.code(), Code::PermissionDenied);
    let freed = locks
        .release_lock(ReleaseLockRequest {
            app: APP.into(),
            environment: ENV.into(),
            force: true,
            reason: "holder is stuck".into(),
        })
        .await
        .expect("forced release")
        .into_inner()
        .lock
        .unwrap();
    assert_eq!(freed.deployment_id, holder);

    // The old holder is stopped (its hook terminated) and says why.
    let (_, stopped) = cluster.finish(seen, stream).await;
    assert_eq!(
        stopped.status,
        DeploymentStatus::Cancelled as i32,
        "{stopped:?}"
    );
    assert!(
        stopped.reason.contains("holder is stuck"),
        "{}",
        stopped.reason
    );

    // The next deployment gets a higher token.
    cluster.update_app(|app| app.activation = None).await;
    let (_, next) = cluster.deploy("main").await;
    assert_succeeded(&next);
    assert!(next.fencing_token > freed.fencing_token);

    let audit = cluster
        .audit()
        .await
        .list_audit_events(ListAuditEventsRequest {
            method: "ReleaseLock".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .events;
    let outcomes: Vec<&str> = audit.iter().map(|e| e.outcome.as_str()).collect();
    assert_eq!(audit.len(), 3, "{outcomes:?}");
    assert!(outcomes.contains(&"OK"), "{outcomes:?}");
    let ok = audit.iter().find(|e| e.outcome == "OK").unwrap();
    assert!(ok.message.contains(&holder), "{}", ok.message);
}
