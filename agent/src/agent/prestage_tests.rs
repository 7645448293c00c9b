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

/// Release `id`: a `VERSION` file saying `id` and eight files that stay.
async fn deploy(f: &Fixture, deployment: &str, id: &str) -> Vec<ProgressEvent> {
    let mut contents: Vec<Vec<u8>> = vec![id.as_bytes().to_vec()];
    contents.extend((0..8).map(|i| format!("part {i}\n").into_bytes()));
    let mut files = vec![entry("VERSION", FileKind::Regular, &contents[0])];
    files.extend((1..9).map(|i| entry(&format!("lib/p{i}.rb"), FileKind::Regular, &contents[i])));
    let borrowed: Vec<&[u8]> = contents.iter().map(Vec::as_slice).collect();
    f.upload(&files, &borrowed).await;
    let plan = DeployPlan {
        manifest: Manifest::from_wire(files).unwrap(),
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
