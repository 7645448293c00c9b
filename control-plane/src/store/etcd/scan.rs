//! Ordered range reads in pages: no response carries more than a page
//! (etcd replies are capped by the client's decode limit), every page is
//! read at the revision of the first, so a long scan is one consistent
//! snapshot; a page too large to decode is asked again at half the size.

use std::time::Duration;

use etcd_client::{Client, GetOptions, GetResponse, SortOrder, SortTarget};

use super::commit::{Backoff, transient};
use crate::store::{Entries, StoreError, backend_err};

/// Entries asked for at once.
const PAGE: usize = 512;
/// How long a read keeps trying while no member answers.
const UNAVAILABLE_FOR: Duration = Duration::from_secs(30);

/// A prefix with no end (only 0xFF bytes), which no tree prefix is.
#[derive(Debug, thiserror::Error)]
#[error("a key range without an end")]
pub(super) struct NoEnd;

/// Keys in `[start, end)`, at most `limit`, in key order or its reverse.
pub(super) struct Range {
    /// Bytes of the tree prefix, taken off every key returned.
    strip: usize,
    start: Vec<u8>,
    end: Vec<u8>,
    limit: usize,
    backward: bool,
}

impl Range {
    pub fn forward(strip: usize, start: Vec<u8>, end: Vec<u8>, limit: usize) -> Self {
        Self {
            strip,
            start,
            end,
            limit,
            backward: false,
        }
    }

    pub fn backward(strip: usize, start: Vec<u8>, end: Vec<u8>, limit: usize) -> Self {
        Self {
            strip,
            start,
            end,
            limit,
            backward: true,
        }
    }

    /// Reads the range page by page.
    pub async fn read(mut self, client: Client) -> Result<Entries, StoreError> {
        let mut out = Vec::new();
        let mut revision = 0;
        let mut page = PAGE;
        while out.len() < self.limit && self.start < self.end {
            let want = page.min(self.limit - out.len());
            let options = self.options(want, revision);
            let resp = match retrying(&client, self.start.clone(), Some(options)).await {
                Err(StoreError::Backend(err)) if too_large(&*err) && page > 1 => {
                    page /= 2;
                    continue;
                }
                other => other?,
            };
            if revision == 0 {
                revision = resp.header().map_or(0, |h| h.revision());
            }
            let kvs = resp.kvs();
            let Some(last) = kvs.last() else { break };
            let last = last.key().to_vec();
            out.extend(kvs.iter().map(|kv| {
                let key = kv.key().get(self.strip..).unwrap_or_default().to_vec();
                (key, kv.value().to_vec())
            }));
            if kvs.len() < want {
                break;
            }
            self.advance(last);
        }
        Ok(out)
    }

    fn options(&self, want: usize, revision: i64) -> GetOptions {
        let mut options = GetOptions::new()
            .with_range(self.end.clone())
            .with_limit(i64::try_from(want).unwrap_or(i64::MAX))
            .with_revision(revision);
        if self.backward {
            options = options.with_sort(SortTarget::Key, SortOrder::Descend);
        }
        options
    }

    /// Moves past `last`, the last key of a page.
    fn advance(&mut self, mut last: Vec<u8>) {
        if self.backward {
            self.end = last;
        } else {
            last.push(0);
            self.start = last;
        }
    }
}

/// Whether a failed read failed for its size.
fn too_large(err: &(dyn std::error::Error + 'static)) -> bool {
    matches!(
        err.downcast_ref::<etcd_client::Error>(),
        Some(etcd_client::Error::GRpcStatus(status))
            if matches!(status.code(), tonic::Code::OutOfRange | tonic::Code::ResourceExhausted)
    )
}

/// Runs a read, again while no member answers (a read has no effect).
pub(super) async fn retrying(
    client: &Client,
    key: Vec<u8>,
    options: Option<GetOptions>,
) -> Result<GetResponse, StoreError> {
    let deadline = tokio::time::Instant::now() + UNAVAILABLE_FOR;
    let mut backoff = Backoff::default();
    loop {
        match client.clone().get(key.clone(), options.clone()).await {
            Err(err) if transient(&err) && tokio::time::Instant::now() < deadline => {
                backoff.wait().await;
            }
            other => return other.map_err(backend_err),
        }
    }
}
