//! A store that times its transactions and counts their conflicts and errors.
use super::Metrics;
use berth_store::{KeyValue, Snapshot, Store, StoreError, Txn, TxnFuture, TxnOutcome};
use std::sync::Arc;

pub struct MeasuredStore {
    inner: Arc<dyn Store>,
    metrics: Arc<Metrics>,
}

impl MeasuredStore {
    pub fn new(inner: Arc<dyn Store>, metrics: Arc<Metrics>) -> MeasuredStore {
        MeasuredStore { inner, metrics }
    }
}

#[async_trait::async_trait]
impl Store for MeasuredStore {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError> {
        self.inner.get(key).await
    }

    async fn range(&self, prefix: &str) -> Result<(Vec<KeyValue>, u64), StoreError> {
        self.inner.range(prefix).await
    }

    fn submit(&self, txn: Txn) -> TxnFuture {
        let began = std::time::Instant::now();
        let outcome = self.inner.submit(txn);
        let metrics = self.metrics.clone();
        Box::pin(async move {
            let outcome = outcome.await;
            let summed = match &outcome {
                Ok(TxnOutcome::Committed { .. }) => Ok(true),
                Ok(TxnOutcome::Conflict { .. }) => Ok(false),
                Err(_) => Err(()),
            };
            metrics.store_transaction(began.elapsed(), summed);
            outcome
        })
    }

    async fn snapshot_and_watch(&self, prefix: &str) -> Result<Snapshot, StoreError> {
        self.inner.snapshot_and_watch(prefix).await
    }

    async fn latest_revision(&self) -> Result<Option<u64>, StoreError> {
        self.inner.latest_revision().await
    }
    async fn revoke_lease(&self, lease: i64) -> Result<(), StoreError> {
        self.inner.revoke_lease(lease).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_store::MemoryStore;

    #[tokio::test]
    async fn transactions_are_timed_and_conflicts_counted() {
        let metrics = Arc::new(Metrics::new());
        let store = MeasuredStore::new(Arc::new(MemoryStore::new()), metrics.clone());
        store.txn(Txn::new().put("a", b"1".to_vec())).await.unwrap();
        // "a" exists: a create-only write conflicts.
        let lost = store
            .txn(Txn::new().compare_mod("a", 0).put("a", b"2".to_vec()))
            .await
            .unwrap();
        assert!(matches!(lost, TxnOutcome::Conflict { .. }));
        assert_eq!(metrics.store_conflicts.get(), 1);
        assert_eq!(metrics.store_transaction_seconds.get_sample_count(), 2);
        assert_eq!(metrics.store_errors.get(), 0);
    }
}
