//! Where each container's shipping stands, kept in the agent's data dir
//! (`log-positions/{container id}.json`, replaced atomically): the byte
//! offset in its json-file log up to which the server acknowledged, and the
//! batch in flight (its end and last event), so a restarted agent can tell
//! whether that batch arrived before it died.
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    /// Bytes of the log acknowledged.
    pub acked: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inflight: Option<InFlight>,
}

/// A batch sent and not yet known to have arrived.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InFlight {
    pub end: u64,
    /// The batch's last event: its time and a digest of its message.
    pub time_ms: i64,
    pub digest: String,
}

pub fn digest(message: &str) -> String {
    let d = Sha256::digest(message.as_bytes());
    d.iter().map(|b| format!("{b:02x}")).collect()
}

impl Position {
    /// Settles a batch in flight given the stream's newest event (time,
    /// message): it arrived when that event is the batch's last.
    pub fn settle(&mut self, newest: Option<(i64, &str)>) {
        if let Some(f) = self.inflight.take() {
            if newest.is_some_and(|(t, m)| t == f.time_ms && digest(m) == f.digest) {
                self.acked = self.acked.max(f.end);
            }
        }
    }
}

#[derive(Debug, Clone)]
pub struct Positions {
    dir: PathBuf,
}

impl Positions {
    pub fn new(data_dir: &Path) -> Positions {
        Positions {
            dir: data_dir.join("log-positions"),
        }
    }

    fn path(&self, container_id: &str) -> PathBuf {
        self.dir.join(format!("{container_id}.json"))
    }

    pub fn load(&self, container_id: &str) -> Position {
        std::fs::read(self.path(container_id))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    pub fn save(&self, container_id: &str, p: &Position) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        let path = self.path(container_id);
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, serde_json::to_vec(p).unwrap_or_default())?;
        std::fs::rename(tmp, path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_survive_and_settle_a_batch_in_flight() {
        let dir = tempfile::tempdir().unwrap();
        let store = Positions::new(dir.path());
        assert_eq!(store.load("c1"), Position::default());
        let mut p = Position {
            acked: 100,
            inflight: Some(InFlight {
                end: 250,
                time_ms: 7,
                digest: digest("last line"),
            }),
        };
        store.save("c1", &p).unwrap();
        assert_eq!(store.load("c1"), p);
        let mut lost = p.clone();
        lost.settle(Some((7, "an earlier line")));
        assert_eq!((lost.acked, lost.inflight), (100, None));
        p.settle(Some((7, "last line")));
        assert_eq!((p.acked, p.inflight), (250, None));
        let mut nothing = Position {
            acked: 5,
            inflight: Some(InFlight {
                end: 9,
                time_ms: 1,
                digest: digest("x"),
            }),
        };
        nothing.settle(None);
        assert_eq!(nothing.acked, 5);
    }
}
