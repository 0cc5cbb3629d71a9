//! Measures for several servers on etcd (bench/ha.sh runs them):
//! - `agents`: simulated container instances that register and keep a poll
//!   open, so RunTask has somewhere to place (they never start anything);
//! - `notify`: thousands of simulated agents polling across the servers, and
//!   how long after a StartTask is acknowledged its agent's poll answers with it;
//! - `failover`: kill -9 of the leading server to a stopped service task
//!   replaced by the next leader;
//! - `etcd-put`: etcd's own Put rate at N clients (what `etcdctl put` sends),
//!   the floor under every berth write.
//!
//! Each prints one JSON line.
use anyhow::{bail, Context, Result};
use berth_agent::client::{ApiClient, Credentials};
use berth_api::agent::{PollRequest, PollResponse, POLL, TARGET_PREFIX};
use berth_api::ecs::*;
use berth_bench::{ecs, median, ms};
use clap::{Parser, Subcommand};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Parser)]
struct Args {
    /// The servers, comma-separated.
    #[arg(long, value_delimiter = ',')]
    endpoints: Vec<String>,
    #[arg(long, default_value = "AKIABENCH00000000000")]
    access_key_id: String,
    #[arg(long, default_value = "bench-secret")]
    secret_access_key: String,
    #[arg(long, default_value = "bench")]
    cluster: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    Agents {
        #[arg(long, default_value_t = 20)]
        count: usize,
        /// Stop after this long, so every run ends.
        #[arg(long, default_value_t = 600)]
        seconds: u64,
    },
    Notify {
        #[arg(long, default_value_t = 5000)]
        count: usize,
        /// Task changes measured, one after another.
        #[arg(long, default_value_t = 300)]
        changes: usize,
    },
    Failover {
        /// The leading server's pid (the script reads it from the leader key).
        #[arg(long)]
        leader_pid: i32,
        /// Endpoint of a server that is not the leader, for the calls after the kill.
        #[arg(long)]
        survivor: String,
        #[arg(long, default_value = "kept")]
        service: String,
        /// The service's desired count (made on the first round, of family `bench`).
        #[arg(long, default_value_t = 3)]
        desired: usize,
    },
    EtcdPut {
        #[arg(long, default_value_t = 1)]
        clients: usize,
        #[arg(long, default_value_t = 3.0)]
        seconds: f64,
    },
}

const WAIT_LIMIT: Duration = Duration::from_secs(120);

fn client(endpoints: &[String], a: &Args) -> Result<ApiClient> {
    Ok(ApiClient::new(
        endpoints,
        Credentials {
            access_key_id: a.access_key_id.clone(),
            secret_access_key: a.secret_access_key.clone(),
            session_token: None,
            region: "us-east-1".into(),
        },
    )?)
}

/// Registers simulated instance `i`, with room for any number of small tasks.
async fn register(c: &ApiClient, cluster: &str, i: usize) -> Result<String> {
    let int = |name: &str, v: i32| Resource {
        name: Some(name.into()),
        r#type: Some("INTEGER".into()),
        integer_value: Some(v),
        ..Default::default()
    };
    let identity = serde_json::json!({
        "instanceId": format!("i-{:017x}", 0xbe00000 + i),
        "availabilityZone": "us-east-1a",
        "region": "us-east-1",
        "instanceType": "simulated",
    });
    let req = RegisterContainerInstanceRequest {
        cluster: Some(cluster.into()),
        instance_identity_document: Some(identity.to_string()),
        total_resources: Some(vec![int("CPU", 1 << 30), int("MEMORY", 1 << 30)]),
        ..Default::default()
    };
    let r: RegisterContainerInstanceResponse = ecs(c, "RegisterContainerInstance", &req).await?;
    r.container_instance
        .and_then(|ci| ci.container_instance_arn)
        .context("no container instance ARN")
}

/// Task ARNs seen by the simulated agents, and when first.
type Seen = Arc<Mutex<HashMap<String, Instant>>>;

/// One simulated agent: polls until `until`, noting each task when it first appears.
async fn poll_loop(c: ApiClient, cluster: String, arn: String, until: Instant, seen: Seen) {
    let mut known = None;
    while Instant::now() < until {
        let req = PollRequest {
            cluster: cluster.clone(),
            container_instance_arn: arn.clone(),
            known: known.clone(),
            wait_seconds: Some(20),
        };
        let answer: Result<PollResponse, _> = c
            .call(TARGET_PREFIX, POLL, &req, Duration::from_secs(40))
            .await;
        match answer {
            Ok(r) => {
                let now = Instant::now();
                let mut seen = seen.lock().unwrap_or_else(|p| p.into_inner());
                for t in &r.tasks {
                    if let Some(a) = &t.task.task_arn {
                        seen.entry(a.clone()).or_insert(now);
                    }
                }
                known = Some(r.fingerprint);
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// Registers `count` agents, agent i on server i (round the list), and starts their polls.
async fn start_agents(a: &Args, count: usize, until: Instant, seen: &Seen) -> Result<Vec<String>> {
    let first = client(&a.endpoints, a)?;
    let _: CreateClusterResponse = ecs(
        &first,
        "CreateCluster",
        &CreateClusterRequest {
            cluster_name: Some(a.cluster.clone()),
            ..Default::default()
        },
    )
    .await?;
    // One client per server, each listing every server from its own first.
    let clients: Vec<ApiClient> = (0..a.endpoints.len())
        .map(|s| {
            let mut order = a.endpoints.clone();
            order.rotate_left(s);
            client(&order, a)
        })
        .collect::<Result<_>>()?;
    let mut arns = Vec::with_capacity(count);
    for chunk in (0..count).collect::<Vec<_>>().chunks(64) {
        let registered = futures_util::future::join_all(
            chunk
                .iter()
                .map(|&i| register(&clients[i % clients.len()], &a.cluster, i)),
        )
        .await;
        for r in registered {
            arns.push(r?);
        }
    }
    for (i, arn) in arns.iter().enumerate() {
        tokio::spawn(poll_loop(
            clients[i % clients.len()].clone(),
            a.cluster.clone(),
            arn.clone(),
            until,
            seen.clone(),
        ));
    }
    Ok(arns)
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    sorted
        .get(((sorted.len() as f64 * p) as usize).min(sorted.len().saturating_sub(1)))
        .copied()
        .unwrap_or(0.0)
}

async fn wait_until<F, Fut>(what: &str, mut check: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<bool>>,
{
    let began = Instant::now();
    while began.elapsed() < WAIT_LIMIT {
        if check().await.unwrap_or(false) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    bail!("gave up waiting for {what}")
}

async fn notify(a: &Args, count: usize, changes: usize) -> Result<()> {
    let seen: Seen = Default::default();
    let until = Instant::now() + Duration::from_secs(900);
    let began = Instant::now();
    let arns = start_agents(a, count, until, &seen).await?;
    let registered_in = began.elapsed();
    // Every agent connected, as each server sees it.
    let c = client(&a.endpoints, a)?;
    wait_until("every agent connected", || async {
        let mut connected = 0;
        let mut token = None;
        loop {
            let page: ListContainerInstancesResponse = ecs(
                &c,
                "ListContainerInstances",
                &ListContainerInstancesRequest {
                    cluster: Some(a.cluster.clone()),
                    next_token: token.clone(),
                    max_results: Some(100),
                    ..Default::default()
                },
            )
            .await?;
            let page_arns = page.container_instance_arns.unwrap_or_default();
            let d: DescribeContainerInstancesResponse = ecs(
                &c,
                "DescribeContainerInstances",
                &DescribeContainerInstancesRequest {
                    cluster: Some(a.cluster.clone()),
                    container_instances: Some(page_arns),
                    ..Default::default()
                },
            )
            .await?;
            connected += d
                .container_instances
                .unwrap_or_default()
                .iter()
                .filter(|ci| ci.agent_connected == Some(true))
                .count();
            token = page.next_token;
            if token.is_none() {
                break;
            }
        }
        Ok(connected == count)
    })
    .await?;
    let family = "notify";
    let _: RegisterTaskDefinitionResponse = ecs(
        &c,
        "RegisterTaskDefinition",
        &RegisterTaskDefinitionRequest {
            family: Some(family.into()),
            container_definitions: Some(vec![ContainerDefinition {
                name: Some("app".into()),
                image: Some("busybox".into()),
                memory: Some(8),
                ..Default::default()
            }]),
            ..Default::default()
        },
    )
    .await?;
    // Each change goes through a server chosen in turn; its agent may poll any.
    let callers: Vec<ApiClient> = a
        .endpoints
        .iter()
        .map(|e| client(std::slice::from_ref(e), a))
        .collect::<Result<_>>()?;
    let mut after_ack = vec![];
    let mut after_send = vec![];
    let mut missed = 0;
    for n in 0..changes {
        let target = &arns[(n * 7919) % arns.len()];
        let sent = Instant::now();
        let r: StartTaskResponse = ecs(
            &callers[n % callers.len()],
            "StartTask",
            &StartTaskRequest {
                cluster: Some(a.cluster.clone()),
                task_definition: Some(family.into()),
                container_instances: Some(vec![target.clone()]),
                ..Default::default()
            },
        )
        .await?;
        let acked = Instant::now();
        let failures = format!("{:?}", r.failures);
        let arn = r
            .tasks
            .unwrap_or_default()
            .into_iter()
            .find_map(|t| t.task_arn)
            .with_context(|| format!("StartTask started nothing: {failures}"))?;
        let deadline = acked + Duration::from_secs(10);
        let at = loop {
            if let Some(at) = seen
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(&arn)
                .copied()
            {
                break Some(at);
            }
            if Instant::now() > deadline {
                break None;
            }
            tokio::time::sleep(Duration::from_micros(200)).await;
        };
        match at {
            Some(at) => {
                after_ack.push(ms(at.saturating_duration_since(acked)));
                after_send.push(ms(at.saturating_duration_since(sent)));
            }
            None => missed += 1,
        }
    }
    after_ack.sort_by(f64::total_cmp);
    after_send.sort_by(f64::total_cmp);
    let out = serde_json::json!({
        "measure": "notify",
        "agents": count,
        "servers": a.endpoints.len(),
        "registered_s": registered_in.as_secs_f64(),
        "changes": changes,
        "missed": missed,
        "after_ack_p50_ms": pct(&after_ack, 0.5),
        "after_ack_p99_ms": pct(&after_ack, 0.99),
        "after_send_p50_ms": pct(&after_send, 0.5),
        "after_send_p99_ms": pct(&after_send, 0.99),
    });
    println!("{out}");
    Ok(())
}

async fn running_tasks(c: &ApiClient, cluster: &str, service: &str) -> Result<Vec<String>> {
    let r: ListTasksResponse = ecs(
        c,
        "ListTasks",
        &ListTasksRequest {
            cluster: Some(cluster.into()),
            service_name: Some(service.into()),
            desired_status: Some("RUNNING".into()),
            ..Default::default()
        },
    )
    .await?;
    Ok(r.task_arns.unwrap_or_default())
}

async fn failover(
    a: &Args,
    leader_pid: i32,
    survivor: &str,
    service: &str,
    desired: usize,
) -> Result<()> {
    let c = client(&[survivor.to_string()], a)?;
    // Made on the first round; later rounds find it (and CreateService refuses again).
    let _ = ecs::<_, CreateServiceResponse>(
        &c,
        "CreateService",
        &CreateServiceRequest {
            cluster: Some(a.cluster.clone()),
            service_name: Some(service.into()),
            task_definition: Some("bench".into()),
            desired_count: Some(desired as i32),
            ..Default::default()
        },
    )
    .await;
    wait_until("the service at its desired count", || async {
        Ok(running_tasks(&c, &a.cluster, service).await?.len() == desired)
    })
    .await?;
    let before = running_tasks(&c, &a.cluster, service).await?;
    let Some(victim) = before.first().cloned() else {
        bail!("the service has no task to replace");
    };
    let killed = Instant::now();
    // SAFETY: kill(2) takes a pid and a signal number; nothing is borrowed.
    if unsafe { libc::kill(leader_pid, libc::SIGKILL) } != 0 {
        bail!("kill -9 {leader_pid} failed");
    }
    let _: StopTaskResponse = ecs(
        &c,
        "StopTask",
        &StopTaskRequest {
            cluster: Some(a.cluster.clone()),
            task: Some(victim.clone()),
            reason: Some("failover benchmark".into()),
        },
    )
    .await?;
    let stopped = killed.elapsed();
    let want = before.len();
    wait_until("the replacement", || async {
        let now = running_tasks(&c, &a.cluster, service).await?;
        Ok(now.len() == want && !now.contains(&victim))
    })
    .await?;
    let out = serde_json::json!({
        "measure": "failover",
        "seconds": killed.elapsed().as_secs_f64(),
        "stop_acknowledged_s": stopped.as_secs_f64(),
    });
    println!("{out}");
    Ok(())
}

async fn etcd_put(a: &Args, clients: usize, seconds: f64) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let began = Instant::now();
    let mut runs = vec![];
    for w in 0..clients {
        let endpoints = a.endpoints.clone();
        runs.push(tokio::spawn(async move {
            let mut etcd = etcd_client::Client::connect(&endpoints, None).await?;
            let mut lat = vec![];
            let value = vec![b'x'; 512];
            for i in 0..1_000_000usize {
                if Instant::now() >= deadline {
                    break;
                }
                let t = Instant::now();
                etcd.put(format!("bench/put/{w}/{i}"), value.clone(), None)
                    .await?;
                lat.push(ms(t.elapsed()));
            }
            anyhow::Ok(lat)
        }));
    }
    let mut all = vec![];
    for r in runs {
        all.extend(r.await??);
    }
    let elapsed = began.elapsed().as_secs_f64();
    all.sort_by(f64::total_cmp);
    let out = serde_json::json!({
        "measure": "etcd-put",
        "clients": clients,
        "rps": all.len() as f64 / elapsed,
        "p50_ms": pct(&all, 0.5),
        "p99_ms": pct(&all, 0.99),
        "median_ms": median(&mut all.clone()),
    });
    println!("{out}");
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    let a = Args::parse();
    match &a.command {
        Command::Agents { count, seconds } => {
            let seen: Seen = Default::default();
            let until = Instant::now() + Duration::from_secs(*seconds);
            let arns = start_agents(&a, *count, until, &seen).await?;
            println!(
                "{}",
                serde_json::json!({"measure": "agents", "registered": arns.len()})
            );
            tokio::time::sleep_until(until.into()).await;
            Ok(())
        }
        Command::Notify { count, changes } => notify(&a, *count, *changes).await,
        Command::Failover {
            leader_pid,
            survivor,
            service,
            desired,
        } => failover(&a, *leader_pid, survivor, service, *desired).await,
        Command::EtcdPut { clients, seconds } => etcd_put(&a, *clients, *seconds).await,
    }
}
