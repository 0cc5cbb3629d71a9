//! Every server looks after the log events it holds (see `peers`): events of
//! streams no longer in the store (deleted through any server) go within a
//! second, and retention applies on each server to its own events.
use super::stream_key;
use crate::state::State;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

const SWEEP_EVERY: Duration = Duration::from_secs(1);
const RETENTION_EVERY: Duration = Duration::from_secs(5);

/// The streams this server holds events of (key, the record they belong to)
/// that the store no longer lists, or lists as a record made since.
pub fn gone(held: Vec<(String, Option<i64>)>, listed: &HashMap<String, i64>) -> Vec<String> {
    held.into_iter()
        .filter(|(k, created)| match (listed.get(k), created) {
            (None, _) => true,
            (Some(now), Some(was)) => now != was,
            (Some(_), None) => false,
        })
        .map(|(k, _)| k)
        .collect()
}

/// Removes the events of deleted streams; answers how many streams went.
pub async fn sweep(state: &State) -> usize {
    let events = state.log_events().clone();
    // Held first, listed after: a stream created in between has no events here yet.
    let held = tokio::task::spawn_blocking(move || events.stream_incarnations());
    let held = match held.await {
        Ok(Ok(held)) => held,
        _ => return 0,
    };
    let listed: HashMap<String, i64> = {
        let index = state.read();
        index
            .log_streams
            .iter()
            .map(|((scope, group, s), r)| (stream_key(scope, group, s), r.value.created_at))
            .collect()
    };
    let gone = gone(held, &listed);
    let n = gone.len();
    if n > 0 {
        let events = state.log_events().clone();
        let done = tokio::task::spawn_blocking(move || {
            gone.iter().try_for_each(|k| events.delete_stream(k))
        })
        .await;
        if let Ok(Err(e)) = done {
            tracing::warn!(error = %e, "a deleted stream's events were not removed");
        }
    }
    n
}

/// Runs until the state is dropped.
pub fn spawn(state: &Arc<State>) {
    let weak = Arc::downgrade(state);
    tokio::spawn(async move {
        let mut swept_at = None;
        let mut retention_at = tokio::time::Instant::now();
        loop {
            tokio::time::sleep(SWEEP_EVERY).await;
            let Some(state) = weak.upgrade() else { return };
            let revision = state.read().revision;
            if swept_at != Some(revision) {
                sweep(&state).await;
                swept_at = Some(revision);
            }
            if retention_at.elapsed() >= RETENTION_EVERY {
                retention_at = tokio::time::Instant::now();
                super::retention::apply(&state).await;
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_streams_the_store_no_longer_lists_are_gone() {
        let listed: HashMap<String, i64> =
            [("kept".to_string(), 5), ("remade".to_string(), 9)].into();
        let held = vec![
            ("kept".to_string(), Some(5)),
            ("deleted".to_string(), Some(1)),
            ("remade".to_string(), Some(7)),
            ("from-before-incarnations".to_string(), None),
            ("kept".to_string(), None),
        ];
        assert_eq!(
            gone(held, &listed),
            ["deleted", "remade", "from-before-incarnations"]
        );
    }
}
