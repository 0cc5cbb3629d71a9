//! Task ENIs in the control plane: a task's `networkConfiguration` checked
//! against the account's VPCs, an address for each awsvpc task in one of its
//! subnets, what an agent needs to plumb and firewall them, and their release
//! once the task is STOPPED.
use crate::state::index::{guarded_delete, guarded_put, in_region, Index, PublicIpRecord};
use crate::state::keys::NetworkKind;
use crate::state::{State, StoreKey};
use berth_api::agent::{EniRules, TaskNetwork, VpcFirewall};
use berth_api::ecs::{NetworkConfiguration, Task, TaskDefinition};
use berth_api::ApiError;
use berth_model::awsvpc::{self, Eni, TaskEni};
use berth_model::task_definition as td;
use berth_model::vpc::{Cidr, Subnet};
use berth_model::{arn, Scope};
use berth_store::Txn;
use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

/// Where a launch's awsvpc tasks go: checked, with the groups resolved.
#[derive(Debug, Clone)]
pub struct Plan {
    pub subnets: Vec<Subnet>,
    /// The given groups, or the VPC's default group when none were given.
    pub security_groups: Vec<String>,
    /// The pool a public address comes from, when the task asked for one.
    pub public_ip_pool: Option<Cidr>,
}

/// ECS's checks of `networkConfiguration` against the definition's network
/// mode and launch type, and of the subnets and security groups it names.
/// None: the task has no interface of its own.
pub fn check(
    index: &Index,
    scope: &Scope,
    definition: &TaskDefinition,
    launch_type: &str,
    config: Option<&NetworkConfiguration>,
    public_ip_pool: Option<Cidr>,
) -> Result<Option<Plan>, ApiError> {
    let Some(req) = awsvpc::request(td::network_mode(definition), launch_type, config)? else {
        return Ok(None);
    };
    let mut subnets = vec![];
    for id in &req.subnets {
        let subnet = index
            .subnets
            .get(&(scope.clone(), id.clone()))
            .ok_or_else(|| {
                ApiError::invalid_parameter(format!(
                    "Error retrieving subnet information for [{id}]: The subnet ID '{id}' does not exist (ErrorCode: InvalidSubnetID.NotFound)"
                ))
            })?;
        if !subnets.iter().any(|s: &Subnet| s.id == *id) {
            subnets.push(subnet.value.clone());
        }
    }
    let vpcs: BTreeSet<&str> = subnets.iter().map(|s| s.vpc_id.as_str()).collect();
    if vpcs.len() > 1 {
        return Err(ApiError::invalid_parameter(
            "Subnets must all belong to the same VPC.",
        ));
    }
    let vpc_id = subnets[0].vpc_id.clone();
    let mut security_groups = vec![];
    for id in &req.security_groups {
        let group = index
            .security_groups
            .get(&(scope.clone(), id.clone()))
            .ok_or_else(|| {
                ApiError::invalid_parameter(format!(
                    "Error retrieving security group information for [{id}]: The security group '{id}' does not exist (ErrorCode: InvalidGroup.NotFound)"
                ))
            })?;
        if group.value.vpc_id != vpc_id {
            return Err(ApiError::invalid_parameter(format!(
                "Security group {id} does not belong to the VPC of the given subnets."
            )));
        }
        if !security_groups.contains(id) {
            security_groups.push(id.clone());
        }
    }
    if security_groups.is_empty() {
        // As EC2 does for an ENI made without groups: the VPC's default group.
        let default = in_region(&index.security_groups, scope)
            .find(|g| g.vpc_id == vpc_id && g.name == "default")
            .ok_or_else(|| {
                ApiError::invalid_parameter(format!(
                    "The VPC {vpc_id} has no default security group; name one in securityGroups."
                ))
            })?;
        security_groups.push(default.id.clone());
    }
    let public_ip_pool = match (req.assign_public_ip, public_ip_pool) {
        (false, _) => None,
        (true, Some(pool)) => Some(pool),
        (true, None) => {
            return Err(ApiError::invalid_parameter(
                "assignPublicIp is ENABLED but this berth has no public IPv4 pool: its operator sets [fleet] public_ip_pool.",
            ))
        }
    };
    Ok(Some(Plan {
        subnets,
        security_groups,
        public_ip_pool,
    }))
}

pub fn eni_key(scope: &Scope, subnet_id: &str, ip: Ipv4Addr) -> StoreKey {
    StoreKey::network(scope, NetworkKind::Eni, &format!("{subnet_id}/{ip}"))
}

/// The addresses held in a subnet.
fn taken_in(index: &Index, scope: &Scope, subnet_id: &str) -> BTreeSet<Ipv4Addr> {
    let prefix = format!("{subnet_id}/");
    index
        .enis
        .range((scope.clone(), prefix.clone())..)
        .take_while(|((s, k), _)| s == scope && k.starts_with(&prefix))
        .map(|(_, v)| v.value.eni.private_ip)
        .collect()
}

/// Addresses given out by one launch that its transaction has not stored yet:
/// private ones per subnet, and public ones.
#[derive(Default)]
pub struct Allocations(BTreeMap<String, BTreeSet<Ipv4Addr>>, BTreeSet<Ipv4Addr>);

pub fn public_ip_key(ip: Ipv4Addr) -> StoreKey {
    StoreKey::PublicIp { ip: ip.to_string() }
}

/// The ENI of a new task: a subnet in the instance's zone when one is among
/// the given ones (else the first with room), and its lowest free address.
/// The put is guarded, so two launches never store the same address.
pub fn allocate(
    txn: Txn,
    index: &Index,
    scope: &Scope,
    plan: &Plan,
    zone: Option<&str>,
    task: &mut Task,
    pending: &mut Allocations,
) -> Result<Txn, (Txn, String)> {
    let mut order: Vec<&Subnet> = plan.subnets.iter().collect();
    order.sort_by_key(|s| Some(s.availability_zone.as_str()) != zone);
    for subnet in order {
        let mut taken = taken_in(index, scope, &subnet.id);
        let mine = pending.0.entry(subnet.id.clone()).or_default();
        taken.extend(mine.iter().copied());
        let Some(ip) = awsvpc::free_address(&subnet.cidr, &taken) else {
            continue;
        };
        mine.insert(ip);
        let public_ip = match plan.public_ip_pool {
            None => None,
            Some(pool) => {
                let mut held: BTreeSet<Ipv4Addr> = index
                    .public_ips
                    .keys()
                    .filter_map(|k| k.parse().ok())
                    .collect();
                held.extend(pending.1.iter().copied());
                match awsvpc::free_public_address(&pool, &held) {
                    Some(p) => {
                        pending.1.insert(p);
                        Some(p)
                    }
                    None => {
                        return Err((
                            txn,
                            "ENI: no free public IPv4 address in the pool".to_string(),
                        ))
                    }
                }
            }
        };
        let id = crate::ids::ec2("eni");
        let eni = Eni {
            attachment_id: uuid::Uuid::new_v4().to_string(),
            mac: awsvpc::mac_address(&id),
            id,
            subnet_id: subnet.id.clone(),
            private_ip: ip,
        };
        awsvpc::attach(task, &eni);
        // A FARGATE task is where its subnet is.
        task.availability_zone
            .get_or_insert_with(|| subnet.availability_zone.clone());
        let record = TaskEni {
            eni,
            vpc_id: subnet.vpc_id.clone(),
            availability_zone: subnet.availability_zone.clone(),
            security_groups: plan.security_groups.clone(),
            task_arn: task.task_arn.clone().unwrap_or_default(),
            container_instance_arn: task.container_instance_arn.clone().unwrap_or_default(),
            public_ip,
        };
        let subnet_key = StoreKey::network(scope, NetworkKind::Subnet, &subnet.id);
        // The subnet and groups must still be there when the address is stored.
        let mut txn = txn.compare_mod(subnet_key.encode(), index.mod_revision(&subnet_key));
        for g in &plan.security_groups {
            let k = StoreKey::network(scope, NetworkKind::SecurityGroup, g);
            txn = txn.compare_mod(k.encode(), index.mod_revision(&k));
        }
        if let Some(p) = public_ip {
            // Held once across every account: the put is guarded like the private address.
            let holder = PublicIpRecord {
                account: scope.account.clone(),
                region: scope.region.clone(),
                eni: format!("{}/{ip}", subnet.id),
            };
            txn = guarded_put(txn, index, &public_ip_key(p), &holder);
        }
        return Ok(guarded_put(
            txn,
            index,
            &eni_key(scope, &subnet.id, ip),
            &record,
        ));
    }
    let ids: Vec<&str> = plan.subnets.iter().map(|s| s.id.as_str()).collect();
    Err((
        txn,
        format!("ENI: no free IPv4 address in subnets [{}]", ids.join(", ")),
    ))
}

/// The stored ENI a task's attachment names.
pub fn of_task<'a>(index: &'a Index, scope: &Scope, task: &Task) -> Option<&'a TaskEni> {
    let eni = task.attachments.iter().flatten().find_map(awsvpc::eni_of)?;
    let key = (
        scope.clone(),
        format!("{}/{}", eni.subnet_id, eni.private_ip),
    );
    index
        .enis
        .get(&key)
        .map(|v| &v.value)
        .filter(|r| r.eni.id == eni.id)
}

/// What the agent needs to plumb an ENI.
pub fn task_network(index: &Index, scope: &Scope, r: &TaskEni) -> TaskNetwork {
    let cidr = index
        .subnets
        .get(&(scope.clone(), r.eni.subnet_id.clone()))
        .map(|s| s.value.cidr.to_string())
        .unwrap_or_default();
    TaskNetwork {
        eni_id: r.eni.id.clone(),
        vpc_id: r.vpc_id.clone(),
        subnet_id: r.eni.subnet_id.clone(),
        subnet_cidr: cidr,
        private_ip: r.eni.private_ip.to_string(),
        mac: r.eni.mac.clone(),
        public_ip: r.public_ip.map(|ip| ip.to_string()),
    }
}

/// The rules of each VPC's ENIs among `enis`: their groups' rules merged,
/// source groups resolved to the addresses of their members' ENIs.
pub fn firewalls(index: &Index, scope: &Scope, enis: &[&TaskEni]) -> Vec<VpcFirewall> {
    if enis.is_empty() {
        return vec![];
    }
    let members = |group: &str| -> Vec<Ipv4Addr> {
        in_region(&index.enis, scope)
            .filter(|e| e.security_groups.iter().any(|g| g == group))
            .map(|e| e.eni.private_ip)
            .collect()
    };
    let mut by_vpc: BTreeMap<&str, Vec<EniRules>> = BTreeMap::new();
    for e in enis {
        let groups = e
            .security_groups
            .iter()
            .filter_map(|g| index.security_groups.get(&(scope.clone(), g.clone())));
        let mut rules = EniRules {
            eni_id: e.eni.id.clone(),
            ip: e.eni.private_ip.to_string(),
            ..Default::default()
        };
        for g in groups {
            rules
                .ingress
                .extend(awsvpc::allows(&g.value.ingress, members));
            rules
                .egress
                .extend(awsvpc::allows(&g.value.egress, members));
        }
        by_vpc.entry(&e.vpc_id).or_default().push(rules);
    }
    by_vpc
        .into_iter()
        .map(|(vpc, enis)| VpcFirewall {
            vpc_id: vpc.to_string(),
            enis,
        })
        .collect()
}

/// The ENIs that uses a subnet or a security group holds (DeleteSubnet and
/// DeleteSecurityGroup refuse while there are any).
pub fn in_use<'a>(
    index: &'a Index,
    scope: &Scope,
    uses: impl Fn(&TaskEni) -> bool + 'a,
) -> impl Iterator<Item = &'a TaskEni> + 'a {
    in_region(&index.enis, scope).filter(move |e| uses(e))
}

/// One controller pass: the ENIs of tasks that are STOPPED (or gone) are
/// released, so their addresses can be given out again.
pub async fn release(state: &State) {
    let stale: Vec<(Scope, String)> = {
        let index = state.read();
        index
            .enis
            .iter()
            .filter(|((scope, _), v)| task_done(&index, scope, &v.value.task_arn))
            .map(|(k, _)| k.clone())
            .collect()
    };
    for (scope, id) in stale {
        let key = StoreKey::network(&scope, NetworkKind::Eni, &id);
        let released = state
            .mutate(&key, |index| {
                let Some(eni) = index
                    .enis
                    .get(&(scope.clone(), id.clone()))
                    .filter(|v| task_done(index, &scope, &v.value.task_arn))
                else {
                    return Ok((Txn::new(), ()));
                };
                let mut txn = guarded_delete(Txn::new(), index, &key);
                if let Some(p) = eni.value.public_ip {
                    txn = guarded_delete(txn, index, &public_ip_key(p));
                }
                Ok((txn, ()))
            })
            .await;
        if let Err(e) = released {
            tracing::warn!(eni = %id, error = %e, "releasing a task ENI failed");
        }
    }
}

fn task_done(index: &Index, scope: &Scope, task_arn: &str) -> bool {
    let Some((cluster, id)) = arn::cluster_scoped_id(scope, "task", task_arn) else {
        return true;
    };
    index
        .tasks
        .get(&(scope.clone(), cluster.unwrap_or_default(), id))
        .is_none_or(|t| t.value.summary.is_stopped())
}
