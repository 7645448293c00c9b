//! The text index of deployments: for every three-byte run (trigram) of the
//! lower-cased commit, git ref, release id and message of a deployment, an
//! entry `trigram ++ be64(number)`. A search for a needle of three bytes or
//! more walks the entries of the needle's trigrams newest first and yields
//! only the numbers every one of them holds (a leapfrog intersection that
//! seeks past gaps instead of reading them); the caller then checks each
//! candidate's record, so stale entries (a record whose text changed keeps
//! its old entries) cost a read and never a wrong answer. Entries are
//! written in the batch that records a deployment (or changes its text);
//! [`ensure`] backfills a store from before the index.

use std::collections::BTreeSet;

use slipway_proto::control::v1::Deployment;

use super::{Op, Store, StoreError, Tree, deployments};

/// The marker in [`Tree::Meta`] that every deployment is in the index.
const INDEXED: &[u8] = b"deployment-text-index";
/// The format of the index.
const FORMAT: &[u8] = b"1";
/// Entries read at once from one trigram's list.
const PAGE: usize = 256;
/// Trigrams of a needle intersected at most: any subset finds every match
/// (the records are checked), and a few rare ones narrow it enough.
const MAX_TRIGRAMS: usize = 8;
/// Ops per batch of the backfill.
const BACKFILL_BATCH: usize = 20_000;

/// The shortest needle, in bytes, the index answers; shorter ones need a
/// scan of the records.
pub const MIN_NEEDLE: usize = 3;

/// The text a search matches in a deployment, lower-cased.
pub fn searchable(d: &Deployment) -> [String; 4] {
    [&d.commit, &d.git_ref, &d.release, &d.message].map(|field| field.to_lowercase())
}

fn trigrams<'a>(texts: impl IntoIterator<Item = &'a str>) -> BTreeSet<[u8; 3]> {
    texts
        .into_iter()
        .flat_map(|text| text.as_bytes().windows(3))
        .map(|w| [w[0], w[1], w[2]])
        .collect()
}

fn key(trigram: [u8; 3], number: u64) -> Vec<u8> {
    let mut key = trigram.to_vec();
    key.extend_from_slice(&number.to_be_bytes());
    key
}

/// The index entries of deployment `d` with its text as `texts`
/// (lower-cased, see [`searchable`]).
pub fn entries(d: &Deployment, texts: &[String]) -> Vec<Op> {
    let number = deployments::number(&d.id);
    trigrams(texts.iter().map(String::as_str))
        .into_iter()
        .map(|t| Op::Put(Tree::DeploymentsText, key(t, number), Vec::new()))
        .collect()
}

/// Indexes every deployment once, with its text as `text` gives it (the
/// record's fields, filled from its release where the record lacks them).
/// Returns how many deployments were indexed (0 when the index was there).
pub async fn ensure<E: From<StoreError>>(
    store: &Store,
    mut text: impl FnMut(&Deployment) -> Result<[String; 4], E>,
) -> Result<usize, E> {
    if store.get_raw(Tree::Meta, INDEXED)?.as_deref() == Some(FORMAT) {
        return Ok(0);
    }
    let mut ops = Vec::new();
    let mut count = 0;
    // Entries are plain puts: one deployment's may span two batches.
    let batch = BACKFILL_BATCH.min(store.max_batch_ops() - 1);
    for d in deployments::newest_first(store, deployments::Scope::All, None) {
        let d = d?;
        ops.extend(entries(&d, &text(&d)?));
        count += 1;
        while ops.len() >= batch {
            let rest = ops.split_off(batch);
            store.commit(std::mem::replace(&mut ops, rest)).await?;
        }
    }
    ops.push(Op::Put(Tree::Meta, INDEXED.to_vec(), FORMAT.to_vec()));
    store.commit(ops).await?;
    Ok(count)
}

/// One trigram's numbers, newest first, read a page at a time.
struct Postings<'a> {
    store: &'a Store,
    trigram: [u8; 3],
    /// Numbers read and not passed yet, newest first.
    page: std::collections::VecDeque<u64>,
    /// The page was the last under the trigram.
    end: bool,
}

impl<'a> Postings<'a> {
    fn new(store: &'a Store, trigram: [u8; 3]) -> Self {
        Self {
            store,
            trigram,
            page: Default::default(),
            end: false,
        }
    }

    /// The newest number at or below `target`, if any.
    fn seek(&mut self, target: u64) -> Result<Option<u64>, StoreError> {
        while self.page.front().is_some_and(|&n| n > target) {
            self.page.pop_front();
        }
        if let Some(&n) = self.page.front() {
            return Ok(Some(n));
        }
        // The last page read held everything under the trigram below an
        // earlier (higher) target: nothing is left at or below this one.
        if self.end {
            return Ok(None);
        }
        let before = target.checked_add(1).map(|above| key(self.trigram, above));
        let page = self.store.scan_rev_raw(
            Tree::DeploymentsText,
            &self.trigram,
            before.as_deref(),
            PAGE,
        )?;
        self.end = page.len() < PAGE;
        self.page = page
            .into_iter()
            .filter_map(|(key, _)| deployments::be64(key.get(3..)?))
            .collect();
        Ok(self.page.front().copied())
    }
}

/// The numbers of the deployments whose text may contain `needle`
/// (lower-cased, at least [`MIN_NEEDLE`] bytes), newest first, below
/// `below` when given. Every deployment whose text contains it is among
/// them.
pub fn candidates<'a>(
    store: &'a Store,
    needle: &str,
    below: Option<u64>,
) -> impl Iterator<Item = Result<u64, StoreError>> + 'a {
    let mut lists: Vec<Postings> = trigrams([needle])
        .into_iter()
        .take(MAX_TRIGRAMS)
        .map(|t| Postings::new(store, t))
        .collect();
    let mut target = below.map_or(Some(u64::MAX), |n| n.checked_sub(1));
    std::iter::from_fn(move || {
        let found = intersect(&mut lists, target?);
        target = match &found {
            Ok(Some(n)) => n.checked_sub(1),
            _ => None,
        };
        found.transpose()
    })
}

/// The newest number at or below `target` that every list holds.
fn intersect(lists: &mut [Postings], mut target: u64) -> Result<Option<u64>, StoreError> {
    if lists.is_empty() {
        return Ok(None);
    }
    loop {
        let mut agreed = true;
        for list in lists.iter_mut() {
            match list.seek(target)? {
                None => return Ok(None),
                Some(n) if n < target => {
                    target = n;
                    agreed = false;
                }
                Some(_) => {}
            }
        }
        if agreed {
            return Ok(Some(target));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tests::scratch;

    fn dep(n: u64, message: &str) -> Deployment {
        Deployment {
            id: deployments::id(n),
            release: format!("r{n}"),
            message: message.into(),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn candidates_hold_every_match_newest_first_across_pages() {
        let (_dir, store) = scratch();
        let mut ops = Vec::new();
        let mut expected = Vec::new();
        for n in 1..=(PAGE as u64 * 3) {
            let message = if n % 7 == 0 {
                format!("Fix Login {n}")
            } else {
                format!("deploy {n}")
            };
            if n % 7 == 0 {
                expected.push(n);
            }
            let d = dep(n, &message);
            ops.extend(entries(&d, &searchable(&d)));
        }
        store.commit(ops).await.unwrap();
        expected.reverse();
        let found: Vec<u64> = candidates(&store, "fix login", None)
            .map(Result::unwrap)
            .collect();
        assert_eq!(found, expected);
        let below: Vec<u64> = candidates(&store, "fix login", Some(expected[3]))
            .map(Result::unwrap)
            .collect();
        assert_eq!(below, expected[4..]);
        assert_eq!(candidates(&store, "zzz", None).count(), 0);
        // Multi-byte text: byte trigrams of the lower-cased UTF-8.
        let d = dep(9_999, "نشر الإصدار");
        store.commit(entries(&d, &searchable(&d))).await.unwrap();
        let found: Vec<u64> = candidates(&store, "الإصدار", None)
            .map(Result::unwrap)
            .collect();
        assert_eq!(found, vec![9_999]);
    }

    #[tokio::test]
    async fn the_backfill_runs_once() {
        let (_dir, store) = scratch();
        let d = dep(5, "hello world");
        store.commit(vec![deployments::put(&d)]).await.unwrap();
        let text = |d: &Deployment| Ok::<_, StoreError>(searchable(d));
        assert_eq!(ensure(&store, text).await.unwrap(), 1);
        assert_eq!(ensure(&store, text).await.unwrap(), 0);
        let found: Vec<u64> = candidates(&store, "o wor", None)
            .map(Result::unwrap)
            .collect();
        assert_eq!(found, vec![5]);
    }
}
