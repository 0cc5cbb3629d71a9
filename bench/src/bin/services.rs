//! Services against what a user has on the same host: a service going from 0
//! to N RUNNING tasks against N bare Docker Engine create+start calls; the
//! time from a service container's death to its replacement RUNNING; and the
//! time from an agent's death (kill -9, its containers killed) to its service
//! tasks RUNNING elsewhere. Prints one JSON object; bench/services.sh starts
//! berth (server with --instance-timeout 3, two agents) and formats it.
use anyhow::{bail, Result};
use berth_agent::client::ApiClient;
use berth_api::ecs::*;
use berth_bench::{docker_remove, ecs, median, ms};
use bollard::query_parameters::KillContainerOptionsBuilder;
use clap::Parser;
use std::collections::HashSet;
use std::time::{Duration, Instant};

#[derive(Parser)]
struct Args {
    #[arg(long)]
    endpoint: String,
    #[arg(long)]
    access_key_id: String,
    #[arg(long)]
    secret_access_key: String,
    #[arg(long)]
    image: String,
    /// The agent the heal measure kills, and its container instance.
    #[arg(long)]
    victim_agent_pid: u32,
    #[arg(long)]
    victim_instance_arn: String,
    #[arg(long, default_value_t = 100)]
    scale: usize,
    /// Rounds of the replacement measure.
    #[arg(long, default_value_t = 10)]
    rounds: usize,
}

/// Gives up on any one wait after this long, so every run ends.
const WAIT_LIMIT: Duration = Duration::from_secs(180);
const MEMORY_MIB: i64 = 8;
const SERVICE: &str = "bench";
/// How often the measures poll: fine enough for the figures, light on the CPU Docker needs.
const POLL: Duration = Duration::from_millis(20);

fn command() -> Vec<String> {
    vec!["sleep".into(), "3600".into()]
}

async fn describe_service(c: &ApiClient) -> Result<Service> {
    let req = DescribeServicesRequest {
        services: Some(vec![SERVICE.into()]),
        ..Default::default()
    };
    let d: DescribeServicesResponse = ecs(c, "DescribeServices", &req).await?;
    d.services
        .unwrap_or_default()
        .into_iter()
        .next()
        .ok_or_else(|| anyhow::anyhow!("service missing"))
}

/// The service's RUNNING tasks (arn, instance, container id).
async fn running_tasks(c: &ApiClient) -> Result<Vec<(String, String, String)>> {
    let req = ListTasksRequest {
        service_name: Some(SERVICE.into()),
        max_results: Some(100),
        ..Default::default()
    };
    let mut out = vec![];
    let mut token = None;
    loop {
        let l: ListTasksResponse = ecs(
            c,
            "ListTasks",
            &ListTasksRequest {
                next_token: token.clone(),
                ..req.clone()
            },
        )
        .await?;
        let arns = l.task_arns.unwrap_or_default();
        if !arns.is_empty() {
            let d: DescribeTasksResponse = ecs(
                c,
                "DescribeTasks",
                &DescribeTasksRequest {
                    tasks: Some(arns),
                    ..Default::default()
                },
            )
            .await?;
            for t in d.tasks.unwrap_or_default() {
                if t.last_status.as_deref() == Some("RUNNING") {
                    let cid = t
                        .containers
                        .iter()
                        .flatten()
                        .find_map(|c| c.runtime_id.clone())
                        .unwrap_or_default();
                    out.push((
                        t.task_arn.unwrap_or_default(),
                        t.container_instance_arn.unwrap_or_default(),
                        cid,
                    ));
                }
            }
        }
        token = l.next_token;
        if token.is_none() {
            return Ok(out);
        }
    }
}

/// Waits until `check` holds, polling; answers how long it took from `since`.
async fn until<F, Fut>(since: Instant, what: &str, mut check: F) -> Result<Duration>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<bool>>,
{
    loop {
        if check().await? {
            return Ok(since.elapsed());
        }
        if since.elapsed() > WAIT_LIMIT {
            bail!("{what}: not done after {WAIT_LIMIT:?}");
        }
        tokio::time::sleep(POLL).await;
    }
}

async fn set_desired(c: &ApiClient, n: usize) -> Result<()> {
    let req = UpdateServiceRequest {
        service: Some(SERVICE.into()),
        desired_count: Some(n as i32),
        ..Default::default()
    };
    let _: UpdateServiceResponse = ecs(c, "UpdateService", &req).await?;
    Ok(())
}

/// The service at `n` RUNNING, with one deployment.
async fn at(c: &ApiClient, n: usize) -> Result<bool> {
    let s = describe_service(c).await?;
    Ok(s.running_count == Some(n as i32)
        && s.pending_count == Some(0)
        && s.deployments.map_or(0, |d| d.len()) == 1)
}

/// The service at `n` and no other task left on the host (stopped copies gone from Docker's work).
async fn settled(c: &ApiClient, n: usize) -> Result<bool> {
    if !at(c, n).await? {
        return Ok(false);
    }
    let d: DescribeClustersResponse =
        ecs(c, "DescribeClusters", &DescribeClustersRequest::default()).await?;
    let cl = d.clusters.unwrap_or_default();
    Ok(cl.first().is_some_and(|c| {
        c.running_tasks_count.unwrap_or(0) + c.pending_tasks_count.unwrap_or(0) == n as i32
    }))
}

async fn docker_run(
    d: &bollard::Docker,
    image: &str,
    count: usize,
) -> Result<(Duration, Vec<String>)> {
    berth_bench::docker_run(d, image, &command(), MEMORY_MIB, count, "svc").await
}

async fn kill(d: &bollard::Docker, id: &str) -> Result<()> {
    let opts = KillContainerOptionsBuilder::default()
        .signal("KILL")
        .build();
    d.kill_container(id, Some(opts)).await?;
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let c = berth_bench::client(&args.endpoint, &args.access_key_id, &args.secret_access_key)?;
    let docker = berth_bench::docker().await?;
    let td = RegisterTaskDefinitionRequest {
        family: Some("bench-svc".into()),
        container_definitions: Some(vec![ContainerDefinition {
            name: Some("sleep".into()),
            image: Some(args.image.clone()),
            memory: Some(MEMORY_MIB as i32),
            command: Some(command()),
            stop_timeout: Some(1),
            ..Default::default()
        }]),
        ..Default::default()
    };
    let _: RegisterTaskDefinitionResponse = ecs(&c, "RegisterTaskDefinition", &td).await?;
    let _: CreateClusterResponse =
        ecs(&c, "CreateCluster", &CreateClusterRequest::default()).await?;
    let agents = until(Instant::now(), "two connected agents", || async {
        let l: ListContainerInstancesResponse = ecs(
            &c,
            "ListContainerInstances",
            &ListContainerInstancesRequest {
                filter: Some("agentConnected == true".into()),
                ..Default::default()
            },
        )
        .await?;
        Ok(l.container_instance_arns.unwrap_or_default().len() == 2)
    });
    agents.await?;
    let create = CreateServiceRequest {
        service_name: Some(SERVICE.into()),
        task_definition: Some("bench-svc".into()),
        desired_count: Some(0),
        ..Default::default()
    };
    let _: CreateServiceResponse = ecs(&c, "CreateService", &create).await?;

    // Warm-up: the first containers on a host pay for things no later ones do.
    let (_, ids) = docker_run(&docker, &args.image, 2).await?;
    docker_remove(&docker, &ids).await;
    set_desired(&c, 2).await?;
    until(Instant::now(), "warm-up", || at(&c, 2)).await?;
    set_desired(&c, 0).await?;
    until(Instant::now(), "warm-up scale-in", || settled(&c, 0)).await?;

    // Scale-out: bare Docker first, then the service, same count.
    let (bare, ids) = docker_run(&docker, &args.image, args.scale).await?;
    docker_remove(&docker, &ids).await;
    let start = Instant::now();
    set_desired(&c, args.scale).await?;
    let scale_out = until(start, "scale-out", || at(&c, args.scale)).await?;

    // Replacement: kill one service container at a time.
    set_desired(&c, 10).await?;
    until(Instant::now(), "scale-in to 10", || settled(&c, 10)).await?;
    let mut replacement = vec![];
    for _ in 0..args.rounds {
        let before = running_tasks(&c).await?;
        let (victim, _, cid) = before[0].clone();
        let start = Instant::now();
        kill(&docker, &cid).await?;
        let t = until(start, "replacement", || {
            let (c, victim) = (&c, &victim);
            async move {
                let now = running_tasks(c).await?;
                Ok(now.len() == 10 && !now.iter().any(|(a, _, _)| a == victim))
            }
        })
        .await?;
        replacement.push(ms(t));
        until(Instant::now(), "steady after replacement", || {
            settled(&c, 10)
        })
        .await?;
    }

    // Heal: kill -9 the victim agent and its containers; time until all 10 run on the other.
    let tasks = running_tasks(&c).await?;
    let instances: HashSet<&String> = tasks.iter().map(|(_, i, _)| i).collect();
    if instances.len() != 2 {
        bail!("expected the service on both agents, got {instances:?}");
    }
    let victim_instance = &args.victim_instance_arn;
    let start = Instant::now();
    std::process::Command::new("kill")
        .args(["-9", &args.victim_agent_pid.to_string()])
        .status()?;
    for (_, i, cid) in &tasks {
        if i == victim_instance {
            let _ = kill(&docker, cid).await;
        }
    }
    let heal = until(start, "heal", || {
        let c = &c;
        async move {
            let now = running_tasks(c).await?;
            Ok(now.len() == 10 && now.iter().all(|(_, i, _)| i != victim_instance))
        }
    })
    .await?;

    let out = serde_json::json!({
        "scale": args.scale,
        "scale_out_berth_ms": ms(scale_out),
        "scale_out_bare_ms": ms(bare),
        "scale_out_ratio": scale_out.as_secs_f64() / bare.as_secs_f64(),
        "rounds": args.rounds,
        "replacement_median_ms": median(&mut replacement.clone()),
        "replacement_max_ms": replacement.iter().cloned().fold(0.0, f64::max),
        "replacement_all_ms": replacement.clone(),
        "heal_ms": ms(heal),
    });
    println!("{out}");
    set_desired(&c, 0).await?;
    Ok(())
}
