//! Task-level CPU and memory limits: a cgroup per task that Docker puts the
//! task's containers under (HostConfig.CgroupParent), as the ECS agent does
//! for `task-cpu-mem-limit`. cgroup v1 (cpu, memory) and v2 (unified) both.
use std::path::{Path, PathBuf};

const ROOT: &str = "/sys/fs/cgroup";
/// CFS period in microseconds; the quota is the task's share of it per CPU.
const CFS_PERIOD_US: i64 = 100_000;

/// The cgroup parent Docker is given for a task.
pub fn parent(task_id: &str) -> String {
    format!("/berth/{task_id}")
}

fn is_v2(root: &Path) -> bool {
    root.join("cgroup.controllers").exists()
}

/// The files to write: (path, value).
fn limit_files(
    root: &Path,
    task_id: &str,
    cpu: Option<i64>,
    memory_mib: Option<i64>,
) -> Vec<(PathBuf, String)> {
    let rel = parent(task_id);
    let rel = rel.trim_start_matches('/');
    let mut out = vec![];
    let quota = cpu.map(|units| (units * CFS_PERIOD_US / 1024).max(1000));
    let bytes = memory_mib.map(|m| m * 1024 * 1024);
    if is_v2(root) {
        let dir = root.join(rel);
        if let Some(q) = quota {
            out.push((dir.join("cpu.max"), format!("{q} {CFS_PERIOD_US}")));
        }
        if let Some(b) = bytes {
            out.push((dir.join("memory.max"), b.to_string()));
        }
    } else {
        if let Some(q) = quota {
            let dir = root.join("cpu").join(rel);
            out.push((dir.join("cpu.cfs_period_us"), CFS_PERIOD_US.to_string()));
            out.push((dir.join("cpu.cfs_quota_us"), q.to_string()));
        }
        if let Some(b) = bytes {
            out.push((
                root.join("memory").join(rel).join("memory.limit_in_bytes"),
                b.to_string(),
            ));
        }
    }
    out
}

/// Creates the task's cgroup with its limits; None when the task sets neither.
pub fn create(
    task_id: &str,
    cpu: Option<i64>,
    memory_mib: Option<i64>,
) -> Result<Option<String>, String> {
    if cpu.is_none() && memory_mib.is_none() {
        return Ok(None);
    }
    let root = Path::new(ROOT);
    if is_v2(root) {
        // Controllers must be enabled for the children of /berth.
        let berth = root.join("berth");
        std::fs::create_dir_all(&berth).map_err(|e| format!("{}: {e}", berth.display()))?;
        let _ = std::fs::write(root.join("cgroup.subtree_control"), "+cpu +memory");
        let _ = std::fs::write(berth.join("cgroup.subtree_control"), "+cpu +memory");
    }
    for (file, value) in limit_files(root, task_id, cpu, memory_mib) {
        if let Some(dir) = file.parent() {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        std::fs::write(&file, &value).map_err(|e| format!("{}: {e}", file.display()))?;
    }
    Ok(Some(parent(task_id)))
}

/// Removes the task's (empty) cgroups once its containers are gone.
pub fn remove(task_id: &str) {
    let root = Path::new(ROOT);
    let rel = parent(task_id);
    let rel = rel.trim_start_matches('/');
    let dirs = if is_v2(root) {
        vec![root.join(rel)]
    } else {
        vec![root.join("cpu").join(rel), root.join("memory").join(rel)]
    };
    for d in dirs {
        // Fails harmlessly while a container is still inside; the next sweep retries.
        let _ = std::fs::remove_dir(d);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_written_for_each_cgroup_version() {
        let v1 = std::env::temp_dir().join(format!("berth-cg-v1-{}", std::process::id()));
        std::fs::create_dir_all(&v1).unwrap();
        let files = limit_files(&v1, "t1", Some(512), Some(256));
        assert_eq!(
            files,
            vec![
                (v1.join("cpu/berth/t1/cpu.cfs_period_us"), "100000".into()),
                (v1.join("cpu/berth/t1/cpu.cfs_quota_us"), "50000".into()),
                (
                    v1.join("memory/berth/t1/memory.limit_in_bytes"),
                    (256 * 1024 * 1024).to_string()
                ),
            ]
        );
        let v2 = std::env::temp_dir().join(format!("berth-cg-v2-{}", std::process::id()));
        std::fs::create_dir_all(&v2).unwrap();
        std::fs::write(v2.join("cgroup.controllers"), "cpu memory").unwrap();
        let files = limit_files(&v2, "t1", Some(2048), None);
        assert_eq!(
            files,
            vec![(v2.join("berth/t1/cpu.max"), "200000 100000".into())]
        );
        let _ = std::fs::remove_dir_all(v1);
        let _ = std::fs::remove_dir_all(v2);
    }
}
