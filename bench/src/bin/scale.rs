//! Control-plane scale (issue 4): writes a store holding N container
//! instances, M services and T RUNNING tasks (simulated: no agents; records
//! made by the same model functions the API uses), then starts `berth
//! server` on it and measures the time until it answers a signed
//! ListServices, its RSS once its controllers have made a few passes, and
//! the same after a kill -9 and cold restart. Prints one JSON object.
use anyhow::{bail, Result};
use berth_agent::client::{ApiClient, Credentials, ECS_TARGET};
use berth_api::ecs::*;
use berth_model::{cluster, container_instance, service, task, Scope};
use berth_server::state::index::{FamilyRecord, ServiceRecord, TaskDefinitionRecord, TaskRecord};
use berth_server::state::StoreKey;
use berth_store::{EmbeddedStore, Store, Txn};
use clap::Parser;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Parser)]
struct Args {
    #[arg(long)]
    berth: PathBuf,
    #[arg(long)]
    data_dir: PathBuf,
    #[arg(long)]
    config: PathBuf,
    #[arg(long)]
    access_key_id: String,
    #[arg(long)]
    secret_access_key: String,
    #[arg(long)]
    account: String,
    #[arg(long, default_value_t = 10_000)]
    instances: usize,
    #[arg(long, default_value_t = 5_000)]
    services: usize,
    #[arg(long, default_value_t = 100_000)]
    tasks: usize,
    #[arg(long, default_value = "127.0.0.1:4615")]
    listen: String,
    /// Seconds the server runs before its RSS is read.
    #[arg(long, default_value_t = 20)]
    settle: u64,
    /// Only write the store (for other benchmarks to serve from), then exit.
    #[arg(long)]
    populate_only: bool,
}

const REGION: &str = "us-east-1";
const CLUSTER: &str = "default";
const ZONES: [&str; 3] = ["us-east-1a", "us-east-1b", "us-east-1c"];
/// Records per store transaction while writing.
const BATCH: usize = 2_000;
const SERVE_LIMIT: Duration = Duration::from_secs(120);

fn put<T: serde::Serialize>(txn: Txn, key: StoreKey, value: &T) -> Result<Txn> {
    Ok(txn.put(key.encode(), serde_json::to_vec(value)?))
}

async fn commit(store: &EmbeddedStore, txn: Txn) -> Result<Txn> {
    if !txn.ops.is_empty() {
        store.txn(txn).await?;
    }
    Ok(Txn::new())
}

async fn populate(a: &Args) -> Result<()> {
    let store = EmbeddedStore::open(&a.data_dir)?;
    let scope = Scope::new(a.account.clone(), REGION);
    let now = 1_700_000_000.0;
    let mut txn = Txn::new();
    let c = cluster::create(&scope, &CreateClusterRequest::default(), "disabled")?;
    txn = put(
        txn,
        StoreKey::Cluster {
            scope: scope.clone(),
            name: CLUSTER.into(),
        },
        &c,
    )?;
    let td: TaskDefinition = serde_json::from_value(serde_json::json!({
        "family": "web", "revision": 1, "status": "ACTIVE",
        "taskDefinitionArn": berth_model::arn::task_definition(&scope, "web", 1),
        "containerDefinitions": [{"name": "app", "image": "berth-test/busybox:latest",
            "memory": 32, "cpu": 10, "essential": true, "command": ["sleep", "3600"]}],
        "requiresCompatibilities": [], "compatibilities": ["EC2"], "registeredAt": now
    }))?;
    txn = put(
        txn,
        StoreKey::Family {
            scope: scope.clone(),
            family: "web".into(),
        },
        &FamilyRecord { last_revision: 1 },
    )?;
    txn = put(
        txn,
        StoreKey::TaskDefinition {
            scope: scope.clone(),
            family: "web".into(),
            revision: 1,
        },
        &TaskDefinitionRecord {
            task_definition: td.clone(),
            tags: vec![],
        },
    )?;
    let mut instance_arns = vec![];
    for i in 0..a.instances {
        let id = format!("{:032x}", i + 1);
        let req = RegisterContainerInstanceRequest {
            total_resources: Some(vec![
                Resource {
                    name: Some("CPU".into()),
                    r#type: Some("INTEGER".into()),
                    integer_value: Some(4096),
                    ..Default::default()
                },
                Resource {
                    name: Some("MEMORY".into()),
                    r#type: Some("INTEGER".into()),
                    integer_value: Some(8192),
                    ..Default::default()
                },
            ]),
            attributes: Some(vec![Attribute {
                name: Some(container_instance::AVAILABILITY_ZONE.into()),
                value: Some(ZONES[i % 3].into()),
                ..Default::default()
            }]),
            ..Default::default()
        };
        let ci = container_instance::register(&scope, CLUSTER, &id, None, &req, now)?;
        instance_arns.push(ci.container_instance_arn.clone().unwrap_or_default());
        txn = put(
            txn,
            StoreKey::ContainerInstance {
                scope: scope.clone(),
                cluster: CLUSTER.into(),
                id,
            },
            &ci,
        )?;
        if i % BATCH == BATCH - 1 {
            txn = commit(&store, txn).await?;
        }
    }
    txn = commit(&store, txn).await?;
    let per_service = a.tasks / a.services.max(1);
    let mut placed = 0usize;
    for s in 0..a.services {
        let name = format!("svc-{s}");
        let deployment_id = format!("ecs-svc/{:019}", s + 1);
        let req = CreateServiceRequest {
            service_name: Some(name.clone()),
            desired_count: Some(per_service as i32),
            ..Default::default()
        };
        let fresh = service::Fresh {
            deployment_id: &deployment_id,
            now,
        };
        let mut svc = service::create(
            &scope,
            CLUSTER,
            &req,
            td.task_definition_arn.as_deref().unwrap_or_default(),
            "bench",
            &fresh,
        )?;
        let mut record_tasks = vec![];
        for _ in 0..per_service {
            let task_id = format!("{:032x}", placed + 1);
            let container_id = format!("c{:031x}", placed + 1);
            let instance = &instance_arns[placed % instance_arns.len()];
            let group = service::task_group(&name);
            let mut t = task::create(&task::Launch {
                scope: &scope,
                cluster: CLUSTER,
                task_id: &task_id,
                container_ids: std::slice::from_ref(&container_id),
                container_instance_arn: Some(instance),
                capacity_provider: None,
                ephemeral_gib: None,
                availability_zone: Some(ZONES[(placed % instance_arns.len()) % 3]),
                task_definition: &td,
                overrides: None,
                group: Some(&group),
                started_by: Some(&deployment_id),
                tags: &[],
                launch_type: "EC2",
                now,
            });
            let report = Task {
                last_status: Some(task::RUNNING.into()),
                started_at: Some(now),
                containers: Some(vec![Container {
                    name: Some("app".into()),
                    last_status: Some(task::RUNNING.into()),
                    runtime_id: Some(format!("{:064x}", placed + 1)),
                    ..Default::default()
                }]),
                ..Default::default()
            };
            task::apply_report(&mut t, &report, now);
            record_tasks.push((
                task_id,
                TaskRecord {
                    task: t,
                    task_definition: std::sync::Arc::new(td.clone()),
                    fleet_host: None,
                    protected_until: None,
                },
            ));
            placed += 1;
        }
        // As the controller leaves a steady service.
        if let Some(d) = svc.deployments.as_mut().and_then(|d| d.first_mut()) {
            d.running_count = Some(per_service as i32);
            d.rollout_state = Some(service::COMPLETED.into());
        }
        svc.running_count = Some(per_service as i32);
        let record = ServiceRecord {
            service: svc,
            last_completed: None,
            steady: true,
            counted_failures: Default::default(),
        };
        txn = put(
            txn,
            StoreKey::Service {
                scope: scope.clone(),
                cluster: CLUSTER.into(),
                name,
            },
            &record,
        )?;
        for (id, r) in record_tasks {
            txn = put(
                txn,
                StoreKey::Task {
                    scope: scope.clone(),
                    cluster: CLUSTER.into(),
                    id,
                },
                &r,
            )?;
        }
        if s % 50 == 49 {
            txn = commit(&store, txn).await?;
        }
    }
    commit(&store, txn).await?;
    Ok(())
}

fn start(a: &Args) -> Result<Child> {
    Ok(Command::new(&a.berth)
        .args(["server", "--listen", &a.listen, "--data-dir"])
        .arg(&a.data_dir)
        .arg("--config")
        .arg(&a.config)
        // No agents here: a long timeout keeps the simulated hosts from being healed away.
        .args(["--instance-timeout", "86400"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?)
}

/// Time from `since` until a signed ListServices answers with the services.
async fn serves(c: &ApiClient, since: Instant, want: usize) -> Result<Duration> {
    loop {
        let req = ListServicesRequest {
            max_results: Some(100),
            ..Default::default()
        };
        let r: Result<ListServicesResponse, _> = c
            .call(ECS_TARGET, "ListServices", &req, Duration::from_secs(5))
            .await;
        if let Ok(r) = r {
            if r.service_arns.map_or(0, |s| s.len()) == want.min(100) {
                return Ok(since.elapsed());
            }
        }
        if since.elapsed() > SERVE_LIMIT {
            bail!("server not serving after {SERVE_LIMIT:?}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn cpu_secs(pid: u32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    let ticks: u64 = fields.get(11).and_then(|v| v.parse().ok()).unwrap_or(0)
        + fields.get(12).and_then(|v| v.parse().ok()).unwrap_or(0);
    Ok(ticks as f64 / 100.0)
}

#[tokio::main]
async fn main() -> Result<()> {
    let a = Args::parse();
    let t = Instant::now();
    populate(&a).await?;
    let populate_s = t.elapsed().as_secs_f64();
    if a.populate_only {
        println!("{}", serde_json::json!({ "populate_s": populate_s }));
        return Ok(());
    }
    let client = ApiClient::new(
        &[format!("http://{}", a.listen)],
        Credentials {
            access_key_id: a.access_key_id.clone(),
            secret_access_key: a.secret_access_key.clone(),
            session_token: None,
            region: REGION.into(),
        },
    )?;
    let since = Instant::now();
    let mut server = start(&a)?;
    let first = serves(&client, since, a.services).await?;
    tokio::time::sleep(Duration::from_secs(a.settle)).await;
    let rss = berth_bench::rss_kib(server.id())? as f64 / 1024.0;
    let cpu = cpu_secs(server.id())?;
    server.kill()?;
    server.wait()?;
    let since = Instant::now();
    let mut server = start(&a)?;
    let restart = serves(&client, since, a.services).await?;
    tokio::time::sleep(Duration::from_secs(a.settle)).await;
    let rss_after = berth_bench::rss_kib(server.id())? as f64 / 1024.0;
    server.kill()?;
    server.wait()?;
    let out = serde_json::json!({
        "instances": a.instances,
        "services": a.services,
        "tasks": a.tasks,
        "populate_s": populate_s,
        "first_start_serving_s": first.as_secs_f64(),
        "rss_mib": rss,
        "server_cpu_s_during_settle": cpu,
        "settle_s": a.settle,
        "cold_restart_serving_s": restart.as_secs_f64(),
        "rss_after_restart_mib": rss_after,
    });
    println!("{out}");
    Ok(())
}
