//! Launching tasks: the one path from a resolved launch to the transaction
//! that stores its new tasks. RunTask, StartTask, the service controller and
//! FARGATE launches all come here; the handlers and the controllers both
//! depend on this module and neither on the other.
//!
//! ```text
//! Launch (what to run, how many, where it may go, networking, tags, group)
//!   ─► candidates: the cluster's instances (EC2) or the fleet's free hosts
//!   ─► placement: berth_sched::place, a named instance, or the fleet
//!   ─► a new PENDING task per copy ─► its ENI (awsvpc) ─► guarded puts
//!   = Launched { txn, tasks, refusals }
//! ```
pub mod fleet;
pub mod instances;
#[cfg(test)]
mod tests;

use crate::state::index::{guarded_put, Index, TaskRecord};
use crate::state::{State, StoreKey};
use crate::task_enis;
use berth_api::ecs::{PlacementConstraint, PlacementStrategy, Tag, TaskDefinition, TaskOverride};
use berth_api::ApiError;
use berth_model::fargate;
use berth_model::resources::{self, Demand};
use berth_model::task;
use berth_model::{arn, Scope};
use berth_store::Txn;

/// ECS's limits on placement rules per launch.
const MAX_CONSTRAINTS: usize = 10;
const MAX_STRATEGIES: usize = 5;

/// Placement rules as berth-sched takes them.
pub type Rules = (Vec<berth_sched::Constraint>, Vec<berth_sched::Strategy>);

/// A launch's placement rules, checked: the request's first, then the task
/// definition's constraints.
pub fn placement_rules(
    placement_constraints: &[PlacementConstraint],
    placement_strategy: &[PlacementStrategy],
    definition: &TaskDefinition,
) -> Result<Rules, ApiError> {
    let bad = |why: String| ApiError::invalid_parameter(format!("Invalid placement: {why}."));
    if placement_constraints.len() > MAX_CONSTRAINTS {
        return Err(bad(format!(
            "at most {MAX_CONSTRAINTS} placement constraints"
        )));
    }
    if placement_strategy.len() > MAX_STRATEGIES {
        return Err(bad(format!(
            "at most {MAX_STRATEGIES} placement strategies"
        )));
    }
    let from_definition = definition
        .placement_constraints
        .iter()
        .flatten()
        .map(|c| (c.r#type.as_deref(), c.expression.as_deref()));
    let constraints = placement_constraints
        .iter()
        .map(|c| (c.r#type.as_deref(), c.expression.as_deref()))
        .chain(from_definition)
        .map(|(t, e)| berth_sched::constraint(t.unwrap_or_default(), e).map_err(bad))
        .collect::<Result<Vec<_>, _>>()?;
    let strategies = placement_strategy
        .iter()
        .map(|s| {
            berth_sched::strategy(s.r#type.as_deref().unwrap_or_default(), s.field.as_deref())
                .map_err(bad)
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok((constraints, strategies))
}

/// Where the copies of a launch go.
pub enum Targets {
    /// `count` copies wherever placement puts them, then one on each of `on`
    /// (the instances a DAEMON service does not cover yet), under `rules`.
    Placed {
        count: usize,
        on: Vec<String>,
        rules: Rules,
    },
    /// One copy on each instance named, by ARN or id (StartTask): no
    /// placement rules apply, and each refusal names its instance.
    Named(Vec<String>),
    /// One copy per entry on the platform's fleet (FARGATE), each with the
    /// capacity provider that entry names.
    Fleet {
        providers: Vec<Option<String>>,
        ephemeral_gib: i32,
    },
}

/// A launch resolved against the index: everything but where each copy lands.
pub struct Launch<'a> {
    pub definition: &'a TaskDefinition,
    pub overrides: Option<&'a TaskOverride>,
    /// The tasks' group; placement counts in `family:NAME` when there is none.
    pub group: Option<&'a str>,
    pub started_by: Option<&'a str>,
    pub tags: &'a [Tag],
    /// The ENI each task gets (awsvpc), checked against the account's subnets.
    pub network: Option<task_enis::Plan>,
    pub targets: Targets,
    /// Random placement's seed.
    pub seed: u64,
}

/// Why one copy of a launch was not made.
#[derive(Debug, Clone, PartialEq)]
pub enum Refusal {
    /// This instance has no room for the copy (placement's reason).
    Instance { arn: String, reason: &'static str },
    /// A named instance is not one of the cluster's.
    Missing(String),
    /// No fleet host has room.
    NoFleetCapacity,
    /// The task needs a log driver no fleet host serves.
    FleetLogDriver,
    /// The task's ENI could not be allocated (on this instance, for EC2).
    Network {
        instance: Option<String>,
        reason: String,
    },
}

impl Refusal {
    /// What failed and why, as RunTask's `failures` name them.
    pub fn failure(&self, scope: &Scope, cluster: &str) -> (String, String) {
        match self {
            Refusal::Instance { arn, reason } => (arn.clone(), reason.to_string()),
            Refusal::Missing(given) => (given.clone(), "MISSING".into()),
            Refusal::NoFleetCapacity => (arn::cluster(scope, cluster), fleet::NO_CAPACITY.into()),
            Refusal::FleetLogDriver => (
                arn::cluster(scope, cluster),
                berth_sched::MISSING_ATTRIBUTE.into(),
            ),
            Refusal::Network { instance, reason } => (
                instance
                    .clone()
                    .unwrap_or_else(|| arn::cluster(scope, cluster)),
                reason.clone(),
            ),
        }
    }
}

/// The cluster has no container instance at all (EC2 launches).
#[derive(Debug, Clone, PartialEq)]
pub struct NoContainerInstances;

/// What a launch made, in one transaction, and why the other copies were not.
pub struct Launched {
    pub txn: Txn,
    pub tasks: Vec<(String, TaskRecord)>,
    pub refusals: Vec<Refusal>,
}

/// Places every copy of `launch` and builds the transaction that stores the
/// new tasks and their ENIs. Reads only the index (and presence through
/// `state`), so it runs inside the cluster's writer turn.
pub fn plan(
    state: &State,
    index: &Index,
    scope: &Scope,
    cluster: &str,
    launch: &Launch<'_>,
    now: f64,
) -> Result<Launched, NoContainerInstances> {
    let (seats, refusals) = match &launch.targets {
        Targets::Fleet {
            providers,
            ephemeral_gib,
        } => on_fleet(state, index, launch, providers, *ephemeral_gib),
        Targets::Placed { count, on, rules } => placed(
            Candidates::of(state, index, scope, cluster)?,
            launch,
            *count,
            on,
            rules,
        ),
        Targets::Named(given) => named(
            Candidates::of(state, index, scope, cluster)?,
            scope,
            cluster,
            launch,
            given,
        ),
    };
    let mut out = Launched {
        txn: Txn::new(),
        tasks: vec![],
        refusals,
    };
    let mut addresses = task_enis::Allocations::default();
    for (seat, zone) in seats {
        let (task_id, mut record) = new_task(scope, cluster, launch, &seat, zone.as_deref(), now);
        if let Some(network) = &launch.network {
            let txn = std::mem::take(&mut out.txn);
            out.txn = match task_enis::allocate(
                txn,
                index,
                scope,
                network,
                zone.as_deref(),
                &mut record.task,
                &mut addresses,
            ) {
                Ok(txn) => txn,
                Err((txn, reason)) => {
                    out.refusals.push(Refusal::Network {
                        instance: seat.instance().map(String::from),
                        reason,
                    });
                    out.txn = txn;
                    continue;
                }
            };
        }
        let key = StoreKey::task(scope, cluster, &task_id);
        out.txn = guarded_put(std::mem::take(&mut out.txn), index, &key, &record);
        out.tasks.push((task_id, record));
    }
    Ok(out)
}

/// Where each copy goes (with its zone), and the copies that found no place.
type Seats = (Vec<(Seat, Option<String>)>, Vec<Refusal>);

fn placement_demand(launch: &Launch<'_>) -> Demand {
    resources::demand(launch.definition, launch.overrides)
}

/// The cluster's instances as placement sees them, side by side with their
/// ids and zones.
struct Candidates {
    ids: Vec<String>,
    cands: Vec<berth_sched::Candidate>,
    zones: Vec<Option<String>>,
    /// Each instance's free GPUs before placement, given out to copies as they are seated.
    free_gpus: Vec<std::collections::BTreeSet<String>>,
}

impl Candidates {
    fn of(
        state: &State,
        index: &Index,
        scope: &Scope,
        cluster: &str,
    ) -> Result<Candidates, NoContainerInstances> {
        let all = instances::candidates(state, index, scope, cluster);
        if all.is_empty() {
            return Err(NoContainerInstances);
        }
        let mut c = Candidates {
            ids: vec![],
            cands: vec![],
            zones: vec![],
            free_gpus: vec![],
        };
        for (id, candidate, zone) in all {
            c.free_gpus.push(candidate.remaining.gpus.clone());
            c.ids.push(id);
            c.cands.push(candidate);
            c.zones.push(zone);
        }
        Ok(c)
    }

    /// The chosen instances as seats, each copy given its own GPUs (the first free
    /// ones, as placement took them).
    fn seats(&mut self, chosen: Vec<usize>, demand: &Demand) -> Vec<(Seat, Option<String>)> {
        chosen
            .into_iter()
            .map(|i| {
                let free = &mut self.free_gpus[i];
                let gpus: Vec<String> = free.iter().take(demand.gpus).cloned().collect();
                free.retain(|id| !gpus.contains(id));
                (
                    Seat::Instance {
                        arn: self.cands[i].arn.clone(),
                        gpus,
                    },
                    self.zones[i].clone(),
                )
            })
            .collect()
    }
}

/// EC2: `count` copies where placement puts them, then one on each of `on`.
fn placed(
    mut c: Candidates,
    launch: &Launch<'_>,
    count: usize,
    on: &[String],
    rules: &Rules,
) -> Seats {
    let family = launch.definition.family.as_deref().unwrap_or_default();
    let request = berth_sched::Request {
        demand: placement_demand(launch),
        count,
        group: launch
            .group
            .map_or_else(|| format!("family:{family}"), String::from),
        constraints: rules.0.clone(),
        strategies: rules.1.clone(),
        required_attributes: launch
            .definition
            .requires_attributes
            .iter()
            .flatten()
            .filter_map(|a| a.name.clone())
            .collect(),
        seed: launch.seed,
    };
    let mut chosen = vec![];
    let mut refusals = vec![];
    let mut refused = |r: berth_sched::Refusals| {
        refusals.extend(
            r.into_iter()
                .map(|(arn, reason)| Refusal::Instance { arn, reason }),
        )
    };
    if count > 0 {
        let (placed, r) = berth_sched::place(&request, &mut c.cands);
        chosen.extend(placed);
        refused(r);
    }
    let one = berth_sched::Request {
        count: 1,
        ..request
    };
    for arn in on {
        let Some(i) = c.cands.iter().position(|x| x.arn == *arn) else {
            continue;
        };
        let (placed, r) = berth_sched::place(&one, std::slice::from_mut(&mut c.cands[i]));
        if placed.is_empty() {
            refused(r);
        } else {
            chosen.push(i);
        }
    }
    let demand = one.demand;
    (c.seats(chosen, &demand), refusals)
}

/// EC2: one copy on each named instance, refused by name where it cannot go.
fn named(
    mut c: Candidates,
    scope: &Scope,
    cluster: &str,
    launch: &Launch<'_>,
    given: &[String],
) -> Seats {
    let demand = placement_demand(launch);
    let mut chosen = vec![];
    let mut refusals = vec![];
    for g in given {
        let found = arn::cluster_scoped_id(scope, "container-instance", g)
            .filter(|(on, _)| on.as_deref().is_none_or(|on| on == cluster))
            .and_then(|(_, id)| c.ids.iter().position(|i| *i == id));
        let Some(i) = found else {
            refusals.push(Refusal::Missing(g.clone()));
            continue;
        };
        match named_refusal(&c.cands[i], &demand) {
            Some(reason) => refusals.push(Refusal::Instance {
                arn: c.cands[i].arn.clone(),
                reason,
            }),
            None => {
                c.cands[i].remaining.take(&demand);
                chosen.push(i);
            }
        }
    }
    (c.seats(chosen, &demand), refusals)
}

/// Why a named instance cannot take one more copy (StartTask: no placement rules).
pub fn named_refusal(c: &berth_sched::Candidate, demand: &Demand) -> Option<&'static str> {
    if !c.active {
        Some("INACTIVE")
    } else if !c.agent_connected {
        Some("AGENT")
    } else {
        c.remaining.check(demand).err().map(|s| s.reason())
    }
}

/// FARGATE: one copy per provider entry on the fleet's free hosts.
fn on_fleet(
    state: &State,
    index: &Index,
    launch: &Launch<'_>,
    providers: &[Option<String>],
    ephemeral_gib: i32,
) -> Seats {
    let demand = placement_demand(launch);
    let required = launch.definition.requires_attributes.iter().flatten();
    if fleet::unserved_log_driver(required.filter_map(|a| a.name.as_deref())).is_some() {
        return (vec![], vec![Refusal::FleetLogDriver; providers.len()]);
    }
    let mut free = fleet::free_hosts(state, index);
    let mut seats = vec![];
    let mut refusals = vec![];
    for provider in providers {
        match fleet::place(&mut free, &demand) {
            Some(host) => seats.push((
                Seat::Fleet {
                    host,
                    capacity_provider: provider.clone(),
                    ephemeral_gib,
                },
                None,
            )),
            None => refusals.push(Refusal::NoFleetCapacity),
        }
    }
    (seats, refusals)
}

/// Where a new task runs.
pub enum Seat {
    /// A container instance of the cluster (EC2), by ARN, with the GPUs the copy is given.
    Instance { arn: String, gpus: Vec<String> },
    /// A host of the platform's fleet (FARGATE).
    Fleet {
        host: String,
        capacity_provider: Option<String>,
        ephemeral_gib: i32,
    },
}

impl Seat {
    fn instance(&self) -> Option<&str> {
        match self {
            Seat::Instance { arn, .. } => Some(arn),
            Seat::Fleet { .. } => None,
        }
    }
}

/// A new PENDING task, with fresh ids, ready to store.
fn new_task(
    scope: &Scope,
    cluster: &str,
    launch: &Launch<'_>,
    seat: &Seat,
    availability_zone: Option<&str>,
    now: f64,
) -> (String, TaskRecord) {
    let task_id = crate::ids::task_id();
    let container_count = launch
        .definition
        .container_definitions
        .as_ref()
        .map_or(0, Vec::len);
    let container_ids: Vec<String> = (0..container_count)
        .map(|_| crate::ids::task_id())
        .collect();
    let (capacity_provider, ephemeral_gib, fleet_host, launch_type) = match seat {
        Seat::Instance { .. } => (None, None, None, fargate::EC2),
        Seat::Fleet {
            host,
            capacity_provider,
            ephemeral_gib,
        } => (
            capacity_provider.as_deref(),
            Some(*ephemeral_gib),
            Some(host.clone()),
            fargate::FARGATE,
        ),
    };
    let t = task::create(&task::Launch {
        scope,
        cluster,
        task_id: &task_id,
        container_ids: &container_ids,
        container_instance_arn: seat.instance(),
        capacity_provider,
        ephemeral_gib,
        availability_zone,
        task_definition: launch.definition,
        overrides: launch.overrides,
        group: launch.group,
        started_by: launch.started_by,
        tags: launch.tags,
        launch_type,
        now,
    });
    let mut t = t;
    if let Seat::Instance { gpus, .. } = seat {
        let per_container = resources::gpus_per_container(launch.definition, launch.overrides);
        let shared = resources::share_gpus(&per_container, gpus);
        for (c, ids) in t.containers.iter_mut().flatten().zip(shared) {
            c.gpu_ids = (!ids.is_empty()).then_some(ids);
        }
    }
    let record = TaskRecord {
        task: t,
        task_definition: std::sync::Arc::new(launch.definition.clone()),
        fleet_host,
        protected_until: None,
    };
    (task_id, record)
}
