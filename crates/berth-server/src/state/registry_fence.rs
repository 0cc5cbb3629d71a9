//! How servers sharing the registry's storage keep pushes and collection
//! apart, as the store says: the collecting server names a collection, every
//! other server holds its pushes once those in flight are done and says so,
//! and each says when it last wrote (collection waits for quiet everywhere).
use berth_store::{EventBatch, EventKind, KeyValue};
use std::collections::HashMap;

/// Holds the name of the server collecting, while it collects.
pub const COLLECTING_KEY: &str = "coordination/registry/collecting";
/// Per server: the revision of the collection it holds its pushes for.
pub const HELD_PREFIX: &str = "coordination/registry/held/";
/// Per server: when it last wrote to the registry (epoch seconds).
pub const WROTE_PREFIX: &str = "coordination/registry/wrote/";

#[derive(Debug, Default)]
pub struct RegistryFence {
    /// The collection under way: its key's revision and the server collecting.
    collecting: Option<(u64, String)>,
    held: HashMap<String, u64>,
    wrote: HashMap<String, f64>,
}

impl RegistryFence {
    /// Starts over from a snapshot's keys.
    pub fn load(&mut self, kvs: &[KeyValue]) {
        *self = RegistryFence::default();
        for kv in kvs {
            self.set(&kv.key, Some(&kv.value), kv.mod_revision);
        }
    }

    /// Takes in a batch of store changes (other keys are ignored).
    pub fn apply(&mut self, batch: &EventBatch) {
        for e in &batch.events {
            let value = (e.kind == EventKind::Put).then_some(e.kv.value.as_slice());
            self.set(&e.kv.key, value, e.kv.mod_revision);
        }
    }

    fn set(&mut self, key: &str, value: Option<&[u8]>, revision: u64) {
        let text = value.and_then(|v| std::str::from_utf8(v).ok());
        if key == COLLECTING_KEY {
            self.collecting = text.map(|by| (revision, by.to_string()));
        } else if let Some(server) = key.strip_prefix(HELD_PREFIX) {
            match text.and_then(|t| t.parse().ok()) {
                Some(r) => self.held.insert(server.to_string(), r),
                None => self.held.remove(server),
            };
        } else if let Some(server) = key.strip_prefix(WROTE_PREFIX) {
            match text.and_then(|t| t.parse().ok()) {
                Some(at) => self.wrote.insert(server.to_string(), at),
                None => self.wrote.remove(server),
            };
        }
    }

    /// Whether `me` may begin a collection, and if so the collecting key's
    /// revision to guard the write with (0: absent): not while another listed
    /// server collects; over a collection whose collector left the list (it
    /// died mid-collection) or that `me` itself left behind.
    pub fn may_begin(&self, me: &str, listed: impl Fn(&str) -> bool) -> Option<u64> {
        match self.collecting() {
            None => Some(0),
            Some((revision, by)) if by == me || !listed(by) => Some(revision),
            Some(_) => None,
        }
    }

    /// The collection under way, if any: its revision and who collects.
    pub fn collecting(&self) -> Option<(u64, &str)> {
        self.collecting.as_ref().map(|(r, by)| (*r, by.as_str()))
    }

    /// Whether `server` holds its pushes for the collection at `revision`.
    pub fn holds(&self, server: &str, revision: u64) -> bool {
        self.held.get(server) == Some(&revision)
    }

    /// When any server last wrote to the registry (epoch seconds).
    pub fn last_write(&self) -> Option<f64> {
        self.wrote.values().copied().reduce(f64::max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_store::Event;

    fn event(kind: EventKind, key: &str, value: &str, revision: u64) -> EventBatch {
        EventBatch {
            revision,
            events: vec![Event {
                kind,
                kv: KeyValue {
                    key: key.into(),
                    value: value.as_bytes().to_vec(),
                    create_revision: revision,
                    mod_revision: revision,
                },
            }],
        }
    }

    #[test]
    fn a_collection_begins_only_over_none_or_a_dead_or_own_one() {
        let mut f = RegistryFence::default();
        assert_eq!(f.may_begin("s1", |_| true), Some(0));
        f.apply(&event(EventKind::Put, COLLECTING_KEY, "s2", 7));
        // s2 is listed and collecting: not now.
        assert_eq!(f.may_begin("s1", |_| true), None);
        // s2 left the list mid-collection: over its key, guarded by its revision.
        assert_eq!(f.may_begin("s1", |s| s != "s2"), Some(7));
        assert_eq!(f.may_begin("s2", |_| true), Some(7));
    }

    #[test]
    fn a_collection_is_named_by_its_revision_and_held_per_server() {
        let mut f = RegistryFence::default();
        assert_eq!(f.collecting(), None);
        f.apply(&event(EventKind::Put, COLLECTING_KEY, "s1", 7));
        assert_eq!(f.collecting(), Some((7, "s1")));
        f.apply(&event(EventKind::Put, &format!("{HELD_PREFIX}s2"), "7", 8));
        assert!(f.holds("s2", 7));
        // Held for an earlier collection is not held for this one.
        f.apply(&event(EventKind::Put, &format!("{HELD_PREFIX}s3"), "5", 9));
        assert!(!f.holds("s3", 7));
        f.apply(&event(EventKind::Delete, COLLECTING_KEY, "", 10));
        assert_eq!(f.collecting(), None);
    }

    #[test]
    fn the_last_write_is_the_latest_of_any_server() {
        let mut f = RegistryFence::default();
        assert_eq!(f.last_write(), None);
        let kv = |key: String, value: &str| KeyValue {
            key,
            value: value.as_bytes().to_vec(),
            create_revision: 1,
            mod_revision: 1,
        };
        f.load(&[
            kv(format!("{WROTE_PREFIX}s1"), "100.5"),
            kv(format!("{WROTE_PREFIX}s2"), "200"),
            kv("clusters/x".into(), "300"),
        ]);
        assert_eq!(f.last_write(), Some(200.0));
    }
}
