//! What the benchmark binaries share: signed ECS calls, bare Docker
//! create+start as the baseline, and small statistics.
use anyhow::{Context, Result};
use berth_agent::client::{ApiClient, ECS_TARGET};
use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{CreateContainerOptionsBuilder, RemoveContainerOptionsBuilder};
use std::collections::HashMap;
use std::time::{Duration, Instant};

const CALL: Duration = Duration::from_secs(30);

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
