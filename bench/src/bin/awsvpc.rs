//! RunTask → RUNNING for an awsvpc task against the same task in bridge
//! mode, same agent, image and run, alternating one at a time; then 50
//! awsvpc tasks at once, checked for address and rule conflicts (every ENI a
//! distinct address, every ENI its own chains in the VPC's nftables table).
//! Prints one JSON object; bench/awsvpc.sh starts berth and formats it.
use anyhow::{Context, Result};
use berth_api::ecs::*;
use berth_bench::{describe, ecs, median, ms, run_tasks, stop_tasks};
use clap::Parser;
use std::collections::BTreeSet;
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
    /// Alternating rounds (each runs one bridge task and one awsvpc task).
    #[arg(long, default_value_t = 30)]
    rounds: usize,
    #[arg(long, default_value_t = 50)]
    burst: usize,
}

fn definition(family: &str, mode: &str, image: &str) -> RegisterTaskDefinitionRequest {
    RegisterTaskDefinitionRequest {
        family: Some(family.into()),
        network_mode: Some(mode.into()),
        container_definitions: Some(vec![ContainerDefinition {
            name: Some("sleep".into()),
            image: Some(image.into()),
            memory: Some(16),
            command: Some(vec!["sleep".into(), "3600".into()]),
            stop_timeout: Some(1),
            ..Default::default()
        }]),
        ..Default::default()
    }
}

/// The text of every `<name>…</name>` in an EC2 answer, in order.
fn xml_values(xml: &str, name: &str) -> Vec<String> {
    let (open, close) = (format!("<{name}>"), format!("</{name}>"));
    xml.split(&open)
        .skip(1)
        .filter_map(|rest| rest.split_once(&close).map(|(v, _)| v.to_string()))
        .collect()
}

/// The ENI address each task's attachment names.
fn task_addresses(tasks: &[Task]) -> Vec<String> {
    tasks
        .iter()
        .flat_map(|t| t.attachments.iter().flatten())
        .flat_map(|a| a.details.iter().flatten())
        .filter(|d| d.name.as_deref() == Some("privateIPv4Address"))
        .filter_map(|d| d.value.clone())
        .collect()
}

/// How many ENIs the VPC's router has ingress chains for, across the host's agents' tables.
fn firewalled_enis(vpc_id: &str) -> Result<usize> {
    let ns = berth_agent::netns::router(vpc_id);
    let out = std::process::Command::new("ip")
        .args(["netns", "exec", &ns, "nft", "list", "ruleset"])
        .output()
        .context("nft")?;
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(text
        .lines()
        .filter(|l| l.trim_start().starts_with("chain in_eni"))
        .count())
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let client = berth_bench::client(&args.endpoint, &args.access_key_id, &args.secret_access_key)?;
    for (family, mode) in [("bench-bridge", "bridge"), ("bench-awsvpc", "awsvpc")] {
        let td = definition(family, mode, &args.image);
        let _: RegisterTaskDefinitionResponse = ecs(&client, "RegisterTaskDefinition", &td).await?;
    }
    let _: CreateClusterResponse =
        ecs(&client, "CreateCluster", &CreateClusterRequest::default()).await?;
    let subnets = client
        .ec2(&[
            ("Action", "DescribeSubnets"),
            ("Filter.1.Name", "availability-zone"),
            ("Filter.1.Value.1", "us-east-1a"),
        ])
        .await?;
    let subnet = xml_values(&subnets, "subnetId")
        .into_iter()
        .next()
        .context("no subnet in us-east-1a")?;
    let vpc = xml_values(&subnets, "vpcId")
        .into_iter()
        .next()
        .context("no VPC")?;
    berth_bench::wait_for_instance(&client).await?;

    let bridge = RunTaskRequest {
        task_definition: Some("bench-bridge".into()),
        ..Default::default()
    };
    let awsvpc = RunTaskRequest {
        task_definition: Some("bench-awsvpc".into()),
        network_configuration: Some(NetworkConfiguration {
            awsvpc_configuration: Some(AwsVpcConfiguration {
                subnets: Some(vec![subnet.clone()]),
                ..Default::default()
            }),
        }),
        ..Default::default()
    };
    // Warm-up: the first task of each kind pays for what no later one does (the pause image).
    for template in [&bridge, &awsvpc] {
        let (_, arns) = run_tasks(&client, template, 1).await?;
        stop_tasks(&client, &arns).await?;
    }

    let (mut bridge_ms, mut awsvpc_ms, mut paired) = (vec![], vec![], vec![]);
    for round in 0..args.rounds {
        let (t, arns) = run_tasks(&client, &bridge, 1).await?;
        bridge_ms.push(ms(t));
        stop_tasks(&client, &arns).await?;
        let (t, arns) = run_tasks(&client, &awsvpc, 1).await?;
        awsvpc_ms.push(ms(t));
        stop_tasks(&client, &arns).await?;
        paired.push(awsvpc_ms[round] - bridge_ms[round]);
    }

    let (bridge_burst, arns) = run_tasks(&client, &bridge, args.burst).await?;
    stop_tasks(&client, &arns).await?;
    let (burst_time, arns) = run_tasks(&client, &awsvpc, args.burst).await?;
    let tasks = describe(&client, &arns).await?;
    let addresses = task_addresses(&tasks);
    let distinct: BTreeSet<&String> = addresses.iter().collect();
    let enis = client
        .ec2(&[("Action", "DescribeNetworkInterfaces")])
        .await?;
    let listed: BTreeSet<String> = xml_values(&enis, "networkInterfaceId")
        .into_iter()
        .collect();
    // Rules reach the host on the poll after the last task starts.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let chains = firewalled_enis(&vpc)?;
    stop_tasks(&client, &arns).await?;

    let out = serde_json::json!({
        "rounds": args.rounds,
        "bridge_median_ms": median(&mut bridge_ms),
        "awsvpc_median_ms": median(&mut awsvpc_ms),
        "added_median_ms": median(&mut paired),
        "burst": args.burst,
        "burst_ms": ms(burst_time),
        "bridge_burst_ms": ms(bridge_burst),
        "burst_running": tasks.iter().filter(|t| t.last_status.as_deref() == Some("RUNNING")).count(),
        "burst_addresses": addresses.len(),
        "burst_distinct_addresses": distinct.len(),
        "burst_enis_listed": listed.len(),
        "burst_enis_firewalled": chains,
    });
    println!("{out}");
    Ok(())
}
