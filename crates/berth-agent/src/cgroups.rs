//! Task-level CPU and memory limits: a cgroup per task that Docker puts the
//! task's containers under (HostConfig.CgroupParent), as the ECS agent does
//! for `task-cpu-mem-limit`. cgroup v1 (cpu, memory) and v2 (unified) both.
use std::path::{Path, PathBuf};
use std::time::Duration;

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

/// Every directory a task's cgroup has: one per v1 controller (Docker makes it in
/// each, not only cpu and memory), or the one v2 directory.
fn task_dirs(root: &Path, task_id: &str) -> Vec<PathBuf> {
    let rel = parent(task_id);
    let rel = rel.trim_start_matches('/');
    if is_v2(root) {
        return vec![root.join(rel)];
    }
    controllers(root).into_iter().map(|c| c.join(rel)).collect()
}

/// The v1 controllers' (and a hybrid host's unified) hierarchies under `root`.
fn controllers(root: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(root)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect()
}

/// Removes a cgroup directory and the (empty) ones under it, deepest first:
/// containers' own cgroups that the runtime left behind go with their task's.
fn remove_tree(dir: &Path) {
    for child in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = child.path();
        if child.file_type().is_ok_and(|t| t.is_dir()) {
            remove_tree(&p);
        }
    }
    // Fails harmlessly while a process is still inside; the next sweep retries.
    let _ = std::fs::remove_dir(dir);
}

/// Removes the task's (empty) cgroups once its containers are gone.
pub fn remove(task_id: &str) {
    remove_in(Path::new(ROOT), task_id);
}

fn remove_in(root: &Path, task_id: &str) {
    for d in task_dirs(root, task_id) {
        remove_tree(&d);
    }
}

/// Task cgroups no live task holds: a task is live when a runner or a container on the
/// host names it, and a cgroup younger than `grace` may belong to a task another agent
/// of the host is just starting.
pub fn stale(
    found: &[(String, Duration)],
    live: impl Fn(&str) -> bool,
    grace: Duration,
) -> Vec<String> {
    found
        .iter()
        .filter(|(id, age)| *age >= grace && !live(id))
        .map(|(id, _)| id.clone())
        .collect()
}

/// The task cgroups on the host, each with the age of its youngest directory.
fn found_in(root: &Path) -> Vec<(String, Duration)> {
    let hierarchies = if is_v2(root) {
        vec![root.to_path_buf()]
    } else {
        controllers(root)
    };
    let mut found: std::collections::BTreeMap<String, Duration> = Default::default();
    for h in hierarchies {
        for e in std::fs::read_dir(h.join("berth"))
            .into_iter()
            .flatten()
            .flatten()
        {
            if !e.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let age = e
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .unwrap_or_default();
            let id = e.file_name().to_string_lossy().into_owned();
            let slot = found.entry(id).or_insert(age);
            *slot = (*slot).min(age);
        }
    }
    found.into_iter().collect()
}

/// Removes the task cgroups that `stale` finds (what a killed agent left); the ids removed.
pub fn sweep(live: impl Fn(&str) -> bool) -> Vec<String> {
    sweep_in(Path::new(ROOT), live, SWEEP_GRACE)
}

/// How old a task cgroup no one names must be before a sweep takes it.
pub const SWEEP_GRACE: Duration = Duration::from_secs(60);

fn sweep_in(root: &Path, live: impl Fn(&str) -> bool, grace: Duration) -> Vec<String> {
    let gone = stale(&found_in(root), live, grace);
    for id in &gone {
        remove_in(root, id);
    }
    gone
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

    #[test]
    fn a_tasks_cgroups_go_in_every_controller_with_what_is_under_them() {
        let root = std::env::temp_dir().join(format!("berth-cg-rm-{}", std::process::id()));
        for c in ["cpu", "memory", "blkio", "pids", "systemd"] {
            std::fs::create_dir_all(root.join(c).join("berth/t1/container-a")).unwrap();
            std::fs::create_dir_all(root.join(c).join("berth/t2")).unwrap();
        }
        remove_in(&root, "t1");
        for c in ["cpu", "memory", "blkio", "pids", "systemd"] {
            assert!(!root.join(c).join("berth/t1").exists(), "{c} kept t1");
            assert!(root.join(c).join("berth/t2").exists(), "{c} lost t2");
        }
        let _ = std::fs::remove_dir_all(root);
    }

    #[test]
    fn a_sweep_takes_old_cgroups_no_task_names() {
        let found = vec![
            ("live".to_string(), Duration::from_secs(600)),
            ("dead".to_string(), Duration::from_secs(600)),
            ("new".to_string(), Duration::from_secs(5)),
        ];
        let grace = Duration::from_secs(60);
        assert_eq!(
            stale(&found, |id| id == "live", grace),
            vec!["dead".to_string()]
        );

        let root = std::env::temp_dir().join(format!("berth-cg-sweep-{}", std::process::id()));
        for c in ["blkio", "pids"] {
            std::fs::create_dir_all(root.join(c).join("berth/dead")).unwrap();
            std::fs::create_dir_all(root.join(c).join("berth/live")).unwrap();
        }
        // Just made: within the grace nothing is taken; with none, the dead one goes.
        assert!(sweep_in(&root, |id| id == "live", grace).is_empty());
        assert_eq!(
            sweep_in(&root, |id| id == "live", Duration::ZERO),
            vec!["dead".to_string()]
        );
        assert!(!root.join("blkio/berth/dead").exists() && !root.join("pids/berth/dead").exists());
        assert!(root.join("blkio/berth/live").exists());
        let _ = std::fs::remove_dir_all(root);
    }
}
