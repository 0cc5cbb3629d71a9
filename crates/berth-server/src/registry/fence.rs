//! Pushes and collection on registry storage that several servers share (see
//! `state::registry_fence`): the collector names a collection in the store;
//! every other server, once its pushes in flight are done, holds new ones and
//! says so; the collector collects once all have, then ends the collection.
use super::collector::Writes;
use crate::state::registry_fence::{COLLECTING_KEY, HELD_PREFIX, WROTE_PREFIX};
use crate::state::State;
use std::sync::Arc;
use std::time::Duration;

/// How long a collector waits for every server to hold its pushes.
const HOLD_WITHIN: Duration = Duration::from_secs(30);
/// Pushes stay held for at most this long, whatever the collector does.
const HOLD_AT_MOST: Duration = Duration::from_secs(15 * 60);
/// How often a server tells the others when it last wrote, while it writes.
const TELL_WRITES_EVERY: Duration = Duration::from_secs(1);

/// On every server: holds this server's pushes while another server collects.
pub async fn hold_for_collections(state: Arc<State>, writes: Arc<Writes>) {
    let mut view = state.applied_revisions();
    loop {
        let Some((revision, by)) = others_collection(&state) else {
            if view.changed().await.is_err() {
                return;
            }
            continue;
        };
        let Some(me) = state.server_name().map(str::to_string) else {
            // Not listed yet: the collector does not wait for this server.
            if view.changed().await.is_err() {
                return;
            }
            continue;
        };
        // Taking the lock alone waits for this server's pushes in flight and holds new ones.
        let held = writes.lock.write().await;
        let key = format!("{HELD_PREFIX}{me}");
        if let Err(e) = state
            .coordinate(&key, Some(revision.to_string().into_bytes()))
            .await
        {
            tracing::warn!(error = %e, "could not say this server holds its pushes");
            continue;
        }
        tracing::info!(
            collector = by,
            "holding registry pushes while another server collects"
        );
        let over = async {
            // Over when the collection's key goes (or changes), or its collector leaves the list.
            while others_collection(&state).map(|(r, _)| r) == Some(revision)
                && state.lists_server(&by)
            {
                if view.changed().await.is_err() {
                    return;
                }
            }
        };
        let _ = tokio::time::timeout(HOLD_AT_MOST, over).await;
        drop(held);
    }
}

/// The collection another server is running, if any: its revision and who runs it.
fn others_collection(state: &State) -> Option<(u64, String)> {
    let fence = state.registry_fence();
    let (revision, by) = fence.collecting()?;
    // A collector that left the list (it died collecting) holds no one's pushes.
    (Some(by) != state.server_name() && state.lists_server(by)).then(|| (revision, by.to_string()))
}

/// On every server: tells the others when it last wrote, so a collection waits for quiet everywhere.
pub async fn tell_writes(state: Arc<State>, writes: Arc<Writes>) {
    let mut told: Option<f64> = None;
    loop {
        tokio::time::sleep(TELL_WRITES_EVERY).await;
        let (Some(me), Some(at)) = (state.server_name(), writes.last_write_epoch(&state)) else {
            continue;
        };
        if told.is_some_and(|t| (at - t).abs() < 0.5) {
            continue;
        }
        let key = format!("{WROTE_PREFIX}{me}");
        if state
            .coordinate(&key, Some(format!("{at:.3}").into_bytes()))
            .await
            .is_ok()
        {
            told = Some(at);
        }
    }
}

/// A collection this server runs while others share the storage.
pub struct Collection {
    state: Arc<State>,
}

impl Collection {
    /// Names the collection and waits until every other server holds its pushes for
    /// it; None (and no collection) if one does not within `HOLD_WITHIN`.
    pub async fn begin(state: &Arc<State>) -> Option<Collection> {
        let me = state.server_name()?.to_string();
        // A leader that lost its leadership mid-collection may still be collecting.
        let guard = state
            .registry_fence()
            .may_begin(&me, |s| state.lists_server(s))?;
        let revision = state
            .coordinate_guarded(COLLECTING_KEY, guard, me.into_bytes())
            .await
            .ok()??;
        let collection = Collection {
            state: state.clone(),
        };
        let mut view = state.applied_revisions();
        let all_hold = async {
            loop {
                let waiting: Vec<String> = state
                    .other_server_names()
                    .into_iter()
                    .filter(|s| !state.registry_fence().holds(s, revision))
                    .collect();
                if waiting.is_empty() {
                    return true;
                }
                if view.changed().await.is_err() {
                    return false;
                }
            }
        };
        match tokio::time::timeout(HOLD_WITHIN, all_hold).await {
            Ok(true) => Some(collection),
            _ => {
                tracing::warn!(
                    "not every server held its pushes in time; no collection this round"
                );
                collection.end().await;
                None
            }
        }
    }

    /// Ends the collection: the other servers take pushes again.
    pub async fn end(self) {
        if let Err(e) = self.state.coordinate(COLLECTING_KEY, None).await {
            tracing::warn!(error = %e, "could not end the registry collection");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_store::{MemoryStore, Store, Tenure, Txn};

    /// A server's view of `store`, listed as `name` with a lease that holds.
    async fn server(store: &Arc<MemoryStore>, name: &str) -> Arc<State> {
        let state = State::open(store.clone()).await.unwrap();
        let standing = Tenure {
            lease: 1,
            fresh_from: 0,
            valid_until: std::time::Instant::now() + Duration::from_secs(600),
        };
        let (_, tenure) = tokio::sync::watch::channel(Some(standing));
        state.set_tenure(State::reader_key(name), tenure);
        // Nothing listens there: no server follows another in these tests.
        let record = crate::state::readers::ReaderRecord {
            url: "http://127.0.0.1:9".into(),
            lease: 1,
        };
        let listed = Txn::new().put(State::reader_key(name), record.to_bytes());
        store.txn(listed).await.unwrap();
        state
    }

    async fn until(state: &State, what: impl Fn(&State) -> bool) {
        let mut view = state.applied_revisions();
        let reached = async {
            while !what(state) {
                view.changed().await.unwrap();
            }
        };
        tokio::time::timeout(Duration::from_secs(5), reached)
            .await
            .expect("the view never got there");
    }

    #[tokio::test]
    async fn a_server_holds_its_pushes_once_those_in_flight_are_done_until_the_collection_ends() {
        let store = Arc::new(MemoryStore::new());
        let collector = server(&store, "c").await;
        let other = server(&store, "o").await;
        let writes = Arc::new(Writes::default());
        tokio::spawn(hold_for_collections(other.clone(), writes.clone()));
        let pushing = writes.lock.read().await;
        let revision = collector
            .coordinate(COLLECTING_KEY, Some(b"c".to_vec()))
            .await
            .unwrap();
        until(&other, |s| s.registry_fence().collecting().is_some()).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(
            !other.registry_fence().holds("o", revision),
            "held while a push was in flight"
        );
        drop(pushing);
        until(&collector, |s| s.registry_fence().holds("o", revision)).await;
        assert!(writes.lock.try_read().is_err(), "a new push went through");
        collector.coordinate(COLLECTING_KEY, None).await.unwrap();
        let taken = tokio::time::timeout(Duration::from_secs(5), writes.lock.read()).await;
        assert!(
            taken.is_ok(),
            "pushes still held after the collection ended"
        );
    }

    #[tokio::test]
    async fn a_collection_begins_only_once_every_other_server_holds_its_pushes() {
        let store = Arc::new(MemoryStore::new());
        let collector = server(&store, "c").await;
        let _other = server(&store, "o").await;
        until(&collector, |s| s.other_servers() == 1).await;
        let beginning = {
            let collector = collector.clone();
            tokio::spawn(async move { Collection::begin(&collector).await.is_some() })
        };
        until(&collector, |s| s.registry_fence().collecting().is_some()).await;
        let (revision, by) = {
            let fence = collector.registry_fence();
            let (r, by) = fence.collecting().unwrap();
            (r, by.to_string())
        };
        assert_eq!(by, "c");
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(
            !beginning.is_finished(),
            "began before the other server held its pushes"
        );
        let held = Txn::new().put(format!("{HELD_PREFIX}o"), revision.to_string().into_bytes());
        store.txn(held).await.unwrap();
        let began = tokio::time::timeout(Duration::from_secs(5), beginning).await;
        assert!(began.expect("never began").unwrap());
    }

    #[tokio::test]
    async fn a_second_collector_waits_for_a_listed_one_and_takes_over_a_dead_ones_key() {
        let store = Arc::new(MemoryStore::new());
        let old = server(&store, "old").await;
        let new = server(&store, "new").await;
        until(&new, |s| s.other_servers() == 1).await;
        old.coordinate(COLLECTING_KEY, Some(b"old".to_vec()))
            .await
            .unwrap();
        until(&new, |s| s.registry_fence().collecting().is_some()).await;
        // The old leader is listed and collecting: the new one does not overwrite it.
        assert!(Collection::begin(&new).await.is_none());
        assert_eq!(
            new.registry_fence()
                .collecting()
                .map(|(_, by)| by.to_string()),
            Some("old".to_string())
        );
        // It dies (its reader key goes with its lease): its collection is over, for everyone.
        store
            .txn(Txn::new().delete(State::reader_key("old")))
            .await
            .unwrap();
        until(&new, |s| s.other_servers() == 0).await;
        let began = Collection::begin(&new)
            .await
            .expect("began over a dead collector's key");
        assert_eq!(
            new.registry_fence()
                .collecting()
                .map(|(_, by)| by.to_string()),
            Some("new".to_string())
        );
        began.end().await;
    }
}
