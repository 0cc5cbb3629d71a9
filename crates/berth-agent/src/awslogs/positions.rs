//! Where each container's shipping stands, kept in the agent's data dir
//! (`log-positions/{container id}.json`, replaced atomically): the byte
//! offset in its json-file log up to which the server acknowledged, and the
//! end of the batch in flight. A restarted agent sends that batch again, cut
//! at the same end, and the server, which stores a batch berth's agent
//! names (container, end) at most once, accepts it once.
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    /// Bytes of the log acknowledged.
    pub acked: u64,
    /// The end of a batch sent and not yet known to have arrived.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inflight_end: Option<u64>,
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
    fn positions_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let store = Positions::new(dir.path());
        assert_eq!(store.load("c1"), Position::default());
        let p = Position {
            acked: 100,
            inflight_end: Some(250),
        };
        store.save("c1", &p).unwrap();
        assert_eq!(Positions::new(dir.path()).load("c1"), p);
        assert_eq!(store.load("c2"), Position::default());
    }
}
