//! What the benchmark binaries share: signed ECS calls, bare Docker
//! create+start as the baseline, and small statistics.
use anyhow::{bail, Context, Result};
use berth_agent::client::{ApiClient, ECS_TARGET};
use berth_api::ecs::*;
use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{CreateContainerOptionsBuilder, RemoveContainerOptionsBuilder};
use std::collections::HashMap;
use std::time::{Duration, Instant};

const CALL: Duration = Duration::from_secs(30);

/// A client signing as the benchmark's account, in us-east-1.
pub fn client(endpoint: &str, access_key_id: &str, secret_access_key: &str) -> Result<ApiClient> {
    Ok(ApiClient::new(
        &[endpoint],
        berth_agent::client::Credentials {
            access_key_id: access_key_id.into(),
            secret_access_key: secret_access_key.into(),
            session_token: None,
            region: "us-east-1".into(),
        },
    )?)
}

/// One signed ECS call.
pub async fn ecs<Req: serde::Serialize, Resp: serde::de::DeserializeOwned>(
    c: &ApiClient,
    op: &str,
    req: &Req,
) -> Result<Resp> {
    Ok(c.call(ECS_TARGET, op, req, CALL).await?)
}

pub async fn docker() -> Result<bollard::Docker> {
    Ok(bollard::Docker::connect_with_socket(
        "/var/run/docker.sock",
        600,
        bollard::API_DEFAULT_VERSION,
    )?
    .negotiate_version()
    .await?)
}

/// The bare baseline: `count` create+start calls at once through the Engine
/// API, each container running `cmd` with a memory limit; answers the time
/// until every start returned, and the container ids.
pub async fn docker_run(
    d: &bollard::Docker,
    image: &str,
    cmd: &[String],
    memory_mib: i64,
    count: usize,
    tag: &str,
) -> Result<(Duration, Vec<String>)> {
    let start = Instant::now();
    let runs = (0..count).map(|i| {
        let name = format!("berth-bench-bare-{tag}-{i}");
        let body = ContainerCreateBody {
            image: Some(image.into()),
            cmd: Some(cmd.to_vec()),
            labels: Some(HashMap::from([(
                "berth.bench".to_string(),
                "bare".to_string(),
            )])),
            host_config: Some(HostConfig {
                memory: Some(memory_mib * 1024 * 1024),
                ..Default::default()
            }),
            ..Default::default()
        };
        async move {
            let opts = CreateContainerOptionsBuilder::default().name(&name).build();
            let id = d.create_container(Some(opts), body).await?.id;
            d.start_container(&id, None).await?;
            Ok::<_, bollard::errors::Error>(id)
        }
    });
    let ids = futures_util::future::try_join_all(runs).await?;
    Ok((start.elapsed(), ids))
}

pub async fn docker_remove(d: &bollard::Docker, ids: &[String]) {
    let removals = ids.iter().map(|id| async move {
        let opts = RemoveContainerOptionsBuilder::default().force(true).build();
        let _ = d.remove_container(id, Some(opts)).await;
    });
    futures_util::future::join_all(removals).await;
}

/// A process's resident set, in KiB.
pub fn rss_kib(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .context("no VmRSS")
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

pub fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Gives up on any one wait after this long, so every run ends.
pub const WAIT_LIMIT: Duration = Duration::from_secs(120);

/// Runs `count` tasks like `template` (in RunTask calls of at most 10) and
/// answers the time until DescribeTasks shows them all RUNNING.
pub async fn run_tasks(
    c: &ApiClient,
    template: &RunTaskRequest,
    count: usize,
) -> Result<(Duration, Vec<String>)> {
    let start = Instant::now();
    let mut calls = vec![];
    let mut left = count;
    while left > 0 {
        let n = left.min(10);
        left -= n;
        let req = RunTaskRequest {
            count: Some(n as i32),
            ..template.clone()
        };
        calls.push(async move { ecs::<_, RunTaskResponse>(c, "RunTask", &req).await });
    }
    let mut arns = vec![];
    for r in futures_util::future::join_all(calls).await {
        let r = r?;
        if let Some(f) = r.failures.as_ref().filter(|f| !f.is_empty()) {
            bail!("RunTask failures: {f:?}");
        }
        arns.extend(
            r.tasks
                .unwrap_or_default()
                .into_iter()
                .filter_map(|t| t.task_arn),
        );
    }
    loop {
        let mut running = 0;
        for t in describe(c, &arns).await? {
            match t.last_status.as_deref() {
                Some("RUNNING") => running += 1,
                Some("STOPPED") => bail!("task stopped: {:?}", t.stopped_reason),
                _ => {}
            }
        }
        if running == arns.len() {
            return Ok((start.elapsed(), arns));
        }
        if start.elapsed() > WAIT_LIMIT {
            bail!("tasks not RUNNING after {WAIT_LIMIT:?}");
        }
        // Often enough to see RUNNING within 2 ms (20 ms for a burst, whose
        // DescribeTasks answers are large), rarely enough not to take Docker's CPU.
        let every = if arns.len() > 1 { 20 } else { 2 };
        tokio::time::sleep(Duration::from_millis(every)).await;
    }
}

/// The tasks, described in pages of 100.
pub async fn describe(c: &ApiClient, arns: &[String]) -> Result<Vec<Task>> {
    let mut out = vec![];
    for chunk in arns.chunks(100) {
        let req = DescribeTasksRequest {
            tasks: Some(chunk.to_vec()),
            ..Default::default()
        };
        let d: DescribeTasksResponse = ecs(c, "DescribeTasks", &req).await?;
        out.extend(d.tasks.unwrap_or_default());
    }
    Ok(out)
}

/// Stops the tasks and waits until they are all STOPPED.
pub async fn stop_tasks(c: &ApiClient, arns: &[String]) -> Result<()> {
    for a in arns {
        let req = StopTaskRequest {
            task: Some(a.clone()),
            ..Default::default()
        };
        let _: StopTaskResponse = ecs(c, "StopTask", &req).await?;
    }
    let start = Instant::now();
    loop {
        let stopped = describe(c, arns)
            .await?
            .iter()
            .filter(|t| t.last_status.as_deref() == Some("STOPPED"))
            .count();
        if stopped == arns.len() {
            return Ok(());
        }
        if start.elapsed() > WAIT_LIMIT {
            bail!("tasks not STOPPED after {WAIT_LIMIT:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until the cluster `default` has a container instance, and a second
/// more for its agent's first poll.
pub async fn wait_for_instance(c: &ApiClient) -> Result<()> {
    let start = Instant::now();
    loop {
        let l: ListContainerInstancesResponse = ecs(
            c,
            "ListContainerInstances",
            &ListContainerInstancesRequest::default(),
        )
        .await?;
        if !l.container_instance_arns.unwrap_or_default().is_empty() {
            break;
        }
        if start.elapsed() > WAIT_LIMIT {
            bail!("no container instance registered");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    Ok(())
}
