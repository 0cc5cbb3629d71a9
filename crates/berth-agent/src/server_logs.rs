//! `berth logs` from any machine: a task's awslogs containers read back
//! from the server's Logs API (GetLogEvents, in the stream ECS names), as
//! the caller's own key.
use crate::awslogs::options::Awslogs;
use crate::client::{ApiClient, ClientError, ECS_TARGET};
use berth_api::ecs::{
    DescribeTaskDefinitionRequest, DescribeTaskDefinitionResponse, DescribeTasksRequest,
    DescribeTasksResponse, Task,
};
use berth_api::logs::{GetLogEventsRequest, GetLogEventsResponse, TARGET_PREFIX};
use std::io::Write;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(15);
const FOLLOW_EVERY: Duration = Duration::from_secs(1);

/// One container's log in the server: its name, group and stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    pub container: String,
    pub group: String,
    pub stream: String,
    pub region: String,
}

/// Where the task's awslogs containers' lines are (containers of other drivers
/// are left out), from the task and its definition.
pub fn sources(task: &Task, definition: &berth_api::ecs::TaskDefinition) -> Vec<Source> {
    let arn = task.task_arn.as_deref().unwrap_or_default();
    let task_id = crate::logs::task_id(arn);
    let region = berth_model::arn::parse(arn).map(|a| a.region);
    let region = region.as_deref().unwrap_or("us-east-1");
    definition
        .container_definitions
        .iter()
        .flatten()
        .filter_map(|def| {
            let options = crate::container_config::awslogs_options(def)?;
            let a = Awslogs::parse(&options, region).ok()?;
            let name = def.name.clone().unwrap_or_default();
            let runtime_id = task
                .containers
                .iter()
                .flatten()
                .find(|c| c.name.as_deref() == Some(name.as_str()))
                .and_then(|c| c.runtime_id.clone())
                .unwrap_or_default();
            Some(Source {
                stream: a.stream_name(&name, task_id, &runtime_id),
                group: a.group,
                region: a.region,
                container: name,
            })
        })
        .collect()
}

/// The cluster a task ARN names (`arn:…:task/CLUSTER/ID`); none for a bare id.
pub fn cluster_of(task: &str) -> Option<String> {
    let arn = berth_model::arn::parse(task)?;
    Some(arn.resource.split_once('/')?.0.to_string())
}

fn err(e: ClientError) -> String {
    e.to_string()
}

/// The task and its definition, as the caller sees them.
pub async fn describe(
    client: &ApiClient,
    cluster: &str,
    task: &str,
) -> Result<(Task, berth_api::ecs::TaskDefinition), String> {
    let out: DescribeTasksResponse = client
        .call(
            ECS_TARGET,
            "DescribeTasks",
            &DescribeTasksRequest {
                cluster: Some(cluster.to_string()),
                tasks: Some(vec![task.to_string()]),
                include: None,
            },
            TIMEOUT,
        )
        .await
        .map_err(err)?;
    let t = out
        .tasks
        .unwrap_or_default()
        .pop()
        .ok_or_else(|| format!("no task {task} in cluster {cluster}"))?;
    let td: DescribeTaskDefinitionResponse = client
        .call(
            ECS_TARGET,
            "DescribeTaskDefinition",
            &DescribeTaskDefinitionRequest {
                task_definition: t.task_definition_arn.clone(),
                include: None,
            },
            TIMEOUT,
        )
        .await
        .map_err(err)?;
    let definition = td.task_definition.ok_or("the task's definition is gone")?;
    Ok((t, definition))
}

/// Prints the sources' lines (prefixed with the container's name when there
/// are several); with `follow`, keeps reading until the task has stopped.
pub async fn write(
    client: &ApiClient,
    cluster: &str,
    task_arn: &str,
    sources: &[Source],
    follow: bool,
    out: &mut (dyn Write + Send),
) -> Result<(), String> {
    let mut tokens: Vec<Option<String>> = vec![None; sources.len()];
    let prefix = sources.len() > 1;
    loop {
        // Whether the task had stopped before this round: its last lines are in.
        let stopped = !follow || task_stopped(client, cluster, task_arn).await;
        for (s, token) in sources.iter().zip(tokens.iter_mut()) {
            let c = client.in_region(&s.region);
            // Bounded: a stream ends where its forward token comes back.
            for _ in 0..10_000 {
                let page: Result<GetLogEventsResponse, _> = c
                    .call_service(
                        "logs",
                        TARGET_PREFIX,
                        "GetLogEvents",
                        &GetLogEventsRequest {
                            log_group_name: Some(s.group.clone()),
                            log_stream_name: Some(s.stream.clone()),
                            next_token: token.clone(),
                            start_from_head: Some(true),
                            ..Default::default()
                        },
                        TIMEOUT,
                    )
                    .await;
                let page = match page {
                    Ok(p) => p,
                    // Not made yet (the task is still starting).
                    Err(ClientError::Api { code, .. }) if code == "ResourceNotFoundException" => {
                        break
                    }
                    Err(e) => return Err(e.to_string()),
                };
                for e in page.events.unwrap_or_default() {
                    let m = e.message.unwrap_or_default();
                    let line = if prefix {
                        format!("[{}] {m}", s.container)
                    } else {
                        m
                    };
                    writeln!(out, "{}", line.trim_end_matches('\n')).map_err(|e| e.to_string())?;
                }
                let next = page.next_forward_token;
                if next.is_none() || next == *token {
                    break;
                }
                *token = next;
            }
        }
        out.flush().map_err(|e| e.to_string())?;
        if stopped {
            return Ok(());
        }
        tokio::time::sleep(FOLLOW_EVERY).await;
    }
}

async fn task_stopped(client: &ApiClient, cluster: &str, task_arn: &str) -> bool {
    describe(client, cluster, task_arn)
        .await
        .map_or(true, |(t, _)| t.last_status.as_deref() == Some("STOPPED"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_api::ecs::{Container, ContainerDefinition, LogConfiguration, TaskDefinition};

    #[test]
    fn a_task_arn_names_its_cluster() {
        let arn = "arn:aws:ecs:eu-west-1:111111111111:task/prod/abc123";
        assert_eq!(cluster_of(arn).as_deref(), Some("prod"));
        assert_eq!(cluster_of("abc123"), None);
    }

    #[test]
    fn streams_are_named_as_the_agent_names_them() {
        let awslogs = |prefix: Option<&str>| {
            let mut o: std::collections::BTreeMap<String, String> =
                [("awslogs-group".to_string(), "/ecs/web".to_string())].into();
            if let Some(p) = prefix {
                o.insert("awslogs-stream-prefix".into(), p.into());
            }
            Some(LogConfiguration {
                log_driver: Some("awslogs".into()),
                options: Some(o),
                secret_options: None,
            })
        };
        let def = |name: &str, log| ContainerDefinition {
            name: Some(name.into()),
            log_configuration: log,
            ..Default::default()
        };
        let td = TaskDefinition {
            container_definitions: Some(vec![
                def("web", awslogs(Some("ecs"))),
                def("sidecar", awslogs(None)),
                def("plain", None),
            ]),
            ..Default::default()
        };
        let task = Task {
            task_arn: Some("arn:aws:ecs:eu-west-1:111111111111:task/prod/abc123".into()),
            containers: Some(vec![Container {
                name: Some("sidecar".into()),
                runtime_id: Some("c0ffee".into()),
                ..Default::default()
            }]),
            ..Default::default()
        };
        let got = sources(&task, &td);
        assert_eq!(
            got.iter()
                .map(|s| (s.container.as_str(), s.stream.as_str(), s.region.as_str()))
                .collect::<Vec<_>>(),
            [
                ("web", "ecs/web/abc123", "eu-west-1"),
                ("sidecar", "c0ffee", "eu-west-1")
            ]
        );
    }
}
