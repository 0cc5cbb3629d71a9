//! Each server's slot in log event sequences (see `logs::event_store`): a
//! server sharing the store claims the lowest free slot under
//! `LOG_SLOTS_PREFIX` for its log store's id, once, and keeps it across
//! restarts, so no two servers' events ever share a position.
use super::State;
use berth_store::{KeyValue, StoreError, Txn, TxnOutcome};

pub const LOG_SLOTS_PREFIX: &str = "coordination/log-slots/";

/// The slot a log store (`id`) already holds, among the claimed ones.
pub fn held(claimed: &[KeyValue], id: u64) -> Option<u64> {
    claimed.iter().find_map(|kv| {
        let slot = kv.key.strip_prefix(LOG_SLOTS_PREFIX)?.parse().ok()?;
        (kv.value == id.to_string().as_bytes()).then_some(slot)
    })
}

/// Slots no one holds yet, lowest first (slot 0 is a server alone).
pub fn free(claimed: &[KeyValue], max: u64) -> impl Iterator<Item = u64> + '_ {
    let taken: std::collections::HashSet<u64> = claimed
        .iter()
        .filter_map(|kv| kv.key.strip_prefix(LOG_SLOTS_PREFIX)?.parse().ok())
        .collect();
    (1..=max).filter(move |s| !taken.contains(s))
}

impl State {
    /// The slot of the log store `id`: the one it holds, else the lowest it can claim.
    pub async fn claim_log_slot(&self, id: u64, max: u64) -> Result<u64, StoreError> {
        // Servers starting together may claim the same slot: the loser tries the next.
        for _ in 0..8 {
            let (claimed, _) = self.store.range(LOG_SLOTS_PREFIX).await?;
            if let Some(slot) = held(&claimed, id) {
                return Ok(slot);
            }
            let Some(slot) = free(&claimed, max).next() else {
                return Err(StoreError::Backend("every log slot is taken".into()));
            };
            let key = format!("{LOG_SLOTS_PREFIX}{slot}");
            let claim = Txn::new()
                .compare_mod(key.clone(), 0)
                .put(key, id.to_string().into_bytes());
            if let TxnOutcome::Committed { .. } = self.store.txn(claim).await? {
                return Ok(slot);
            }
        }
        Err(StoreError::Backend(
            "no log slot could be claimed after 8 tries".into(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(slot: u64, id: u64) -> KeyValue {
        KeyValue {
            key: format!("{LOG_SLOTS_PREFIX}{slot}"),
            value: id.to_string().into_bytes(),
            mod_revision: 1,
            create_revision: 1,
        }
    }

    #[test]
    fn a_store_keeps_its_slot_and_a_new_one_takes_the_lowest_free() {
        let claimed = [kv(1, 77), kv(3, 99)];
        assert_eq!(held(&claimed, 99), Some(3));
        assert_eq!(held(&claimed, 5), None);
        assert_eq!(free(&claimed, 10).next(), Some(2));
        assert_eq!(free(&[kv(1, 7), kv(2, 8)], 2).next(), None);
    }

    #[tokio::test]
    async fn claims_against_a_store_are_unique_and_stable() {
        let state = crate::testing::Harness::new().await.state;
        let a = state.claim_log_slot(11, 100).await.unwrap();
        let b = state.claim_log_slot(22, 100).await.unwrap();
        assert_eq!((a, b), (1, 2));
        assert_eq!(state.claim_log_slot(11, 100).await.unwrap(), 1);
        assert!(state.claim_log_slot(33, 2).await.is_err());
    }
}
