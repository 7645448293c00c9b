//! The lock a deployment holds on its (app, environment) for its whole life,
//! automatic rollback included: taken in the transaction of its first event,
//! renewed while it runs, released (only if still its own) with its final
//! event.

use slipway_proto::control::v1::Lock;

use crate::{
    locks,
    store::{self, Op, Store, StoreError},
};

/// A held lock and the exact bytes stored for it.
pub struct Lease {
    store: Store,
    lock: Lock,
    held: Vec<u8>,
}

impl Lease {
    /// A lock about to be taken.
    pub fn new(store: &Store, lock: Lock) -> Self {
        let held = store::locks::encode(&lock);
        Self::stored(store, lock, held)
    }

    /// A lock as read back from the store.
    pub fn stored(store: &Store, lock: Lock, held: Vec<u8>) -> Self {
        Self {
            store: store.clone(),
            lock,
            held,
        }
    }

    /// The lock.
    pub fn lock(&self) -> &Lock {
        &self.lock
    }

    /// The write that takes the lock; it fails the batch when the lock is held.
    pub fn take(&self) -> Op {
        store::locks::take(&self.lock, &self.held)
    }

    /// The write that frees the lock if it is still this one.
    pub fn release(&self) -> Op {
        store::locks::release(&self.lock, &self.held)
    }

    /// Takes the lock again with a new fencing token (a new leader resuming
    /// the deployment), if the lock is still this one.
    pub async fn retoken(&mut self, token: u64) -> Result<(), StoreError> {
        let lock = Lock {
            fencing_token: token,
            ..locks::renewed(&self.lock)
        };
        let bytes = store::locks::encode(&lock);
        let swap = vec![self.release(), store::locks::take(&lock, &bytes)];
        self.store.commit(swap).await?;
        self.lock = lock;
        self.held = bytes;
        Ok(())
    }

    /// Renews the lease, if the lock is still this one. A lock freed by force
    /// is left alone: the next holder's fencing token fences this holder.
    pub async fn renew(&mut self) -> Result<(), StoreError> {
        if !store::locks::still_held(&self.store, &self.lock, &self.held)? {
            return Ok(());
        }
        let renewed = locks::renewed(&self.lock);
        let bytes = store::locks::encode(&renewed);
        let swap = vec![self.release(), store::locks::take(&renewed, &bytes)];
        match self.store.commit(swap).await {
            Ok(()) => {
                self.lock = renewed;
                self.held = bytes;
                Ok(())
            }
            // Freed and taken by another deployment meanwhile.
            Err(StoreError::Exists { .. }) => Ok(()),
            Err(err) => Err(err),
        }
    }
}
