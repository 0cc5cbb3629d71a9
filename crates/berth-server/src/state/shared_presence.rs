//! What the servers sharing a store say of the agents polling them. Kept apart
//! from the index, under its own lock: the instance checks that read it run
//! while the index is already read-locked.
use berth_store::{EventBatch, EventKind, KeyValue};
use std::collections::HashMap;

/// Presence key (one per server) -> container instance ARN -> when it last heard (epoch seconds).
#[derive(Debug, Default)]
pub struct SharedPresence {
    by_server: HashMap<String, HashMap<String, f64>>,
}

impl SharedPresence {
    /// Starts over from a snapshot's keys.
    pub fn load(&mut self, kvs: &[KeyValue]) {
        self.by_server.clear();
        for kv in kvs {
            self.set(&kv.key, Some(&kv.value));
        }
    }

    /// Takes in a batch of store changes (keys outside the presence prefix are ignored).
    pub fn apply(&mut self, batch: &EventBatch) {
        for e in &batch.events {
            let value = (e.kind == EventKind::Put).then_some(e.kv.value.as_slice());
            self.set(&e.kv.key, value);
        }
    }

    fn set(&mut self, key: &str, value: Option<&[u8]>) {
        if !key.starts_with(super::PRESENCE_PREFIX) {
            return;
        }
        match value.and_then(|v| serde_json::from_slice(v).ok()) {
            Some(seen) => self.by_server.insert(key.to_string(), seen),
            None => self.by_server.remove(key),
        };
    }

    /// Whether any server heard from the agent less than `timeout_secs` before `now` (epoch seconds).
    pub fn heard_within(&self, container_instance_arn: &str, now: f64, timeout_secs: f64) -> bool {
        self.by_server
            .values()
            .filter_map(|seen| seen.get(container_instance_arn))
            .any(|last| now - last < timeout_secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_store::Event;

    fn kv(key: &str, value: &str) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: value.as_bytes().to_vec(),
            create_revision: 1,
            mod_revision: 1,
        }
    }

    const ARN: &str = "arn:aws:ecs:r:1:container-instance/c/i";

    #[test]
    fn an_agent_counts_as_heard_only_within_the_timeout() {
        let mut p = SharedPresence::default();
        p.load(&[kv(
            "coordination/presence/s1",
            &format!(r#"{{"{ARN}": 100.0}}"#),
        )]);
        assert!(p.heard_within(ARN, 120.0, 45.0));
        assert!(!p.heard_within(ARN, 145.0, 45.0));
        assert!(!p.heard_within("arn:other", 120.0, 45.0));
    }

    #[test]
    fn a_deleted_record_and_keys_elsewhere_leave_no_presence() {
        let mut p = SharedPresence::default();
        let put = |key: &str, value: &str| Event {
            kind: EventKind::Put,
            kv: kv(key, value),
        };
        p.apply(&EventBatch {
            revision: 2,
            events: vec![
                put(
                    "coordination/presence/s1",
                    &format!(r#"{{"{ARN}": 100.0}}"#),
                ),
                put("clusters/x", &format!(r#"{{"{ARN}": 100.0}}"#)),
            ],
        });
        assert!(p.heard_within(ARN, 101.0, 45.0));
        assert_eq!(p.by_server.len(), 1);
        p.apply(&EventBatch {
            revision: 3,
            events: vec![Event {
                kind: EventKind::Delete,
                kv: kv("coordination/presence/s1", ""),
            }],
        });
        assert!(!p.heard_within(ARN, 101.0, 45.0));
    }
}
