//! App deploy roots never overlap: a request for an app whose root lies in
//! another app's root (its releases or `.slipway`), equals it, or contains
//! it, is refused with FAILED_PRECONDITION and its reason, and writes
//! nothing.

use std::{path::Path, time::Duration};

use slipway_proto::reason::{self, Reason};
use tonic::{Code, Status};

use super::{
    tests::{fixture, result},
    *,
};

/// Every path under `root`, sorted.
fn tree(root: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            if entry.file_type().unwrap().is_dir() {
                stack.push(entry.path());
            }
            found.push(entry.path());
        }
    }
    found.sort();
    found
}

#[tokio::test]
async fn a_root_inside_or_around_another_apps_is_refused_and_nothing_is_written() {
    let f = fixture().await;
    let web = f.app();
    let first = f.deploy("d1", "r1").await;
    assert!(result(&first).success, "{first:#?}");
    let srv = web.root().parent().unwrap().to_owned();
    let registry = std::fs::read(f.dir.path().join("data/apps.json")).unwrap();
    let before = tree(f.dir.path());

    let inside = [
        web.release("r1").join("x"),
        web.release("r1"),
        web.private(),
        web.root().to_owned(),
        srv.clone(),
    ];
    for root in inside {
        let other = f
            .agent
            .roots()
            .resolve("app", "other", root.to_str().unwrap())
            .or_else(|_| Ok::<_, ()>(AppRoot::new("other", root.clone())))
            .unwrap();
        let refused = f.agent.upload(other.clone(), 0).await.err().unwrap();
        let status = Status::from(refused);
        assert_eq!(
            status.code(),
            Code::FailedPrecondition,
            "{root:?}: {status:?}"
        );
        assert_eq!(reason::reason(&status), Some(Reason::DeployRootOverlaps));
        assert!(
            status.message().contains("overlaps the root"),
            "{}",
            status.message()
        );
        let cancel = f
            .agent
            .cancel(other, "d9".into(), Duration::from_secs(1), 1)
            .await
            .unwrap_err();
        assert_eq!(Status::from(cancel).code(), Code::FailedPrecondition);
    }
    assert_eq!(tree(f.dir.path()), before, "nothing written");
    assert_eq!(
        std::fs::read(f.dir.path().join("data/apps.json")).unwrap(),
        registry
    );
    // A root beside it is fine.
    let beside = AppRoot::new("other", srv.join("other"));
    assert!(f.agent.upload(beside, 0).await.is_ok());
}
