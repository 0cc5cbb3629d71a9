//! Events into PutLogEvents batches within Logs' limits: 10,000 events,
//! 1,048,576 bytes counting 26 per event, a span of at most 24 hours.
use super::multiline::Event;

pub const MAX_BATCH_EVENTS: usize = 10_000;
pub const MAX_BATCH_BYTES: usize = 1_048_576;
pub const EVENT_OVERHEAD: usize = 26;
const DAY_MS: i64 = 86_400_000;

#[derive(Debug, Default)]
pub struct Batch {
    pub events: Vec<Event>,
    pub bytes: usize,
}

impl Batch {
    /// Whether `e` may join this batch.
    pub fn fits(&self, e: &Event) -> bool {
        let Some(first) = self.events.first() else {
            return true;
        };
        self.events.len() < MAX_BATCH_EVENTS
            && self.bytes + e.message.len() + EVENT_OVERHEAD <= MAX_BATCH_BYTES
            && (e.time_ms - first.time_ms).abs() <= DAY_MS
    }

    pub fn push(&mut self, e: Event) {
        self.bytes += e.message.len() + EVENT_OVERHEAD;
        self.events.push(e);
    }

    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// The log position once the whole batch is acknowledged.
    pub fn end(&self) -> Option<u64> {
        self.events.iter().map(|e| e.end).max()
    }
}

/// Splits queued events into the next batch (taken from the front).
pub fn next_batch(queue: &mut std::collections::VecDeque<Event>) -> Batch {
    let mut b = Batch::default();
    while let Some(e) = queue.front() {
        if !b.fits(e) {
            break;
        }
        b.push(queue.pop_front().expect("a front event"));
    }
    b
}

/// The next batch, holding only events that end by `end` (a batch sent
/// before a restart, cut where it was).
pub fn batch_until(queue: &mut std::collections::VecDeque<Event>, end: u64) -> Batch {
    let mut b = Batch::default();
    while let Some(e) = queue.front() {
        if e.end > end || !b.fits(e) {
            break;
        }
        b.push(queue.pop_front().expect("a front event"));
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;

    fn ev(t: i64, len: usize) -> Event {
        Event {
            time_ms: t,
            message: "x".repeat(len),
            end: t as u64,
        }
    }

    #[test]
    fn batches_stop_at_each_limit() {
        let mut q: VecDeque<Event> = (0..10_001).map(|i| ev(i, 1)).collect();
        assert_eq!(next_batch(&mut q).events.len(), MAX_BATCH_EVENTS);
        assert_eq!(next_batch(&mut q).events.len(), 1);
        // 1 MiB counting 26 bytes per event.
        let mut q: VecDeque<Event> = (0..5).map(|i| ev(i, 262_118)).collect();
        let b = next_batch(&mut q);
        assert_eq!((b.events.len(), b.bytes), (4, 4 * 262_144));
        assert_eq!(b.end(), Some(3));
        // No more than 24 hours apart.
        let mut q: VecDeque<Event> = [ev(0, 1), ev(DAY_MS, 1), ev(DAY_MS + 1, 1)].into();
        assert_eq!(next_batch(&mut q).events.len(), 2);
        assert_eq!(next_batch(&mut q).events.len(), 1);
        assert!(next_batch(&mut q).is_empty());
        let mut q: VecDeque<Event> = (1..=5).map(|i| ev(i, 1)).collect();
        assert_eq!(batch_until(&mut q, 3).end(), Some(3));
        assert_eq!(next_batch(&mut q).events.len(), 2);
    }
}
