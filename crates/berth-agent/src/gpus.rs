//! The host's NVIDIA GPUs as the ECS agent learns them: from the GPU info file the ECS
//! GPU-optimised AMI writes at boot (`/var/lib/ecs/gpu/nvidia-gpu-info.json`), read only
//! when GPU support is turned on (`ECS_ENABLE_GPU_SUPPORT`).
use serde::Deserialize;

/// Where the ECS GPU AMI writes the host's GPUs.
pub const DEFAULT_INFO_FILE: &str = "/var/lib/ecs/gpu/nvidia-gpu-info.json";
/// The Docker runtime the ECS agent gives GPU containers (`ECS_NVIDIA_RUNTIME`).
pub const DEFAULT_RUNTIME: &str = "nvidia";
/// The variable the NVIDIA container runtime reads to expose GPUs to a container.
pub const VISIBLE_DEVICES: &str = "NVIDIA_VISIBLE_DEVICES";

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Info {
    #[serde(rename = "GPUIDs", default)]
    gpu_ids: Vec<String>,
}

/// The GPU ids an info file lists, each once, in order.
pub fn ids_from_info(text: &str) -> Result<Vec<String>, String> {
    let info: Info =
        serde_json::from_str(text).map_err(|e| format!("the GPU info file is not valid: {e}"))?;
    let mut ids: Vec<String> = vec![];
    for id in info.gpu_ids {
        if id.trim().is_empty() {
            return Err("the GPU info file lists an empty GPU id".into());
        }
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    Ok(ids)
}

/// Reads the host's GPUs from `path`; a host with GPU support on must have the file.
pub fn discover(path: &std::path::Path) -> Result<Vec<String>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        format!(
            "GPU support is on but {} cannot be read: {e}",
            path.display()
        )
    })?;
    ids_from_info(&text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_info_file_gives_each_gpu_id_once() {
        let text = r#"{"DriverVersion":"470.57.02","GPUIDs":["GPU-a","GPU-b","GPU-a"]}"#;
        assert_eq!(ids_from_info(text).unwrap(), vec!["GPU-a", "GPU-b"]);
        assert_eq!(
            ids_from_info(r#"{"DriverVersion":"1"}"#).unwrap(),
            Vec::<String>::new()
        );
        assert!(ids_from_info("not json").is_err());
        assert!(ids_from_info(r#"{"GPUIDs":[""]}"#).is_err());
        let missing = discover(std::path::Path::new("/nonexistent/gpu-info.json")).unwrap_err();
        assert!(missing.contains("GPU support is on"), "{missing}");
    }
}
