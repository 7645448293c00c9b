//! Fencing tokens below gRPC: a stale token is refused and changes nothing,
//! a higher one is recorded durably and reported, and a replay with the
//! token it ran under still works.

use std::time::Duration;

use futures_util::StreamExt;
use tonic::{Code, Status};

use super::{
    lifecycle_tests::status,
    tests::{Fixture, fixture, result},
    *,
};
use crate::activation::Activation;

fn deploy_plan(f: &Fixture, deployment: &str, id: &str, token: u64) -> DeployPlan {
    DeployPlan {
        fencing_token: token,
        fencing_epoch: String::new(),
        ..f.plan(deployment, id)
    }
}

/// Deploys release `id` (staged) and asserts it succeeded.
async fn deploy_ok(f: &Fixture, deployment: &str, id: &str, token: u64) {
    let events: Vec<_> = f
        .agent
        .deploy(deploy_plan(f, deployment, id, token))
        .await
        .unwrap()
        .collect()
        .await;
    assert!(result(&events).success, "{events:#?}");
}

fn rollback_plan(f: &Fixture, deployment: &str, id: &str, token: u64) -> RollbackPlan {
    RollbackPlan {
        app: f.app(),
        deployment_id: deployment.into(),
        release_id: id.into(),
        activation: Activation::default(),
        environment: "test".into(),
        fencing_token: token,
        fencing_epoch: String::new(),
        prepared_keep: None,
        secrets_only: false,
    }
}

const STALE: &str =
    "stale fencing token 3: app web has seen 5; another control plane holds its lock";

fn assert_stale(err: Error) {
    let status = Status::from(err);
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    assert_eq!(status.message(), STALE);
}

#[tokio::test]
async fn a_stale_token_is_refused_everywhere_and_changes_nothing() {
    let mut f = fixture().await;
    let app = f.app();
    f.stage("r1").await;
    let first: Vec<_> = f
        .agent
        .deploy(deploy_plan(&f, "d1", "r1", 5))
        .await
        .unwrap()
        .collect()
        .await;
    assert!(result(&first).success, "{first:#?}");
    f.stage("r2").await;
    let journal = std::fs::read(app.journal()).unwrap();

    assert_stale(
        f.agent
            .deploy(deploy_plan(&f, "d2", "r2", 3))
            .await
            .err()
            .unwrap(),
    );
    let prepare = DeployPlan {
        prepare_only: true,
        rebuild: false,
        ..deploy_plan(&f, "d2", "r2", 3)
    };
    assert_stale(f.agent.deploy(prepare).await.err().unwrap());
    assert_stale(
        f.agent
            .rollback(rollback_plan(&f, "d3", "r1", 3))
            .await
            .err()
            .unwrap(),
    );
    assert_stale(f.agent.upload(app.clone(), 3).await.err().unwrap());
    let cancel = f
        .agent
        .cancel(app.clone(), "d1".into(), Duration::from_secs(1), 3)
        .await;
    assert_stale(cancel.unwrap_err());
    assert_stale(
        f.agent
            .pin(app.clone(), "r1".into(), true, 3)
            .await
            .unwrap_err(),
    );
    // Even a replay of what token 5 did is refused with token 3.
    assert_stale(
        f.agent
            .deploy(deploy_plan(&f, "d1", "r1", 3))
            .await
            .err()
            .unwrap(),
    );

    assert_eq!(
        std::fs::read(app.journal()).unwrap(),
        journal,
        "the journal is untouched"
    );
    assert_eq!(
        release::current_release(&app).unwrap().as_deref(),
        Some("r1")
    );
    assert_eq!(release::list(&app).unwrap(), ["r1"]);
    let now = status(&f).await;
    assert_eq!(now.fencing_token, 5);
    assert_eq!(now.running_deployment, "");

    // The holder's token still works, for a replay and for new work; a
    // pin outside a deployment (token 0) is not fenced.
    let replay: Vec<_> = f
        .agent
        .deploy(deploy_plan(&f, "d1", "r1", 5))
        .await
        .unwrap()
        .collect()
        .await;
    assert_eq!(replay, first);
    assert!(f.agent.pin(app.clone(), "r1".into(), true, 0).await.is_ok());
    let events: Vec<_> = f
        .agent
        .deploy(deploy_plan(&f, "d2", "r2", 9))
        .await
        .unwrap()
        .collect()
        .await;
    assert!(result(&events).success);
    assert_eq!(status(&f).await.fencing_token, 9);

    // Durable: a restarted agent still refuses the old holder.
    f.restart().await;
    assert_eq!(status(&f).await.fencing_token, 9);
    let err = f
        .agent
        .rollback(rollback_plan(&f, "d4", "r1", 5))
        .await
        .err()
        .unwrap();
    let status = Status::from(err);
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert_eq!(
        status.message(),
        "stale fencing token 5: app web has seen 9; another control plane holds its lock"
    );
}

#[tokio::test]
async fn a_higher_token_is_recorded_before_the_operation_runs() {
    let f = fixture().await;
    let app = f.app();
    // An upload is the first call of a deployment: it records the token.
    f.agent.upload(app.clone(), 7).await.unwrap();
    assert_eq!(status(&f).await.fencing_token, 7);
    let journal = crate::journal::Journal::open(&app).unwrap();
    assert_eq!(journal.read(|d| d.fencing_token), 7, "on disk");
    // Token 0 (no lock) is neither checked nor recorded.
    f.agent.upload(app.clone(), 0).await.unwrap();
    f.stage("r1").await;
    let events: Vec<_> = f
        .agent
        .deploy(deploy_plan(&f, "d1", "r1", 8))
        .await
        .unwrap()
        .collect()
        .await;
    assert!(result(&events).success);
    assert_eq!(status(&f).await.fencing_token, 8);
    // A cancel with nothing running is no error, and fences like the rest.
    let (cancelled, current) = f
        .agent
        .cancel(app, "d9".into(), Duration::from_secs(1), 8)
        .await
        .unwrap();
    assert!(!cancelled);
    assert_eq!(current.as_deref(), Some("r1"));
}

#[tokio::test]
async fn a_forged_token_on_a_request_that_does_nothing_is_not_recorded() {
    let f = fixture().await;
    let app = f.app();
    f.stage("r1").await;
    deploy_ok(&f, "d1", "r1", 5).await;
    let journal = std::fs::read(app.journal()).unwrap();
    // The attack: a cancel of a deployment that does not exist, with the
    // highest token there is.
    let (cancelled, current) = f
        .agent
        .cancel(app.clone(), "nope".into(), Duration::from_secs(1), u64::MAX)
        .await
        .unwrap();
    assert!(!cancelled);
    assert_eq!(current.as_deref(), Some("r1"));
    // A deploy refused before it starts (its release's objects are
    // missing) records nothing either.
    let refused = f
        .agent
        .deploy(deploy_plan(&f, "d9", "r9", u64::MAX - 1))
        .await;
    assert!(refused.is_err());
    assert_eq!(
        std::fs::read(app.journal()).unwrap(),
        journal,
        "nothing recorded"
    );
    assert_eq!(status(&f).await.fencing_token, 5);
    // The lock holder goes on deploying.
    f.stage("r2").await;
    deploy_ok(&f, "d2", "r2", 6).await;
    assert_eq!(status(&f).await.fencing_token, 6);
}

#[tokio::test]
async fn a_reset_clears_the_token_and_its_epoch() {
    let f = fixture().await;
    let app = f.app();
    f.stage("r1").await;
    deploy_ok(&f, "d1", "r1", 40).await;
    let (token, epoch) = f.agent.reset_fencing(app.clone()).await.unwrap();
    assert_eq!((token, epoch.as_str()), (40, ""));
    assert_eq!(status(&f).await.fencing_token, 0);
    // The holder of a lower token (a restored store) deploys again.
    f.stage("r2").await;
    deploy_ok(&f, "d2", "r2", 3).await;
    assert_eq!(status(&f).await.fencing_token, 3);
}
