//! What the agent keeps in its data dir across restarts: which container
//! instance it is, and the instance id it presents. Containers themselves
//! are found again through their Docker labels.
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Debug, Serialize, Deserialize)]
pub struct LocalState {
    pub container_instance_arn: Option<String>,
    pub ec2_instance_id: String,
    #[serde(skip)]
    path: PathBuf,
}

const FILE: &str = "agent-state.json";

impl LocalState {
    pub fn load(dir: &Path) -> Result<LocalState, String> {
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        let path = dir.join(FILE);
        match std::fs::read(&path) {
            Ok(bytes) => {
                let mut s: LocalState = serde_json::from_slice(&bytes)
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                s.path = path;
                Ok(s)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let id = uuid::Uuid::new_v4().simple().to_string();
                Ok(LocalState {
                    container_instance_arn: None,
                    // EC2's form: "i-" and 17 hex digits.
                    ec2_instance_id: format!("i-{}", &id[..17]),
                    path,
                })
            }
            Err(e) => Err(format!("{}: {e}", path.display())),
        }
    }

    /// Writes atomically (temp file, fsync, rename), so a crash leaves the old or the new file.
    pub fn save(&self) -> Result<(), String> {
        use std::io::Write;
        let tmp = self.path.with_extension("tmp");
        let bytes = serde_json::to_vec_pretty(self).map_err(|e| e.to_string())?;
        let mut f = std::fs::File::create(&tmp).map_err(|e| e.to_string())?;
        f.write_all(&bytes).map_err(|e| e.to_string())?;
        f.sync_all().map_err(|e| e.to_string())?;
        std::fs::rename(&tmp, &self.path).map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_survives_a_restart() {
        let dir = std::env::temp_dir().join(format!("berth-agent-state-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut s = LocalState::load(&dir).unwrap();
        assert!(s.ec2_instance_id.starts_with("i-") && s.ec2_instance_id.len() == 19);
        s.container_instance_arn = Some("arn:ci".into());
        s.save().unwrap();
        let again = LocalState::load(&dir).unwrap();
        assert_eq!(again.container_instance_arn.as_deref(), Some("arn:ci"));
        assert_eq!(again.ec2_instance_id, s.ec2_instance_id);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
