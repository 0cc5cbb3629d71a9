//! `berth logs`: a task's container output, read back from the Docker Engine
//! on the host that runs it (the agent keeps containers' json-file logs).
use crate::container_config::{LABEL_CONTAINER_NAME, LABEL_TASK_ARN};
use crate::docker::DockerRuntime;
use bollard::container::LogOutput;
use bollard::query_parameters::{ListContainersOptionsBuilder, LogsOptionsBuilder};
use futures_util::StreamExt;
use std::collections::HashMap;
use std::io::Write;

/// The task id a task ARN or bare id names.
pub fn task_id(task: &str) -> &str {
    task.rsplit('/').next().unwrap_or(task)
}

/// Writes the logs of every container of `task` (optionally only `container`)
/// to `out`, each line prefixed with its container's name when there are several.
pub async fn write_logs(
    docker: &DockerRuntime,
    task: &str,
    container: Option<&str>,
    follow: bool,
    out: &mut (dyn Write + Send),
) -> Result<usize, String> {
    let id = task_id(task);
    let filters = HashMap::from([("name".to_string(), vec![format!("berth-{id}-")])]);
    let opts = ListContainersOptionsBuilder::default()
        .all(true)
        .filters(&filters)
        .build();
    let list = docker
        .inner()
        .list_containers(Some(opts))
        .await
        .map_err(|e| crate::docker::message(&e))?;
    let mut found: Vec<(String, String)> = list
        .into_iter()
        .filter_map(|c| {
            let labels = c.labels.unwrap_or_default();
            let arn = labels.get(LABEL_TASK_ARN)?;
            (task_id(arn) == id).then_some(())?;
            let name = labels.get(LABEL_CONTAINER_NAME)?.clone();
            Some((name, c.id?))
        })
        .filter(|(name, _)| container.is_none_or(|c| c == name))
        .collect();
    found.sort();
    let prefix = found.len() > 1;
    let streams = found.iter().map(|(name, cid)| {
        let opts = LogsOptionsBuilder::default()
            .stdout(true)
            .stderr(true)
            .follow(follow)
            .build();
        docker
            .inner()
            .logs(cid, Some(opts))
            .map(move |chunk| (name.clone(), chunk))
    });
    let mut merged = futures_util::stream::select_all(streams.map(Box::pin));
    while let Some((name, chunk)) = merged.next().await {
        let bytes = match chunk {
            Ok(LogOutput::StdOut { message } | LogOutput::StdErr { message })
            | Ok(LogOutput::Console { message }) => message,
            Ok(_) => continue,
            Err(e) => return Err(crate::docker::message(&e)),
        };
        let written = if prefix {
            out.write_all(format!("[{name}] ").as_bytes())
                .and_then(|_| out.write_all(&bytes))
        } else {
            out.write_all(&bytes)
        };
        written
            .and_then(|_| out.flush())
            .map_err(|e| e.to_string())?;
    }
    Ok(found.len())
}
