//! A batch of [`Op`]s as one etcd transaction: the compares (in the batch's
//! order), the final write of every key, and, when a transaction fails, the
//! first compare the observed values break, so the error names the same op
//! sled would have.

use std::collections::{BTreeMap, HashMap};

use super::super::{Op, StoreError, Tree};

/// An op with its full etcd key.
#[derive(Clone, Debug)]
pub(super) struct FullOp {
    pub op: Op,
    pub full: Vec<u8>,
}

impl FullOp {
    pub fn new(op: &Op, full_key: impl Fn(Tree, &[u8]) -> Vec<u8>) -> Self {
        let (Op::Put(tree, key, _)
        | Op::Create(tree, key, _)
        | Op::DeleteIf(tree, key, _)
        | Op::Delete(tree, key)
        | Op::Expect(tree, key, _)) = op;
        Self {
            op: op.clone(),
            full: full_key(*tree, key),
        }
    }
}

/// A key as observed in etcd.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Observed {
    pub value: Vec<u8>,
    pub mod_revision: i64,
    pub create_revision: i64,
}

/// What a compare requires of its key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Test {
    /// The key is absent (version 0).
    Absent,
    /// The key holds exactly this value.
    Value(Vec<u8>),
    /// The key was last changed at this revision (0: absent).
    ModRevision(i64),
}

impl Test {
    pub fn holds(&self, found: Option<&Observed>) -> bool {
        match (self, found) {
            (Test::Absent, found) => found.is_none(),
            (Test::Value(v), Some(found)) => found.value == *v,
            (Test::Value(_), None) => false,
            (Test::ModRevision(rev), found) => found.map_or(0, |f| f.mod_revision) == *rev,
        }
    }
}

/// Why a compare failing fails the batch.
#[derive(Clone, Debug)]
pub(super) enum Failure {
    /// A `Create` found its key.
    Exists(Tree, Vec<u8>),
    /// An `Expect` found another value.
    Conflict(Tree, Vec<u8>),
    /// A value read before the transaction changed: try again.
    Retry,
}

impl Failure {
    fn error(tree: Tree, key: &[u8], exists: bool) -> StoreError {
        let key = String::from_utf8_lossy(key).into_owned();
        if exists {
            StoreError::Exists { tree, key }
        } else {
            StoreError::Conflict { tree, key }
        }
    }

    /// The error to return; None: retry.
    pub fn into_error(self) -> Option<StoreError> {
        match self {
            Failure::Exists(tree, key) => Some(Self::error(tree, &key, true)),
            Failure::Conflict(tree, key) => Some(Self::error(tree, &key, false)),
            Failure::Retry => None,
        }
    }
}

/// One compare of the transaction.
#[derive(Clone, Debug)]
pub(super) struct Check {
    pub key: Vec<u8>,
    pub test: Test,
    pub failure: Failure,
}

/// The transaction of a batch.
#[derive(Debug, Default)]
pub(super) struct Plan {
    pub checks: Vec<Check>,
    /// Final state of every written key: Some(value) put, None delete.
    pub writes: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    /// An op that fails on what earlier ops of the batch wrote; the
    /// transaction then only checks the compares before it.
    pub local_failure: Option<Failure>,
}

/// Plans `ops`; `reads` holds what the keys of `DeleteIf`s held just before
/// (absent keys are missing).
pub(super) fn plan(ops: &[FullOp], reads: &HashMap<Vec<u8>, Observed>) -> Plan {
    let mut plan = Plan::default();
    for FullOp { op, full } in ops {
        // What this batch already wrote to the key, if anything.
        let pending = plan.writes.get(full).cloned();
        let key = full.clone();
        match op {
            Op::Put(_, _, value) => {
                plan.writes.insert(key, Some(value.clone()));
            }
            Op::Delete(..) => {
                plan.writes.insert(key, None);
            }
            Op::Create(tree, k, value) => {
                let failure = Failure::Exists(*tree, k.clone());
                match pending {
                    Some(Some(_)) => {
                        plan.local_failure = Some(failure);
                        return plan;
                    }
                    Some(None) => {}
                    None => plan.checks.push(Check {
                        key: key.clone(),
                        test: Test::Absent,
                        failure,
                    }),
                }
                plan.writes.insert(key, Some(value.clone()));
            }
            Op::Expect(tree, k, expected) => {
                let failure = Failure::Conflict(*tree, k.clone());
                match pending {
                    Some(found) if found != *expected => {
                        plan.local_failure = Some(failure);
                        return plan;
                    }
                    Some(_) => {}
                    None => plan.checks.push(Check {
                        key,
                        test: expected.clone().map_or(Test::Absent, Test::Value),
                        failure,
                    }),
                }
            }
            Op::DeleteIf(_, _, expected) => match pending {
                Some(found) => {
                    if found.as_ref() == Some(expected) {
                        plan.writes.insert(key, None);
                    }
                }
                None => {
                    let read = reads.get(&key);
                    plan.checks.push(Check {
                        key: key.clone(),
                        test: Test::ModRevision(read.map_or(0, |r| r.mod_revision)),
                        failure: Failure::Retry,
                    });
                    if read.is_some_and(|r| r.value == *expected) {
                        plan.writes.insert(key, None);
                    }
                }
            },
        }
    }
    plan
}

/// The first check `observed` breaks, if any.
pub(super) fn first_broken(
    checks: &[Check],
    observed: &HashMap<Vec<u8>, Observed>,
) -> Option<Failure> {
    checks
        .iter()
        .find(|c| !c.test.holds(observed.get(&c.key)))
        .map(|c| c.failure.clone())
}

/// The keys of the `DeleteIf`s that must be read before planning.
pub(super) fn keys_to_read(ops: &[FullOp]) -> Vec<Vec<u8>> {
    let mut keys: Vec<Vec<u8>> = ops
        .iter()
        .filter(|o| matches!(o.op, Op::DeleteIf(..)))
        .map(|o| o.full.clone())
        .collect();
    keys.sort();
    keys.dedup();
    keys
}
