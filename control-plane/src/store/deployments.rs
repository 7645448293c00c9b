//! The deployments repository: the record of each deployment keyed by its
//! id, its dense number taken from a counter in the same transaction that
//! records it, and the index trees kept in the transaction of the event that
//! changes them: by (app, environment), succeeded per (app, environment), by
//! author, and open. Readers use the indexes; none scans every deployment.

use slipway_proto::control::v1::{Deployment, DeploymentStatus};

use super::{Op, Store, StoreError, Tree, key2};

/// The counter's key in [`Tree::Meta`]: the last deployment number taken.
const COUNTER: &[u8] = b"deployments";
/// The marker in [`Tree::Meta`] that the index trees are complete.
const INDEXED: &[u8] = b"deployment-indexes";
/// The format of the index trees.
const INDEX_FORMAT: &[u8] = b"1";

/// Index entries read at once.
const PAGE: usize = 256;

/// The id of deployment number `n`: `dep-0000000042`. Ids sort as numbers.
pub fn id(number: u64) -> String {
    format!("dep-{number:010}")
}

/// The number of a deployment id; 0 for an id that is not one.
pub fn number(id: &str) -> u64 {
    id.rsplit('-')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// A deployment number taken, to be committed with the deployment's first
/// event; the commit fails with [`StoreError::Conflict`] when another start
/// took it first.
pub struct Allocation {
    /// The number.
    pub number: u64,
    /// Its id.
    pub id: String,
    /// The counter's compare-and-set.
    pub ops: Vec<Op>,
}

/// The next deployment number after the counter (or, in a store from before
/// the counter, after the newest deployment).
pub fn allocate(store: &Store) -> Result<Allocation, StoreError> {
    let stored = store.get_raw(Tree::Meta, COUNTER)?;
    let last = match &stored {
        Some(raw) => be64(raw).ok_or_else(|| super::corrupt(Tree::Meta, COUNTER))?,
        None => newest_number(store)?,
    };
    let number = last + 1;
    Ok(Allocation {
        number,
        id: id(number),
        ops: vec![
            Op::Expect(Tree::Meta, COUNTER.to_vec(), stored),
            Op::Put(Tree::Meta, COUNTER.to_vec(), number.to_be_bytes().to_vec()),
        ],
    })
}

fn newest_number(store: &Store) -> Result<u64, StoreError> {
    let newest = store.scan_rev_raw(Tree::Deployments, b"", None, 1)?;
    Ok(newest
        .first()
        .map_or(0, |(key, _)| number(&String::from_utf8_lossy(key))))
}

pub(super) fn be64(raw: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(raw.try_into().ok()?))
}

fn numbered(prefix: Vec<u8>, number: u64) -> Vec<u8> {
    let mut key = prefix;
    key.extend_from_slice(&number.to_be_bytes());
    key
}

fn target_prefix(app: &str, environment: &str) -> Vec<u8> {
    let mut key = key2(app, environment);
    key.push(0);
    key
}

/// The name part of a principal (`admin/alice` -> `alice`).
fn author_name(author: &str) -> &str {
    author.split_once('/').map_or(author, |(_, name)| name)
}

fn author_prefix(name: &str) -> Vec<u8> {
    key2(name, "")
}

/// The write of a deployment's record (its index entries are written by
/// [`created`], [`finished`] and [`host_changed`] in the same batch).
pub fn put(d: &Deployment) -> Op {
    Op::Put(
        Tree::Deployments,
        d.id.clone().into_bytes(),
        super::encode_proto(d),
    )
}

/// The index entries of a deployment being recorded for the first time.
pub fn created(d: &Deployment) -> Vec<Op> {
    let n = number(&d.id);
    let id = d.id.as_bytes().to_vec();
    vec![
        Op::Put(
            Tree::DeploymentsByTarget,
            numbered(target_prefix(&d.app, &d.environment), n),
            id.clone(),
        ),
        Op::Put(
            Tree::DeploymentsByAuthor,
            numbered(author_prefix(author_name(&d.author)), n),
            id.clone(),
        ),
        Op::Put(Tree::DeploymentsOpen, id, Vec::new()),
    ]
}

/// The index changes of a deployment's final status.
pub fn finished(d: &Deployment) -> Vec<Op> {
    let mut ops = vec![Op::Delete(Tree::DeploymentsOpen, d.id.as_bytes().to_vec())];
    if d.status() == DeploymentStatus::Succeeded {
        ops.push(Op::Put(
            Tree::DeploymentsSucceeded,
            numbered(target_prefix(&d.app, &d.environment), number(&d.id)),
            d.release.as_bytes().to_vec(),
        ));
    }
    ops
}

/// The index change when a host's status in a deployment goes from `old`
/// to `new`: hosts whose outcome is unknown are listed until it is known.
pub fn host_changed(id: &str, host: &str, old: i32, new: i32) -> Option<Op> {
    let unknown = DeploymentStatus::Unknown as i32;
    let key = key2(id, host);
    match (old == unknown, new == unknown) {
        (false, true) => Some(Op::Put(Tree::HostsUnknown, key, Vec::new())),
        (true, false) => Some(Op::Delete(Tree::HostsUnknown, key)),
        _ => None,
    }
}

/// Every (deployment id, host) whose outcome is unknown.
pub fn unknown_hosts(store: &Store) -> Result<Vec<(String, String)>, StoreError> {
    Ok(store
        .scan_raw(Tree::HostsUnknown, b"")?
        .into_iter()
        .filter_map(|(key, _)| {
            let key = String::from_utf8(key).ok()?;
            let (id, host) = key.split_once('\0')?;
            Some((id.to_owned(), host.to_owned()))
        })
        .collect())
}

/// Builds the index trees from the records when the store predates them.
/// Returns how many deployments were indexed.
pub async fn ensure_indexes(store: &Store) -> Result<usize, StoreError> {
    if store.get_raw(Tree::Meta, INDEXED)?.as_deref() == Some(INDEX_FORMAT) {
        return Ok(0);
    }
    let all = every(store)?;
    let mut ops = Vec::new();
    for d in &all {
        ops.extend(created(d));
        if crate::domain::event::is_final_status(d.status()) {
            ops.extend(finished(d));
        }
    }
    ops.push(Op::Put(Tree::Meta, INDEXED.to_vec(), INDEX_FORMAT.to_vec()));
    store.commit(ops).await?;
    Ok(all.len())
}

/// Every deployment, oldest first: a full scan, which only the index
/// rebuild makes (and benchmarks, to compare the indexes against it).
pub fn every(store: &Store) -> Result<Vec<Deployment>, StoreError> {
    store.list(Tree::Deployments, b"")
}

/// One deployment.
pub fn get(store: &Store, id: &str) -> Result<Option<Deployment>, StoreError> {
    store.get(Tree::Deployments, id.as_bytes())
}

/// The deployments not finished, oldest first.
pub fn open(store: &Store) -> Result<Vec<Deployment>, StoreError> {
    let ids = store.scan_raw(Tree::DeploymentsOpen, b"")?;
    let mut open = Vec::with_capacity(ids.len());
    for (id, _) in ids {
        if let Some(d) = get(store, &String::from_utf8_lossy(&id))? {
            open.push(d);
        }
    }
    Ok(open)
}

/// The newest deployment of an app in an environment that succeeded:
/// `(id, release)`.
pub fn last_succeeded(
    store: &Store,
    app: &str,
    environment: &str,
) -> Result<Option<(String, String)>, StoreError> {
    Succeeded::new(store, app, environment).next().transpose()
}

/// The succeeded deployments of an app in an environment, newest first:
/// `(id, release)`, read a page at a time.
pub struct Succeeded<'a> {
    walk: Walk<'a>,
}

impl<'a> Succeeded<'a> {
    /// Starts at the newest.
    pub fn new(store: &'a Store, app: &str, environment: &str) -> Self {
        Self {
            walk: Walk::new(
                store,
                Tree::DeploymentsSucceeded,
                target_prefix(app, environment),
                None,
            ),
        }
    }
}

impl Iterator for Succeeded<'_> {
    type Item = Result<(String, String), StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        Some(
            self.walk
                .next()?
                .map(|(n, _, release)| (id(n), String::from_utf8_lossy(&release).into_owned())),
        )
    }
}

/// Which deployments a newest-first listing walks.
pub enum Scope<'a> {
    /// Every deployment.
    All,
    /// One app in one environment.
    Target(&'a str, &'a str),
    /// One author's, by name (`alice` for `admin/alice`).
    Author(&'a str),
}

impl Scope<'_> {
    /// The narrowest scope for a listing's filters.
    pub fn of<'a>(app: &'a str, environment: &'a str, author: &'a str) -> Scope<'a> {
        if !app.is_empty() && !environment.is_empty() {
            Scope::Target(app, environment)
        } else if !author.is_empty() {
            Scope::Author(author_name(author))
        } else {
            Scope::All
        }
    }
}

/// Deployments in `scope`, newest first, starting below the deployment
/// `before` (a page token) when given; read a page at a time.
pub fn newest_first<'a>(
    store: &'a Store,
    scope: Scope<'_>,
    before: Option<&str>,
) -> impl Iterator<Item = Result<Deployment, StoreError>> + 'a {
    let below = before.map(number);
    let (tree, prefix) = match scope {
        Scope::All => (Tree::Deployments, Vec::new()),
        Scope::Target(app, environment) => {
            (Tree::DeploymentsByTarget, target_prefix(app, environment))
        }
        Scope::Author(name) => (Tree::DeploymentsByAuthor, author_prefix(name)),
    };
    Walk::new(store, tree, prefix, below).filter_map(move |entry| match entry {
        // The records tree holds the record itself; an index, its id.
        Ok((_, key, value)) if tree == Tree::Deployments => {
            Some(super::decode_proto(tree, &key, &value))
        }
        Ok((_, _, id)) => get(store, &String::from_utf8_lossy(&id)).transpose(),
        Err(err) => Some(Err(err)),
    })
}

/// A newest-first walk over one index prefix (or the records tree, whose
/// keys are ids), yielding `(number, key, value)`.
struct Walk<'a> {
    store: &'a Store,
    tree: Tree,
    prefix: Vec<u8>,
    before: Option<Vec<u8>>,
    page: std::vec::IntoIter<(Vec<u8>, Vec<u8>)>,
    done: bool,
}

impl<'a> Walk<'a> {
    fn new(store: &'a Store, tree: Tree, prefix: Vec<u8>, below: Option<u64>) -> Self {
        let before = below.map(|n| match tree {
            Tree::Deployments => id(n).into_bytes(),
            _ => numbered(prefix.clone(), n),
        });
        Self {
            store,
            tree,
            prefix,
            before,
            page: Vec::new().into_iter(),
            done: false,
        }
    }

    fn number_of(&self, key: &[u8], value: &[u8]) -> u64 {
        match self.tree {
            Tree::Deployments => number(&String::from_utf8_lossy(key)),
            _ => key
                .len()
                .checked_sub(8)
                .and_then(|at| be64(&key[at..]))
                .unwrap_or_else(|| number(&String::from_utf8_lossy(value))),
        }
    }
}

impl Iterator for Walk<'_> {
    type Item = Result<(u64, Vec<u8>, Vec<u8>), StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some((key, value)) = self.page.next() {
                let n = self.number_of(&key, &value);
                return Some(Ok((n, key, value)));
            }
            if self.done {
                return None;
            }
            let page =
                self.store
                    .scan_rev_raw(self.tree, &self.prefix, self.before.as_deref(), PAGE);
            let page = match page {
                Ok(page) => page,
                Err(err) => {
                    self.done = true;
                    return Some(Err(err));
                }
            };
            self.done = page.len() < PAGE;
            self.before = page.last().map(|(key, _)| key.clone());
            if page.is_empty() {
                return None;
            }
            self.page = page.into_iter();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::{path::Path, sync::Arc};

    use super::*;
    use crate::store::SledBackend;

    fn store(dir: &Path) -> Store {
        Store::new(Arc::new(SledBackend::open(dir, 8 << 20).unwrap()))
    }

    fn deployment(n: u64, app: &str, author: &str, status: DeploymentStatus) -> Deployment {
        Deployment {
            id: id(n),
            app: app.into(),
            environment: "prod".into(),
            release: format!("r{n}"),
            author: author.into(),
            status: status as i32,
            ..Default::default()
        }
    }

    /// Records a deployment the way the recorder does: number, record and
    /// index entries in one batch.
    async fn record(store: &Store, mut d: Deployment) -> Result<String, StoreError> {
        let taken = allocate(store)?;
        d.id = taken.id.clone();
        let mut ops = taken.ops;
        ops.extend(created(&d));
        if crate::domain::event::is_final_status(d.status()) {
            ops.extend(finished(&d));
        }
        ops.push(put(&d));
        store.commit(ops).await?;
        Ok(taken.id)
    }

    #[tokio::test]
    async fn numbers_are_dense_across_reopen_and_a_lost_race_takes_none() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = store(dir.path());
            let d = deployment(0, "web", "admin/alice", DeploymentStatus::Succeeded);
            assert_eq!(record(&s, d.clone()).await.unwrap(), "dep-0000000001");
            // Two starts read the counter at once: the second commit conflicts
            // and writes nothing.
            let (first, second) = (allocate(&s).unwrap(), allocate(&s).unwrap());
            s.commit(first.ops).await.unwrap();
            let err = s.commit(second.ops).await.unwrap_err();
            assert!(matches!(err, StoreError::Conflict { .. }));
        }
        let s = store(dir.path());
        let d = deployment(0, "web", "admin/alice", DeploymentStatus::Running);
        assert_eq!(record(&s, d).await.unwrap(), "dep-0000000003");
        assert_eq!(open(&s).unwrap().len(), 1);
    }

    #[tokio::test]
    async fn a_store_without_a_counter_continues_after_its_newest_deployment() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path());
        let old = deployment(2_000_003, "web", "admin/alice", DeploymentStatus::Succeeded);
        s.commit(vec![put(&old)]).await.unwrap();
        assert_eq!(ensure_indexes(&s).await.unwrap(), 1);
        assert_eq!(ensure_indexes(&s).await.unwrap(), 0, "indexed once");
        assert_eq!(
            last_succeeded(&s, "web", "prod").unwrap(),
            Some((old.id.clone(), old.release.clone()))
        );
        assert_eq!(allocate(&s).unwrap().id, "dep-0002000004");
    }

    #[tokio::test]
    async fn listings_walk_their_index_newest_first_across_pages() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path());
        for n in 0..(PAGE as u64 * 2 + 10) {
            let (app, author) = if n % 2 == 0 {
                ("web", "admin/alice")
            } else {
                ("api", "deployer/bob")
            };
            let status = if n % 4 == 0 {
                DeploymentStatus::Succeeded
            } else {
                DeploymentStatus::Failed
            };
            record(&s, deployment(0, app, author, status))
                .await
                .unwrap();
        }
        let ids = |scope, before| -> Vec<String> {
            newest_first(&s, scope, before)
                .map(|d| d.unwrap().id)
                .collect()
        };
        let all = ids(Scope::All, None);
        assert_eq!(all.len(), PAGE * 2 + 10);
        assert!(all.windows(2).all(|w| w[0] > w[1]), "newest first");
        let web = ids(Scope::Target("web", "prod"), None);
        assert_eq!(web.len(), PAGE + 5);
        assert_eq!(web, ids(Scope::Author("alice"), None));
        assert_eq!(web[0], id(PAGE as u64 * 2 + 9));
        // A page token resumes below it.
        assert_eq!(ids(Scope::Target("web", "prod"), Some(&web[9]))[0], web[10]);
        assert_eq!(ids(Scope::All, Some(&all[0])).len(), all.len() - 1);
        let succeeded: Vec<String> = Succeeded::new(&s, "web", "prod")
            .map(|e| e.unwrap().0)
            .collect();
        assert_eq!(succeeded.len(), (PAGE * 2 + 10).div_ceil(4));
        assert!(Succeeded::new(&s, "api", "prod").next().is_none());
    }
}
