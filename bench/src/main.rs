//! berth-bench: drives one ECS operation at N concurrent clients against any
//! ECS endpoint (berth or moto), signing every request with SigV4 as an SDK
//! would, and prints requests/s and p50/p99 latency as one JSON line.
use anyhow::{bail, Result};
use berth_server::auth::sigv4::Signer;
use clap::Parser;
use std::time::{Duration, Instant};

#[derive(Parser, Clone)]
struct Args {
    #[arg(long)]
    endpoint: String,
    #[arg(long)]
    operation: String,
    #[arg(long, default_value_t = 1)]
    clients: usize,
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Upper bound on requests per client, so every run ends.
    #[arg(long, default_value_t = 200_000)]
    max_requests: usize,
    #[arg(long, default_value = "AKIABENCH00000000000")]
    access_key_id: String,
    #[arg(long, default_value = "bench-secret")]
    secret_access_key: String,
    #[arg(long, default_value = "us-east-1")]
    region: String,
    #[arg(long, default_value = "")]
    label: String,
}

const TARGET: &str = "AmazonEC2ContainerServiceV20141113";
const FAMILY: &str = "bench";
const CLUSTER: &str = "bench";

fn body(operation: &str, n: usize) -> String {
    match operation {
        "RegisterTaskDefinition" => format!(
            r#"{{"family":"{FAMILY}","containerDefinitions":[{{"name":"app","image":"busybox:{n}","memory":64,"portMappings":[{{"containerPort":80}}]}}]}}"#
        ),
        "DescribeTaskDefinition" => format!(r#"{{"taskDefinition":"{FAMILY}"}}"#),
        "ListTaskDefinitions" => format!(r#"{{"familyPrefix":"{FAMILY}","maxResults":10}}"#),
        "DescribeClusters" => format!(r#"{{"clusters":["{CLUSTER}"]}}"#),
        "CreateCluster" => format!(r#"{{"clusterName":"{CLUSTER}"}}"#),
        _ => "{}".to_string(),
    }
}

fn amz_date() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    berth_server::time::format_amz_date(now as i64)
}

async fn call(
    client: &reqwest::Client,
    args: &Args,
    host: &str,
    operation: &str,
    n: usize,
) -> Result<()> {
    let body = body(operation, n);
    let target = format!("{TARGET}.{operation}");
    let signer = Signer {
        access_key_id: &args.access_key_id,
        secret_access_key: &args.secret_access_key,
        region: &args.region,
        service: "ecs",
    };
    let date = amz_date();
    let ctype = "application/x-amz-json-1.1";
    let headers = [("content-type", ctype), ("x-amz-target", target.as_str())];
    let auth = signer.authorization("POST", host, "/", &headers, body.as_bytes(), &date);
    let resp = client
        .post(format!("{}/", args.endpoint))
        .header("content-type", ctype)
        .header("x-amz-target", target)
        .header("x-amz-date", date)
        .header("authorization", auth)
        .body(body)
        .send()
        .await?;
    let status = resp.status();
    let bytes = resp.bytes().await?;
    if !status.is_success() {
        bail!(
            "{operation} answered {status}: {}",
            String::from_utf8_lossy(&bytes)
        );
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let host = args
        .endpoint
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .timeout(Duration::from_secs(30))
        .build()?;
    // Something to describe and list.
    call(&client, &args, &host, "CreateCluster", 0).await?;
    call(&client, &args, &host, "RegisterTaskDefinition", 0).await?;

    let deadline = Instant::now() + Duration::from_secs_f64(args.seconds);
    let started = Instant::now();
    let mut workers = vec![];
    for w in 0..args.clients {
        let (client, args, host) = (client.clone(), args.clone(), host.clone());
        workers.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            for i in 0..args.max_requests {
                if Instant::now() >= deadline {
                    break;
                }
                let t = Instant::now();
                call(&client, &args, &host, &args.operation, w * 1_000_000 + i).await?;
                lat.push(t.elapsed().as_micros() as u64);
            }
            Ok::<_, anyhow::Error>(lat)
        }));
    }
    let mut all = vec![];
    for w in workers {
        all.extend(w.await??);
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort_unstable();
    let pct = |p: f64| {
        all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0)
    };
    let out = serde_json::json!({
        "target": args.label,
        "operation": args.operation,
        "clients": args.clients,
        "requests": all.len(),
        "rps": all.len() as f64 / elapsed,
        "p50_ms": pct(0.50) as f64 / 1000.0,
        "p99_ms": pct(0.99) as f64 / 1000.0,
    });
    println!("{out}");
    Ok(())
}
