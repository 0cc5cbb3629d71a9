//! The berth binary: parses arguments and wires the crates together.
use anyhow::{bail, Context, Result};
use berth_agent::runner::PullBehavior;
use berth_agent::AgentConfig;
use berth_server::config::Config;
use berth_server::{AccountConfig, AppState, KeyConfig};
use clap::{Parser, Subcommand};
mod stores;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Each transparent huge page fault zeroes 2 MiB, and mimalloc's
/// purge-then-reuse faults them again: with them the startup load took twice
/// as long and held more.
fn no_transparent_huge_pages() {
    #[cfg(target_os = "linux")]
    // SAFETY: PR_SET_THP_DISABLE only sets a flag on this process.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
}

/// mimalloc keeps allocations of one size together and returns emptied pages
/// to the OS, so the heap the startup load leaves behind does not stay resident
/// (glibc kept a third more, in holes between the index's small allocations).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "berth",
    version,
    about = "A self-hosted container service that speaks the Amazon ECS API"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Throttling {
    Off,
    Ecs,
}

/// How the control plane serves, for `server` and `dev` alike.
#[derive(clap::Args)]
struct ServeOptions {
    /// Seconds without a poll after which an instance's agent counts as disconnected.
    #[arg(long, default_value_t = 45)]
    instance_timeout: u64,
    /// Seconds a task role's credentials last; agents fetch new ones well before.
    #[arg(long, default_value_t = berth_server::state::DEFAULT_TASK_CREDENTIALS_SECS)]
    task_credentials_lifetime: u64,
    /// Microseconds a connection that has just answered keeps reading before
    /// it sleeps, while nothing else is being served (0: never).
    #[arg(long, default_value_t = berth_server::polling::POLL_FOR.as_micros() as u64)]
    connection_poll_us: u64,
    /// Seconds a client has to send a request's headers, from its connection's
    /// first byte (or its accept); then the connection is closed.
    #[arg(long, default_value_t = 10.0)]
    header_read_timeout: f64,
    /// Seconds a keep-alive connection may sit idle between requests.
    #[arg(long, default_value_t = 60.0)]
    idle_timeout: f64,
    /// Seconds a client has to send a request's body once its headers are in
    /// (RequestTimeoutException, HTTP 408, after that).
    #[arg(long, default_value_t = 30.0)]
    body_read_timeout: f64,
    /// Connections open at once; more are closed as they come, with a log line.
    #[arg(long, default_value_t = 10_000)]
    max_connections: usize,
    /// Request throttling: `ecs` gives each account ECS's token buckets per
    /// category of operations (ThrottlingException past them); `off` throttles nothing.
    #[arg(long, value_enum, default_value_t = Throttling::Off)]
    throttling: Throttling,
    /// Where berth's ECR registry listens (`berth dev`: the next port after
    /// --listen, or any free port when --listen's is 0; `berth server`: no
    /// registry unless given).
    #[arg(long)]
    registry_listen: Option<SocketAddr>,
    /// The registry's host[:port] in repository URIs (default: where it listens).
    #[arg(long)]
    registry_host: Option<String>,
    /// The Distribution registry binary that stores the images.
    #[arg(long, default_value = "docker-registry")]
    registry_engine: PathBuf,
    /// Where the registry keeps images (default: `registry/data` in the data
    /// directory). Servers sharing a store give one directory they all mount, so
    /// an image pushed through one is pulled through any.
    #[arg(long)]
    registry_storage_dir: Option<PathBuf>,
    /// Seconds without a push before blobs no image references are collected.
    #[arg(long, default_value_t = 600)]
    registry_gc_quiet_secs: u64,
    /// The 32-byte key that seals secrets and SecureString parameters at rest
    /// (default: `secrets.key` in the data directory, made on first start).
    #[arg(long)]
    secrets_key_file: Option<PathBuf>,
    /// Where the control plane keeps its state: `embedded` (in --data-dir, one
    /// server) or `etcd` (an etcd cluster several servers can share).
    #[arg(long, value_enum, default_value = "embedded")]
    store: StoreKind,
    /// The etcd cluster's client URLs, comma-separated (with --store etcd).
    #[arg(long, value_delimiter = ',', required_if_eq("store", "etcd"))]
    etcd_endpoints: Vec<String>,
    #[command(flatten)]
    etcd_auth: stores::EtcdAuth,
    /// The URL other servers sharing the store reach this one at (with --store
    /// etcd; default: http:// and --listen, or this machine's name where --listen
    /// is on every address).
    #[arg(long)]
    advertise_url: Option<String>,
    /// Seconds a console session lasts without a request.
    #[arg(long, default_value_t = berth_server::console::sessions::Limits::default().idle_secs)]
    console_idle_timeout: u64,
    /// Seconds a console session lasts in all.
    #[arg(long, default_value_t = berth_server::console::sessions::Limits::default().lifetime_secs)]
    console_session_lifetime: u64,
}

/// This machine's name, for telling servers apart in the leader key.
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "berth".into())
}

/// A server sharing its store with others: the store, and its campaign to lead.
struct Shared {
    store: Arc<berth_store::EtcdStore>,
    campaign: berth_store::Campaign,
}

impl Shared {
    /// Lists this server among those answering reads from their own views, reached at `url`.
    fn join_readers(&self, state: &berth_server::state::State, url: String) {
        let key = berth_server::state::State::reader_key(&self.campaign.holder);
        let advertised = url.clone();
        let (tenure, _task) = self.store.join(&key, move |lease| {
            berth_server::state::readers::ReaderRecord {
                url: url.clone(),
                lease,
            }
            .to_bytes()
        });
        state.set_tenure(key, tenure);
        // A URL that does not reach this server makes every write elsewhere wait for it.
        let (name, url) = (self.campaign.holder.clone(), advertised);
        tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            if let Err(e) = berth_server::read_leases::reaches(&url, &name).await {
                tracing::error!(
                    url,
                    error = e,
                    "--advertise-url does not reach this server: the other servers cannot follow its view, so each write through them waits for it and then ends its read lease"
                );
            }
        });
    }

    /// Leaves the readers at once, so writers do not wait for this server's lease to run out.
    async fn leave_readers(&self, state: &berth_server::state::State) {
        if let Some(t) = state.tenure() {
            let _ = berth_store::Store::revoke_lease(&*self.store, t.lease).await;
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum StoreKind {
    Embedded,
    Etcd,
}

impl ServeOptions {
    /// The connection bounds the flags give.
    fn connection_limits(&self) -> Result<berth_server::connection_limits::Limits> {
        let secs = |name: &str, v: f64| {
            if v.is_finite() && v > 0.0 {
                Ok(std::time::Duration::from_secs_f64(v))
            } else {
                Err(anyhow::anyhow!(
                    "--{name} must be a number of seconds above 0, got {v}"
                ))
            }
        };
        if self.max_connections == 0 {
            anyhow::bail!("--max-connections must be at least 1");
        }
        Ok(berth_server::connection_limits::Limits {
            header_read: secs("header-read-timeout", self.header_read_timeout)?,
            idle: secs("idle-timeout", self.idle_timeout)?,
            body_read: secs("body-read-timeout", self.body_read_timeout)?,
            max_connections: self.max_connections,
        })
    }

    /// The store the options name, opened; with etcd, this server's campaign to run the
    /// controllers (one server among those sharing the store runs them).
    async fn open_store(
        &self,
        data_dir: &Path,
    ) -> Result<(Arc<dyn berth_store::Store>, Option<Shared>)> {
        match self.store {
            StoreKind::Embedded => Ok((Arc::new(stores::open_embedded(data_dir)?), None)),
            StoreKind::Etcd => {
                let store =
                    Arc::new(stores::connect_etcd(&self.etcd_endpoints, &self.etcd_auth).await?);
                let holder = format!("{}/{}", hostname(), std::process::id());
                let campaign = store.campaign(berth_server::state::LEADER_KEY, &holder);
                let shared = Shared {
                    store: store.clone(),
                    campaign,
                };
                Ok((store, Some(shared)))
            }
        }
    }

    /// Where other servers reach this one, serving at `addr`.
    fn advertised_url(&self, addr: SocketAddr) -> String {
        self.advertise_url.clone().unwrap_or_else(|| {
            if addr.ip().is_unspecified() {
                format!("http://{}:{}", hostname(), addr.port())
            } else {
                format!("http://{addr}")
            }
        })
    }

    /// Where the registry listens: as given, or for `berth dev` next to the API.
    fn registry_addr(&self, api: SocketAddr, dev: bool) -> Option<SocketAddr> {
        self.registry_listen.or_else(|| {
            dev.then(|| {
                let port = match api.port() {
                    0 => 0,
                    p => p.wrapping_add(1),
                };
                SocketAddr::new(api.ip(), port)
            })
        })
    }
}

#[derive(Subcommand)]
enum Command {
    /// Run the control plane.
    Server {
        #[arg(long, default_value = "127.0.0.1:4510")]
        listen: SocketAddr,
        #[arg(long)]
        data_dir: PathBuf,
        /// TOML file with [[accounts]] and their keys.
        #[arg(long)]
        config: PathBuf,
        #[command(flatten)]
        serve: ServeOptions,
    },
    /// Run everything in one process on this machine, for a laptop or CI.
    Dev {
        #[arg(long, default_value = "127.0.0.1:4510")]
        listen: SocketAddr,
        /// Defaults to berth/dev under the user's data folder.
        #[arg(long)]
        data_dir: Option<PathBuf>,
        #[arg(long, requires = "secret_access_key")]
        access_key_id: Option<String>,
        #[arg(long, requires = "access_key_id")]
        secret_access_key: Option<String>,
        /// Extra accounts, as for `berth server`.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Do not run the built-in agents (no container instance in `default`, no fleet host).
        #[arg(long)]
        no_agent: bool,
        /// The built-in agent's ECS_IMAGE_PULL_BEHAVIOR.
        #[arg(long, default_value = "default")]
        image_pull_behavior: PullBehavior,
        /// The Docker Engine the built-in agents run tasks on.
        #[arg(long, default_value = berth_agent::docker::DEFAULT_SOCKET)]
        docker_socket: PathBuf,
        #[command(flatten)]
        serve: ServeOptions,
    },
    /// Run the host agent: register this host as a container instance of a
    /// cluster and run that cluster's tasks here through Docker.
    Agent {
        /// berth's endpoint, e.g. http://127.0.0.1:4510; servers sharing a
        /// store: several, comma-separated or repeated (the agent moves to the
        /// next when the one it uses fails).
        #[arg(long = "server", value_delimiter = ',', required = true)]
        servers: Vec<String>,
        #[arg(long, default_value = "default")]
        cluster: String,
        #[arg(long)]
        data_dir: PathBuf,
        #[arg(long, env = "AWS_ACCESS_KEY_ID")]
        access_key_id: String,
        #[arg(long, env = "AWS_SECRET_ACCESS_KEY", hide_env_values = true)]
        secret_access_key: String,
        #[arg(long, env = "AWS_DEFAULT_REGION", default_value = DEV_REGION)]
        region: String,
        /// Defaults to the region's "a" zone.
        #[arg(long)]
        availability_zone: Option<String>,
        /// A custom attribute, name=value (repeatable).
        #[arg(long = "attribute", value_parser = parse_attribute)]
        attributes: Vec<(String, String)>,
        /// default, always, once or prefer-cached (ECS_IMAGE_PULL_BEHAVIOR).
        #[arg(long, default_value = "default")]
        image_pull_behavior: PullBehavior,
        /// MiB of memory kept back from tasks (ECS_RESERVED_MEMORY).
        #[arg(long, default_value_t = 256)]
        reserved_memory: i64,
        /// Seconds a stopped task's containers are kept (ECS_ENGINE_TASK_CLEANUP_WAIT_DURATION).
        #[arg(long, default_value_t = 3600)]
        task_cleanup_wait: u64,
        /// Join the platform's fleet (FARGATE tasks of every account) instead
        /// of a cluster; sign with a key from the server's [fleet] keys.
        #[arg(long)]
        fleet: bool,
        /// The Docker Engine's socket.
        #[arg(long, default_value = berth_agent::docker::DEFAULT_SOCKET)]
        docker_socket: PathBuf,
        /// Serve the agent's metrics (Prometheus' text format) at /metrics here.
        #[arg(long)]
        metrics_listen: Option<SocketAddr>,
        /// Register this host's NVIDIA GPUs, read from --gpu-info-file (ECS_ENABLE_GPU_SUPPORT).
        #[arg(long)]
        enable_gpu_support: bool,
        /// The GPU info file the ECS GPU-optimised AMI writes at boot.
        #[arg(long, default_value = berth_agent::gpus::DEFAULT_INFO_FILE)]
        gpu_info_file: PathBuf,
        /// The Docker runtime of containers given GPUs (ECS_NVIDIA_RUNTIME).
        #[arg(long, default_value = berth_agent::gpus::DEFAULT_RUNTIME)]
        nvidia_runtime: String,
    },
    /// Print a task's container output: its awslogs containers' from the
    /// server's Logs API (with AWS_ENDPOINT_URL and a key in the environment,
    /// from any machine), the others' from the Docker Engine on this host.
    Logs {
        /// Task id or ARN.
        task: String,
        /// The task's cluster (a task ARN names its own).
        #[arg(long, default_value = "default")]
        cluster: String,
        /// Only this container of the task.
        #[arg(long)]
        container: Option<String>,
        /// Keep printing new output until the containers stop.
        #[arg(long, short)]
        follow: bool,
    },
    /// Print the ECS API coverage table (docs/COVERAGE.md).
    Coverage,
    /// Work on a control plane's store while no server uses it.
    Store {
        #[command(subcommand)]
        command: StoreCommand,
    },
}

#[derive(Subcommand)]
enum StoreCommand {
    /// Copy every resource of one store into an empty one (an embedded
    /// installation onto etcd), then check both hold the same keys and values.
    Copy {
        /// embedded:DIR (a stopped server's --data-dir) or etcd:URL[,URL…]
        #[arg(long)]
        from: stores::Location,
        /// embedded:DIR or etcd:URL[,URL…]; must hold nothing yet.
        #[arg(long)]
        to: stores::Location,
        #[command(flatten)]
        etcd_auth: stores::EtcdAuth,
    },
}

/// A client of the endpoint and key the environment names (as the aws CLI
/// reads them), if it names both.
fn env_client() -> Result<Option<berth_agent::client::ApiClient>> {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let (Some(endpoint), Some(key), Some(secret)) = (
        var("AWS_ENDPOINT_URL"),
        var("AWS_ACCESS_KEY_ID"),
        var("AWS_SECRET_ACCESS_KEY"),
    ) else {
        return Ok(None);
    };
    let credentials = berth_agent::client::Credentials {
        access_key_id: key,
        secret_access_key: secret,
        session_token: var("AWS_SESSION_TOKEN"),
        region: var("AWS_REGION")
            .or_else(|| var("AWS_DEFAULT_REGION"))
            .unwrap_or_else(|| DEV_REGION.into()),
    };
    Ok(Some(berth_agent::client::ApiClient::new(
        &[endpoint],
        credentials,
    )?))
}

/// The account `berth dev` creates for its own key.
const DEV_ACCOUNT: &str = "000000000000";
const DEV_REGION: &str = "us-east-1";
/// `berth dev`'s public address pool unless the config names one.
const DEV_PUBLIC_IP_POOL: &str = "127.0.100.0/24";

fn main() -> Result<()> {
    no_transparent_huge_pages();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Logs {
            task,
            cluster,
            container,
            follow,
        } => {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(async move {
                if let Some(client) = env_client()? {
                    // A task ARN names its cluster: arn:…:task/CLUSTER/ID.
                    let cluster = berth_agent::server_logs::cluster_of(&task).unwrap_or(cluster);
                    // A task the server does not show this key is looked for in Docker.
                    let (t, sources) =
                        match berth_agent::server_logs::describe(&client, &cluster, &task).await {
                            Ok((t, td)) => {
                                let mut sources = berth_agent::server_logs::sources(&t, &td);
                                sources.retain(|s| {
                                    container.as_deref().is_none_or(|c| c == s.container)
                                });
                                (t, sources)
                            }
                            Err(_) => (Default::default(), vec![]),
                        };
                    if !sources.is_empty() {
                        let arn = t.task_arn.clone().unwrap_or_default();
                        let mut out = std::io::stdout();
                        return berth_agent::server_logs::write(
                            &client, &cluster, &arn, &sources, follow, &mut out,
                        )
                        .await
                        .map_err(anyhow::Error::msg);
                    }
                }
                let docker = berth_agent::docker::DockerRuntime::connect().await?;
                let mut out = std::io::stdout();
                let n = berth_agent::logs::write_logs(
                    &docker,
                    &task,
                    container.as_deref(),
                    follow,
                    &mut out,
                )
                .await
                .map_err(anyhow::Error::msg)?;
                if n == 0 {
                    bail!("no containers of task {task} on this host");
                }
                Ok(())
            })
        }
        Command::Coverage => {
            print!("{}", berth_server::coverage::markdown());
            Ok(())
        }
        Command::Store {
            command:
                StoreCommand::Copy {
                    from,
                    to,
                    etcd_auth,
                },
        } => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
            .block_on(stores::copy(&from, &to, &etcd_auth)),
        Command::Server {
            listen,
            data_dir,
            config,
            serve,
        } => {
            let cfg = Config::load(&config)?;
            run(listen, &data_dir, cfg, &serve, None)
        }
        Command::Agent {
            servers,
            cluster,
            data_dir,
            access_key_id,
            secret_access_key,
            region,
            availability_zone,
            attributes,
            image_pull_behavior,
            reserved_memory,
            task_cleanup_wait,
            fleet,
            docker_socket,
            metrics_listen,
            enable_gpu_support,
            gpu_info_file,
            nvidia_runtime,
        } => {
            let gpus = if enable_gpu_support {
                berth_agent::gpus::discover(&gpu_info_file).map_err(anyhow::Error::msg)?
            } else {
                vec![]
            };
            let cfg = AgentConfig {
                gpus,
                nvidia_runtime,
                metrics_listen,
                fleet,
                docker_socket,
                servers,
                cluster,
                data_dir,
                access_key_id,
                secret_access_key,
                region,
                availability_zone,
                attributes,
                pull_behavior: image_pull_behavior,
                reserved_memory_mib: reserved_memory,
                cleanup_wait: std::time::Duration::from_secs(task_cleanup_wait),
            };
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()?;
            let stopped = rt.block_on(async move {
                tokio::select! {
                    r = berth_agent::run(cfg) => r.map_err(anyhow::Error::from),
                    _ = stop_signal() => Ok(()),
                }
            });
            berth_agent::task_endpoint::serve::stop();
            stopped
        }
        Command::Dev {
            listen,
            data_dir,
            access_key_id,
            secret_access_key,
            config,
            no_agent,
            image_pull_behavior,
            docker_socket,
            serve,
        } => {
            let data_dir = match data_dir {
                Some(d) => d,
                None => dirs::data_dir()
                    .context("no user data folder; pass --data-dir")?
                    .join("berth")
                    .join("dev"),
            };
            std::fs::create_dir_all(&data_dir)
                .with_context(|| format!("creating {}", data_dir.display()))?;
            let mut cfg = match config {
                Some(path) => Config::load(&path)?,
                None => Config::default(),
            };
            let (id, secret) = match (access_key_id, secret_access_key) {
                (Some(i), Some(s)) => (i, s),
                _ => dev_key(&data_dir, "dev-credentials.toml")?,
            };
            // The built-in fleet host signs with the platform's own key, as a real one does.
            let (fleet_id, fleet_secret) = dev_key(&data_dir, "dev-fleet-credentials.toml")?;
            cfg.fleet.keys.push(KeyConfig {
                access_key_id: fleet_id.clone(),
                secret_access_key: fleet_secret.clone(),
                user: None,
            });
            // Public addresses on loopback: a task's page opens in a browser on this machine.
            cfg.fleet
                .public_ip_pool
                .get_or_insert_with(|| DEV_PUBLIC_IP_POOL.into());
            cfg.accounts.push(AccountConfig {
                id: DEV_ACCOUNT.into(),
                keys: vec![KeyConfig {
                    access_key_id: id.clone(),
                    secret_access_key: secret.clone(),
                    user: None,
                }],
            });
            cfg.keys()?;
            let dev_agent =
                |fleet: bool, access_key_id: String, secret_access_key: String| AgentConfig {
                    fleet,
                    servers: vec![],
                    cluster: if fleet {
                        String::new()
                    } else {
                        "default".into()
                    },
                    data_dir: data_dir.join(if fleet { "fleet" } else { "agent" }),
                    access_key_id,
                    secret_access_key,
                    region: DEV_REGION.into(),
                    availability_zone: None,
                    attributes: vec![],
                    pull_behavior: image_pull_behavior,
                    reserved_memory_mib: 256,
                    cleanup_wait: berth_agent::DEFAULT_CLEANUP_WAIT,
                    docker_socket: docker_socket.clone(),
                    // The dev server's own /metrics covers berth dev.
                    metrics_listen: None,
                    gpus: vec![],
                    nvidia_runtime: berth_agent::gpus::DEFAULT_RUNTIME.into(),
                };
            let agents = if no_agent {
                vec![]
            } else {
                vec![
                    dev_agent(false, id.clone(), secret.clone()),
                    dev_agent(true, fleet_id, fleet_secret),
                ]
            };
            run(listen, &data_dir, cfg, &serve, Some((id, secret, agents)))
        }
    }
}

/// Waits for the Docker Engine at `socket` to answer, checking every 2 s for
/// up to a day; answers whether it did.
async fn docker_answers(socket: &Path) -> bool {
    const TRIES: u32 = 43_200;
    for _ in 0..TRIES {
        if berth_agent::docker::DockerRuntime::connect_to(socket)
            .await
            .is_ok()
        {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    }
    false
}

fn parse_attribute(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("attribute {s} is not name=value")),
    }
}

/// A dev key pair kept in the data dir (in `file`), made on first start.
fn dev_key(data_dir: &Path, file: &str) -> Result<(String, String)> {
    #[derive(serde::Serialize, serde::Deserialize)]
    struct DevKey {
        access_key_id: String,
        secret_access_key: String,
    }
    let path = data_dir.join(file);
    if let Ok(text) = std::fs::read_to_string(&path) {
        let k: DevKey =
            toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        return Ok((k.access_key_id, k.secret_access_key));
    }
    use rand::distr::{Alphanumeric, SampleString};
    let mut rng = rand::rng();
    let id = format!(
        "AKIA{}",
        Alphanumeric
            .sample_string(&mut rng, 16)
            .to_ascii_uppercase()
    );
    let secret = Alphanumeric.sample_string(&mut rng, 40);
    let k = DevKey {
        access_key_id: id.clone(),
        secret_access_key: secret.clone(),
    };
    std::fs::write(&path, toml::to_string(&k)?)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok((id, secret))
}

/// Starts the registry engine and serves the registry's front at `at`.
async fn serve_registry(
    state: &Arc<berth_server::state::State>,
    at: SocketAddr,
    serve: &ServeOptions,
    data_dir: &Path,
) -> Result<()> {
    use berth_server::registry::{collector, engine, front};
    let listener = tokio::net::TcpListener::bind(at)
        .await
        .with_context(|| format!("listening for the registry on {at}"))?;
    let addr = listener.local_addr()?;
    state.set_registry_host(
        serve
            .registry_host
            .clone()
            .unwrap_or_else(|| addr.to_string()),
    );
    let dirs = engine::EngineDirs::new(data_dir, serve.registry_storage_dir.as_deref());
    engine::supervise(serve.registry_engine.clone(), dirs.clone())
        .with_context(|| format!("preparing the registry in {}", dirs.root.display()))?;
    if !engine::wait_ready(&dirs, std::time::Duration::from_secs(10)).await {
        tracing::error!(
            engine = %serve.registry_engine.display(),
            "the registry engine did not start (apt-get install docker-registry); pulls and pushes answer 503"
        );
    }
    let writes = Arc::new(collector::Writes::default());
    collector::Collector {
        state: state.clone(),
        dirs: dirs.clone(),
        engine_bin: serve.registry_engine.clone(),
        writes: writes.clone(),
        quiet: std::time::Duration::from_secs(serve.registry_gc_quiet_secs),
    }
    .spawn();
    let front = Arc::new(front::Front {
        state: state.clone(),
        socket: dirs.socket(),
        writes,
    });
    println!("registry on {addr}");
    tokio::spawn(async move {
        let app = front::router(front).into_make_service_with_connect_info::<SocketAddr>();
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "the registry stopped serving");
        }
    });
    Ok(())
}

fn run(
    listen: SocketAddr,
    data_dir: &Path,
    cfg: Config,
    serve: &ServeOptions,
    dev: Option<(String, String, Vec<AgentConfig>)>,
) -> Result<()> {
    let keys = cfg.keys()?;
    let public_ip_pool = cfg.public_ip_pool()?;
    if keys.is_empty() {
        bail!("no access keys configured: add [[accounts]] with keys to the config file");
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        // Log events, the secrets key and the registry live here whatever the store.
        std::fs::create_dir_all(data_dir)
            .with_context(|| format!("creating the data directory {}", data_dir.display()))?;
        let (store, shared) = serve.open_store(data_dir).await?;
        let state = berth_server::state::State::open(store).await?;
        if let Some(c) = shared.as_ref().map(|s| &s.campaign) {
            state.set_leadership(c.leading.clone());
            // The leader judges lost hosts by what every server heard, told a few times a timeout.
            let (sharing, holder) = (state.clone(), c.holder.clone());
            let every = (std::time::Duration::from_secs(serve.instance_timeout) / 4)
                .max(std::time::Duration::from_secs(1));
            tokio::spawn(async move {
                loop {
                    if let Err(e) = sharing.share_presence(&holder).await {
                        tracing::warn!(error = %e, "telling the other servers which agents poll this one failed");
                    }
                    // A new agent is told within a second (agents arriving together share one write).
                    tokio::select! {
                        _ = tokio::time::sleep(every) => {}
                        _ = sharing.agent_newly_heard() => {
                            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                        }
                    }
                }
            });
        }
        // SAFETY: mi_collect only frees and purges memory no allocation holds.
        unsafe { libmimalloc_sys::mi_collect(true) };
        let log_events =
            berth_server::logs::event_store::LogEvents::open(&data_dir.join("logs.redb"))
                .with_context(|| format!("opening the log events in {}", data_dir.display()))?;
        if shared.is_some() {
            // Servers sharing the store number log events in slots of their own.
            let slot = state
                .claim_log_slot(
                    log_events.id(),
                    berth_server::logs::event_store::MAX_SLOT,
                )
                .await
                .context("claiming this server's log event slot")?;
            log_events.set_slot(slot);
        }
        state.set_log_events(Arc::new(log_events));
        berth_server::logs::housekeeping::spawn(&state);
        let key_file = serve
            .secrets_key_file
            .clone()
            .unwrap_or_else(|| data_dir.join("secrets.key"));
        let sealer = berth_server::sealing::Sealer::load_or_create(&key_file)
            .with_context(|| format!("the secrets key {}", key_file.display()))?;
        state.set_sealer(Arc::new(sealer));
        state.set_instance_timeout(std::time::Duration::from_secs(serve.instance_timeout));
        state.set_task_credentials_lifetime(serve.task_credentials_lifetime);
        if let Some(pool) = public_ip_pool {
            state.set_public_ip_pool(pool);
        }
        berth_server::controller::spawn(&state);
        if let Some(at) = serve.registry_addr(listen, dev.is_some()) {
            // The control plane serves without its registry rather than not at all.
            if let Err(e) = serve_registry(&state, at, serve, data_dir).await {
                tracing::error!(error = format!("{e:#}"), "the registry is not served");
            }
        }
        let limits = berth_server::console::sessions::Limits {
            idle_secs: serve.console_idle_timeout,
            lifetime_secs: serve.console_session_lifetime,
        };
        let dev_key = dev.as_ref().map(|(id, _, _)| id.clone());
        let console = Arc::new(berth_server::console::Console::new(limits, dev_key));
        let app = AppState {
            state,
            keys: Arc::new(keys),
            console: console.clone(),
            throttle: (serve.throttling == Throttling::Ecs)
                .then(|| Arc::new(berth_server::throttling::Throttle::default())),
        };
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("listening on {listen}"))?;
        let addr = listener.local_addr()?;
        tracing::info!(%addr, data_dir = %data_dir.display(), "berth is serving");
        let (mut dev_agents, mut dev_tasks) = (vec![], vec![]);
        if let Some((id, secret, agents)) = dev {
            let docker_down = match agents.first() {
                Some(a) => {
                    let socket = a.docker_socket.clone();
                    berth_agent::docker::DockerRuntime::connect_to(&socket)
                        .await
                        .err()
                        .map(|_| socket)
                }
                None => None,
            };
            if let Some(socket) = &docker_down {
                console.set_notice(Some(format!(
                    "Docker is not answering at {}: tasks cannot run until it does. To install and start it: sudo ./scripts/docker-up",
                    socket.display()
                )));
            }
            for mut agent in agents {
                agent.servers = vec![format!("http://{addr}")];
                dev_agents.push(agent.clone());
                let console = console.clone();
                // The dev server keeps serving without Docker; its agents start once Docker answers.
                dev_tasks.push(tokio::spawn(async move {
                    let fleet = agent.fleet;
                    let answers = docker_answers(&agent.docker_socket).await;
                    if answers {
                        console.set_notice(None);
                    }
                    if !answers {
                        tracing::error!(
                            fleet,
                            "Docker never answered: restart berth dev once it runs"
                        );
                        return;
                    }
                    if let Err(e) = berth_agent::run(agent).await {
                        tracing::error!(error = %e, fleet, "a built-in agent stopped");
                    }
                }));
            }
            println!("berth dev is running. To use it:\n");
            println!("export AWS_ENDPOINT_URL=http://{addr}");
            println!("export AWS_ACCESS_KEY_ID={id}");
            println!("export AWS_SECRET_ACCESS_KEY={secret}");
            println!("export AWS_DEFAULT_REGION={DEV_REGION}");
            println!();
            println!("The console: http://{addr}/console");
            println!();
            if let Some(socket) = docker_down {
                println!(
                    "Docker is not answering at {}: tasks cannot run until it does.",
                    socket.display()
                );
                println!("To install and start it: sudo ./scripts/docker-up");
                println!("(berth dev's agents start as soon as Docker answers.)");
                println!();
            }
        }
        // Tests and scripts read the bound address from here (useful with port 0).
        println!("listening on {addr}");
        use std::io::Write;
        std::io::stdout().flush()?;
        let poll_for = std::time::Duration::from_micros(serve.connection_poll_us);
        let limits = serve.connection_limits()?;
        let listener =
            berth_server::polling::PollingListener::with_limits(listener, poll_for, limits);
        let state = app.state.clone();
        if let Some(shared) = &shared {
            shared.join_readers(&state, serve.advertised_url(addr));
        }
        let stopping = state.clone();
        let (stop_tx, mut stopped) = tokio::sync::watch::channel(false);
        let serving = axum::serve(
            listener,
            berth_server::router(app)
                .layer(axum::middleware::from_fn(move |req, next| {
                    berth_server::connection_limits::track(limits, req, next)
                }))
                .into_make_service_with_connect_info::<berth_server::polling::PeerAddr>(),
        )
        .with_graceful_shutdown(async move {
            stop_signal().await;
            stopping.stop();
            let _ = stop_tx.send(true);
        });
        // Open requests get a moment to finish; agents' long polls would hold the
        // exit for their whole wait, and they poll again elsewhere or on restart.
        tokio::select! {
            served = serving => served?,
            _ = async {
                let _ = stopped.wait_for(|s| *s).await;
                tokio::time::sleep(SHUTDOWN_GRACE).await;
            } => tracing::info!("stopping without waiting longer for open requests"),
        }
        if let Some(shared) = &shared {
            shared.leave_readers(&state).await;
        }
        if !dev_agents.is_empty() {
            // The agents stop first, so nothing refills what is cleared after them.
            for t in &dev_tasks {
                t.abort();
            }
            let mut left = vec![];
            for agent in &dev_agents {
                match tokio::time::timeout(std::time::Duration::from_secs(10), berth_agent::leave(agent)).await {
                    Ok(Ok(l)) => left.push(l),
                    Ok(Err(e)) => tracing::warn!(error = %e, fleet = agent.fleet, "clearing an agent's spares failed"),
                    Err(_) => tracing::warn!(fleet = agent.fleet, "Docker did not answer in time"),
                }
            }
            berth_agent::task_endpoint::serve::stop();
            println!("{}", berth_agent::leaving_line(&left));
        }
        Ok(())
    })
}

/// How long a stopping server waits for its open requests.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

/// SIGINT (Ctrl-C) or SIGTERM (what service managers and `docker stop` send).
async fn stop_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "SIGTERM cannot be caught; stopping on Ctrl-C only");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
