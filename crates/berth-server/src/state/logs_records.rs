//! CloudWatch Logs' stored records: groups and streams (their events live in
//! the log event store, logs/event_store.rs).
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogGroupRecord {
    /// Epoch milliseconds, as Logs reports `creationTime`.
    pub created_at: i64,
    #[serde(default)]
    pub retention_in_days: Option<i32>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogStreamRecord {
    pub created_at: i64,
}
