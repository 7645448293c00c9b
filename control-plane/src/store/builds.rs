//! The builds repository: the last build of each (app, commit, build spec),
//! so that a commit is built once per spec and its outcome can be shown.

use slipway_proto::control::v1::Build;

use super::{Op, Store, StoreError, Tree, encode_proto, key2};

fn key(app: &str, commit: &str, spec_hash: &str) -> Vec<u8> {
    key2(app, &format!("{commit}:{spec_hash}"))
}

/// The last build of `commit` of `app` with the spec hashing to
/// `spec_hash`, if any.
pub fn get(
    store: &Store,
    app: &str,
    commit: &str,
    spec_hash: &str,
) -> Result<Option<Build>, StoreError> {
    store.get(Tree::Builds, &key(app, commit, spec_hash))
}

/// The write that keeps `build` (replacing an earlier attempt).
pub fn put(build: &Build) -> Op {
    Op::Put(
        Tree::Builds,
        key(&build.app, &build.commit, &build.spec_hash),
        encode_proto(build),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tests::scratch;

    #[tokio::test]
    async fn a_build_is_found_by_app_commit_and_spec() {
        let (_dir, s) = scratch();
        let build = Build {
            app: "web".into(),
            commit: "c1".into(),
            spec_hash: "h1".into(),
            id: "b".into(),
            ..Default::default()
        };
        s.commit(vec![put(&build)]).await.unwrap();
        assert_eq!(get(&s, "web", "c1", "h1").unwrap(), Some(build));
        assert_eq!(get(&s, "web", "c1", "h2").unwrap(), None);
        assert_eq!(get(&s, "web2", "c1", "h1").unwrap(), None);
    }
}
