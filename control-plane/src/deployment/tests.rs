//! Deployments end to end inside the control plane, against simulated
//! agents: a real sled store and a real git repository, the supervisor
//! deciding what a failure means (the automatic rollback of the hosts that
//! switched, under the deployment's lease), and the lock freed at the end.

use std::{path::Path, sync::Arc};

use slipway_proto::{
    control::v1::{
        App, Deployment, DeploymentKind, DeploymentStatus, Environment, Host, RolloutPolicy,
    },
    identity::Role,
};
use tokio_stream::StreamExt;

use super::{Start, Target};
use crate::{
    Context,
    agents::{
        Agents,
        simulated::{Behaviour, Fleet},
    },
    auth::Caller,
    catalog,
    events::EventHub,
    locks,
    running::Running,
    store::{SledBackend, Store},
};

struct Fixture {
    _dir: tempfile::TempDir,
    repo: git2::Repository,
    ctx: Context,
    fleet: Arc<Fleet>,
}

/// A control plane's context over simulated hosts `web-1`..`web-n`, app
/// `web` from a fresh git repository, environment `prod`.
async fn fixture(hosts: usize) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let repo = git2::Repository::init(dir.path().join("repo")).unwrap();
    let store = Store::new(Arc::new(
        SledBackend::open(&dir.path().join("store"), 8 << 20).unwrap(),
    ));
    let fleet = Fleet::new();
    let ctx = Context {
        store,
        events: EventHub::default(),
        agents: Agents::with(Arc::new(fleet.clone())),
        running: Running::default(),
        revocations: Default::default(),
        signer: None,
        sources: crate::sources::Sources::new(Default::default(), dir.path(), Default::default())
            .unwrap(),
        metrics: Default::default(),
        health: Default::default(),
        notifiers: Default::default(),
        waiting: Default::default(),
        agent_binaries: Default::default(),
        secret_keys: Default::default(),
        cluster: Default::default(),
    };
    let app = App {
        name: "web".into(),
        repository: repo.path().parent().unwrap().display().to_string(),
        default_branch: "main".into(),
        ..Default::default()
    };
    catalog::create_app(&ctx.store, &ctx.sources, app.try_into().unwrap())
        .await
        .unwrap();
    let env = Environment {
        name: "prod".into(),
        ..Default::default()
    };
    catalog::create_environment(&ctx.store, env.try_into().unwrap())
        .await
        .unwrap();
    for i in 1..=hosts {
        let host = Host {
            name: format!("web-{i}"),
            address: format!("10.0.0.{i}:7444"),
            environment: "prod".into(),
            ..Default::default()
        };
        catalog::add_host(&ctx.store, host.try_into().unwrap())
            .await
            .unwrap();
    }
    Fixture {
        _dir: dir,
        repo,
        ctx,
        fleet,
    }
}

/// Commits `text` as `index.html` on `main`.
fn commit(repo: &git2::Repository, text: &str) {
    let root = repo.path().parent().unwrap();
    std::fs::write(root.join("index.html"), text).unwrap();
    let mut index = repo.index().unwrap();
    index.add_path(Path::new("index.html")).unwrap();
    let tree = repo.find_tree(index.write_tree().unwrap()).unwrap();
    let sig = git2::Signature::now("t", "t@example.com").unwrap();
    let parent = repo.head().ok().and_then(|h| h.peel_to_commit().ok());
    let parents: Vec<&git2::Commit<'_>> = parent.iter().collect();
    let oid = repo
        .commit(None, &sig, &sig, text, &tree, &parents)
        .unwrap();
    repo.reference("refs/heads/main", oid, true, "commit")
        .unwrap();
}

/// Starts a deploy of `main` and follows it to its final record.
async fn deploy(f: &Fixture, policy: RolloutPolicy) -> Deployment {
    let caller = Caller::operator("alice", Role::Deployer);
    let start = Start {
        kind: DeploymentKind::Deploy,
        app: "web".into(),
        environment: "prod".into(),
        target: Target::Ref("main".into()),
        message: String::new(),
        policy: Some(policy),
        queue: false,
        run_at: None,
        force: false,
    };
    let id = super::start(&f.ctx, &caller, start).await.unwrap();
    let mut events = f
        .ctx
        .events
        .stream(f.ctx.store.clone(), id.clone(), 0, |e| e);
    while let Some(event) = events.next().await {
        event.unwrap();
    }
    super::get(&f.ctx.store, &id).unwrap()
}

#[tokio::test]
async fn a_failed_deploy_rolls_back_the_hosts_that_switched_under_its_lease() {
    let f = fixture(3).await;
    commit(&f.repo, "v1");
    let d1 = deploy(&f, RolloutPolicy::default()).await;
    assert_eq!(d1.status(), DeploymentStatus::Succeeded, "{}", d1.error);

    commit(&f.repo, "v2");
    f.fleet
        .host("web-3")
        .on_activate(Behaviour::Fail("health check failed".into()));
    let policy = RolloutPolicy {
        auto_rollback: true,
        ..Default::default()
    };
    let d2 = deploy(&f, policy).await;
    assert_eq!(d2.status(), DeploymentStatus::Failed);
    assert!(d2.error.contains("rolled back by"), "{}", d2.error);
    let child = super::get(&f.ctx.store, &d2.rolled_back_by).unwrap();
    assert_eq!(
        child.status(),
        DeploymentStatus::Succeeded,
        "{}",
        child.error
    );
    assert_eq!(child.rollback_of, d2.id);
    assert_eq!(
        child.fencing_token, d2.fencing_token,
        "under the parent's lease"
    );
    let rolled: Vec<&str> = child.hosts.iter().map(|h| h.host.as_str()).collect();
    assert_eq!(rolled, ["web-1", "web-2"], "only the hosts that switched");
    for host in ["web-1", "web-2", "web-3"] {
        assert_eq!(f.fleet.host(host).current(), d1.release, "{host}");
    }
    assert!(
        locks::get(&f.ctx.store, "web", "prod").unwrap().is_none(),
        "the lock is freed with the final event"
    );
    // Numbers are dense: the deploy, the failed one, its rollback.
    assert_eq!(
        [d1.id.as_str(), d2.id.as_str(), child.id.as_str()],
        ["dep-0000000001", "dep-0000000002", "dep-0000000003"]
    );
}

#[tokio::test]
async fn a_stream_that_starts_before_its_deployment_is_announced_sees_every_event() {
    use crate::domain::event::deployment_event;
    use slipway_proto::control::v1::LogLevel;

    let f = fixture(1).await;
    let deployment = Deployment {
        id: "dep-0000000001".into(),
        app: "web".into(),
        environment: "prod".into(),
        ..Default::default()
    };
    let mut recorder = super::Recorder::unannounced(&f.ctx, deployment);
    let running = DeploymentStatus::Running;
    let first = deployment_event(running, "start", LogLevel::Info, "first".into());
    recorder.record(first).await.unwrap();
    // Visible in the store, not yet announced: a watcher may come now.
    let mut events = f
        .ctx
        .events
        .stream(f.ctx.store.clone(), "dep-0000000001".into(), 0, |e| e);
    let seen = events.next().await.unwrap().unwrap();
    assert_eq!(seen.message, "first");
    recorder.announce();
    let succeeded = DeploymentStatus::Succeeded;
    let last = deployment_event(succeeded, "done", LogLevel::Info, "last".into());
    recorder.record(last).await.unwrap();
    let seen = events.next().await.unwrap().unwrap();
    assert_eq!(seen.message, "last");
    assert!(events.next().await.is_none(), "ends after the final event");
    // A stream of the ended deployment replays it and ends, after the last
    // event too.
    let mut replay = f
        .ctx
        .events
        .stream(f.ctx.store.clone(), "dep-0000000001".into(), 2, |e| e);
    assert!(replay.next().await.is_none());
}

#[tokio::test]
async fn an_app_with_a_drain_is_not_deployed_to_an_agent_before_contract_5() {
    use slipway_proto::agent::v1::{ActivationSpec, Drain, DrainCall, drain_call::Call};

    let f = fixture(2).await;
    commit(&f.repo, "v1");
    let mut app = catalog::app(&f.ctx.store, "web").unwrap();
    let call = |c: &str| DrainCall {
        call: Some(Call::Command(c.into())),
    };
    app.activation = Some(ActivationSpec {
        drain: Some(Drain {
            drain: Some(call("lb out")),
            restore: Some(call("lb in")),
            timeout_seconds: 5,
        }),
        ..Default::default()
    });
    catalog::update_app(&f.ctx.store, &f.ctx.sources, app.try_into().unwrap())
        .await
        .unwrap();
    f.fleet.host("web-2").set_contract(4);
    let start = Start {
        kind: DeploymentKind::Deploy,
        app: "web".into(),
        environment: "prod".into(),
        target: Target::Ref("main".into()),
        message: String::new(),
        policy: None,
        queue: false,
        run_at: None,
        force: false,
    };
    let caller = Caller::operator("alice", Role::Deployer);
    let err = super::start(&f.ctx, &caller, start).await.unwrap_err();
    let status = tonic::Status::from(err);
    assert_eq!(status.code(), tonic::Code::FailedPrecondition);
    assert!(
        status
            .message()
            .contains("host web-2 runs agent contract 4")
            && status.message().contains("needs agent contract 5"),
        "{}",
        status.message()
    );
    assert!(locks::get(&f.ctx.store, "web", "prod").unwrap().is_none());
    assert!(
        !f.fleet
            .host("web-1")
            .calls()
            .iter()
            .any(|c| c.starts_with("prepare"))
    );
}
