//! What a task needs from an instance (CPU units, MiB, host ports) and what an
//! instance has, in the `Resource` shape ECS reports.
use crate::task_definition::{self as td, network_mode};
use berth_api::ecs::{Resource, TaskDefinition, TaskOverride};
use std::collections::BTreeSet;

pub const CPU: &str = "CPU";
pub const MEMORY: &str = "MEMORY";
pub const PORTS: &str = "PORTS";
pub const PORTS_UDP: &str = "PORTS_UDP";
/// An instance's GPUs, by id (a STRINGSET, registered only where there are some).
pub const GPU: &str = "GPU";

/// Host ports the ECS agent reserves on every instance (SSH, Docker, the agent's own).
pub const RESERVED_TCP_PORTS: &[i32] = &[22, 2375, 2376, 51678, 51679];

/// What one task takes from an instance while it is not STOPPED.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Demand {
    pub cpu: i64,
    pub memory: i64,
    pub tcp_ports: Vec<i32>,
    pub udp_ports: Vec<i32>,
    /// GPUs its containers ask for (`resourceRequirements` of type GPU).
    pub gpus: usize,
    /// The GPUs it was given, once placed (its containers' `gpuIds`).
    pub gpu_ids: Vec<String>,
}

/// An instance's free CPU and memory, its taken host ports and its free GPUs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Capacity {
    pub cpu: i64,
    pub memory: i64,
    pub tcp_ports: BTreeSet<i32>,
    pub udp_ports: BTreeSet<i32>,
    /// Free GPUs (what tasks hold, in a `Usage`).
    pub gpus: BTreeSet<String>,
}

/// Why a task does not fit, as RunTask's `failures` name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shortfall {
    Cpu,
    Memory,
    Ports,
    PortsUdp,
    Gpu,
}

impl Shortfall {
    pub fn reason(self) -> &'static str {
        match self {
            Shortfall::Cpu => "RESOURCE:CPU",
            Shortfall::Memory => "RESOURCE:MEMORY",
            Shortfall::Ports => "RESOURCE:PORTS",
            Shortfall::PortsUdp => "RESOURCE:PORTS_UDP",
            Shortfall::Gpu => "RESOURCE:GPU",
        }
    }
}

/// CPU units and MiB a task reserves, as ECS counts them for EC2 placement:
/// task-level values when set, else the sum over containers (memoryReservation
/// before memory); overrides win. Static host ports are reserved too.
pub fn demand(task_definition: &TaskDefinition, overrides: Option<&TaskOverride>) -> Demand {
    let containers = task_definition
        .container_definitions
        .as_deref()
        .unwrap_or_default();
    let container_override = |name: Option<&str>| {
        overrides
            .and_then(|o| o.container_overrides.as_deref())
            .and_then(|cs| cs.iter().find(|c| c.name.as_deref() == name))
    };
    let task_cpu = overrides
        .and_then(|o| o.cpu.as_deref())
        .or(task_definition.cpu.as_deref())
        .and_then(td::parse_cpu);
    let task_memory = overrides
        .and_then(|o| o.memory.as_deref())
        .or(task_definition.memory.as_deref())
        .and_then(td::parse_memory);
    let cpu = task_cpu.unwrap_or_else(|| {
        containers
            .iter()
            .map(|c| {
                let o = container_override(c.name.as_deref());
                i64::from(o.and_then(|o| o.cpu).or(c.cpu).unwrap_or(0))
            })
            .sum()
    });
    let memory = task_memory.unwrap_or_else(|| {
        containers
            .iter()
            .map(|c| {
                let o = container_override(c.name.as_deref());
                let reservation = o
                    .and_then(|o| o.memory_reservation)
                    .or(c.memory_reservation);
                let hard = o.and_then(|o| o.memory).or(c.memory);
                i64::from(reservation.or(hard).unwrap_or(0))
            })
            .sum()
    });
    let host_mode = network_mode(task_definition) == "host";
    let (mut tcp_ports, mut udp_ports) = (vec![], vec![]);
    for pm in containers
        .iter()
        .flat_map(|c| c.port_mappings.as_deref().unwrap_or_default())
    {
        let host_port = match pm.host_port {
            Some(p) if p > 0 => p,
            // Host mode publishes the container port itself; bridge picks a dynamic one.
            _ if host_mode => pm.container_port.unwrap_or(0),
            _ => 0,
        };
        if host_port == 0 {
            continue;
        }
        if pm.protocol.as_deref() == Some("udp") {
            udp_ports.push(host_port);
        } else {
            tcp_ports.push(host_port);
        }
    }
    Demand {
        cpu,
        memory,
        tcp_ports,
        udp_ports,
        gpus: gpus_per_container(task_definition, overrides).iter().sum(),
        gpu_ids: vec![],
    }
}

/// GPUs each container asks for, in definition order; a container override's
/// `resourceRequirements` take the place of the definition's.
pub fn gpus_per_container(td: &TaskDefinition, overrides: Option<&TaskOverride>) -> Vec<usize> {
    td.container_definitions
        .iter()
        .flatten()
        .map(|c| {
            let o = overrides
                .and_then(|o| o.container_overrides.as_deref())
                .and_then(|cs| cs.iter().find(|o| o.name == c.name))
                .and_then(|o| o.resource_requirements.as_deref());
            o.or(c.resource_requirements.as_deref())
                .unwrap_or_default()
                .iter()
                .filter(|r| r.r#type.as_deref() == Some(GPU))
                .filter_map(|r| r.value.as_deref()?.parse::<usize>().ok())
                .sum()
        })
        .collect()
}

/// The given GPUs shared out over the containers that asked, in order: each
/// container's `gpuIds`.
pub fn share_gpus(per_container: &[usize], ids: &[String]) -> Vec<Vec<String>> {
    let mut left = ids.iter();
    per_container
        .iter()
        .map(|n| left.by_ref().take(*n).cloned().collect())
        .collect()
}

impl Capacity {
    /// Reads the `Resource` list an instance registered with.
    pub fn from_resources(resources: &[Resource]) -> Capacity {
        let mut c = Capacity::default();
        for r in resources {
            let number = || {
                r.integer_value
                    .map(i64::from)
                    .or(r.long_value)
                    .or(r.double_value.map(|d| d as i64))
                    .unwrap_or(0)
            };
            let ports = || -> BTreeSet<i32> {
                r.string_set_value
                    .iter()
                    .flatten()
                    .filter_map(|p| p.parse().ok())
                    .collect()
            };
            match r.name.as_deref() {
                Some(CPU) => c.cpu = number(),
                Some(MEMORY) => c.memory = number(),
                Some(PORTS) => c.tcp_ports = ports(),
                Some(PORTS_UDP) => c.udp_ports = ports(),
                Some(GPU) => c.gpus = r.string_set_value.iter().flatten().cloned().collect(),
                _ => {}
            }
        }
        c
    }

    /// The `Resource` list ECS reports (PORTS lists the ports that are taken).
    pub fn to_resources(&self) -> Vec<Resource> {
        let number = |name: &str, v: i64| Resource {
            name: Some(name.into()),
            r#type: Some("INTEGER".into()),
            integer_value: Some(v.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32),
            double_value: Some(0.0),
            long_value: Some(0),
            ..Default::default()
        };
        let ports = |name: &str, set: &BTreeSet<i32>| Resource {
            name: Some(name.into()),
            r#type: Some("STRINGSET".into()),
            string_set_value: Some(set.iter().map(|p| p.to_string()).collect()),
            double_value: Some(0.0),
            long_value: Some(0),
            integer_value: Some(0),
        };
        let mut out = vec![
            number(CPU, self.cpu),
            number(MEMORY, self.memory),
            ports(PORTS, &self.tcp_ports),
            ports(PORTS_UDP, &self.udp_ports),
        ];
        if !self.gpus.is_empty() {
            out.push(Resource {
                name: Some(GPU.into()),
                r#type: Some("STRINGSET".into()),
                string_set_value: Some(self.gpus.iter().cloned().collect()),
                ..Default::default()
            });
        }
        out
    }

    /// Whether `d` fits, or the first resource that runs short (ECS checks CPU first).
    pub fn check(&self, d: &Demand) -> Result<(), Shortfall> {
        if d.cpu > self.cpu {
            return Err(Shortfall::Cpu);
        }
        if d.memory > self.memory {
            return Err(Shortfall::Memory);
        }
        if !all_free(&self.tcp_ports, &d.tcp_ports) {
            return Err(Shortfall::Ports);
        }
        if !all_free(&self.udp_ports, &d.udp_ports) {
            return Err(Shortfall::PortsUdp);
        }
        if d.gpus > self.gpus.len() {
            return Err(Shortfall::Gpu);
        }
        Ok(())
    }

    /// Takes `d` out of what is left: the GPUs it holds, or else the first free
    /// ones it asks for (which `first_gpus` names before it is placed).
    pub fn take(&mut self, d: &Demand) {
        self.cpu -= d.cpu;
        self.memory -= d.memory;
        self.tcp_ports.extend(&d.tcp_ports);
        self.udp_ports.extend(&d.udp_ports);
        let given = if d.gpu_ids.is_empty() {
            self.first_gpus(d.gpus)
        } else {
            d.gpu_ids.clone()
        };
        for id in given {
            self.gpus.remove(&id);
        }
    }

    /// The free GPUs a task asking for `n` is given: the first by id.
    pub fn first_gpus(&self, n: usize) -> Vec<String> {
        self.gpus.iter().take(n).cloned().collect()
    }
}

/// Whether a task's ports are free of each other and of what is taken.
fn all_free(taken: &BTreeSet<i32>, wanted: &[i32]) -> bool {
    let mut seen = BTreeSet::new();
    wanted.iter().all(|p| !taken.contains(p) && seen.insert(*p))
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_api::ecs::{ContainerDefinition, ContainerOverride, PortMapping};

    fn container(
        name: &str,
        cpu: i32,
        memory: Option<i32>,
        reservation: Option<i32>,
    ) -> ContainerDefinition {
        ContainerDefinition {
            name: Some(name.into()),
            cpu: Some(cpu),
            memory,
            memory_reservation: reservation,
            ..Default::default()
        }
    }

    fn ports(static_port: i32, dynamic: i32) -> Option<Vec<PortMapping>> {
        Some(vec![
            PortMapping {
                container_port: Some(80),
                host_port: Some(static_port),
                ..Default::default()
            },
            PortMapping {
                container_port: Some(dynamic),
                ..Default::default()
            },
        ])
    }

    #[test]
    fn containers_add_up_unless_the_task_sets_limits() {
        let mut web = container("web", 256, Some(512), Some(128));
        web.port_mappings = ports(8080, 9000);
        let td = TaskDefinition {
            container_definitions: Some(vec![web, container("side", 128, Some(64), None)]),
            ..Default::default()
        };
        let d = demand(&td, None);
        assert_eq!((d.cpu, d.memory), (384, 192));
        assert_eq!(d.tcp_ports, vec![8080], "dynamic ports are not reserved");
        let o = TaskOverride {
            container_overrides: Some(vec![ContainerOverride {
                name: Some("side".into()),
                cpu: Some(512),
                memory: Some(300),
                ..Default::default()
            }]),
            ..Default::default()
        };
        let d = demand(&td, Some(&o));
        assert_eq!((d.cpu, d.memory), (768, 428));
        let td = TaskDefinition {
            cpu: Some("1 vCPU".into()),
            memory: Some("2GB".into()),
            ..td
        };
        let d = demand(&td, None);
        assert_eq!((d.cpu, d.memory), (1024, 2048));
    }

    #[test]
    fn host_mode_reserves_the_container_port() {
        let mut web = container("web", 0, Some(64), None);
        web.port_mappings = ports(0, 9000);
        let td = TaskDefinition {
            network_mode: Some("host".into()),
            container_definitions: Some(vec![web]),
            ..Default::default()
        };
        assert_eq!(demand(&td, None).tcp_ports, vec![80, 9000]);
    }

    #[test]
    fn capacity_checks_in_ecs_order_and_round_trips() {
        let mut cap = Capacity {
            cpu: 1024,
            memory: 1000,
            tcp_ports: RESERVED_TCP_PORTS.iter().copied().collect(),
            udp_ports: BTreeSet::new(),
            gpus: BTreeSet::new(),
        };
        let d = Demand {
            cpu: 512,
            memory: 600,
            tcp_ports: vec![80],
            udp_ports: vec![],
            ..Default::default()
        };
        assert_eq!(cap.check(&d), Ok(()));
        cap.take(&d);
        assert_eq!(cap.check(&d), Err(Shortfall::Memory));
        let small = Demand {
            cpu: 1,
            memory: 1,
            tcp_ports: vec![80],
            udp_ports: vec![],
            ..Default::default()
        };
        assert_eq!(cap.check(&small), Err(Shortfall::Ports));
        let twice = Demand {
            tcp_ports: vec![81, 81],
            ..small.clone()
        };
        assert_eq!(cap.check(&twice), Err(Shortfall::Ports));
        let big_cpu = Demand {
            cpu: 600,
            memory: 9999,
            ..Default::default()
        };
        assert_eq!(cap.check(&big_cpu), Err(Shortfall::Cpu));
        assert_eq!(Capacity::from_resources(&cap.to_resources()), cap);
    }

    #[test]
    fn gpus_are_counted_per_container_checked_taken_and_shared_out() {
        let td: TaskDefinition = serde_json::from_str(
            r#"{"containerDefinitions":[
                {"name":"a","resourceRequirements":[{"type":"GPU","value":"2"}]},
                {"name":"b"},
                {"name":"c","resourceRequirements":[{"type":"GPU","value":"1"}]}]}"#,
        )
        .unwrap();
        assert_eq!(gpus_per_container(&td, None), vec![2, 0, 1]);
        assert_eq!(demand(&td, None).gpus, 3);
        let o: TaskOverride = serde_json::from_str(
            r#"{"containerOverrides":[{"name":"c","resourceRequirements":[{"type":"GPU","value":"3"}]}]}"#,
        )
        .unwrap();
        assert_eq!(gpus_per_container(&td, Some(&o)), vec![2, 0, 3]);
        let ids: Vec<String> = ["g0", "g1", "g2"].map(String::from).to_vec();
        assert_eq!(
            share_gpus(&[2, 0, 1], &ids),
            vec![
                vec!["g0".to_string(), "g1".into()],
                vec![],
                vec!["g2".into()]
            ]
        );

        let mut cap = Capacity {
            cpu: 4096,
            memory: 4096,
            gpus: ["g2", "g0", "g1", "g3"].map(String::from).into(),
            ..Default::default()
        };
        let none = Capacity::default();
        let wants = demand(&td, None);
        assert_eq!(none.check(&wants), Err(Shortfall::Gpu));
        assert_eq!(Shortfall::Gpu.reason(), "RESOURCE:GPU");
        assert_eq!(cap.check(&wants), Ok(()));
        assert_eq!(
            cap.first_gpus(3),
            ["g0", "g1", "g2"].map(String::from).to_vec()
        );
        cap.take(&wants);
        assert_eq!(cap.gpus, ["g3".to_string()].into());
        assert_eq!(cap.check(&wants), Err(Shortfall::Gpu));
        // A placed task gives back exactly the GPUs it holds.
        let mut all = Capacity {
            gpus: ["g0", "g1", "g2", "g3"].map(String::from).into(),
            ..Default::default()
        };
        all.take(&Demand {
            gpus: 2,
            gpu_ids: vec!["g1".into(), "g3".into()],
            ..Default::default()
        });
        assert_eq!(all.gpus, ["g0", "g2"].map(String::from).into());
        // Only instances with GPUs report them, and they read back the same.
        assert!(!Capacity::default()
            .to_resources()
            .iter()
            .any(|r| r.name.as_deref() == Some(GPU)));
        assert_eq!(Capacity::from_resources(&all.to_resources()).gpus, all.gpus);
    }
}
