//! An awsvpc task's namespace on this host: berth's pause container holds
//! it, the task's ENI is plumbed into it, the task's containers join it, and
//! both go when the task stops. Security groups are applied per VPC from the
//! poll (`apply_firewalls`), before any runner plumbs an ENI.
use crate::container_config::{self as cc, TaskContext};
use crate::docker::{DockerRuntime, Phase};
use crate::{firewall, netns};
use berth_api::agent::{TaskNetwork, VpcFirewall};
use std::collections::HashMap;

/// The plumbing form of the ENI the control plane gave the task.
pub fn eni(n: &TaskNetwork) -> Result<netns::Eni, String> {
    let bad = || format!("bad ENI {}: subnet {}", n.eni_id, n.subnet_cidr);
    let (network, prefix) = n.subnet_cidr.split_once('/').ok_or_else(bad)?;
    Ok(netns::Eni {
        id: n.eni_id.clone(),
        vpc_id: n.vpc_id.clone(),
        subnet_id: n.subnet_id.clone(),
        subnet_network: network.parse().map_err(|_| bad())?,
        subnet_prefix: prefix.parse().map_err(|_| bad())?,
        ip: n.private_ip.parse().map_err(|_| bad())?,
        mac: n.mac.clone(),
    })
}

/// How many started pause containers a host keeps ready once it runs awsvpc tasks.
pub const POOL_SIZE: usize = 4;

/// Pause containers started ahead of need: a new awsvpc task takes one
/// (renamed to its own pause name) instead of waiting for Docker to start
/// one. Filled from the first awsvpc task on, in the background.
pub struct PausePool {
    docker: DockerRuntime,
    owner: String,
    ready: std::sync::Mutex<Vec<String>>,
    /// Names of every pool container this run made (some still starting).
    made: std::sync::Mutex<std::collections::HashSet<String>>,
    filling: std::sync::atomic::AtomicBool,
}

impl PausePool {
    /// `owner`: what this agent's containers are labelled with.
    pub fn new(docker: DockerRuntime, owner: &str) -> std::sync::Arc<PausePool> {
        std::sync::Arc::new(PausePool {
            docker,
            owner: owner.to_string(),
            ready: Default::default(),
            made: Default::default(),
            filling: Default::default(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<String>> {
        self.ready.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A started pause container, if one is ready; the pool refills behind.
    pub fn take(self: &std::sync::Arc<Self>) -> Option<String> {
        let id = self.lock().pop();
        self.refill();
        id
    }

    fn refill(self: &std::sync::Arc<Self>) {
        use std::sync::atomic::Ordering;
        if self.filling.swap(true, Ordering::SeqCst) {
            return;
        }
        let pool = self.clone();
        tokio::spawn(async move {
            while pool.lock().len() < POOL_SIZE {
                match pool.start_one().await {
                    Ok(id) => pool.lock().push(id),
                    Err(e) => {
                        tracing::warn!(error = %e, "starting a pooled pause container failed");
                        break;
                    }
                }
            }
            pool.filling.store(false, Ordering::SeqCst);
        });
    }

    async fn start_one(&self) -> Result<String, String> {
        let image = self.docker.ensure_pause_image().await?;
        let name = format!("berth-pool-{}", uuid::Uuid::new_v4().simple());
        self.made
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.clone());
        let id = self
            .docker
            .create(&name, cc::pool_pause_body(&self.owner, &image))
            .await?;
        self.docker.start(&id).await?;
        Ok(id)
    }

    /// Removes what a previous run left: unused pool containers, and the pause
    /// containers of tasks no runner has (`alive` says which task ids do).
    pub async fn sweep(&self, alive: impl Fn(&str) -> bool) {
        let Ok(all) = self
            .docker
            .labelled(&self.owner, cc::LABEL_PAUSE_POOL)
            .await
        else {
            return;
        };
        let made = self.made.lock().unwrap_or_else(|p| p.into_inner()).clone();
        for (id, name) in all {
            let stale = match cc::pause_task_id(&name) {
                Some(task_id) => !alive(task_id),
                None => !made.contains(&name),
            };
            if stale {
                tracing::info!(container = %name, "removing a pause container no task has");
                let _ = self.docker.remove(&id).await;
            }
        }
    }
}

/// Creates (or finds, or takes from the pool) and starts the task's pause
/// container and plumbs the ENI into its namespace, unless a previous run of
/// the agent already did. Answers the pause container's id.
pub async fn set_up(
    docker: &DockerRuntime,
    pool: &std::sync::Arc<PausePool>,
    ctx: &TaskContext<'_>,
    existing: Option<&str>,
    network: &TaskNetwork,
) -> Result<String, String> {
    let eni = eni(network)?;
    let began = std::time::Instant::now();
    let name = cc::pause_name(ctx.task_id);
    let id = match existing {
        Some(id) => id.to_string(),
        None => match pool.take() {
            Some(id) if docker.rename(&id, &name).await.is_ok() => id,
            taken => {
                if let Some(id) = taken {
                    let _ = docker.remove(&id).await;
                }
                let image = docker.ensure_pause_image().await?;
                docker.create(&name, cc::pause_body(ctx, &image)).await?
            }
        },
    };
    let observed = docker.inspect(&id).await.map_err(|e| e.to_string())?;
    if observed.phase != Phase::Running {
        docker.start(&id).await?;
    } else if netns::attached(&eni).await {
        return Ok(id);
    }
    let started = began.elapsed();
    let pid = docker.pid(&id).await?;
    netns::attach(pid, &eni).await?;
    tracing::debug!(
        eni = %eni.id,
        pause_ms = started.as_secs_f64() * 1000.0,
        total_ms = began.elapsed().as_secs_f64() * 1000.0,
        "task namespace ready"
    );
    Ok(id)
}

/// Unplumbs the ENI and removes the pause container (the namespace goes with
/// it); by its name when a restarted agent never learnt its id.
pub async fn tear_down(
    docker: &DockerRuntime,
    task_id: &str,
    pause: Option<&str>,
    network: &TaskNetwork,
) {
    match eni(network) {
        Ok(e) => {
            if let Err(err) = netns::detach(&e).await {
                tracing::warn!(eni = %e.id, error = %err, "unplumbing an ENI failed");
            }
        }
        Err(err) => tracing::warn!(error = %err, "unplumbing an ENI failed"),
    }
    let name = cc::pause_name(task_id);
    let id = pause.unwrap_or(&name);
    if let Err(e) = docker.remove(id).await {
        tracing::warn!(container = %id, error = %e, "removing a pause container failed");
    }
}

/// What the agent last applied in each VPC's router namespace.
pub struct Firewalls {
    table: String,
    applied: HashMap<String, VpcFirewall>,
}

impl Firewalls {
    /// `owner`: what this agent's containers are labelled with.
    pub fn new(owner: &str) -> Firewalls {
        Firewalls {
            table: firewall::table(owner),
            applied: HashMap::new(),
        }
    }

    /// The nftables tables this agent makes in routers: its security groups'
    /// and its public addresses'.
    pub fn tables(&self) -> Vec<String> {
        vec![
            self.table.clone(),
            crate::public_ip::router_table(&self.table),
        ]
    }

    /// Applies each VPC's rules that changed, and removes the router
    /// namespace of a VPC that no longer has an ENI here. Err: some VPC
    /// failed and must be tried again.
    pub async fn apply(&mut self, wanted: &[VpcFirewall]) -> Result<(), String> {
        let mut failed = None;
        for f in wanted {
            let ns = netns::router(&f.vpc_id);
            // A router another agent's sweep took away is made again, rules and all.
            if self.applied.get(&f.vpc_id) == Some(f)
                && std::path::Path::new("/run/netns").join(&ns).exists()
            {
                continue;
            }
            let done = async {
                netns::ensure_router(&f.vpc_id).await?;
                firewall::apply(&ns, &self.table, &f.enis).await
            }
            .await;
            match done {
                Ok(()) => {
                    self.applied.insert(f.vpc_id.clone(), f.clone());
                }
                Err(e) => {
                    self.applied.remove(&f.vpc_id);
                    failed = Some(format!("security groups in {ns}: {e}"));
                }
            }
        }
        let gone: Vec<String> = self
            .applied
            .keys()
            .filter(|v| !wanted.iter().any(|f| &f.vpc_id == *v))
            .cloned()
            .collect();
        for vpc in gone {
            // Another agent on this host may still have ENIs there: only the last one out removes it.
            match netns::leave_router(&vpc, &self.table).await {
                Ok(()) => {
                    self.applied.remove(&vpc);
                }
                Err(e) => failed = Some(format!("removing {}: {e}", netns::router(&vpc))),
            }
        }
        failed.map_or(Ok(()), Err)
    }
}
