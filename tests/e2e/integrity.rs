//! Nothing from the wire is trusted: an object whose bytes do not match its
//! hash is refused and not kept, and a symlink leaving the release is refused
//! by the control plane and by the agent, with nothing created on disk.

use futures_util::StreamExt;
use sha2::{Digest, Sha256};
use slipway_proto::{
    agent::v1::{
        DeployRequest as AgentDeploy, FileEntry, FileKind, MissingObjectsRequest,
        UploadObjectsRequest, agent_service_client::AgentServiceClient,
    },
    control::v1::{DeployRequest, ListDeploymentsRequest},
    identity::Role,
};
use slipway_tests::assert_succeeded;
use slipway_tests::{
    Cluster,
    cluster::{APP, ENV},
    direct::app_target,
    disk,
    repo::Change,
};
use tonic::{Code, transport::Channel};

/// The fencing token of these direct calls: a newer lock holder's. Neither
/// test deploys through the control plane after them.
const NEWER_HOLDER: u64 = 1 << 40;

fn sha256(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// Uploads one object in one chunk, claiming `sha256` for `data`.
async fn upload(
    agent: &mut AgentServiceClient<Channel>,
    sha256: &str,
    data: &[u8],
) -> Result<u64, tonic::Status> {
    let chunk = UploadObjectsRequest {
        app: Some(app_target()),
        sha256: sha256.into(),
        size: data.len() as u64,
        offset: 0,
        data: data.to_vec(),
        fencing_token: NEWER_HOLDER,
        fencing_epoch: String::new(),
    };
    let response = agent
        .upload_objects(tokio_stream::iter(vec![chunk]))
        .await?;
    Ok(response.into_inner().objects)
}

async fn missing(agent: &mut AgentServiceClient<Channel>, sha256: &str) -> Vec<String> {
    agent
        .missing_objects(MissingObjectsRequest {
            app: Some(app_target()),
            sha256: vec![sha256.into()],
        })
        .await
        .expect("missing objects")
        .into_inner()
        .sha256
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_object_is_refused_and_not_kept() {
    let cluster = Cluster::builder().agents(1).start().await;
    let root = cluster.agents[0].app_root();
    let mut agent = cluster.agent_client(0);
    let hash = sha256(b"hello");

    let status = upload(&mut agent, &hash, b"jello")
        .await
        .expect_err("bytes that do not match their hash");
    assert!(
        matches!(status.code(), Code::InvalidArgument | Code::DataLoss),
        "{status:?}"
    );
    assert!(status.message().contains(&hash), "{}", status.message());
    assert_eq!(missing(&mut agent, &hash).await, [hash.as_str()]);
    assert!(
        disk::objects_named(&root, &hash).is_empty(),
        "nothing of the object is kept: {:?}",
        disk::objects_named(&root, &hash)
    );

    // The store is not poisoned: the right bytes are accepted afterwards.
    assert_eq!(
        upload(&mut agent, &hash, b"hello").await.expect("upload"),
        1
    );
    assert!(missing(&mut agent, &hash).await.is_empty());
    cluster.shutdown().await;
}

/// The statuses of a Deploy call: the call's own, or the first error on its
/// stream; the events when it ran.
async fn agent_deploy(
    agent: &mut AgentServiceClient<Channel>,
    request: AgentDeploy,
) -> Result<Vec<slipway_proto::agent::v1::ProgressEvent>, tonic::Status> {
    let mut stream = agent.deploy(request).await?.into_inner();
    let mut events = Vec::new();
    while let Some(item) = stream.next().await {
        events.push(item?.event.expect("event set"));
    }
    Ok(events)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn symlink_escaping_the_release_is_refused() {
    let cluster = Cluster::builder().agents(1).start().await;
    let host = &cluster.agents[0];
    cluster
        .repo
        .commit("good", &[Change::File("index.html", b"v1\n")]);
    let (_, d1) = cluster.deploy("main").await;
    assert_succeeded(&d1);

    // From git: the control plane refuses to cut or deploy it.
    cluster
        .repo
        .commit("evil", &[Change::Link("evil", "../../../../etc")]);
    let status = cluster
        .cut_release("main")
        .await
        .expect_err("a release with an escaping symlink");
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    assert!(status.message().contains("evil"), "{}", status.message());
    let status = cluster
        .deployments(Role::Deployer)
        .await
        .deploy(DeployRequest {
            app: APP.into(),
            environment: ENV.into(),
            git_ref: "main".into(),
            ..Default::default()
        })
        .await
        .expect_err("deploying it");
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    let recorded = cluster
        .deployments(Role::Viewer)
        .await
        .list_deployments(ListDeploymentsRequest::default())
        .await
        .expect("list")
        .into_inner()
        .deployments;
    assert_eq!(recorded.len(), 1, "the refused deploy recorded nothing");

    // Straight to the agent, with the target uploaded as a valid object.
    let mut agent = cluster.agent_client(0);
    for (n, target) in ["../../etc", "/etc"].into_iter().enumerate() {
        let hash = sha256(target.as_bytes());
        upload(&mut agent, &hash, target.as_bytes())
            .await
            .expect("upload the target");
        let release = format!("20990101T00000{n}Z-evil");
        let request = AgentDeploy {
            deployment_id: format!("dep-evil-{n}"),
            app: Some(app_target()),
            release_id: release.clone(),
            files: vec![FileEntry {
                path: "evil".into(),
                kind: FileKind::Symlink as i32,
                mode: 0o777,
                size: target.len() as u64,
                sha256: hash,
            }],
            keep_releases: 0,
            environment: ENV.into(),
            fencing_token: NEWER_HOLDER,
            fencing_epoch: String::new(),
            ..Default::default()
        };
        let status = match agent_deploy(&mut agent, request).await {
            Ok(events) => panic!("a symlink to {target} was deployed: {events:?}"),
            Err(status) => status,
        };
        assert_eq!(status.code(), Code::InvalidArgument, "{target}: {status:?}");
        assert!(
            !host.release_dir(&release).exists(),
            "{target}: no release directory"
        );
    }
    assert_eq!(host.current().as_deref(), Some(d1.release.as_str()));
    assert_eq!(disk::releases(&host.app_root()), [d1.release.as_str()]);
    assert!(disk::staging_leftovers(&host.app_root()).is_empty());
    cluster.shutdown().await;
}
