//! Retention: events older than their group's retention period are removed
//! from the event store on the controllers' full pass (their pages are
//! reused by new events).
use super::groups::streams_of;
use super::stream_key;
use crate::state::State;

const DAY_MS: i64 = 86_400_000;
/// Compaction rewrites the file: worth it once a pass freed this many events
/// (fewer leave pages that new events reuse).
const COMPACT_AFTER_EVENTS: u64 = 10_000;

/// The first timestamp a group with `days` of retention keeps at `now_ms`.
pub fn cutoff(now_ms: i64, days: i32) -> i64 {
    now_ms - i64::from(days) * DAY_MS
}

pub async fn apply(state: &State) {
    let now_ms = (state.clock().epoch_secs() * 1000.0) as i64;
    let due: Vec<(String, i64)> = {
        let index = state.read();
        index
            .log_groups
            .iter()
            .filter_map(|((scope, group), r)| {
                let before = cutoff(now_ms, r.value.retention_in_days?);
                Some(
                    streams_of(&index, scope, group)
                        .map(|s| (stream_key(scope, group, s), before))
                        .collect::<Vec<_>>(),
                )
            })
            .flatten()
            .collect()
    };
    if due.is_empty() {
        return;
    }
    let events = state.log_events().clone();
    let done = tokio::task::spawn_blocking(move || {
        let mut removed = 0;
        for (key, before) in due {
            // Only streams holding expired events are written.
            let old = events.stats(&key)?.is_some_and(|s| s.first_event < before);
            if old {
                removed += events.expire(&key, before)?;
            }
        }
        // The space the expired events held goes back to the file system.
        if removed >= COMPACT_AFTER_EVENTS {
            for _ in 0..10 {
                match events.compact() {
                    Ok(true) => continue,
                    Ok(false) => break,
                    Err(e) => {
                        tracing::debug!(error = %e, "log store not compacted this pass");
                        break;
                    }
                }
            }
        }
        Ok::<u64, super::event_store::StoreError>(removed)
    })
    .await;
    match done {
        Ok(Ok(0)) => {}
        Ok(Ok(n)) => tracing::debug!(events = n, "expired log events removed"),
        Ok(Err(e)) => tracing::warn!(error = %e, "log retention pass failed"),
        Err(e) => tracing::warn!(error = %e, "log retention pass failed"),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn cutoff_counts_whole_days_back() {
        assert_eq!(super::cutoff(10 * super::DAY_MS, 3), 7 * super::DAY_MS);
    }
}
