//! One batch committed as one etcd transaction: the limits checked first
//! (nothing partial is ever written), `DeleteIf` keys read and compared on
//! their revision, the fence compared, and a failed transaction explained
//! from the values it read on its failure branch.

use std::{collections::HashMap, time::Duration};

use etcd_client::{Client, Compare, CompareOp, Txn, TxnOp, TxnOpResponse};

use super::{
    Fence, MAX_REQUEST_BYTES, MAX_VALUE_BYTES,
    plan::{self, FullOp, Observed, Plan},
};
use crate::store::{Op, StoreError, backend_err};

/// Attempts when values read before the transaction keep changing.
const ATTEMPTS: usize = 32;
/// How long a commit keeps trying while no member answers.
const UNAVAILABLE_FOR: Duration = Duration::from_secs(30);

/// A batch ready to commit.
pub(super) struct Batch {
    pub client: Client,
    pub ops: Vec<FullOp>,
    pub fence: Option<Fence>,
    pub writer_key: Vec<u8>,
    pub max_txn_ops: usize,
}

impl Batch {
    /// Refuses a batch etcd would refuse, before anything is sent.
    pub fn check(&self) -> Result<(), StoreError> {
        // One slot for the writer token, one for the fence.
        if self.ops.len() + 2 > self.max_txn_ops {
            return Err(StoreError::BatchTooLarge {
                ops: self.ops.len(),
                limit: self.max_txn_ops.saturating_sub(2),
            });
        }
        let mut bytes = 0;
        for FullOp { op, full } in &self.ops {
            let value = match op {
                Op::Put(_, _, v) | Op::Create(_, _, v) | Op::DeleteIf(_, _, v) => v.len(),
                Op::Expect(_, _, v) => v.as_ref().map_or(0, Vec::len),
                Op::Delete(..) => 0,
            };
            if value > MAX_VALUE_BYTES {
                let (Op::Put(tree, key, _)
                | Op::Create(tree, key, _)
                | Op::DeleteIf(tree, key, _)
                | Op::Delete(tree, key)
                | Op::Expect(tree, key, _)) = op;
                return Err(StoreError::ValueTooLarge {
                    tree: *tree,
                    key: String::from_utf8_lossy(key).into_owned(),
                    bytes: value,
                    limit: MAX_VALUE_BYTES,
                });
            }
            bytes += full.len() + value;
        }
        if bytes > MAX_REQUEST_BYTES {
            return Err(StoreError::BatchTooLarge {
                ops: self.ops.len(),
                limit: self.max_txn_ops.saturating_sub(2),
            });
        }
        Ok(())
    }

    /// Commits, retrying while reads race or no member answers.
    pub async fn apply(mut self) -> Result<(), StoreError> {
        let token = rand::random::<u128>().to_be_bytes().to_vec();
        let deadline = tokio::time::Instant::now() + UNAVAILABLE_FOR;
        let mut backoff = Backoff::default();
        // Whether an earlier attempt may have applied unseen.
        let mut maybe_applied = false;
        let mut attempts = 0;
        loop {
            let reads = match self.read(&plan::keys_to_read(&self.ops)).await {
                Ok(reads) => reads,
                Err(err) if transient(&err) && tokio::time::Instant::now() < deadline => {
                    backoff.wait().await;
                    continue;
                }
                Err(err) => return Err(backend_err(err)),
            };
            let plan = plan::plan(&self.ops, &reads);
            let txn = self.txn(&plan, &token, maybe_applied);
            let resp = match self.client.txn(txn).await {
                Ok(resp) => resp,
                Err(err) if transient(&err) && tokio::time::Instant::now() < deadline => {
                    maybe_applied |= plan.local_failure.is_none();
                    backoff.wait().await;
                    continue;
                }
                Err(err) => return Err(backend_err(err)),
            };
            if resp.succeeded() {
                return match plan.local_failure {
                    Some(failure) => Err(failure.into_error().unwrap_or_else(raced)),
                    None => Ok(()),
                };
            }
            let observed = observed(&resp.op_responses());
            if maybe_applied && observed.get(&self.writer_key).map(|o| &o.value) == Some(&token) {
                return Ok(());
            }
            if let Some(fence) = &self.fence
                && observed.get(&fence.key).map(|o| o.create_revision)
                    != Some(fence.create_revision)
            {
                return Err(StoreError::Fenced);
            }
            if let Some(err) =
                plan::first_broken(&plan.checks, &observed).and_then(|f| f.into_error())
            {
                return Err(err);
            }
            attempts += 1;
            if attempts >= ATTEMPTS {
                return Err(raced());
            }
        }
    }

    /// The transaction of `plan`: its failure branch reads every compared
    /// key, so a failure can be explained.
    fn txn(&self, plan: &Plan, token: &[u8], maybe_applied: bool) -> Txn {
        let mut compares = Vec::with_capacity(plan.checks.len() + 1);
        let mut reads = Vec::with_capacity(plan.checks.len() + 2);
        if let Some(fence) = &self.fence {
            compares.push(Compare::create_revision(
                fence.key.clone(),
                CompareOp::Equal,
                fence.create_revision,
            ));
            reads.push(TxnOp::get(fence.key.clone(), None));
        }
        for check in &plan.checks {
            compares.push(match &check.test {
                plan::Test::Absent => Compare::version(check.key.clone(), CompareOp::Equal, 0),
                plan::Test::Value(v) => {
                    Compare::value(check.key.clone(), CompareOp::Equal, v.clone())
                }
                plan::Test::ModRevision(rev) => {
                    Compare::mod_revision(check.key.clone(), CompareOp::Equal, *rev)
                }
            });
        }
        let mut keys: Vec<&Vec<u8>> = plan.checks.iter().map(|c| &c.key).collect();
        keys.sort();
        keys.dedup();
        reads.extend(keys.into_iter().map(|k| TxnOp::get(k.clone(), None)));
        if maybe_applied {
            reads.push(TxnOp::get(self.writer_key.clone(), None));
        }
        let mut writes = Vec::new();
        if plan.local_failure.is_none() {
            writes.extend(plan.writes.iter().map(|(key, value)| match value {
                Some(value) => TxnOp::put(key.clone(), value.clone(), None),
                None => TxnOp::delete(key.clone(), None),
            }));
            writes.push(TxnOp::put(self.writer_key.clone(), token.to_vec(), None));
        }
        Txn::new().when(compares).and_then(writes).or_else(reads)
    }

    /// What `keys` hold now, in one read.
    async fn read(
        &mut self,
        keys: &[Vec<u8>],
    ) -> Result<HashMap<Vec<u8>, Observed>, etcd_client::Error> {
        if keys.is_empty() {
            return Ok(HashMap::new());
        }
        let gets: Vec<TxnOp> = keys.iter().map(|k| TxnOp::get(k.clone(), None)).collect();
        let resp = self.client.txn(Txn::new().and_then(gets)).await?;
        Ok(observed(&resp.op_responses()))
    }
}

fn raced() -> StoreError {
    StoreError::Backend("the keys of a batch kept changing while it was committed".into())
}

/// The keys read by a transaction's gets.
fn observed(responses: &[TxnOpResponse]) -> HashMap<Vec<u8>, Observed> {
    responses
        .iter()
        .filter_map(|r| match r {
            TxnOpResponse::Get(get) => Some(get.kvs()),
            _ => None,
        })
        .flatten()
        .map(|kv| {
            (
                kv.key().to_vec(),
                Observed {
                    value: kv.value().to_vec(),
                    mod_revision: kv.mod_revision(),
                    create_revision: kv.create_revision(),
                },
            )
        })
        .collect()
}

/// Whether another attempt may succeed: no member answered, or the one
/// asked lost its leader.
pub(super) fn transient(err: &etcd_client::Error) -> bool {
    match err {
        etcd_client::Error::TransportError(_) => true,
        etcd_client::Error::GRpcStatus(status) => matches!(
            status.code(),
            tonic::Code::Unavailable
                | tonic::Code::Unknown
                | tonic::Code::DeadlineExceeded
                | tonic::Code::Cancelled
        ),
        _ => false,
    }
}

/// Capped exponential pauses between attempts while etcd is unavailable.
#[derive(Default)]
pub(super) struct Backoff {
    next: Option<Duration>,
}

impl Backoff {
    pub async fn wait(&mut self) {
        let pause = self.next.unwrap_or(Duration::from_millis(25));
        self.next = Some((pause * 2).min(Duration::from_secs(1)));
        tokio::time::sleep(pause).await;
    }
}
