//! The FARGATE launch type: which capacity a launch asks for (launchType,
//! capacityProviderStrategy, or the cluster's default strategy), ECS's rules
//! for a Fargate task, and the platform's fleet hosts that run such tasks.
use berth_api::ecs::{CapacityProviderStrategyItem, TaskDefinition};
use berth_api::{ApiError, ErrorCode};
use serde::{Deserialize, Serialize};

pub const FARGATE: &str = "FARGATE";
pub const FARGATE_SPOT: &str = "FARGATE_SPOT";
pub const EC2: &str = "EC2";
/// What LATEST means on berth's fleet.
pub const PLATFORM_VERSION: &str = "1.4.0";
/// Fargate's ephemeral storage when the task asks for no more, and its bounds.
pub const DEFAULT_EPHEMERAL_GIB: i32 = 20;
pub const MIN_EPHEMERAL_GIB: i32 = 21;
pub const MAX_EPHEMERAL_GIB: i32 = 200;

/// A host of the platform's fleet: it runs FARGATE tasks of any account.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FleetHost {
    pub id: String,
    /// CPU units (1024 per core) and MiB of memory for tasks.
    pub cpu: i64,
    pub memory: i64,
    pub registered_at: f64,
}

/// Where a launch's tasks run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Capacity {
    /// On the cluster's container instances.
    Ec2,
    /// On the fleet, each task under one of these providers (FARGATE or
    /// FARGATE_SPOT), or None when launchType FARGATE asked for it.
    Fargate(Vec<Option<String>>),
}

impl Capacity {
    pub fn launch_type(&self) -> &'static str {
        match self {
            Capacity::Ec2 => EC2,
            Capacity::Fargate(_) => FARGATE,
        }
    }
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::invalid_parameter(message)
}

/// The capacity for `count` tasks: the launch type, else the given strategy,
/// else the cluster's default strategy, else EC2. `associated` are the
/// cluster's capacity providers (a strategy may name only those).
pub fn capacity(
    launch_type: Option<&str>,
    strategy: &[CapacityProviderStrategyItem],
    cluster_default: &[CapacityProviderStrategyItem],
    associated: &[String],
    count: usize,
) -> Result<Capacity, ApiError> {
    if launch_type.is_some() && !strategy.is_empty() {
        return Err(invalid(
            "Specifying both a launch type and capacity provider strategy is not supported. Remove one and try again.",
        ));
    }
    match launch_type {
        Some(EC2) => return Ok(Capacity::Ec2),
        Some(FARGATE) => return Ok(Capacity::Fargate(vec![None; count])),
        Some("EXTERNAL") => {
            return Err(ApiError::new(
                ErrorCode::UnsupportedFeatureException,
                "berth does not support launchType EXTERNAL yet.",
            ))
        }
        Some(other) => {
            return Err(invalid(format!(
                "1 validation error detected: Value '{other}' at 'launchType' failed to satisfy constraint: Member must satisfy enum value set: [EC2, FARGATE, EXTERNAL]"
            )))
        }
        None => {}
    }
    let (items, given) = if strategy.is_empty() {
        (cluster_default, false)
    } else {
        (strategy, true)
    };
    if items.is_empty() {
        return Ok(Capacity::Ec2);
    }
    for item in items {
        let name = item.capacity_provider.as_deref().unwrap_or_default();
        if given && !associated.iter().any(|a| a == name) {
            return Err(invalid(
                "The specified capacity provider strategy cannot contain a capacity provider that is not associated with the cluster. Associate the capacity provider with the cluster or specify a valid capacity provider and try again.",
            ));
        }
        if name != FARGATE && name != FARGATE_SPOT {
            return Err(ApiError::new(
                ErrorCode::UnsupportedFeatureException,
                format!("berth does not support the capacity provider {name} yet."),
            ));
        }
    }
    Ok(Capacity::Fargate(
        split(items, count).into_iter().map(Some).collect(),
    ))
}

/// Which provider each of `count` tasks goes to: each provider's base first,
/// then the rest in proportion to the weights (the heaviest behind gets the next).
pub fn split(items: &[CapacityProviderStrategyItem], count: usize) -> Vec<String> {
    let name = |i: &CapacityProviderStrategyItem| i.capacity_provider.clone().unwrap_or_default();
    let mut out: Vec<String> = vec![];
    for item in items {
        for _ in 0..item.base.unwrap_or(0).max(0) {
            if out.len() < count {
                out.push(name(item));
            }
        }
    }
    let weighted: Vec<&CapacityProviderStrategyItem> =
        items.iter().filter(|i| i.weight.unwrap_or(0) > 0).collect();
    let total: i64 = weighted
        .iter()
        .map(|i| i64::from(i.weight.unwrap_or(0)))
        .sum();
    let mut given = vec![0i64; weighted.len()];
    while out.len() < count {
        if weighted.is_empty() {
            // Only bases, all used: the first provider takes the rest.
            out.push(items.first().map(name).unwrap_or_else(|| FARGATE.into()));
            continue;
        }
        let placed = given.iter().sum::<i64>() + 1;
        // Who is furthest below its share after one more task.
        let next = (0..weighted.len())
            .max_by_key(|&k| {
                let share = placed * i64::from(weighted[k].weight.unwrap_or(0));
                (share - given[k] * total, std::cmp::Reverse(k))
            })
            .unwrap_or(0);
        given[next] += 1;
        out.push(name(weighted[next]));
    }
    out
}

/// ECS's checks of a Fargate launch against its task definition.
pub fn check_launch(td: &TaskDefinition, platform_version: Option<&str>) -> Result<(), ApiError> {
    let compatible = td
        .requires_compatibilities
        .iter()
        .flatten()
        .chain(td.compatibilities.iter().flatten())
        .any(|c| c == FARGATE);
    if !compatible {
        return Err(invalid(
            "Task definition does not support launch_type FARGATE.",
        ));
    }
    match platform_version {
        None | Some("LATEST") | Some(PLATFORM_VERSION) => {}
        Some(other) => {
            return Err(invalid(format!(
                "The specified platform version {other} does not exist; berth's fleet offers LATEST ({PLATFORM_VERSION})."
            )))
        }
    }
    if let Some(p) = &td.runtime_platform {
        let os = p.operating_system_family.as_deref().unwrap_or("LINUX");
        let arch = p.cpu_architecture.as_deref().unwrap_or("X86_64");
        if os != "LINUX" || arch != "X86_64" {
            return Err(invalid(format!(
                "berth's Fargate fleet runs LINUX/X86_64 tasks; the task definition asks for {os}/{arch}."
            )));
        }
    }
    Ok(())
}

/// The ephemeral storage a Fargate task gets, checked.
pub fn ephemeral_gib(td: &TaskDefinition, override_gib: Option<i32>) -> Result<i32, ApiError> {
    let asked = override_gib.or(td.ephemeral_storage.as_ref().and_then(|e| e.size_in_gi_b));
    match asked {
        None => Ok(DEFAULT_EPHEMERAL_GIB),
        Some(g) if (MIN_EPHEMERAL_GIB..=MAX_EPHEMERAL_GIB).contains(&g) => Ok(g),
        Some(g) => Err(invalid(format!(
            "The ephemeral storage size {g} GiB is not valid: it must be between {MIN_EPHEMERAL_GIB} and {MAX_EPHEMERAL_GIB}."
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_api::ecs::RuntimePlatform;

    fn item(name: &str, base: i32, weight: i32) -> CapacityProviderStrategyItem {
        CapacityProviderStrategyItem {
            capacity_provider: Some(name.into()),
            base: Some(base),
            weight: Some(weight),
        }
    }

    #[test]
    fn the_launch_type_wins_then_the_strategy_then_the_cluster_default() {
        let both = [FARGATE.to_string(), FARGATE_SPOT.to_string()];
        assert_eq!(capacity(None, &[], &[], &both, 1).unwrap(), Capacity::Ec2);
        assert_eq!(
            capacity(Some(FARGATE), &[], &[], &[], 2).unwrap(),
            Capacity::Fargate(vec![None, None])
        );
        let default = [item(FARGATE_SPOT, 0, 1)];
        assert_eq!(
            capacity(None, &[], &default, &both, 1).unwrap(),
            Capacity::Fargate(vec![Some(FARGATE_SPOT.into())])
        );
        let e = capacity(Some(FARGATE), &[item(FARGATE, 0, 1)], &[], &both, 1).unwrap_err();
        assert!(e.message.starts_with("Specifying both a launch type"));
        let e = capacity(None, &[item(FARGATE, 0, 1)], &[], &[], 1).unwrap_err();
        assert!(e.message.contains("not associated with the cluster"));
    }

    #[test]
    fn bases_come_first_and_weights_share_the_rest() {
        let got = split(&[item(FARGATE, 2, 1), item(FARGATE_SPOT, 0, 3)], 10);
        let count = |n: &str| got.iter().filter(|g| *g == n).count();
        assert_eq!(&got[..2], [FARGATE, FARGATE]);
        // 8 left at 1:3.
        assert_eq!((count(FARGATE), count(FARGATE_SPOT)), (4, 6));
        assert_eq!(split(&[item(FARGATE_SPOT, 0, 1)], 3), vec![FARGATE_SPOT; 3]);
    }

    #[test]
    fn fargate_tasks_follow_ecs_rules() {
        let mut td = TaskDefinition {
            requires_compatibilities: Some(vec![FARGATE.into()]),
            ..Default::default()
        };
        assert!(check_launch(&td, None).is_ok());
        assert!(check_launch(&td, Some("LATEST")).is_ok());
        assert!(check_launch(&td, Some("1.0.0"))
            .unwrap_err()
            .message
            .contains("1.0.0"));
        td.runtime_platform = Some(RuntimePlatform {
            cpu_architecture: Some("ARM64".into()),
            operating_system_family: Some("LINUX".into()),
        });
        assert!(check_launch(&td, None)
            .unwrap_err()
            .message
            .contains("LINUX/ARM64"));
        let ec2_only = TaskDefinition {
            requires_compatibilities: Some(vec![EC2.into()]),
            compatibilities: Some(vec![EC2.into()]),
            ..Default::default()
        };
        let refused = check_launch(&ec2_only, None).unwrap_err();
        assert_eq!(
            (refused.code, refused.message.as_str()),
            (
                berth_api::ErrorCode::InvalidParameterException,
                "Task definition does not support launch_type FARGATE."
            )
        );
        assert_eq!(ephemeral_gib(&td, None).unwrap(), 20);
        assert_eq!(ephemeral_gib(&td, Some(50)).unwrap(), 50);
        assert!(ephemeral_gib(&td, Some(10)).is_err());
    }
}
