//! Where a FARGATE task goes on the platform's fleet: connected hosts with
//! room for its task-level CPU and memory, most memory left first.
use crate::fleet::presence_key;
use crate::state::index::Index;
use crate::state::State;
use berth_model::resources::Demand;

/// Fleet hosts that can take tasks now: connected, with their free CPU and memory.
pub fn free_hosts(state: &State, index: &Index) -> Vec<(String, Demand)> {
    index
        .fleet_hosts
        .values()
        .filter(|h| state.agent_connected(&presence_key(&h.value.id)))
        .map(|h| {
            let mut free = Demand {
                cpu: h.value.cpu,
                memory: h.value.memory,
                ..Default::default()
            };
            for (_, t) in index.tasks_on_fleet_host(&h.value.id) {
                free.cpu -= t.value.summary.demand.cpu;
                free.memory -= t.value.summary.demand.memory;
            }
            (h.value.id.clone(), free)
        })
        .collect()
}

/// ECS's answer when Fargate has no room for a task.
pub const NO_CAPACITY: &str =
    "Capacity is unavailable at this time. Please try again later or in a different availability zone";

/// The log drivers the fleet serves: awslogs, shipped by its hosts' agents.
const SERVED_LOG_DRIVERS: &[&str] = &["awslogs"];

/// A log driver a task definition requires that no fleet host serves
/// (splunk, awsfirelens, …), from its `requiresAttributes` names.
pub fn unserved_log_driver<'a>(required: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    required.into_iter().find_map(|name| {
        let driver = name.strip_prefix("com.amazonaws.ecs.capability.logging-driver.")?;
        (!SERVED_LOG_DRIVERS.contains(&driver)).then_some(driver)
    })
}

/// The fleet host for one more task: the one with the most memory left
/// that fits it (spreading tasks over the fleet), taken from `free`.
pub fn place(free: &mut [(String, Demand)], demand: &Demand) -> Option<String> {
    // Fleet hosts register no GPUs.
    if demand.gpus > 0 {
        return None;
    }
    let (id, left) = free
        .iter_mut()
        .filter(|(_, f)| f.cpu >= demand.cpu && f.memory >= demand.memory)
        .max_by_key(|(id, f)| (f.memory, f.cpu, std::cmp::Reverse(id.clone())))?;
    left.cpu -= demand.cpu;
    left.memory -= demand.memory;
    Some(id.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fleet_serves_awslogs_only() {
        let awslogs = [
            "com.amazonaws.ecs.capability.logging-driver.awslogs",
            "ecs.capability.task-eni",
        ];
        assert_eq!(unserved_log_driver(awslogs), None);
        let splunk = [
            "ecs.capability.task-eni",
            "com.amazonaws.ecs.capability.logging-driver.splunk",
        ];
        assert_eq!(unserved_log_driver(splunk), Some("splunk"));
    }

    #[test]
    fn tasks_spread_over_the_fleet_and_never_overfill_a_host() {
        let host = |id: &str, memory: i64| {
            (
                id.to_string(),
                Demand {
                    cpu: 4096,
                    memory,
                    ..Default::default()
                },
            )
        };
        let mut free = vec![host("a", 4096), host("b", 3072)];
        let task = Demand {
            cpu: 1024,
            memory: 2048,
            ..Default::default()
        };
        let with_gpu = Demand {
            gpus: 1,
            ..task.clone()
        };
        assert_eq!(place(&mut free, &with_gpu), None);
        assert_eq!(place(&mut free, &task).as_deref(), Some("a"));
        assert_eq!(place(&mut free, &task).as_deref(), Some("b"));
        assert_eq!(place(&mut free, &task).as_deref(), Some("a"));
        assert_eq!(place(&mut free, &task), None, "1 GiB left on b, none on a");
        assert_eq!(free[0].1.memory, 0);
    }
}
