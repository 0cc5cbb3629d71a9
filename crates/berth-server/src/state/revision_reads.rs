//! One read of the store's latest revision serves every request that arrived
//! before it was sent: requests waiting while a read is in flight share the
//! next one, so a busy server asks the store once per round trip, not once
//! per request.
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Default)]
pub struct RevisionReads {
    /// How many reads have been sent; a read numbered above a caller's arrival began after it.
    sent: AtomicU64,
    /// One read at a time; held while it is in flight.
    turn: tokio::sync::Mutex<()>,
    /// The last read's number and what it answered.
    last: std::sync::Mutex<Option<(u64, Option<u64>)>>,
}

impl RevisionReads {
    /// The latest revision, from a read sent after this call began (`fetch` makes one).
    pub async fn latest<E, F, Fut>(&self, fetch: F) -> Result<Option<u64>, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Option<u64>, E>>,
    {
        let arrived = self.sent.load(Ordering::SeqCst);
        let _turn = self.turn.lock().await;
        if let Some((n, revision)) = *self.last.lock().unwrap_or_else(|p| p.into_inner()) {
            if n > arrived {
                return Ok(revision);
            }
        }
        let n = self.sent.fetch_add(1, Ordering::SeqCst) + 1;
        let revision = fetch().await?;
        *self.last.lock().unwrap_or_else(|p| p.into_inner()) = Some((n, revision));
        Ok(revision)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[tokio::test]
    async fn callers_waiting_on_a_read_share_the_next_one() {
        let reads = Arc::new(RevisionReads::default());
        let store_revision = Arc::new(AtomicU64::new(10));
        let fetches = Arc::new(AtomicU64::new(0));
        let mut callers = vec![];
        for _ in 0..50 {
            let (reads, store_revision, fetches) =
                (reads.clone(), store_revision.clone(), fetches.clone());
            callers.push(tokio::spawn(async move {
                // What every write acknowledged before this call left the store at.
                let at_arrival = store_revision.fetch_add(1, Ordering::SeqCst) + 1;
                let seen = reads
                    .latest(|| async {
                        fetches.fetch_add(1, Ordering::SeqCst);
                        let r = store_revision.load(Ordering::SeqCst);
                        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                        Ok::<_, ()>(Some(r))
                    })
                    .await
                    .unwrap()
                    .unwrap();
                assert!(seen >= at_arrival, "{seen} < {at_arrival}");
            }));
        }
        for c in callers {
            c.await.unwrap();
        }
        let fetches = fetches.load(Ordering::SeqCst);
        assert!((1..=3).contains(&fetches), "{fetches} reads for 50 callers");
    }

    #[tokio::test]
    async fn a_caller_arriving_after_a_read_began_does_not_take_its_answer() {
        let reads = RevisionReads::default();
        let first = reads.latest(|| async { Ok::<_, ()>(Some(1)) }).await;
        assert_eq!(first, Ok(Some(1)));
        // The first read finished before this call: a new one is made.
        let second = reads.latest(|| async { Ok::<_, ()>(Some(2)) }).await;
        assert_eq!(second, Ok(Some(2)));
        let failed = reads
            .latest(|| async { Err::<Option<u64>, _>("down") })
            .await;
        assert_eq!(failed, Err("down"));
    }
}
