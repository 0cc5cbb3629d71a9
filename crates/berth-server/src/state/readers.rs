//! The servers that answer reads from their own views, as the store lists them
//! (each holds a key under `READERS_PREFIX` on its read lease), and how far
//! each one's view has got, as it tells (see `crate::read_leases`).
use berth_store::{EventBatch, EventKind, KeyValue};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, Weak};
use tokio::sync::watch;

/// What a reader's key holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReaderRecord {
    /// Where it serves (its applied revisions stream from here).
    pub url: String,
    /// The lease its key lives on; a writer it keeps waiting may end it.
    pub lease: i64,
}

impl ReaderRecord {
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

struct Reader {
    record: ReaderRecord,
    /// The revision its view is known to have reached; dropped when it leaves.
    applied: Arc<watch::Sender<u64>>,
}

/// A reader newly listed: someone must follow its applied revisions into `applied`.
pub struct Follow {
    pub key: String,
    pub url: String,
    pub applied: Weak<watch::Sender<u64>>,
}

#[derive(Default)]
pub struct Readers {
    by_key: HashMap<String, Reader>,
    /// Who holds the leader key (a server's name, as its reader key ends).
    leader: Option<String>,
}

impl Readers {
    /// Starts over from a snapshot's keys; a reader listed as before keeps what it told.
    pub fn load(&mut self, kvs: &[KeyValue]) -> Vec<Follow> {
        let listed: HashMap<&str, &[u8]> = kvs
            .iter()
            .filter(|kv| kv.key.starts_with(super::READERS_PREFIX))
            .map(|kv| (kv.key.as_str(), kv.value.as_slice()))
            .collect();
        self.by_key.retain(|k, _| listed.contains_key(k.as_str()));
        self.leader = kvs
            .iter()
            .find(|kv| kv.key == super::LEADER_KEY)
            .map(|kv| String::from_utf8_lossy(&kv.value).into_owned());
        let mut follow = vec![];
        for (key, value) in listed {
            self.set(key, Some(value), &mut follow);
        }
        follow
    }

    /// Takes in a batch of store changes (keys outside the readers' prefix are ignored).
    pub fn apply(&mut self, batch: &EventBatch) -> Vec<Follow> {
        let mut follow = vec![];
        for e in &batch.events {
            if e.kv.key == super::LEADER_KEY {
                self.leader = (e.kind == EventKind::Put)
                    .then(|| String::from_utf8_lossy(&e.kv.value).into_owned());
            } else if e.kv.key.starts_with(super::READERS_PREFIX) {
                let value = (e.kind == EventKind::Put).then_some(e.kv.value.as_slice());
                self.set(&e.kv.key, value, &mut follow);
            }
        }
        follow
    }

    fn set(&mut self, key: &str, value: Option<&[u8]>, follow: &mut Vec<Follow>) {
        let Some(record) = value.and_then(|v| serde_json::from_slice::<ReaderRecord>(v).ok())
        else {
            self.by_key.remove(key);
            return;
        };
        if self.by_key.get(key).is_some_and(|r| r.record == record) {
            return;
        }
        // A new lease is a new reader: what the old one told says nothing of it.
        let applied = Arc::new(watch::channel(0).0);
        follow.push(Follow {
            key: key.to_string(),
            url: record.url.clone(),
            applied: Arc::downgrade(&applied),
        });
        self.by_key
            .insert(key.to_string(), Reader { record, applied });
    }

    /// Where the leader serves, if it is listed.
    pub fn leader_url(&self) -> Option<&str> {
        let key = format!("{}{}", super::READERS_PREFIX, self.leader.as_deref()?);
        self.by_key.get(&key).map(|r| r.record.url.as_str())
    }

    /// Every listed reader's key.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.by_key.keys().map(String::as_str)
    }

    /// Where every reader but the one under `mine` serves.
    pub fn urls(&self, mine: Option<&str>) -> Vec<String> {
        self.by_key
            .iter()
            .filter(|(k, _)| Some(k.as_str()) != mine)
            .map(|(_, r)| r.record.url.clone())
            .collect()
    }

    /// Every reader but the one under `mine`: its lease, and the revision its view
    /// has reached (the receiver closes when it leaves the list).
    pub fn others(&self, mine: Option<&str>) -> Vec<(i64, watch::Receiver<u64>)> {
        self.by_key
            .iter()
            .filter(|(k, _)| Some(k.as_str()) != mine)
            .map(|(_, r)| (r.record.lease, r.applied.subscribe()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_store::Event;

    fn record(url: &str, lease: i64) -> Vec<u8> {
        serde_json::to_vec(&ReaderRecord {
            url: url.into(),
            lease,
        })
        .unwrap()
    }

    fn event(kind: EventKind, key: &str, value: Vec<u8>) -> EventBatch {
        EventBatch {
            revision: 5,
            events: vec![Event {
                kind,
                kv: KeyValue {
                    key: key.into(),
                    value,
                    create_revision: 5,
                    mod_revision: 5,
                },
            }],
        }
    }

    const A: &str = "coordination/readers/a";
    const B: &str = "coordination/readers/b";

    #[test]
    fn a_listed_reader_is_followed_once_and_its_own_server_is_left_out() {
        let mut readers = Readers::default();
        let follow = readers.apply(&event(EventKind::Put, A, record("http://a", 1)));
        assert_eq!(follow.len(), 1);
        assert_eq!(follow[0].url, "http://a");
        // The same record again (a server rewriting its key) changes nothing.
        assert!(readers
            .apply(&event(EventKind::Put, A, record("http://a", 1)))
            .is_empty());
        readers.apply(&event(EventKind::Put, B, record("http://b", 2)));
        let mut leases: Vec<i64> = readers.others(Some(A)).iter().map(|o| o.0).collect();
        leases.sort();
        assert_eq!(leases, vec![2]);
        assert_eq!(readers.others(None).len(), 2);
        // Keys elsewhere are not readers.
        readers.apply(&event(EventKind::Put, "clusters/x", record("http://x", 3)));
        assert_eq!(readers.others(None).len(), 2);
    }

    #[tokio::test]
    async fn a_reader_that_leaves_or_takes_a_new_lease_closes_what_writers_wait_on() {
        let mut readers = Readers::default();
        let follow = readers.apply(&event(EventKind::Put, A, record("http://a", 1)));
        let (_, mut waiting) = readers.others(None).pop().unwrap();
        follow[0].applied.upgrade().unwrap().send_replace(9);
        assert_eq!(*waiting.borrow_and_update(), 9);
        let again = readers.apply(&event(EventKind::Put, A, record("http://a", 2)));
        assert_eq!(again.len(), 1);
        assert!(follow[0].applied.upgrade().is_none());
        assert!(waiting.changed().await.is_err());
        let (_, mut second) = readers.others(None).pop().unwrap();
        readers.apply(&event(EventKind::Delete, A, vec![]));
        assert!(second.changed().await.is_err());
        assert!(readers.others(None).is_empty());
    }

    #[test]
    fn the_leader_is_found_where_it_serves_while_it_is_listed() {
        let mut readers = Readers::default();
        readers.apply(&event(EventKind::Put, B, record("http://b", 2)));
        assert_eq!(readers.leader_url(), None);
        readers.apply(&event(
            EventKind::Put,
            super::super::LEADER_KEY,
            b"b".to_vec(),
        ));
        assert_eq!(readers.leader_url(), Some("http://b"));
        readers.apply(&event(EventKind::Delete, super::super::LEADER_KEY, vec![]));
        assert_eq!(readers.leader_url(), None);
    }

    #[test]
    fn a_snapshot_drops_readers_it_does_not_list_and_keeps_those_it_does() {
        let mut readers = Readers::default();
        let kv = |key: &str, value: Vec<u8>| KeyValue {
            key: key.into(),
            value,
            create_revision: 1,
            mod_revision: 1,
        };
        readers.load(&[kv(A, record("http://a", 1)), kv(B, record("http://b", 2))]);
        let follow = readers.load(&[kv(A, record("http://a", 1))]);
        assert!(follow.is_empty());
        assert_eq!(readers.others(None).len(), 1);
    }
}
