//! The in-memory view of the store. Reads never touch disk; writes go to the
//! store first and are answered once the view has caught up with them.
pub mod index;
pub mod keys;

use berth_api::ApiError;
use berth_store::{Store, Txn, TxnOutcome};
pub use index::Index;
pub use keys::StoreKey;
use std::sync::{Arc, RwLock, RwLockReadGuard};
use tokio::sync::watch;

/// Conflicting writers retry this often before giving up.
const MAX_ATTEMPTS: usize = 32;
/// Writers to the same resource queue on one of these instead of racing.
const WRITE_LOCK_STRIPES: usize = 1024;

pub struct State {
    index: RwLock<Index>,
    applied: watch::Sender<u64>,
    store: Arc<dyn Store>,
    write_locks: Vec<tokio::sync::Mutex<()>>,
}

impl State {
    /// Loads everything from the store and starts following its changes.
    pub async fn open(store: Arc<dyn Store>) -> Result<Arc<State>, berth_store::StoreError> {
        let snap = store.snapshot_and_watch("").await?;
        let mut index = Index::default();
        index.load(snap.revision, &snap.kvs);
        let (applied, _) = watch::channel(snap.revision);
        let write_locks = (0..WRITE_LOCK_STRIPES)
            .map(|_| tokio::sync::Mutex::new(()))
            .collect();
        let state = Arc::new(State {
            index: RwLock::new(index),
            applied,
            store,
            write_locks,
        });
        tokio::spawn(follow(Arc::downgrade(&state), snap.watch));
        Ok(state)
    }

    pub fn read(&self) -> RwLockReadGuard<'_, Index> {
        self.index.read().unwrap_or_else(|p| p.into_inner())
    }

    async fn wait_for(&self, revision: u64) {
        let mut rx = self.applied.subscribe();
        let _ = rx.wait_for(|r| *r >= revision).await;
    }

    /// Builds a transaction from the current view and commits it, rebuilding
    /// and retrying when another writer got there first. Writers naming the
    /// same `resource` take turns on this server, so they do not livelock on a
    /// hot key; compare-and-swap still guards against other servers.
    pub async fn mutate<T, F>(&self, resource: &StoreKey, mut plan: F) -> Result<T, ApiError>
    where
        F: FnMut(&Index) -> Result<(Txn, T), ApiError>,
    {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        resource.encode().hash(&mut h);
        let _turn = self.write_locks[(h.finish() as usize) % WRITE_LOCK_STRIPES]
            .lock()
            .await;
        for _ in 0..MAX_ATTEMPTS {
            let (txn, out) = plan(&self.read())?;
            if txn.ops.is_empty() {
                return Ok(out);
            }
            match self
                .store
                .txn(txn)
                .await
                .map_err(|e| ApiError::server(e.to_string()))?
            {
                TxnOutcome::Committed { revision } => {
                    self.wait_for(revision).await;
                    return Ok(out);
                }
                TxnOutcome::Conflict { revision } => self.wait_for(revision).await,
            }
        }
        Err(ApiError::server("Too many concurrent updates; try again."))
    }
}

async fn follow(
    state: std::sync::Weak<State>,
    mut watch: tokio::sync::broadcast::Receiver<berth_store::EventBatch>,
) {
    use tokio::sync::broadcast::error::RecvError;
    loop {
        match watch.recv().await {
            Ok(batch) => {
                let Some(state) = state.upgrade() else { return };
                state
                    .index
                    .write()
                    .unwrap_or_else(|p| p.into_inner())
                    .apply(&batch);
                state.applied.send_replace(batch.revision);
            }
            Err(RecvError::Lagged(n)) => {
                // Events were dropped: take a fresh snapshot and carry on from it.
                tracing::warn!(dropped = n, "store watch lagged; reloading the view");
                let Some(state) = state.upgrade() else { return };
                match state.store.snapshot_and_watch("").await {
                    Ok(snap) => {
                        state
                            .index
                            .write()
                            .unwrap_or_else(|p| p.into_inner())
                            .load(snap.revision, &snap.kvs);
                        state.applied.send_replace(snap.revision);
                        watch = snap.watch;
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "reloading the view failed");
                        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                    }
                }
            }
            Err(RecvError::Closed) => return,
        }
    }
}
