//! berth's host agent. It registers this host as a container instance, then
//! loops: long-poll the full set of tasks desired here, reconcile Docker to
//! it (one runner per task), report what actually happened, and clean up
//! containers no task wants. Level-triggered: every pass starts from what
//! the control plane and Docker say now, so lost messages and restarts heal.
pub mod awslogs;
pub mod awsvpc;
pub mod cgroups;
pub mod client;
pub mod container_config;
pub mod desired;
pub mod docker;
pub mod docker_engine;
pub mod ecr_images;
pub mod engine;
pub mod firewall;
pub mod gpus;
pub mod lifecycle;
mod local_state;
pub mod logs;
pub mod metrics;
pub mod netns;
pub mod pause;
pub mod public_ip;
pub mod reports;
pub mod runner;
pub mod secrets;
pub mod server_logs;
pub mod servers;
pub mod task_endpoint;
pub mod volumes;

use berth_api::agent::{self as channel, PollRequest, PollResponse, ReportRequest, ReportResponse};
use berth_api::ecs::*;
use client::{ApiClient, ClientError, Credentials, ECS_TARGET};
use docker::DockerRuntime;
use futures_util::StreamExt;
use runner::{PullBehavior, RunnerHandle, Shared};
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub const AGENT_VERSION: &str = env!("CARGO_PKG_VERSION");
const POLL_WAIT_SECS: u64 = 20;
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
const RETRY_DELAY: Duration = Duration::from_millis(500);
/// How often containers no task wants are looked for.
const SWEEP_EVERY: Duration = Duration::from_secs(10);
/// How long a stopped task's containers stay for `berth logs` before removal.
pub const DEFAULT_CLEANUP_WAIT: Duration = Duration::from_secs(3600);

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("Docker: {0}")]
    Docker(#[from] bollard::errors::Error),
    #[error("{0}")]
    Api(#[from] ClientError),
    #[error("state in {path}: {message}")]
    LocalState { path: PathBuf, message: String },
    #[error("container instance {0} was deregistered")]
    Deregistered(String),
    #[error("metrics: {0}")]
    Metrics(String),
}

#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// The servers' endpoints (any of those sharing a store); the agent moves
    /// to the next when the one it uses fails.
    pub servers: Vec<String>,
    pub cluster: String,
    pub data_dir: PathBuf,
    pub access_key_id: String,
    pub secret_access_key: String,
    pub region: String,
    pub availability_zone: Option<String>,
    pub attributes: Vec<(String, String)>,
    pub pull_behavior: PullBehavior,
    /// MiB of the host's memory kept back from tasks (ECS_RESERVED_MEMORY).
    pub reserved_memory_mib: i64,
    pub cleanup_wait: Duration,
    /// A host of the platform's fleet (FARGATE tasks of any account), not a
    /// container instance of `cluster`; signs with the fleet's keys.
    pub fleet: bool,
    /// The Docker Engine's socket.
    pub docker_socket: PathBuf,
    /// Where `/metrics` is served, if anywhere.
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// The host's GPUs (ECS_ENABLE_GPU_SUPPORT's discovery), registered as the GPU resource.
    pub gpus: Vec<String>,
    /// The Docker runtime of containers given GPUs (ECS_NVIDIA_RUNTIME).
    pub nvidia_runtime: String,
}

/// Who this agent is to the control plane, and how it polls and reports.
#[derive(Clone)]
enum Seat {
    Instance { cluster: String, arn: String },
    Fleet { host_id: String },
}

impl Seat {
    async fn poll(
        &self,
        client: &ApiClient,
        known: Option<String>,
    ) -> Result<PollResponse, ClientError> {
        let timeout = Duration::from_secs(POLL_WAIT_SECS) + CALL_TIMEOUT;
        let target = channel::TARGET_PREFIX;
        match self {
            Seat::Instance { cluster, arn } => {
                let request = PollRequest {
                    cluster: cluster.clone(),
                    container_instance_arn: arn.clone(),
                    known,
                    wait_seconds: Some(POLL_WAIT_SECS),
                };
                client.call(target, channel::POLL, &request, timeout).await
            }
            Seat::Fleet { host_id } => {
                let request = channel::FleetPollRequest {
                    host_id: host_id.clone(),
                    known,
                    wait_seconds: Some(POLL_WAIT_SECS),
                };
                client
                    .call(target, channel::FLEET_POLL, &request, timeout)
                    .await
            }
        }
    }

    async fn report(
        &self,
        client: &ApiClient,
        tasks: Vec<Task>,
    ) -> Result<ReportResponse, ClientError> {
        let target = channel::TARGET_PREFIX;
        match self {
            Seat::Instance { cluster, arn } => {
                let request = ReportRequest {
                    cluster: cluster.clone(),
                    container_instance_arn: arn.clone(),
                    tasks,
                };
                client
                    .call(target, channel::REPORT, &request, CALL_TIMEOUT)
                    .await
            }
            Seat::Fleet { host_id } => {
                let request = channel::FleetReportRequest {
                    host_id: host_id.clone(),
                    tasks,
                };
                client
                    .call(target, channel::FLEET_REPORT, &request, CALL_TIMEOUT)
                    .await
            }
        }
    }
}

/// Announces this fleet host and what it offers; answers its id.
async fn register_fleet_host(
    cfg: &AgentConfig,
    client: &ApiClient,
    docker: &DockerRuntime,
    state: &local_state::LocalState,
) -> Result<String, AgentError> {
    let host = docker.host_info().await?;
    let request = channel::FleetRegisterRequest {
        host_id: state.ec2_instance_id.clone(),
        cpu: host.cpus * 1024,
        memory: (host.memory_mib - cfg.reserved_memory_mib).max(0),
    };
    let answer: channel::FleetRegisterResponse = client
        .call(
            channel::TARGET_PREFIX,
            channel::FLEET_REGISTER,
            &request,
            CALL_TIMEOUT,
        )
        .await?;
    Ok(answer.host_id)
}

/// Registers (or re-registers) this host and answers its container instance ARN.
async fn register(
    cfg: &AgentConfig,
    client: &ApiClient,
    docker: &DockerRuntime,
    state: &mut local_state::LocalState,
) -> Result<ContainerInstance, AgentError> {
    let host = docker.host_info().await?;
    let az = cfg
        .availability_zone
        .clone()
        .unwrap_or_else(|| format!("{}a", cfg.region));
    let identity = serde_json::json!({
        "instanceId": state.ec2_instance_id,
        "availabilityZone": az,
        "region": cfg.region,
        "instanceType": "berth",
    });
    let int = |name: &str, v: i64| Resource {
        name: Some(name.into()),
        r#type: Some("INTEGER".into()),
        integer_value: Some(v as i32),
        ..Default::default()
    };
    let mut attributes: Vec<(String, String)> = vec![
        ("ecs.os-type".into(), "linux".into()),
        ("ecs.os-family".into(), "LINUX".into()),
        (
            "ecs.cpu-architecture".into(),
            host.architecture.replace("aarch64", "arm64"),
        ),
        (
            "ecs.capability.container-health-check".into(),
            String::new(),
        ),
        ("ecs.capability.container-ordering".into(), String::new()),
        ("ecs.capability.docker-plugin.local".into(), String::new()),
        (
            "com.amazonaws.ecs.capability.privileged-container".into(),
            String::new(),
        ),
        (
            "com.amazonaws.ecs.capability.logging-driver.json-file".into(),
            String::new(),
        ),
        (
            "com.amazonaws.ecs.capability.logging-driver.none".into(),
            String::new(),
        ),
        (
            "com.amazonaws.ecs.capability.logging-driver.syslog".into(),
            String::new(),
        ),
        (
            "com.amazonaws.ecs.capability.logging-driver.local".into(),
            String::new(),
        ),
    ];
    // What berth's agent serves itself: awslogs shipped to the server, ECR pulls
    // from berth's registry, roles at the task endpoint, awsvpc ENIs, secrets
    // and registry logins from berth's Secrets Manager and Parameter Store.
    for served in [
        "com.amazonaws.ecs.capability.logging-driver.awslogs",
        "ecs.capability.execution-role-awslogs",
        "com.amazonaws.ecs.capability.ecr-auth",
        "ecs.capability.execution-role-ecr-pull",
        "com.amazonaws.ecs.capability.task-iam-role",
        "com.amazonaws.ecs.capability.task-iam-role-network-host",
        "ecs.capability.task-eni",
        "ecs.capability.secrets.asm.environment-variables",
        "ecs.capability.secrets.ssm.environment-variables",
        "ecs.capability.secrets.asm.bootstrap.log-driver",
        "ecs.capability.secrets.ssm.bootstrap.log-driver",
        "com.amazonaws.ecs.capability.private-registry-authentication.secretsmanager",
        // Accepted so such a task reaches a host, which stops it with the file it cannot fetch.
        "ecs.capability.env-files.s3",
    ] {
        attributes.push((served.into(), String::new()));
    }
    for minor in 17..=41 {
        attributes.push((
            format!("com.amazonaws.ecs.capability.docker-remote-api.1.{minor}"),
            String::new(),
        ));
    }
    attributes.extend(cfg.attributes.iter().cloned());
    let mut request = RegisterContainerInstanceRequest {
        cluster: Some(cfg.cluster.clone()),
        instance_identity_document: Some(identity.to_string()),
        total_resources: Some({
            let mut total = vec![
                int("CPU", host.cpus * 1024),
                int("MEMORY", (host.memory_mib - cfg.reserved_memory_mib).max(0)),
            ];
            // Only a host with GPUs registers the resource, as the ECS agent does.
            if !cfg.gpus.is_empty() {
                total.push(Resource {
                    name: Some(berth_model::resources::GPU.into()),
                    r#type: Some("STRINGSET".into()),
                    string_set_value: Some(cfg.gpus.clone()),
                    ..Default::default()
                });
            }
            total
        }),
        version_info: Some(VersionInfo {
            agent_version: Some(AGENT_VERSION.into()),
            agent_hash: Some("berth".into()),
            docker_version: Some(format!("DockerVersion: {}", host.docker_version)),
        }),
        container_instance_arn: state.container_instance_arn.clone(),
        attributes: Some(
            attributes
                .into_iter()
                .map(|(k, v)| Attribute {
                    name: Some(k),
                    value: (!v.is_empty()).then_some(v),
                    ..Default::default()
                })
                .collect(),
        ),
        ..Default::default()
    };
    let call = |req: RegisterContainerInstanceRequest| async move {
        client
            .call::<_, RegisterContainerInstanceResponse>(
                ECS_TARGET,
                "RegisterContainerInstance",
                &req,
                CALL_TIMEOUT,
            )
            .await
    };
    let answer = match call(request.clone()).await {
        Err(ClientError::Api { code, .. })
            if code == "ClusterNotFoundException" && cfg.cluster == "default" =>
        {
            // The ECS agent creates the default cluster when it is missing.
            let create = CreateClusterRequest {
                cluster_name: Some("default".into()),
                ..Default::default()
            };
            client
                .call::<_, CreateClusterResponse>(
                    ECS_TARGET,
                    "CreateCluster",
                    &create,
                    CALL_TIMEOUT,
                )
                .await?;
            call(request.clone()).await
        }
        Err(ClientError::Api { code, message })
            if code == "InvalidParameterException" && request.container_instance_arn.is_some() =>
        {
            // The instance we knew is gone (another cluster, or a fresh store): register anew.
            tracing::warn!(%message, "re-registration refused; registering as a new instance");
            request.container_instance_arn = None;
            call(request).await
        }
        other => other,
    }?;
    let instance = answer.container_instance.unwrap_or_default();
    state.container_instance_arn = instance.container_instance_arn.clone();
    state.save().map_err(|message| AgentError::LocalState {
        path: cfg.data_dir.clone(),
        message,
    })?;
    Ok(instance)
}

/// The control plane, asked for a task's role sessions as this instance or fleet host.
struct ControlPlane {
    client: ApiClient,
    seat: Seat,
}

#[async_trait::async_trait]
impl task_endpoint::CredentialsSource for ControlPlane {
    async fn fetch(
        &self,
        task_arn: &str,
        role: channel::TaskRole,
    ) -> Result<channel::TaskCredentialsResponse, String> {
        let (container_instance_arn, host_id) = match &self.seat {
            Seat::Instance { arn, .. } => (Some(arn.clone()), None),
            Seat::Fleet { host_id } => (None, Some(host_id.clone())),
        };
        let request = channel::TaskCredentialsRequest {
            task_arn: task_arn.to_string(),
            role,
            container_instance_arn,
            host_id,
        };
        self.client
            .call(
                channel::TARGET_PREFIX,
                channel::TASK_CREDENTIALS,
                &request,
                CALL_TIMEOUT,
            )
            .await
            .map_err(|e| e.to_string())
    }
}

/// The agent's key for its tasks' endpoint ids, kept in its data dir so a
/// restarted agent answers the ids its running containers hold.
fn endpoint_key(data_dir: &std::path::Path) -> Result<Vec<u8>, AgentError> {
    let path = data_dir.join("endpoint.key");
    let fail = |e: std::io::Error| AgentError::LocalState {
        path: path.clone(),
        message: e.to_string(),
    };
    match std::fs::read(&path) {
        Ok(k) if !k.is_empty() => Ok(k),
        _ => {
            let k = format!(
                "{}{}",
                uuid::Uuid::new_v4().simple(),
                uuid::Uuid::new_v4().simple()
            )
            .into_bytes();
            std::fs::create_dir_all(data_dir).map_err(fail)?;
            std::fs::write(&path, &k).map_err(fail)?;
            Ok(k)
        }
    }
}

/// Runs the agent until it fails or its instance is deregistered.
pub async fn run(cfg: AgentConfig) -> Result<(), AgentError> {
    let docker = DockerRuntime::connect_to(&cfg.docker_socket).await?;
    // Bound first, so a taken address stops the agent before it registers.
    let metrics_listener = match cfg.metrics_listen {
        Some(addr) => Some(
            tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| AgentError::Metrics(format!("listening on {addr}: {e}")))?,
        ),
        None => None,
    };
    let client = ApiClient::new(
        &cfg.servers,
        Credentials {
            access_key_id: cfg.access_key_id.clone(),
            secret_access_key: cfg.secret_access_key.clone(),
            session_token: None,
            region: cfg.region.clone(),
        },
    )?;
    let mut state =
        local_state::LocalState::load(&cfg.data_dir).map_err(|message| AgentError::LocalState {
            path: cfg.data_dir.clone(),
            message,
        })?;
    let seat = loop {
        let registered = if cfg.fleet {
            match register_fleet_host(&cfg, &client, &docker, &state).await {
                // The host id must outlive restarts: its tasks are found again by it.
                Ok(host_id) => state
                    .save()
                    .map_err(|message| AgentError::LocalState {
                        path: cfg.data_dir.clone(),
                        message,
                    })
                    .map(|()| Seat::Fleet { host_id }),
                Err(e) => Err(e),
            }
        } else {
            register(&cfg, &client, &docker, &mut state)
                .await
                .map(|i| Seat::Instance {
                    cluster: cfg.cluster.clone(),
                    arn: i.container_instance_arn.unwrap_or_default(),
                })
        };
        match registered {
            Ok(s) => break s,
            // The server may still be starting: keep trying, as the ECS agent does.
            Err(AgentError::Api(ClientError::Transport { endpoint, source })) => {
                tracing::warn!(%endpoint, error = %source, "server unreachable; retrying registration");
                tokio::time::sleep(RETRY_DELAY).await;
            }
            Err(e) => return Err(e),
        }
    };
    // What this agent's containers are labelled with, so it touches only its own.
    let (owner, cluster_arn) = match &seat {
        Seat::Instance { arn, .. } => {
            tracing::info!(container_instance = %arn, cluster = %cfg.cluster, "registered");
            let cluster_arn = arn
                .split_once(":container-instance/")
                .map(|(head, rest)| {
                    format!(
                        "{head}:cluster/{}",
                        rest.split('/').next().unwrap_or_default()
                    )
                })
                .unwrap_or_default();
            (arn.clone(), cluster_arn)
        }
        Seat::Fleet { host_id } => {
            tracing::info!(fleet_host = %host_id, "registered as a fleet host");
            (format!("fleet-host/{host_id}"), String::new())
        }
    };
    let host = HostDocker {
        pause_pool: awsvpc::PausePool::new(docker.clone(), &owner),
        docker: docker.clone(),
    };
    let endpoints = task_endpoint::Endpoints::new(
        endpoint_key(&cfg.data_dir)?,
        Arc::new(ControlPlane {
            client: client.clone(),
            seat: seat.clone(),
        }),
        Some(docker.clone()),
    );
    if let Err(e) = task_endpoint::serve::start(endpoints.clone()).await {
        // Tasks still run; their containers find no credentials or metadata endpoint.
        tracing::warn!(error = %e, "task endpoint not served on this host");
    }
    let metrics = Arc::new(metrics::AgentMetrics::default());
    let engine: Arc<dyn engine::Engine> = Arc::new(docker_engine::DockerEngine {
        docker: host.docker.clone(),
        pause_pool: host.pause_pool.clone(),
        metrics: metrics.clone(),
    });
    let log_shipping = Arc::new(awslogs::shipper::Shipping::new(
        client.clone(),
        cfg.fleet,
        endpoints.clone(),
        engine.clone(),
        &cfg.data_dir,
    ));
    let shared = Arc::new(Shared {
        endpoints,
        log_shipping: Some(log_shipping),
        pulls: Default::default(),
        registry_logins: Arc::new(ecr_images::ApiLogins {
            client: client.clone(),
            fleet: cfg.fleet,
        }),
        secrets: Arc::new(secrets::ApiSecrets {
            client: client.clone(),
        }),
        engine,
        container_instance_arn: owner,
        cluster_arn,
        pull_behavior: cfg.pull_behavior,
        reports: Default::default(),
        images: Default::default(),
        nvidia_runtime: cfg.nvidia_runtime.clone(),
    });
    if let Some(listener) = metrics_listener {
        metrics::serve(listener, metrics, shared.clone());
    }
    let runners: Arc<std::sync::Mutex<HashMap<String, RunnerHandle>>> = Default::default();
    let reporter = tokio::spawn(report_loop(seat.clone(), client.clone(), shared.clone()));
    let events = tokio::spawn(event_loop(host.clone(), shared.clone(), runners.clone()));
    let result = poll_loop(&cfg, &seat, &client, &host, &shared, &runners).await;
    reporter.abort();
    events.abort();
    result
}

/// The host's own Docker, for what belongs to no one task: listing,
/// orphans, events and the pause pool.
#[derive(Clone)]
struct HostDocker {
    docker: DockerRuntime,
    pause_pool: Arc<awsvpc::PausePool>,
}

async fn poll_loop(
    cfg: &AgentConfig,
    seat: &Seat,
    client: &ApiClient,
    host: &HostDocker,
    shared: &Arc<Shared>,
    runners: &Arc<std::sync::Mutex<HashMap<String, RunnerHandle>>>,
) -> Result<(), AgentError> {
    let instance_arn = shared.container_instance_arn.clone();
    let mut known: Option<String> = None;
    let mut orphans: HashMap<String, Instant> = HashMap::new();
    let mut cgroups_swept: Option<Instant> = None;
    let mut idle_routers = std::collections::BTreeMap::new();
    let mut routers_swept: Option<Instant> = None;
    let mut live_before: HashSet<String> = HashSet::new();
    let mut last_listing: Option<Instant> = None;
    let mut firewalls = awsvpc::Firewalls::new(&shared.container_instance_arn);
    let mut public_ips = public_ip::PublicIps::new(&shared.container_instance_arn);
    loop {
        let answer = seat.poll(client, known.clone()).await;
        let desired = match answer {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(error = %e, "poll failed; retrying");
                known = None;
                tokio::time::sleep(RETRY_DELAY).await;
                continue;
            }
        };
        known = Some(desired.fingerprint.clone());
        // Public addresses and rules are in place before any ENI they cover is plumbed.
        let mappings = desired
            .tasks
            .iter()
            .filter_map(|t| t.network.as_ref())
            .filter_map(|n| {
                Some(public_ip::Mapping {
                    vpc_id: n.vpc_id.clone(),
                    public: n.public_ip.as_deref()?.parse().ok()?,
                    private: n.private_ip.parse().ok()?,
                })
            })
            .collect();
        let public_failed = public_ips.apply(mappings).await.err();
        let firewalls_failed = firewalls
            .apply(&desired.firewalls)
            .await
            .err()
            .or(public_failed);
        if let Some(e) = &firewalls_failed {
            tracing::warn!(error = %e, "applying security groups failed; retrying");
            known = None;
        }
        let wanted: HashSet<String> = desired
            .tasks
            .iter()
            .filter_map(|t| t.task.task_arn.clone())
            .collect();
        // Docker is listed at the first pass (adoption after a restart: a task
        // first seen later has no containers yet, and a name clash on create
        // finds any) and when the orphan sweep is due.
        let list_now = last_listing.is_none_or(|t: Instant| t.elapsed() >= SWEEP_EVERY);
        let owned = if list_now {
            match host.docker.owned(&instance_arn).await {
                Ok(o) => {
                    last_listing = Some(Instant::now());
                    Some(o)
                }
                Err(e) => {
                    tracing::warn!(error = %e, "listing containers failed; retrying");
                    known = None;
                    tokio::time::sleep(RETRY_DELAY).await;
                    continue;
                }
            }
        } else {
            None
        };
        {
            let mut live = runners.lock().unwrap_or_else(|p| p.into_inner());
            let current: Vec<(String, String, bool)> = live
                .iter()
                .map(|(arn, h)| {
                    let desired = h.desired.borrow().clone();
                    (arn.clone(), desired, h.done.load(Ordering::SeqCst))
                })
                .collect();
            let seen: Vec<desired::Runner<'_>> = current
                .iter()
                .map(|(arn, d, done)| desired::Runner {
                    task_arn: arn,
                    desired: d,
                    done: *done,
                })
                .collect();
            let listed = owned.as_deref().unwrap_or_default();
            for command in desired::diff(&desired.tasks, &seen, listed) {
                match command {
                    desired::Command::Spawn { task, adopted } => {
                        let d = &desired.tasks[task];
                        let arn = d.task.task_arn.clone().unwrap_or_default();
                        live.insert(arn, runner::spawn(shared.clone(), d, &adopted));
                    }
                    desired::Command::Desire { task_arn, status } => {
                        if let Some(h) = live.get(&task_arn) {
                            h.desired.send_replace(status);
                        }
                    }
                    desired::Command::Forget { task_arn } => {
                        live.remove(&task_arn);
                        shared.reports.forget(&task_arn);
                    }
                }
            }
            // A report the control plane never applied goes again.
            for d in &desired.tasks {
                let arn = d.task.task_arn.as_deref().unwrap_or_default();
                if let Some(observed) = shared.reports.latest(arn) {
                    if reports::lags(&d.task, &observed) {
                        shared.reports.resend([arn.to_string()]);
                    }
                }
            }
        }
        if let Some(owned) = owned {
            let removed_containers =
                sweep_orphans(cfg, &host.docker, runners, owned, &wanted, &mut orphans).await;
            let live: HashSet<String> = runners
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .keys()
                .chain(&wanted)
                .filter_map(|arn| arn.rsplit('/').next().map(String::from))
                .collect();
            host.pause_pool.sweep(|id| live.contains(id)).await;
            // What a killed agent left: task cgroups no task on the host names.
            let sweep_due =
                cgroups_swept.is_none_or(|t: Instant| t.elapsed() >= cgroups::SWEEP_GRACE);
            // A task whose last container went, or that ended here, takes its
            // volumes with it; a killed agent's leftovers go at the next sweep.
            let ended = live_before.iter().any(|t| !live.contains(t));
            let on_host = if removed_containers || ended || sweep_due {
                host.docker.task_ids_on_host().await.ok()
            } else {
                None
            };
            if let Some(on_host) = &on_host {
                let removed = volumes::sweep(&host.docker, on_host, &live).await;
                if !removed.is_empty() {
                    tracing::info!(volumes = ?removed, "removed the volumes of tasks that are gone");
                }
            }
            if sweep_due {
                cgroups_swept = Some(Instant::now());
                if let Some(on_host) = &on_host {
                    let gone = cgroups::sweep(|id| live.contains(id) || on_host.contains(id));
                    if !gone.is_empty() {
                        tracing::info!(tasks = ?gone, "removed cgroups no task holds");
                    }
                }
            }
            // And VPC routers no ENI is plumbed into any more.
            if routers_swept.is_none_or(|t: Instant| t.elapsed() >= netns::ROUTER_SWEEP_EVERY) {
                routers_swept = Some(Instant::now());
                let own = desired
                    .firewalls
                    .iter()
                    .map(|f| netns::router(&f.vpc_id))
                    .collect();
                let (removed, idle) =
                    netns::sweep_routers(&idle_routers, &own, &firewalls.tables()).await;
                idle_routers = idle;
                if !removed.is_empty() {
                    tracing::info!(namespaces = ?removed, "removed VPC routers no ENI is plumbed into");
                }
            }
            live_before = live;
        }
        if desired.status == berth_model::container_instance::INACTIVE && desired.tasks.is_empty() {
            return Err(AgentError::Deregistered(instance_arn));
        }
        if firewalls_failed.is_some() {
            tokio::time::sleep(RETRY_DELAY).await;
        }
    }
}

/// Containers of this instance that no task wants: running ones are stopped
/// (never two copies of a replaced task), stopped ones removed after the cleanup
/// wait. Answers whether it removed any.
async fn sweep_orphans(
    cfg: &AgentConfig,
    docker: &DockerRuntime,
    runners: &Arc<std::sync::Mutex<HashMap<String, RunnerHandle>>>,
    owned: Vec<docker::Owned>,
    wanted: &HashSet<String>,
    orphans: &mut HashMap<String, Instant>,
) -> bool {
    let live: HashSet<String> = runners
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .keys()
        .cloned()
        .collect();
    let decided = desired::sweep(
        &owned,
        wanted,
        &live,
        orphans,
        Instant::now(),
        cfg.cleanup_wait,
    );
    for id in decided.stop {
        tracing::info!(container = %id, "stopping a container no task wants");
        let docker = docker.clone();
        tokio::spawn(async move {
            let _ = docker.stop(&id, 10).await;
        });
    }
    let removed_any = !decided.remove.is_empty();
    for (id, task_arn) in decided.remove {
        if let Err(e) = docker.remove(&id).await {
            tracing::warn!(container = %id, error = %e, "removing a stopped container failed");
        }
        if let Some(task_id) = task_arn.rsplit('/').next() {
            cgroups::remove(task_id);
        }
    }
    removed_any
}

async fn report_loop(seat: Seat, client: ApiClient, shared: Arc<Shared>) {
    loop {
        let batch = shared.reports.take_unsent();
        if batch.is_empty() {
            shared.reports.changed.notified().await;
            continue;
        }
        let arns: Vec<String> = batch.iter().filter_map(|t| t.task_arn.clone()).collect();
        let began = Instant::now();
        let sent = seat.report(&client, batch).await;
        let took_ms = began.elapsed().as_secs_f64() * 1000.0;
        tracing::debug!(tasks = arns.len(), took_ms, "report");
        if let Err(e) = sent {
            tracing::warn!(error = %e, "report failed; will resend");
            shared.reports.resend(arns);
            tokio::time::sleep(RETRY_DELAY).await;
        }
    }
}

/// Docker's container events wake the runner of the task they concern.
async fn event_loop(
    host: HostDocker,
    shared: Arc<Shared>,
    runners: Arc<std::sync::Mutex<HashMap<String, RunnerHandle>>>,
) {
    loop {
        let mut stream = Box::pin(host.docker.events(&shared.container_instance_arn));
        while let Some(event) = stream.next().await {
            match event {
                Ok(task_arn) => {
                    if let Some(h) = runners
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .get(&task_arn)
                    {
                        h.wake.notify_one();
                    }
                }
                Err(e) => {
                    tracing::debug!(error = %e, "Docker event stream ended");
                    break;
                }
            }
        }
        tokio::time::sleep(RETRY_DELAY).await;
    }
}

/// What an agent leaves on its host when it stops (`berth dev` on exit).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Left {
    /// Spare pause containers of the pool it kept, removed now.
    pub spares_removed: usize,
    /// Containers of its stopped tasks (kept for the cleanup wait), removed now
    /// with the tasks' volumes.
    pub stopped_removed: usize,
    /// Its tasks' containers still running: an agent that stops leaves its tasks be,
    /// and the next run adopts them.
    pub running_containers: usize,
}

/// Removes what only a running agent uses (its pool of spare pause containers)
/// and what its stopped tasks kept for the cleanup wait (their containers and
/// volumes), and counts what it leaves running for the next run to adopt.
pub async fn leave(cfg: &AgentConfig) -> Result<Left, String> {
    let state = local_state::LocalState::load(&cfg.data_dir)?;
    let owner = if cfg.fleet {
        format!("fleet-host/{}", state.ec2_instance_id)
    } else {
        match state.container_instance_arn {
            Some(arn) => arn,
            // It never registered: it made nothing.
            None => return Ok(Left::default()),
        }
    };
    let docker = DockerRuntime::connect_to(&cfg.docker_socket)
        .await
        .map_err(|e| e.to_string())?;
    let mut left = Left::default();
    for (id, name) in docker
        .labelled(&owner, container_config::LABEL_PAUSE_POOL)
        .await?
    {
        // A task's own pause container stays with the task; spares go.
        if container_config::pause_task_id(&name).is_none() {
            docker.remove(&id).await?;
            left.spares_removed += 1;
        }
    }
    let owned = docker.owned(&owner).await.map_err(|e| e.to_string())?;
    for id in desired::of_stopped_tasks(&owned) {
        docker.remove(id).await?;
        left.stopped_removed += 1;
    }
    if left.stopped_removed > 0 {
        if let Ok(on_host) = docker.task_ids_on_host().await {
            volumes::sweep(&docker, &on_host, &HashSet::new()).await;
        }
    }
    left.running_containers = owned.iter().filter(|c| c.running).count();
    Ok(left)
}

/// The one line `berth dev` prints about what it leaves on the host as it exits.
pub fn leaving_line(left: &[Left]) -> String {
    let spares: usize = left.iter().map(|l| l.spares_removed).sum();
    let stopped: usize = left.iter().map(|l| l.stopped_removed).sum();
    let running: usize = left.iter().map(|l| l.running_containers).sum();
    let removed = format!(
        "{spares} spare pause containers and {stopped} containers of stopped tasks removed"
    );
    if running == 0 {
        format!("berth dev stopped: no task containers are left running ({removed}).")
    } else {
        format!(
            "berth dev stopped: {running} task containers keep running, as an ECS agent leaves its tasks when it stops, so the next berth dev adopts them (stop their tasks first to leave nothing; {removed})."
        )
    }
}

#[cfg(test)]
mod leaving_tests {
    use super::*;

    #[test]
    fn the_exit_line_says_what_is_left_and_why() {
        let none = leaving_line(&[Left {
            spares_removed: 2,
            stopped_removed: 1,
            running_containers: 0,
        }]);
        assert_eq!(
            none,
            "berth dev stopped: no task containers are left running (2 spare pause containers and 1 containers of stopped tasks removed)."
        );
        let some = leaving_line(&[
            Left {
                spares_removed: 1,
                stopped_removed: 0,
                running_containers: 2,
            },
            Left {
                spares_removed: 2,
                stopped_removed: 4,
                running_containers: 1,
            },
        ]);
        assert!(
            some.starts_with("berth dev stopped: 3 task containers keep running"),
            "{some}"
        );
        assert!(
            some.contains("3 spare pause containers and 4 containers of stopped tasks removed"),
            "{some}"
        );
        assert!(!some.contains('\n'));
    }
}
