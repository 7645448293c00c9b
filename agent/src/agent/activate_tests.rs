//! PrepareRelease and ActivateRelease through the real handlers (below the
//! network): a prepare leaves `current` alone and the release ready; its
//! activation switches and reads as one; an activation of a release the
//! deployment did not prepare is refused with its reason, as are an
//! unknown base and a stale token. Each shares its operation with the old
//! request it replaces.

use futures_util::StreamExt;
use slipway_proto::{
    AGENT_CONTRACT_VERSION,
    agent::v1::{
        ActivateReleaseRequest, ActivationSpec, AppTarget, GetStatusRequest, HealthCheck, Hook,
        HookPoint, PrepareReleaseRequest, ProgressEvent, ReleaseState, RollbackRequest, Stage,
        agent_service_server::AgentService,
    },
    reason::{self, Reason},
};
use tonic::{Code, Request, Status};

use super::{
    lifecycle_tests::{lines, states, status},
    tests::{Fixture, fixture, result},
    *,
};
use crate::service::{AgentApi, ResponseStream};

fn target() -> Option<AppTarget> {
    Some(AppTarget {
        name: "web".into(),
        deploy_root: String::new(),
    })
}

/// Hooks that log `<point> <release>` to `hooks` in the fixture's dir, and
/// a health check that passes.
fn logging(f: &Fixture) -> ActivationSpec {
    let log = f.dir.path().join("hooks");
    let hook = |point: HookPoint, name: &str| Hook {
        point: point as i32,
        name: name.into(),
        command: format!("echo \"{name} $SLIPWAY_RELEASE_ID\" >> {}", log.display()),
        timeout_seconds: 30,
    };
    ActivationSpec {
        hooks: vec![
            hook(HookPoint::BeforeActivate, "before"),
            hook(HookPoint::AfterActivate, "after"),
        ],
        health_check: Some(HealthCheck {
            command: "true".into(),
            attempts: 2,
            interval_ms: 10,
            timeout_seconds: 30,
            ..HealthCheck::default()
        }),
        ..ActivationSpec::default()
    }
}

fn prepare_request(f: &Fixture, deployment: &str, id: &str) -> PrepareReleaseRequest {
    PrepareReleaseRequest {
        deployment_id: deployment.into(),
        app: target(),
        release_id: id.into(),
        files: f.files(id),
        keep_releases: 5,
        spec: Some(logging(f)),
        environment: "test".into(),
        fencing_token: 1,
        fencing_epoch: String::new(),
        ..PrepareReleaseRequest::default()
    }
}

fn activate_request(f: &Fixture, deployment: &str, id: &str) -> ActivateReleaseRequest {
    ActivateReleaseRequest {
        deployment_id: deployment.into(),
        app: target(),
        release_id: id.into(),
        spec: Some(logging(f)),
        environment: "test".into(),
        fencing_token: 1,
        fencing_epoch: String::new(),
        secrets: Vec::new(),
    }
}

/// Every event of a response stream, or the status the call was refused with.
async fn events<T>(
    call: Result<tonic::Response<ResponseStream<T>>, Status>,
    event: fn(T) -> Option<ProgressEvent>,
) -> Result<Vec<ProgressEvent>, Status> {
    let stream = call?.into_inner();
    let items: Vec<_> = stream.collect().await;
    items
        .into_iter()
        .map(|item| item.map(|r| event(r).expect("event set")))
        .collect()
}

async fn prepare(api: &AgentApi, r: PrepareReleaseRequest) -> Result<Vec<ProgressEvent>, Status> {
    events(api.prepare_release(Request::new(r)).await, |r| r.event).await
}

async fn activate(api: &AgentApi, r: ActivateReleaseRequest) -> Result<Vec<ProgressEvent>, Status> {
    events(api.activate_release(Request::new(r)).await, |r| r.event).await
}

#[track_caller]
fn assert_reason(status: &Status, code: Code, want: Reason) {
    assert_eq!(status.code(), code, "{status:?}");
    assert_eq!(reason::reason(status), Some(want), "{status:?}");
}

#[tokio::test]
async fn prepare_leaves_current_and_the_release_ready_and_activate_switches() {
    let f = fixture().await;
    let api = AgentApi::new(f.agent.clone());
    f.deploy("d1", "r1").await;
    f.stage("r2").await;

    let prepared = prepare(&api, prepare_request(&f, "d2", "r2"))
        .await
        .unwrap();
    let done = result(&prepared);
    assert!(done.success, "{prepared:#?}");
    assert_eq!(done.current_release, "r1", "not switched");
    assert!(prepared.iter().all(|e| e.stage() != Stage::Activate));
    let app = status(&f).await;
    assert_eq!(app.current_release, "r1");
    assert_eq!(
        states(&app),
        [
            ("r1".to_owned(), ReleaseState::Active),
            ("r2".to_owned(), ReleaseState::Ready)
        ]
    );
    assert_eq!(lines(&f, "hooks"), ["before r2"]);
    // The same operation as a prepare-only Deploy: that replays it.
    let plan = DeployPlan {
        prepare_only: true,
        rebuild: false,
        ..f.plan("d2", "r2")
    };
    let same: Vec<_> = f.agent.deploy(plan).await.unwrap().collect().await;
    assert_eq!(same, prepared);

    let activated = activate(&api, activate_request(&f, "d2", "r2"))
        .await
        .unwrap();
    let done = result(&activated);
    assert!(done.success, "{activated:#?}");
    assert_eq!(
        (
            done.previous_release.as_str(),
            done.current_release.as_str()
        ),
        ("r1", "r2")
    );
    assert_eq!(
        activated[0].message,
        "activating prepared release r2 of app web: switching current to it"
    );
    for event in &activated {
        let message = event.message.to_lowercase();
        assert!(!message.contains("roll"), "reads as a rollback: {message}");
    }
    assert_eq!(lines(&f, "hooks"), ["before r2", "after r2"]);
    let app = status(&f).await;
    assert_eq!(
        (app.current_release.as_str(), app.previous_release.as_str()),
        ("r2", "r1")
    );
    // The same switch as the Rollback that activated prepared releases
    // before: that replays it too, and nothing runs again.
    let rollback = RollbackRequest {
        deployment_id: "d2".into(),
        app: target(),
        release_id: "r2".into(),
        spec: Some(logging(&f)),
        environment: "test".into(),
        fencing_token: 1,
        fencing_epoch: String::new(),
        secrets: Vec::new(),
    };
    let same = events(api.rollback(Request::new(rollback)).await, |r| r.event).await;
    assert_eq!(same.unwrap(), activated);
    let again = activate(&api, activate_request(&f, "d2", "r2")).await;
    assert_eq!(again.unwrap(), activated);
    assert_eq!(lines(&f, "hooks").len(), 2, "nothing ran again");

    let host = api
        .get_status(Request::new(GetStatusRequest::default()))
        .await
        .unwrap()
        .into_inner()
        .host
        .unwrap();
    assert_eq!(host.contract_version, AGENT_CONTRACT_VERSION);
    assert_eq!(host.contract_version, 5);
    assert_eq!(host.agent_version, env!("CARGO_PKG_VERSION"));
}

#[tokio::test]
async fn only_a_release_this_deployment_prepared_is_activated() {
    let f = fixture().await;
    let api = AgentApi::new(f.agent.clone());
    f.deploy("d1", "r1").await;
    f.deploy("d2", "r2").await;
    // r1 is READY on disk, but no deployment prepared it: a switch to it is
    // a rollback, and must be asked for as one.
    assert_eq!(
        states(&status(&f).await)[0],
        ("r1".to_owned(), ReleaseState::Ready)
    );
    let refused = activate(&api, activate_request(&f, "d9", "r1"))
        .await
        .unwrap_err();
    assert_reason(
        &refused,
        Code::FailedPrecondition,
        Reason::ReleaseNotPrepared,
    );
    assert!(
        refused
            .message()
            .starts_with("deployment d9 did not prepare release r1 on this host"),
        "{}",
        refused.message()
    );
    let (_, metadata) = reason::error_info(&refused).unwrap();
    assert_eq!(metadata["release_id"], "r1");

    // A deployment that prepared another release.
    f.stage("r3").await;
    assert!(
        result(
            &prepare(&api, prepare_request(&f, "d3", "r3"))
                .await
                .unwrap()
        )
        .success
    );
    let refused = activate(&api, activate_request(&f, "d3", "r1"))
        .await
        .unwrap_err();
    assert_reason(
        &refused,
        Code::FailedPrecondition,
        Reason::ReleaseNotPrepared,
    );
    assert!(
        refused.message().contains("(it prepared release r3)"),
        "{}",
        refused.message()
    );

    // A prepare that failed.
    f.stage("r4").await;
    let failing = PrepareReleaseRequest {
        spec: Some(ActivationSpec {
            hooks: vec![Hook {
                point: HookPoint::BeforeActivate as i32,
                name: "migrate".into(),
                command: "exit 3".into(),
                timeout_seconds: 30,
            }],
            ..ActivationSpec::default()
        }),
        ..prepare_request(&f, "d4", "r4")
    };
    assert!(!result(&prepare(&api, failing).await.unwrap()).success);
    let refused = activate(&api, activate_request(&f, "d4", "r4"))
        .await
        .unwrap_err();
    assert_reason(
        &refused,
        Code::FailedPrecondition,
        Reason::ReleaseNotPrepared,
    );
    assert!(refused.message().contains("its prepare failed"));

    assert_eq!(status(&f).await.current_release, "r2", "nothing switched");
}

#[tokio::test]
async fn a_failed_activation_reads_as_an_activation() {
    let f = fixture().await;
    let api = AgentApi::new(f.agent.clone());
    f.deploy("d1", "r1").await;
    f.stage("r2").await;
    assert!(
        result(
            &prepare(&api, prepare_request(&f, "d2", "r2"))
                .await
                .unwrap()
        )
        .success
    );
    let mut request = activate_request(&f, "d2", "r2");
    request.spec = Some(ActivationSpec {
        health_check: Some(HealthCheck {
            command: "exit 1".into(),
            attempts: 1,
            timeout_seconds: 30,
            ..HealthCheck::default()
        }),
        ..ActivationSpec::default()
    });
    let events = activate(&api, request).await.unwrap();
    let done = result(&events);
    assert!(!done.success);
    assert_eq!(done.current_release, "r1");
    assert!(
        done.error
            .starts_with("the activation of prepared release r2 for app web failed: "),
        "{}",
        done.error
    );
    assert!(done.error.contains("current was switched back to r1"));
}

#[tokio::test]
async fn refusals_carry_their_reason_and_keep_their_message() {
    let f = fixture().await;
    let api = AgentApi::new(f.agent.clone());
    f.deploy("d1", "r1").await;
    f.stage("r2").await;

    let delta = PrepareReleaseRequest {
        base_release: "r0".into(),
        files: Vec::new(),
        removed_paths: vec!["VERSION".into()],
        ..prepare_request(&f, "d2", "r2")
    };
    let refused = prepare(&api, delta).await.unwrap_err();
    assert_reason(
        &refused,
        Code::FailedPrecondition,
        Reason::BaseReleaseUnknown,
    );
    assert_eq!(
        refused.message(),
        "base release r0 is not known on this host; send the whole manifest"
    );
    assert_eq!(
        reason::error_info(&refused).unwrap().1["base_release"],
        "r0"
    );

    // A newer lock holder, then the old one.
    let newer = PrepareReleaseRequest {
        fencing_token: 5,
        fencing_epoch: String::new(),
        ..prepare_request(&f, "d2", "r2")
    };
    assert!(result(&prepare(&api, newer).await.unwrap()).success);
    let stale = ActivateReleaseRequest {
        fencing_token: 4,
        fencing_epoch: String::new(),
        ..activate_request(&f, "d2", "r2")
    };
    let refused = activate(&api, stale).await.unwrap_err();
    assert_reason(
        &refused,
        Code::FailedPrecondition,
        Reason::StaleFencingToken,
    );
    assert_eq!(
        refused.message(),
        "stale fencing token 4: app web has seen 5; another control plane holds its lock"
    );
    let stale = PrepareReleaseRequest {
        fencing_token: 4,
        fencing_epoch: String::new(),
        ..prepare_request(&f, "d3", "r2")
    };
    let refused = prepare(&api, stale).await.unwrap_err();
    assert_reason(
        &refused,
        Code::FailedPrecondition,
        Reason::StaleFencingToken,
    );

    let invalid = ActivateReleaseRequest {
        release_id: "../r2".into(),
        ..activate_request(&f, "d2", "r2")
    };
    let refused = activate(&api, invalid).await.unwrap_err();
    assert_reason(&refused, Code::InvalidArgument, Reason::InvalidRequest);
    assert_eq!(
        reason::error_info(&refused).unwrap().1["field"],
        "release_id"
    );

    let missing = PrepareReleaseRequest {
        fencing_token: 5,
        fencing_epoch: String::new(),
        ..prepare_request(&f, "d5", "r5")
    };
    let refused = prepare(&api, missing).await.unwrap_err();
    assert_reason(&refused, Code::FailedPrecondition, Reason::ObjectsMissing);
}
