//! Prestaged trees through the agent: the deploy after another patches the
//! tree built once that one was over, and says so; GetStatus tells which
//! tree is ready; a restart drops it.

use futures_util::StreamExt;
use slipway_proto::agent::v1::{FileKind, ProgressEvent};

use super::{
    tests::{Fixture, entry, fixture, result},
    *,
};
use crate::manifest::Manifest;

/// Deploys release `id` (a `VERSION` file saying `id` and eight files
/// that stay), or only prepares it; waits for what is prestaged after.
async fn deploy(f: &Fixture, deployment: &str, id: &str) -> Vec<ProgressEvent> {
    run(f, deployment, id, false).await
}

async fn run(f: &Fixture, deployment: &str, id: &str, prepare_only: bool) -> Vec<ProgressEvent> {
    let mut contents: Vec<Vec<u8>> = vec![id.as_bytes().to_vec()];
    contents.extend((0..8).map(|i| format!("part {i}\n").into_bytes()));
    let mut files = vec![entry("VERSION", FileKind::Regular, &contents[0])];
    files.extend((1..9).map(|i| entry(&format!("lib/p{i}.rb"), FileKind::Regular, &contents[i])));
    let borrowed: Vec<&[u8]> = contents.iter().map(Vec::as_slice).collect();
    f.upload(&files, &borrowed).await;
    let plan = DeployPlan {
        manifest: Manifest::from_wire(files).unwrap(),
        prepare_only,
        ..f.plan(deployment, id)
    };
    let events = f.agent.deploy(plan).await.unwrap().collect().await;
    f.agent.prestage.settle(&f.app());
    events
}

async fn prestaged(f: &Fixture) -> String {
    let status = f.agent.status(Vec::new(), false).await.unwrap();
    status.apps[0].prestaged_release.clone()
}

#[tokio::test]
async fn the_next_deploy_patches_the_tree_prestaged_after_the_last() {
    let mut f = fixture().await;
    let first = deploy(&f, "d1", "r1").await;
    assert!(result(&first).success, "{first:#?}");
    let built = first.iter().any(|e| e.message == "release r1 is complete");
    assert!(built, "built afresh: {first:#?}");
    assert_eq!(prestaged(&f).await, "r1");

    let second = deploy(&f, "d2", "r2").await;
    assert!(result(&second).success, "{second:#?}");
    let said = "release r2 is complete: the tree prestaged from r1, 1 entries placed and 1 removed";
    assert!(second.iter().any(|e| e.message == said), "{second:#?}");
    let live = f.app().current();
    assert_eq!(std::fs::read(live.join("VERSION")).unwrap(), b"r2");
    assert_eq!(std::fs::read(live.join("lib/p8.rb")).unwrap(), b"part 7\n");
    assert_eq!(prestaged(&f).await, "r2");
    let spare: Vec<_> = std::fs::read_dir(f.app().spare()).unwrap().collect();
    assert_eq!(spare.len(), 1, "{spare:?}");

    // Which tree is ready lives in memory: a restart starts without one.
    f.restart().await;
    assert_eq!(prestaged(&f).await, "");
    assert_eq!(std::fs::read_dir(f.app().spare()).unwrap().count(), 0);
    let third = deploy(&f, "d3", "r3").await;
    assert!(
        third.iter().any(|e| e.message == "release r3 is complete"),
        "{third:#?}"
    );
}

#[tokio::test]
async fn a_prepared_release_is_prestaged_once_activated_not_before() {
    let f = fixture().await;
    assert!(result(&deploy(&f, "d1", "r1").await).success);
    let prepared = run(&f, "d2", "r2", true).await;
    assert!(result(&prepared).success, "{prepared:#?}");
    let said = "release r2 is complete: the tree prestaged from r1, 1 entries placed and 1 removed";
    assert!(prepared.iter().any(|e| e.message == said), "{prepared:#?}");
    // r1's tree went into r2; the next is built once r2 is live.
    assert_eq!(prestaged(&f).await, "");

    let plan = RollbackPlan {
        app: f.app(),
        deployment_id: "d2".into(),
        release_id: "r2".into(),
        activation: Default::default(),
        environment: "test".into(),
        fencing_token: 1,
        fencing_epoch: String::new(),
        prepared_keep: None,
        secrets_only: false,
    };
    let activated: Vec<_> = f.agent.activate(plan).await.unwrap().collect().await;
    assert!(result(&activated).success, "{activated:#?}");
    f.agent.prestage.settle(&f.app());
    assert_eq!(prestaged(&f).await, "r2");
}

#[tokio::test]
async fn an_object_found_corrupted_drops_the_tree_that_may_link_it() {
    let f = fixture().await;
    assert!(result(&deploy(&f, "d1", "r1").await).success);
    assert_eq!(prestaged(&f).await, "r1");
    // An edit through the release's hard link reaches the object, and the
    // prestaged tree's link to it.
    let edited = f.app().release("r1").join("lib/p3.rb");
    std::fs::set_permissions(&edited, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    std::fs::write(&edited, "edited\n").unwrap();
    let question = DriftQuestion {
        app: f.app(),
        release: None,
        limit: 10,
        discard: Some(1.into()),
    };
    let checked = f.agent.check_drift(question).await.unwrap();
    assert_eq!(checked.objects_discarded, 1, "{checked:#?}");
    assert_eq!(prestaged(&f).await, "");
}
