//! A server's standing among those sharing a store: while its lease is
//! certainly alive, writers on every server wait for its view before they
//! acknowledge, so it may answer reads from its own view without asking the
//! store first.
use std::time::{Duration, Instant};

/// One lease's standing, as the server holding it can be sure of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tenure {
    pub lease: i64,
    /// The revision its key was written at: writes acknowledged before the
    /// key existed are at or below it, so the view must reach it first.
    pub fresh_from: u64,
    /// Until when the lease is certainly alive in the store.
    pub valid_until: Instant,
}

/// The share of a lease's time to live its holder counts on: the rest covers
/// clocks that run at slightly different rates and the keep-alive's trip.
const TRUSTED_SHARE: f64 = 0.75;

impl Tenure {
    /// Until when a lease is alive that the store renewed for `ttl` on a
    /// request sent at `sent` (the store renewed it no earlier than that).
    pub fn valid_until(sent: Instant, ttl: Duration) -> Instant {
        sent + ttl.mul_f64(TRUSTED_SHARE)
    }

    /// Whether its holder may answer from its view at `now`, its view being at `applied`.
    pub fn serves_reads(&self, now: Instant, applied: u64) -> bool {
        now < self.valid_until && applied >= self.fresh_from
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_is_trusted_for_a_share_of_its_ttl_from_when_the_renewal_was_sent() {
        let sent = Instant::now();
        let until = Tenure::valid_until(sent, Duration::from_secs(2));
        assert_eq!(until - sent, Duration::from_millis(1500));
    }

    #[test]
    fn reads_are_served_only_within_the_lease_and_once_the_view_reached_the_key() {
        let now = Instant::now();
        let t = Tenure {
            lease: 7,
            fresh_from: 10,
            valid_until: now + Duration::from_secs(1),
        };
        assert!(t.serves_reads(now, 10));
        assert!(!t.serves_reads(now, 9));
        assert!(!t.serves_reads(now + Duration::from_secs(1), 10));
    }
}
