//! Task-scoped Docker volumes (`berth-{taskId}-{volume}`, made by Docker when
//! a task's container binds them): they go when their task has no container
//! left on the host, as ECS deprovisions a task's volumes when it stops.
//! Shared volumes (named as the task definition names them) are never touched.
use crate::docker::DockerRuntime;
use std::collections::HashSet;

/// The task a volume name belongs to, for names `container_config::volume_name` makes.
pub fn task_of(name: &str) -> Option<&str> {
    let rest = name.strip_prefix("berth-")?;
    let (id, volume) = rest.split_at_checked(32)?;
    let is_id = id.bytes().all(|b| b.is_ascii_hexdigit());
    (is_id && volume.len() > 1 && volume.starts_with('-')).then_some(id)
}

/// The task volumes whose task has no container on the host and no runner here.
pub fn stale<'a>(
    volumes: &'a [String],
    on_host: &HashSet<String>,
    live: &HashSet<String>,
) -> Vec<&'a str> {
    volumes
        .iter()
        .filter(|v| task_of(v).is_some_and(|t| !on_host.contains(t) && !live.contains(t)))
        .map(String::as_str)
        .collect()
}

/// Removes the stale task volumes (Docker refuses one still in use); the names
/// removed. `on_host`: the tasks with a container on the host (`task_ids_on_host`).
pub async fn sweep(
    docker: &DockerRuntime,
    on_host: &HashSet<String>,
    live: &HashSet<String>,
) -> Vec<String> {
    let Ok(volumes) = docker.volume_names("berth-").await else {
        return vec![];
    };
    let mut removed = vec![];
    for name in stale(&volumes, on_host, live) {
        match docker.remove_volume(name).await {
            Ok(true) => removed.push(name.to_string()),
            Ok(false) => {}
            Err(e) => tracing::warn!(volume = %name, error = %e, "removing a task volume failed"),
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    const TASK: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn task_volume_names_give_their_task() {
        let name = crate::container_config::volume_name(TASK, "data");
        assert_eq!(task_of(&name), Some(TASK));
        assert_eq!(task_of(&format!("berth-{TASK}-a-b")), Some(TASK));
        assert_eq!(task_of(&format!("berth-{TASK}")), None);
        assert_eq!(task_of(&format!("berth-{TASK}-")), None);
        assert_eq!(task_of("berth-shared-data"), None);
        assert_eq!(task_of("data"), None);
        assert_eq!(task_of(&format!("berth-{}-x", "g".repeat(32))), None);
    }

    #[test]
    fn volumes_of_tasks_with_no_container_and_no_runner_are_stale() {
        let other = "fedcba9876543210fedcba9876543210";
        let running = "00000000000000000000000000000001";
        let volumes = vec![
            format!("berth-{TASK}-data"),
            format!("berth-{other}-cache"),
            format!("berth-{running}-data"),
            "shared-data".to_string(),
        ];
        let on_host = HashSet::from([other.to_string()]);
        let live = HashSet::from([running.to_string()]);
        assert_eq!(
            stale(&volumes, &on_host, &live),
            vec![format!("berth-{TASK}-data")]
        );
    }
}
