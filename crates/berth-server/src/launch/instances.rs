//! What each container instance of a cluster has left for new tasks, and
//! how placement sees it: read from the index, for launches and for
//! DescribeContainerInstances alike.
use crate::state::index::Index;
use crate::state::State;
use berth_api::ecs::ContainerInstance;
use berth_model::container_instance::{self as ci, INACTIVE};
use berth_model::resources::Capacity;
use berth_model::task::TaskStatus;
use berth_model::Scope;
use std::collections::HashMap;

/// What the tasks on one instance take, and how many there are.
#[derive(Debug, Default, Clone)]
pub struct Usage {
    pub demand: Capacity,
    pub running: i32,
    pub pending: i32,
    /// The groups of those tasks (`task:group` in cluster queries).
    pub groups: Vec<String>,
}

/// Usage of every instance of a cluster, from its tasks that are not STOPPED
/// (read through the per-instance index, so stopped history costs nothing).
pub fn usage(index: &Index, scope: &Scope, cluster: &str) -> HashMap<String, Usage> {
    let mut out: HashMap<String, Usage> = HashMap::new();
    for (_, ci) in index.container_instances_in(scope, cluster) {
        let Some(arn) = ci.value.container_instance_arn.as_deref() else {
            continue;
        };
        let mut u = Usage::default();
        for (_, t) in index.tasks_on(scope, cluster, arn) {
            let s = &t.value.summary;
            let d = &s.demand;
            u.demand.cpu += d.cpu;
            u.demand.memory += d.memory;
            u.demand.tcp_ports.extend(&d.tcp_ports);
            u.demand.udp_ports.extend(&d.udp_ports);
            u.demand.gpus.extend(d.gpu_ids.iter().cloned());
            if s.last_status == Some(TaskStatus::Running) {
                u.running += 1;
            } else {
                u.pending += 1;
            }
            u.groups.extend(s.group.as_deref().map(String::from));
        }
        if u.running + u.pending > 0 {
            out.insert(arn.to_string(), u);
        }
    }
    out
}

/// Registered resources less what the instance's tasks take.
pub fn remaining(instance: &ContainerInstance, used: Option<&Usage>) -> Capacity {
    let mut left =
        Capacity::from_resources(instance.registered_resources.as_deref().unwrap_or_default());
    if let Some(u) = used {
        left.cpu -= u.demand.cpu;
        left.memory -= u.demand.memory;
        left.tcp_ports.extend(&u.demand.tcp_ports);
        left.udp_ports.extend(&u.demand.udp_ports);
        left.gpus.retain(|id| !u.demand.gpus.contains(id));
    }
    left
}

/// What the cluster query language can ask about an instance.
pub fn facts(
    state: &State,
    ci: &ContainerInstance,
    used: Option<&Usage>,
) -> berth_sched::query::InstanceFacts {
    let arn = ci.container_instance_arn.as_deref().unwrap_or_default();
    berth_sched::query::InstanceFacts {
        attributes: ci
            .attributes
            .iter()
            .flatten()
            .filter_map(|a| Some((a.name.clone()?, a.value.clone())))
            .collect(),
        agent_connected: state.agent_connected(arn),
        agent_version: ci
            .version_info
            .as_ref()
            .and_then(|v| v.agent_version.clone())
            .unwrap_or_default(),
        ec2_instance_id: ci.ec2_instance_id.clone().unwrap_or_default(),
        registered_at: ci.registered_at.unwrap_or(0.0),
        running_tasks_count: used.map_or(0, |u| i64::from(u.running)),
        task_groups: used.map(|u| u.groups.clone()).unwrap_or_default(),
    }
}

/// Instances that accept new tasks, as placement candidates.
pub fn candidates(
    state: &State,
    index: &Index,
    scope: &Scope,
    cluster: &str,
) -> Vec<(String, berth_sched::Candidate, Option<String>)> {
    let used = usage(index, scope, cluster);
    index
        .container_instances_in(scope, cluster)
        .filter(|(_, v)| v.value.status.as_deref() != Some(INACTIVE))
        .map(|(id, v)| {
            let arn = v.value.container_instance_arn.clone().unwrap_or_default();
            let candidate = berth_sched::Candidate {
                remaining: remaining(&v.value, used.get(&arn)),
                active: ci::accepts_tasks(&v.value),
                agent_connected: state.agent_connected(&arn),
                facts: facts(state, &v.value, used.get(&arn)),
                arn,
            };
            let az = ci::attribute(&v.value, ci::AVAILABILITY_ZONE).map(String::from);
            (id.to_string(), candidate, az)
        })
        .collect()
}
