//! berth-bench: drives one operation (ECS's, or PutLogEvents, GetSecretValue,
//! GetParameter) at N concurrent clients against any endpoint (berth or moto), signing every request with SigV4 as an SDK
//! would, and prints requests/s and p50/p99 latency as one JSON line.
use anyhow::{bail, Result};
use berth_server::auth::sigv4::Signer;
use clap::Parser;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use std::time::{Duration, Instant};

#[derive(Parser, Clone)]
struct Args {
    /// One endpoint, or several comma-separated (servers sharing a store):
    /// client N uses the Nth, round the list.
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
    /// How a client thread waits for its responses: `block` sleeps in epoll
    /// until one arrives; `spin` polls without sleeping, so the thread's vCPU
    /// is awake when the answer comes (on a VM, waking a halted vCPU costs
    /// about 100 µs per round trip).
    #[arg(long, value_enum, default_value_t = Wait::Block)]
    wait: Wait,
}

#[derive(clap::ValueEnum, Clone, Copy, PartialEq, Eq)]
enum Wait {
    Block,
    Spin,
}

const TARGET: &str = "AmazonEC2ContainerServiceV20141113";
const LOGS_TARGET: &str = "Logs_20140328";
const LOG_GROUP: &str = "/bench";
/// Events per PutLogEvents request.
const LOG_BATCH: usize = 100;

/// The target prefix and SigV4 service an operation belongs to.
fn service_of(operation: &str) -> (&'static str, &'static str) {
    match operation {
        "CreateLogGroup" | "CreateLogStream" | "PutLogEvents" => (LOGS_TARGET, "logs"),
        "CreateSecret" | "GetSecretValue" => ("secretsmanager", "secretsmanager"),
        "PutParameter" | "GetParameter" => ("AmazonSSM", "ssm"),
        _ => (TARGET, "ecs"),
    }
}

/// A PutLogEvents batch of LOG_BATCH numbered 80-byte lines, stamped now, to the client's own stream.
fn log_batch(n: usize) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis();
    let events: Vec<String> = (0..LOG_BATCH)
        .map(|i| {
            format!(
                r#"{{"timestamp":{now},"message":"request {n:>12} line {i:>4} {pad}"}}"#,
                pad = "x".repeat(50)
            )
        })
        .collect();
    format!(
        r#"{{"logGroupName":"{LOG_GROUP}","logStreamName":"s{}","logEvents":[{}]}}"#,
        n / 1_000_000,
        events.join(",")
    )
}
/// The secret and parameter (`/bench`) that GetSecretValue and GetParameter read.
const SECRET: &str = "bench";
const SECRET_VALUE: &str = "a 40-character secret value for bench...";
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
        // Placed on the cluster's (simulated) container instances.
        "RunTask" => format!(
            r#"{{"cluster":"{CLUSTER}","taskDefinition":"{FAMILY}","startedBy":"bench-{n}"}}"#
        ),
        "CreateCluster" => format!(r#"{{"clusterName":"{CLUSTER}"}}"#),
        "CreateLogGroup" => format!(r#"{{"logGroupName":"{LOG_GROUP}"}}"#),
        "CreateLogStream" => format!(
            r#"{{"logGroupName":"{LOG_GROUP}","logStreamName":"s{}"}}"#,
            n / 1_000_000
        ),
        "PutLogEvents" => log_batch(n),
        "CreateSecret" => format!(r#"{{"Name":"{SECRET}","SecretString":"{SECRET_VALUE}"}}"#),
        "GetSecretValue" => format!(r#"{{"SecretId":"{SECRET}"}}"#),
        "PutParameter" => format!(
            r#"{{"Name":"/{SECRET}","Value":"{SECRET_VALUE}","Type":"SecureString","Overwrite":true}}"#
        ),
        "GetParameter" => format!(r#"{{"Name":"/{SECRET}","WithDecryption":true}}"#),
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

/// One client's HTTP/1.1 connection, kept alive and made again when the
/// server closes it. Plain hyper on the client's own thread: no pool, no
/// URL parsing, no hand-off to another thread, so the load generator adds as
/// little as it can to each round trip.
struct Connection {
    addr: String,
    sender: Option<hyper::client::conn::http1::SendRequest<Full<Bytes>>>,
}

impl Connection {
    fn new(addr: &str) -> Connection {
        Connection {
            addr: addr.to_string(),
            sender: None,
        }
    }

    async fn sender(
        &mut self,
    ) -> Result<&mut hyper::client::conn::http1::SendRequest<Full<Bytes>>> {
        if self.sender.as_ref().is_none_or(|s| s.is_closed()) {
            let tcp = tokio::net::TcpStream::connect(&self.addr).await?;
            tcp.set_nodelay(true)?;
            let (sender, conn) =
                hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp)).await?;
            tokio::task::spawn_local(conn);
            self.sender = Some(sender);
        }
        let sender = self.sender.as_mut().expect("connected above");
        sender.ready().await?;
        Ok(sender)
    }
}

async fn call(conn: &mut Connection, args: &Args, operation: &str, n: usize) -> Result<()> {
    let body = body(operation, n);
    let (prefix, service) = service_of(operation);
    let target = format!("{prefix}.{operation}");
    let signer = Signer {
        access_key_id: &args.access_key_id,
        secret_access_key: &args.secret_access_key,
        region: &args.region,
        service,
    };
    let date = amz_date();
    let ctype = "application/x-amz-json-1.1";
    let headers = [("content-type", ctype), ("x-amz-target", target.as_str())];
    let host = conn.addr.as_str();
    let auth = signer.authorization("POST", host, "/", &headers, body.as_bytes(), &date);
    let req = hyper::Request::post("/")
        .header("host", host)
        .header("content-type", ctype)
        .header("x-amz-target", target)
        .header("x-amz-date", date)
        .header("authorization", auth)
        .body(Full::new(Bytes::from(body)))?;
    let resp = conn.sender().await?.send_request(req).await?;
    let status = resp.status();
    let bytes = resp.into_body().collect().await?.to_bytes();
    if !status.is_success() {
        bail!(
            "{operation} answered {status}: {}",
            String::from_utf8_lossy(&bytes)
        );
    }
    // A RunTask that placed nothing answers 200 with failures: it does not count.
    if operation == "RunTask" && !bytes.windows(9).any(|w| w == b"\"taskArn\"") {
        bail!(
            "RunTask placed nothing: {}",
            String::from_utf8_lossy(&bytes)
        );
    }
    Ok(())
}

/// One client: requests one after another on its own connection until the
/// deadline; its latencies in µs.
async fn run_client(
    args: Args,
    hosts: Vec<String>,
    w: usize,
    deadline: Instant,
) -> Result<Vec<u64>> {
    let mut conn = Connection::new(&hosts[w % hosts.len()]);
    let mut lat = Vec::new();
    for i in 0..args.max_requests {
        if Instant::now() >= deadline {
            break;
        }
        let t = Instant::now();
        let call = call(&mut conn, &args, &args.operation, w * 1_000_000 + i);
        tokio::time::timeout(Duration::from_secs(30), call).await??;
        lat.push(t.elapsed().as_micros() as u64);
    }
    Ok(lat)
}

/// Runs `clients` (their numbers) on this thread, each on its own connection.
fn run_clients(
    args: Args,
    host: Vec<String>,
    clients: Vec<usize>,
    deadline: Instant,
) -> Result<Vec<u64>> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async move {
        // A task that always yields makes the runtime poll its sockets with
        // a zero timeout between every task it runs, instead of sleeping.
        let spinner = (args.wait == Wait::Spin).then(|| {
            tokio::task::spawn_local(async {
                loop {
                    tokio::task::yield_now().await;
                }
            })
        });
        let runs: Vec<_> = clients
            .into_iter()
            .map(|w| tokio::task::spawn_local(run_client(args.clone(), host.clone(), w, deadline)))
            .collect();
        let mut all = vec![];
        for r in runs {
            all.extend(r.await??);
        }
        if let Some(spinner) = spinner {
            spinner.abort();
        }
        Ok(all)
    })
}

fn main() -> Result<()> {
    let args = Args::parse();
    let host: Vec<String> = args
        .endpoint
        .split(',')
        .map(|e| {
            e.trim()
                .trim_start_matches("http://")
                .trim_end_matches('/')
                .to_string()
        })
        .collect();
    // Something to describe and list.
    let setup = Instant::now() + Duration::from_secs(60);
    if service_of(&args.operation).1 == "logs" {
        // A group, and a stream per client; made by an earlier run already is fine.
        let clients: Vec<usize> = (0..args.clients).map(|w| w * 1_000_000).collect();
        for (op, who) in [("CreateLogGroup", vec![0]), ("CreateLogStream", clients)] {
            for n in who {
                let one = Args {
                    operation: op.into(),
                    max_requests: 1,
                    ..args.clone()
                };
                let _ = run_clients(one, host.clone(), vec![n / 1_000_000], setup);
            }
        }
    } else if let Some(make) = match args.operation.as_str() {
        "GetSecretValue" => Some("CreateSecret"),
        "GetParameter" => Some("PutParameter"),
        _ => None,
    } {
        // Made by an earlier run already is fine.
        let one = Args {
            operation: make.into(),
            max_requests: 1,
            ..args.clone()
        };
        let _ = run_clients(one, host.clone(), vec![0], setup);
    } else {
        for op in ["CreateCluster", "RegisterTaskDefinition"] {
            let one = Args {
                operation: op.into(),
                max_requests: 1,
                ..args.clone()
            };
            run_clients(one, host.clone(), vec![0], setup)?;
        }
    }

    // One thread per core, each running its share of the clients, so that
    // neither a round trip's hand-off between threads nor more threads than
    // cores stands between the load and the server.
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = args.clients.clamp(1, cores);
    let deadline = Instant::now() + Duration::from_secs_f64(args.seconds);
    let started = Instant::now();
    let workers: Vec<_> = (0..threads)
        .map(|t| {
            let (args, host) = (args.clone(), host.clone());
            let mine = (0..args.clients).filter(|w| w % threads == t).collect();
            std::thread::spawn(move || run_clients(args, host, mine, deadline))
        })
        .collect();
    let mut all = vec![];
    for w in workers {
        let lat = w
            .join()
            .map_err(|_| anyhow::anyhow!("a client thread panicked"))??;
        all.extend(lat);
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
        "events_per_s": (args.operation == "PutLogEvents")
            .then(|| (all.len() * LOG_BATCH) as f64 / elapsed),
        "p50_ms": pct(0.50) as f64 / 1000.0,
        "p99_ms": pct(0.99) as f64 / 1000.0,
    });
    println!("{out}");
    Ok(())
}
