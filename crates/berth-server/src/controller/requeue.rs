//! When each service wants its next pass on its own, outside the passes a
//! change triggers: at a deadline it named (a grace period ending), or
//! after an error, backing off (kube-rs's `Action::requeue` is the model).
use crate::state::index::ClusterScoped;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// The first retry after an error, doubled on each further error.
const FIRST_RETRY: Duration = Duration::from_millis(100);
/// The longest a failing service waits between retries.
const MAX_RETRY: Duration = Duration::from_secs(30);

/// How long to wait after the `failures`-th error in a row (1 is the first).
pub fn backoff(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    (FIRST_RETRY * 2u32.pow(doublings)).min(MAX_RETRY)
}

#[derive(Default)]
pub struct Requeue {
    due: HashMap<ClusterScoped, Instant>,
    failures: HashMap<ClusterScoped, u32>,
}

impl Requeue {
    /// The service's next pass is due `after` from `now` (an earlier due time stands).
    pub fn after(&mut self, service: ClusterScoped, now: Instant, after: Duration) {
        let at = now + after;
        self.due
            .entry(service)
            .and_modify(|d| *d = (*d).min(at))
            .or_insert(at);
    }

    /// The pass failed: retry with backoff. Answers the wait.
    pub fn failed(&mut self, service: ClusterScoped, now: Instant) -> Duration {
        let n = self.failures.entry(service.clone()).or_default();
        *n += 1;
        let wait = backoff(*n);
        self.after(service, now, wait);
        wait
    }

    /// The pass succeeded: its backoff starts over.
    pub fn succeeded(&mut self, service: &ClusterScoped) {
        self.failures.remove(service);
    }

    /// The services due by `now`, taken off the schedule.
    pub fn take_due(&mut self, now: Instant) -> Vec<ClusterScoped> {
        let due: Vec<ClusterScoped> = self
            .due
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(k, _)| k.clone())
            .collect();
        for k in &due {
            self.due.remove(k);
        }
        due
    }

    /// How soon the next service is due.
    pub fn next_in(&self, now: Instant) -> Option<Duration> {
        self.due
            .values()
            .min()
            .map(|at| at.saturating_duration_since(now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_model::Scope;

    fn key(name: &str) -> ClusterScoped {
        (
            Scope::new("111111111111", "us-east-1"),
            "c".into(),
            name.into(),
        )
    }

    #[test]
    fn errors_back_off_doubling_to_a_cap_and_success_starts_over() {
        assert_eq!(backoff(1), Duration::from_millis(100));
        assert_eq!(backoff(2), Duration::from_millis(200));
        assert_eq!(backoff(4), Duration::from_millis(800));
        assert_eq!(backoff(40), MAX_RETRY);
        let t0 = Instant::now();
        let mut q = Requeue::default();
        assert_eq!(q.failed(key("a"), t0), Duration::from_millis(100));
        assert_eq!(q.failed(key("a"), t0), Duration::from_millis(200));
        q.succeeded(&key("a"));
        assert_eq!(q.failed(key("a"), t0), Duration::from_millis(100));
    }

    #[test]
    fn services_come_due_at_their_earliest_time_once() {
        let t0 = Instant::now();
        let mut q = Requeue::default();
        q.after(key("a"), t0, Duration::from_secs(10));
        q.after(key("a"), t0, Duration::from_secs(3));
        q.after(key("b"), t0, Duration::from_secs(5));
        assert_eq!(q.next_in(t0), Some(Duration::from_secs(3)));
        assert_eq!(q.take_due(t0 + Duration::from_secs(2)), vec![]);
        assert_eq!(q.take_due(t0 + Duration::from_secs(3)), vec![key("a")]);
        assert_eq!(q.take_due(t0 + Duration::from_secs(3)), vec![]);
        assert_eq!(q.next_in(t0), Some(Duration::from_secs(5)));
    }
}
