//! The releases repository: each release and its manifest, keyed by app and
//! release id (ids start with the creation time, so key order is creation
//! order), in two trees so that listing releases never reads a manifest.

use slipway_proto::control::v1::Release;

use super::{Op, Store, StoreError, Tree, encode_json, encode_proto, key2};
use crate::domain::manifest::Manifest;

fn key(app: &str, id: &str) -> Vec<u8> {
    key2(app, id)
}

/// Every release of `app`, newest first.
pub fn newest_first(store: &Store, app: &str) -> Result<Vec<Release>, StoreError> {
    let mut releases: Vec<Release> = store.list(Tree::Releases, &key(app, ""))?;
    releases.reverse();
    Ok(releases)
}

/// One release.
pub fn get(store: &Store, app: &str, id: &str) -> Result<Option<Release>, StoreError> {
    store.get(Tree::Releases, &key(app, id))
}

/// The manifest of a release.
pub fn manifest(store: &Store, app: &str, id: &str) -> Result<Option<Manifest>, StoreError> {
    store.get_json(Tree::Manifests, &key(app, id))
}

/// The writes that record a new release with its manifest; they fail their
/// batch with [`StoreError::Exists`] when the release is recorded.
pub fn create(release: &Release, manifest: &Manifest) -> Vec<Op> {
    let key = key(&release.app, &release.id);
    vec![
        Op::Create(Tree::Releases, key.clone(), encode_proto(release)),
        Op::Put(Tree::Manifests, key, encode_json(manifest)),
    ]
}

/// The write that records `release` in place of the stored one (its mark).
pub fn put(release: &Release) -> Op {
    Op::Put(
        Tree::Releases,
        key(&release.app, &release.id),
        encode_proto(release),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tests::scratch;

    fn release(app: &str, id: &str) -> Release {
        Release {
            app: app.into(),
            id: id.into(),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn an_apps_releases_come_newest_first_and_only_its_own() {
        let (_dir, s) = scratch();
        let mut ops = Vec::new();
        // "web2" starts with "web": the key's separator keeps it apart.
        for (app, id) in [("web", "r1"), ("web", "r2"), ("web2", "r3"), ("api", "r4")] {
            ops.extend(create(&release(app, id), &Manifest::default()));
        }
        s.commit(ops).await.unwrap();
        let ids: Vec<String> = newest_first(&s, "web")
            .unwrap()
            .into_iter()
            .map(|r| r.id)
            .collect();
        assert_eq!(ids, ["r2", "r1"]);
        let again = create(&release("web", "r1"), &Manifest::default());
        assert!(matches!(
            s.commit(again).await.unwrap_err(),
            StoreError::Exists { .. }
        ));
        assert!(manifest(&s, "web", "r1").unwrap().is_some());
        assert!(manifest(&s, "web", "r3").unwrap().is_none());
        assert!(get(&s, "api", "r4").unwrap().is_some());
    }
}
