//! The catalog repository: apps, environments and hosts, each kind in its
//! own tree keyed by the record's name, so a listing comes back by name.

use slipway_proto::control::v1::{App, Environment, Host};

use super::{Op, Store, StoreError, Tree, encode_proto};

/// A kind of catalog record: stored in its own tree, keyed by its name.
/// Implemented by [`App`], [`Environment`] and [`Host`] only.
pub trait Named: prost::Message + Default + sealed::Sealed {
    /// The tree that holds this kind.
    const TREE: Tree;
    /// The record's name, which is its key.
    fn name(&self) -> &str;
}

mod sealed {
    /// Keeps the catalog's trees the catalog's own.
    pub trait Sealed {}
    impl Sealed for super::App {}
    impl Sealed for super::Environment {}
    impl Sealed for super::Host {}
}

impl Named for App {
    const TREE: Tree = Tree::Apps;
    fn name(&self) -> &str {
        &self.name
    }
}

impl Named for Environment {
    const TREE: Tree = Tree::Environments;
    fn name(&self) -> &str {
        &self.name
    }
}

impl Named for Host {
    const TREE: Tree = Tree::Hosts;
    fn name(&self) -> &str {
        &self.name
    }
}

/// The record of kind `R` called `name`.
pub fn get<R: Named>(store: &Store, name: &str) -> Result<Option<R>, StoreError> {
    store.get(R::TREE, name.as_bytes())
}

/// Every record of kind `R`, by name.
pub fn list<R: Named>(store: &Store) -> Result<Vec<R>, StoreError> {
    store.list(R::TREE, b"")
}

/// The write that records `record`; it fails its batch with
/// [`StoreError::Exists`] when one of that kind and name is recorded.
pub fn create<R: Named>(record: &R) -> Op {
    Op::Create(R::TREE, key(record), encode_proto(record))
}

/// The write that records `record` in place of the one of its name.
pub fn put<R: Named>(record: &R) -> Op {
    Op::Put(R::TREE, key(record), encode_proto(record))
}

/// The write that removes the record of kind `R` called `name`.
pub fn remove<R: Named>(name: &str) -> Op {
    Op::Delete(R::TREE, name.as_bytes().to_vec())
}

fn key<R: Named>(record: &R) -> Vec<u8> {
    record.name().as_bytes().to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tests::scratch;

    #[tokio::test]
    async fn each_kind_keeps_its_own_names() {
        let (_dir, s) = scratch();
        let app = |name: &str| App {
            name: name.into(),
            ..Default::default()
        };
        let env = Environment {
            name: "web".into(),
            ..Default::default()
        };
        s.commit(vec![create(&app("web")), create(&app("api")), create(&env)])
            .await
            .unwrap();
        let again = s.commit(vec![create(&app("web"))]).await.unwrap_err();
        assert!(matches!(
            again,
            StoreError::Exists {
                tree: Tree::Apps,
                ..
            }
        ));
        let names: Vec<String> = list::<App>(&s)
            .unwrap()
            .into_iter()
            .map(|a| a.name)
            .collect();
        assert_eq!(names, ["api", "web"], "by name");
        s.commit(vec![remove::<App>("web")]).await.unwrap();
        assert!(get::<App>(&s, "web").unwrap().is_none());
        assert_eq!(get::<Environment>(&s, "web").unwrap(), Some(env));
        assert!(get::<Host>(&s, "web").unwrap().is_none());
    }
}
