//! Fencing tokens at a real agent: once a newer lock holder's token has
//! reached it, every mutating call with an older token is refused with
//! FAILED_PRECONDITION and reason STALE_FENCING_TOKEN and changes nothing
//! on disk (current, journal, releases, content store); the holder's token
//! keeps working.

use std::path::Path;

use slipway_proto::{
    agent::v1::{
        CancelOperationRequest, MissingObjectsRequest, PinReleaseRequest, UploadObjectsRequest,
    },
    reason::{self, Reason},
};
use slipway_tests::{
    Cluster, assert_succeeded,
    direct::{agent_activate, agent_deploy, agent_prepare, agent_rollback, app_target, outcome},
    disk,
    repo::Change,
};
use tonic::Code;

/// Every path under `dir`, sorted, for before/after comparisons.
fn tree(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let entry = entry.expect("entry");
            found.push(entry.path().display().to_string());
            if entry.file_type().expect("type").is_dir() {
                stack.push(entry.path());
            }
        }
    }
    found.sort();
    found
}

#[track_caller]
fn assert_stale(status: &tonic::Status, token: u64, seen: u64) {
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    let want = format!(
        "stale fencing token {token}: app web has seen {seen}; another control plane holds its lock"
    );
    assert!(status.message().contains(&want), "{}", status.message());
    assert_eq!(
        reason::reason(status),
        Some(Reason::StaleFencingToken),
        "{status:?}"
    );
    let (_, metadata) = reason::error_info(status).expect("ErrorInfo");
    assert_eq!(metadata["seen"], seen.to_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_refuses_a_stale_fencing_token_and_changes_nothing() {
    let cluster = Cluster::builder().agents(1).start().await;
    let host = &cluster.agents[0];
    let root = host.app_root();
    cluster.repo.commit("one", &[Change::File("a.txt", b"1\n")]);
    let (_, d1) = cluster.deploy("main").await;
    assert_succeeded(&d1);
    cluster.repo.commit("two", &[Change::File("a.txt", b"2\n")]);
    let r2 = cluster.create_release("main").await;

    // A newer holder takes over: its first call (the upload) records its
    // token. The old holder's token is lower.
    let newer = cluster.holder_token(0).await + 10;
    let stale = newer - 3;
    assert_eq!(
        cluster.agent_upload(0, &r2, newer).await.expect("upload"),
        1
    );
    assert_eq!(cluster.agent_token(0).await, newer);
    let journal = std::fs::read(root.join(".slipway/journal.log")).expect("journal");
    let before = tree(&root);

    let mut agent = cluster.agent_client(0);
    let mut request = cluster.agent_deploy_request("dep-stale-1", &r2.id).await;
    request.fencing_token = stale;
    let status = agent_deploy(&mut agent, request.clone())
        .await
        .expect_err("a deploy with a stale token");
    assert_stale(&status, stale, newer);
    // The deprecated prepare-only Deploy is fenced as before.
    #[allow(deprecated)]
    {
        request.prepare_only = true;
    }
    let status = agent_deploy(&mut agent, request)
        .await
        .expect_err("a prepare with a stale token");
    assert_stale(&status, stale, newer);
    let prepare = cluster
        .agent_prepare_request("dep-stale-1", &r2.id, stale)
        .await;
    let status = agent_prepare(&mut agent, prepare)
        .await
        .expect_err("a PrepareRelease with a stale token");
    assert_stale(&status, stale, newer);
    let activate = cluster
        .agent_activate_request("dep-stale-1", &r2.id, stale)
        .await;
    let status = agent_activate(&mut agent, activate)
        .await
        .expect_err("an ActivateRelease with a stale token");
    assert_stale(&status, stale, newer);
    let rollback = cluster
        .agent_rollback_request("dep-stale-2", &d1.release, stale)
        .await;
    let status = agent_rollback(&mut agent, rollback)
        .await
        .expect_err("a rollback with a stale token");
    assert_stale(&status, stale, newer);
    let fresh = b"never stored";
    let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(fresh));
    let upload = UploadObjectsRequest {
        app: Some(app_target()),
        sha256: sha.clone(),
        size: fresh.len() as u64,
        offset: 0,
        data: fresh.to_vec(),
        fencing_token: stale,
        fencing_epoch: String::new(),
    };
    let status = agent
        .upload_objects(tokio_stream::iter(vec![upload]))
        .await
        .expect_err("an upload with a stale token");
    assert_stale(&status, stale, newer);
    let status = agent
        .cancel_operation(CancelOperationRequest {
            app: Some(app_target()),
            deployment_id: d1.id.clone(),
            grace_seconds: 0,
            fencing_token: stale,
            fencing_epoch: String::new(),
        })
        .await
        .expect_err("a cancel with a stale token");
    assert_stale(&status, stale, newer);
    let status = agent
        .pin_release(PinReleaseRequest {
            app: Some(app_target()),
            release_id: d1.release.clone(),
            pinned: true,
            fencing_token: stale,
            fencing_epoch: String::new(),
        })
        .await
        .expect_err("a pin with a stale token");
    assert_stale(&status, stale, newer);

    // Nothing changed: current, journal, releases, store.
    assert_eq!(host.current().as_deref(), Some(d1.release.as_str()));
    assert_eq!(
        std::fs::read(root.join(".slipway/journal.log")).expect("journal"),
        journal,
        "the journal is byte for byte the same"
    );
    assert_eq!(tree(&root), before, "no file appeared or went");
    assert_eq!(disk::releases(&root), [d1.release.as_str()]);
    let missing = agent
        .missing_objects(MissingObjectsRequest {
            app: Some(app_target()),
            sha256: vec![sha.clone()],
        })
        .await
        .expect("missing objects")
        .into_inner()
        .sha256;
    assert_eq!(missing, [sha]);
    let status = cluster.agent_status(0).await;
    assert_eq!(status.fencing_token, newer);
    assert!(!status.releases.iter().any(|r| r.pinned));

    // The holder's token goes through.
    let mut request = cluster.agent_deploy_request("dep-newer-1", &r2.id).await;
    request.fencing_token = newer;
    let events = agent_deploy(&mut agent, request).await.expect("deploy");
    assert!(outcome(&events).success, "{events:#?}");
    assert_eq!(host.current().as_deref(), Some(r2.id.as_str()));
    assert_eq!(cluster.agent_token(0).await, newer);

    // Token 0 means "no lock": refused where a lock is required.
    let answer = agent
        .cancel_operation(CancelOperationRequest {
            app: Some(app_target()),
            deployment_id: "dep-nothing".into(),
            grace_seconds: 0,
            fencing_token: 0,
            fencing_epoch: String::new(),
        })
        .await;
    let status = answer.expect_err("token 0");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(status.message().contains("fencing_token"), "{status:?}");
    cluster.shutdown().await;
}
