//! A store in RAM with the same contract as the others, for tests of the
//! handlers and controllers that need no disk: nothing survives the process,
//! so no server runs on it.
use crate::*;
use std::collections::BTreeMap;
use std::sync::Mutex;

/// How many batches a slow follower may fall behind before it must resnapshot.
const WATCH_BUFFER: usize = 4096;

pub struct MemoryStore {
    inner: Mutex<Inner>,
    events: broadcast::Sender<EventBatch>,
}

#[derive(Default)]
struct Inner {
    revision: u64,
    kvs: BTreeMap<String, KeyValue>,
}

impl Default for MemoryStore {
    fn default() -> Self {
        MemoryStore {
            inner: Mutex::default(),
            events: broadcast::channel(WATCH_BUFFER).0,
        }
    }
}

impl MemoryStore {
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    /// Every key under `prefix`, in key order.
    fn under(inner: &Inner, prefix: &str) -> Vec<KeyValue> {
        inner
            .kvs
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(_, v)| v.clone())
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Checks and applies one transaction under the lock, so it is atomic and
    /// ordered after every transaction submitted before it.
    fn apply(&self, txn: Txn) -> TxnOutcome {
        let mut inner = self.lock();
        let holds = txn.compares.iter().all(|c| match c {
            Compare::ModRevision(key, want) => {
                inner.kvs.get(key).map_or(0, |kv| kv.mod_revision) == *want
            }
            Compare::Value(key, want) => inner.kvs.get(key).is_some_and(|kv| kv.value == *want),
        });
        if !holds {
            return TxnOutcome::Conflict {
                revision: inner.revision,
            };
        }
        if txn.ops.is_empty() {
            return TxnOutcome::Committed {
                revision: inner.revision,
            };
        }
        inner.revision += 1;
        let revision = inner.revision;
        let mut events = vec![];
        for op in txn.ops {
            match op {
                Op::Put(key, value) => {
                    let create_revision = inner
                        .kvs
                        .get(&key)
                        .map_or(revision, |kv| kv.create_revision);
                    let kv = KeyValue {
                        key: key.clone(),
                        value,
                        create_revision,
                        mod_revision: revision,
                    };
                    inner.kvs.insert(key, kv.clone());
                    events.push(Event {
                        kind: EventKind::Put,
                        kv,
                    });
                }
                Op::Delete(key) => {
                    if let Some(old) = inner.kvs.remove(&key) {
                        events.push(Event {
                            kind: EventKind::Delete,
                            kv: KeyValue {
                                key,
                                value: vec![],
                                create_revision: old.create_revision,
                                mod_revision: revision,
                            },
                        });
                    }
                }
            }
        }
        // Sent under the lock: followers see batches in revision order.
        let _ = self.events.send(EventBatch { revision, events });
        TxnOutcome::Committed { revision }
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError> {
        Ok(self.lock().kvs.get(key).cloned())
    }

    async fn range(&self, prefix: &str) -> Result<(Vec<KeyValue>, u64), StoreError> {
        let inner = self.lock();
        Ok((MemoryStore::under(&inner, prefix), inner.revision))
    }

    fn submit(&self, txn: Txn) -> TxnFuture {
        let outcome = self.apply(txn);
        Box::pin(async move { Ok(outcome) })
    }

    async fn snapshot_and_watch(&self, prefix: &str) -> Result<Snapshot, StoreError> {
        let inner = self.lock();
        // Subscribed under the lock: no batch falls between the snapshot and the watch.
        let watch = self.events.subscribe();
        Ok(Snapshot {
            revision: inner.revision,
            kvs: MemoryStore::under(&inner, prefix),
            watch,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn conformance_suite() {
        crate::conformance::run_all(|| async { ((), MemoryStore::new()) }).await;
    }
}
