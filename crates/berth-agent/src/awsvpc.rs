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

/// Creates (or finds) and starts the task's pause container and plumbs the
/// ENI into its namespace, unless a previous run of the agent already did.
/// Answers the pause container's id.
pub async fn set_up(
    docker: &DockerRuntime,
    ctx: &TaskContext<'_>,
    existing: Option<&str>,
    network: &TaskNetwork,
) -> Result<String, String> {
    let eni = eni(network)?;
    let id = match existing {
        Some(id) => id.to_string(),
        None => {
            let image = docker.ensure_pause_image().await?;
            let body = cc::pause_body(ctx, &image);
            docker.create(&cc::pause_name(ctx.task_id), body).await?
        }
    };
    let observed = docker.inspect(&id).await.map_err(|e| e.to_string())?;
    if observed.phase != Phase::Running {
        docker.start(&id).await?;
    } else if netns::attached(&eni).await {
        return Ok(id);
    }
    let pid = docker.pid(&id).await?;
    netns::attach(pid, &eni).await?;
    Ok(id)
}

/// Unplumbs the ENI and removes the pause container (the namespace goes with it).
pub async fn tear_down(docker: &DockerRuntime, pause: Option<&str>, network: &TaskNetwork) {
    match eni(network) {
        Ok(e) => {
            if let Err(err) = netns::detach(&e).await {
                tracing::warn!(eni = %e.id, error = %err, "unplumbing an ENI failed");
            }
        }
        Err(err) => tracing::warn!(error = %err, "unplumbing an ENI failed"),
    }
    if let Some(id) = pause {
        if let Err(e) = docker.remove(id).await {
            tracing::warn!(container = %id, error = %e, "removing a pause container failed");
        }
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

    /// Applies each VPC's rules that changed, and removes the router
    /// namespace of a VPC that no longer has an ENI here. Err: some VPC
    /// failed and must be tried again.
    pub async fn apply(&mut self, wanted: &[VpcFirewall]) -> Result<(), String> {
        let mut failed = None;
        for f in wanted {
            if self.applied.get(&f.vpc_id) == Some(f) {
                continue;
            }
            let ns = netns::router(&f.vpc_id);
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
