//! berth's storage contract, shaped like etcd's: keys with create/mod
//! revisions, one global revision, transactions guarded by compare-and-swap,
//! and an atomic list-then-watch so a cache can follow the store exactly.
use async_trait::async_trait;
use tokio::sync::broadcast;

pub mod conformance;
pub mod copy;
pub mod embedded;
pub mod etcd;
pub mod memory;
pub mod tenure;
mod wal;

pub use embedded::EmbeddedStore;
pub use etcd::{Campaign, EtcdOptions, EtcdStore, EtcdTls, READ_LEASE_TTL_SECS};
pub use memory::MemoryStore;
pub use tenure::Tenure;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    pub key: String,
    pub value: Vec<u8>,
    pub create_revision: u64,
    pub mod_revision: u64,
}

/// A guard a transaction needs to hold before it writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Compare {
    /// The key's mod revision equals this; 0 means "the key does not exist".
    ModRevision(String, u64),
    /// The key exists and holds exactly these bytes (etcd's VALUE compare):
    /// a guard a writer can name before the write it follows has a revision.
    Value(String, Vec<u8>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Put(String, Vec<u8>),
    Delete(String),
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Txn {
    pub compares: Vec<Compare>,
    pub ops: Vec<Op>,
}

impl Txn {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn compare_mod(mut self, key: impl Into<String>, mod_revision: u64) -> Self {
        self.compares
            .push(Compare::ModRevision(key.into(), mod_revision));
        self
    }

    pub fn compare_value(mut self, key: impl Into<String>, value: Vec<u8>) -> Self {
        self.compares.push(Compare::Value(key.into(), value));
        self
    }

    pub fn put(mut self, key: impl Into<String>, value: Vec<u8>) -> Self {
        self.ops.push(Op::Put(key.into(), value));
        self
    }

    pub fn delete(mut self, key: impl Into<String>) -> Self {
        self.ops.push(Op::Delete(key.into()));
        self
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxnOutcome {
    /// Every compare held; the ops are durable at this revision.
    Committed { revision: u64 },
    /// A compare failed; nothing was written. `revision` is the store's current one.
    Conflict { revision: u64 },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventKind {
    Put,
    Delete,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub kind: EventKind,
    /// For a delete, `value` is empty and `mod_revision` is the delete's revision.
    pub kv: KeyValue,
}

/// All events of one committed transaction, at one revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventBatch {
    pub revision: u64,
    pub events: Vec<Event>,
}

/// A snapshot of every key under a prefix plus the events after it.
pub struct Snapshot {
    pub revision: u64,
    pub kvs: Vec<KeyValue>,
    /// Batches with revision > `revision`; a `Lagged` error means events were
    /// dropped and the follower must take a new snapshot.
    pub watch: broadcast::Receiver<EventBatch>,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store backend: {0}")]
    Backend(String),
    #[error("store closed")]
    Closed,
}

/// A submitted transaction's outcome, to be awaited.
pub type TxnFuture =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<TxnOutcome, StoreError>> + Send>>;

#[async_trait]
pub trait Store: Send + Sync + 'static {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError>;
    /// Every key starting with `prefix`, in key order, and the revision read at.
    async fn range(&self, prefix: &str) -> Result<(Vec<KeyValue>, u64), StoreError>;
    /// Applies `ops` atomically and durably if every compare holds.
    async fn txn(&self, txn: Txn) -> Result<TxnOutcome, StoreError> {
        self.submit(txn).await
    }
    /// Like `txn`, but the transaction is queued before this returns: its
    /// compares see every transaction submitted before it, so a writer can
    /// submit the next step without waiting for the last one to be durable.
    fn submit(&self, txn: Txn) -> TxnFuture;
    /// Everything under `prefix` and a watch of changes after it, with no gap between them.
    async fn snapshot_and_watch(&self, prefix: &str) -> Result<Snapshot, StoreError>;
    /// The store's latest revision, read so that every write acknowledged anywhere
    /// before the call is at or below it; `None` where this process is the only
    /// writer (its own acknowledged writes are all a reader must see).
    async fn latest_revision(&self) -> Result<Option<u64>, StoreError> {
        Ok(None)
    }
    /// Ends a lease another process holds, deleting its keys (a store without
    /// leases has nothing to end).
    async fn revoke_lease(&self, _lease: i64) -> Result<(), StoreError> {
        Ok(())
    }
}
