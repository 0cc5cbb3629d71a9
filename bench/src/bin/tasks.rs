//! RunTask → RUNNING (as DescribeTasks first reports it) against a bare
//! Docker Engine API create+start of the same container, on the same host
//! and image: one at a time, then 50 at once. Also reads the agent's RSS.
//! Prints one JSON object; bench/tasks.sh starts berth and formats it.
use anyhow::Result;
use berth_agent::client::ApiClient;
use berth_api::ecs::*;
use berth_bench::{docker_remove, ecs, median, ms, rss_kib};
use clap::Parser;
use std::time::Duration;

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
    /// Process id of the agent, for its RSS.
    #[arg(long)]
    agent_pid: u32,
    /// One-at-a-time rounds (each runs berth once and bare Docker once).
    #[arg(long, default_value_t = 40)]
    rounds: usize,
    #[arg(long, default_value_t = 50)]
    burst: usize,
}

const MEMORY_MIB: i64 = 16;

fn command() -> Vec<String> {
    vec!["sleep".into(), "3600".into()]
}

async fn berth_run(c: &ApiClient, count: usize) -> Result<(Duration, Vec<String>)> {
    let template = RunTaskRequest {
        task_definition: Some("bench-sleep".into()),
        ..Default::default()
    };
    berth_bench::run_tasks(c, &template, count).await
}

async fn docker_run(
    d: &bollard::Docker,
    image: &str,
    count: usize,
    tag: &str,
) -> Result<(Duration, Vec<String>)> {
    berth_bench::docker_run(d, image, &command(), MEMORY_MIB, count, tag).await
}

async fn berth_stop(c: &ApiClient, arns: &[String]) -> Result<()> {
    berth_bench::stop_tasks(c, arns).await
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let client = berth_bench::client(&args.endpoint, &args.access_key_id, &args.secret_access_key)?;
    let docker = berth_bench::docker().await?;
    let td = RegisterTaskDefinitionRequest {
        family: Some("bench-sleep".into()),
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
    let _: RegisterTaskDefinitionResponse = ecs(&client, "RegisterTaskDefinition", &td).await?;
    let _: CreateClusterResponse =
        ecs(&client, "CreateCluster", &CreateClusterRequest::default()).await?;
    // Wait until the agent's instance is there and connected.
    berth_bench::wait_for_instance(&client).await?;
    let rss_idle = rss_kib(args.agent_pid)?;

    // Warm-up: the first container on a host pays for things no later one does.
    let (_, ids) = docker_run(&docker, &args.image, 1, "warm").await?;
    docker_remove(&docker, &ids).await;
    let (_, arns) = berth_run(&client, 1).await?;
    berth_stop(&client, &arns).await?;

    let (mut berth_one, mut bare_one, mut paired) = (vec![], vec![], vec![]);
    for round in 0..args.rounds {
        let (t, ids) = docker_run(&docker, &args.image, 1, &format!("one{round}")).await?;
        bare_one.push(ms(t));
        docker_remove(&docker, &ids).await;
        let (t, arns) = berth_run(&client, 1).await?;
        berth_one.push(ms(t));
        berth_stop(&client, &arns).await?;
        paired.push(berth_one[round] - bare_one[round]);
    }

    let (bare_burst, ids) = docker_run(&docker, &args.image, args.burst, "burst").await?;
    docker_remove(&docker, &ids).await;
    let (berth_burst, arns) = berth_run(&client, args.burst).await?;
    let rss_busy = rss_kib(args.agent_pid)?;
    berth_stop(&client, &arns).await?;

    let (b1, d1) = (median(&mut berth_one), median(&mut bare_one));
    let out = serde_json::json!({
        "rounds": args.rounds,
        "one_berth_median_ms": b1,
        "one_bare_median_ms": d1,
        "one_overhead_median_ms": median(&mut paired),
        "burst": args.burst,
        "burst_berth_ms": ms(berth_burst),
        "burst_bare_ms": ms(bare_burst),
        "burst_ratio": berth_burst.as_secs_f64() / bare_burst.as_secs_f64(),
        "agent_rss_idle_mib": rss_idle as f64 / 1024.0,
        "agent_rss_busy_mib": rss_busy as f64 / 1024.0,
    });
    println!("{out}");
    Ok(())
}
