//! Clusters: creation defaults, settings and what DescribeClusters shows.
use crate::{arn, names, tags, Scope};
use berth_api::ecs::{
    CapacityProviderStrategyItem, Cluster, ClusterServiceConnectDefaults, ClusterSetting,
    CreateClusterRequest, KeyValuePair,
};
use berth_api::ApiError;

pub const DEFAULT_CLUSTER: &str = "default";
pub const ACTIVE: &str = "ACTIVE";
pub const INACTIVE: &str = "INACTIVE";
/// ECS's quota of clusters per account and region.
pub const MAX_CLUSTERS: usize = 10_000;

/// What a cluster holds, counted by the server from its other resources.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClusterCounts {
    pub registered_container_instances: i32,
    pub running_tasks: i32,
    pub pending_tasks: i32,
    pub active_services: i32,
}

pub fn validate_name(name: &str) -> Result<(), ApiError> {
    if names::is_valid_name(name) {
        Ok(())
    } else {
        Err(ApiError::invalid_parameter(
            "Cluster name is invalid. Up to 255 letters (uppercase and lowercase), numbers, underscores, and hyphens are allowed.",
        ))
    }
}

pub fn validate_settings(settings: &[ClusterSetting]) -> Result<(), ApiError> {
    for s in settings {
        let value = s.value.as_deref().unwrap_or("");
        match s.name.as_deref() {
            Some("containerInsights") if ["enabled", "disabled", "enhanced"].contains(&value) => {}
            Some("containerInsights") => {
                return Err(ApiError::invalid_parameter(format!(
                    "Invalid value '{value}' for cluster setting containerInsights. Valid values are enabled, disabled and enhanced."
                )))
            }
            _ => return Err(ApiError::invalid_parameter("Cluster setting name is missing or invalid.")),
        }
    }
    Ok(())
}

/// Settings after applying `changes` over `current`, one value per name.
pub fn merge_settings(
    current: &[ClusterSetting],
    changes: &[ClusterSetting],
) -> Vec<ClusterSetting> {
    let mut out = current.to_vec();
    for c in changes {
        match out.iter_mut().find(|s| s.name == c.name) {
            Some(s) => s.value = c.value.clone(),
            None => out.push(c.clone()),
        }
    }
    out
}

/// DeleteCluster's refusals while a cluster still holds something.
pub fn check_deletable(held: ClusterCounts) -> Result<(), ApiError> {
    use berth_api::ErrorCode::*;
    if held.registered_container_instances > 0 {
        return Err(ApiError::new(
            ClusterContainsContainerInstancesException,
            "The Cluster cannot be deleted while Container Instances are active or draining.",
        ));
    }
    if held.active_services > 0 {
        return Err(ApiError::new(
            ClusterContainsServicesException,
            "The Cluster cannot be deleted while Services are active.",
        ));
    }
    if held.running_tasks + held.pending_tasks > 0 {
        return Err(ApiError::new(
            ClusterContainsTasksException,
            "The Cluster cannot be deleted while Tasks are active.",
        ));
    }
    Ok(())
}

/// ECS's rules for a cluster's capacity providers and default strategy: only
/// the platform's FARGATE and FARGATE_SPOT exist on berth, and the strategy
/// may name only providers of the cluster, with at most one base.
pub fn validate_capacity_providers(
    providers: &[String],
    strategy: &[CapacityProviderStrategyItem],
) -> Result<(), ApiError> {
    use crate::fargate::{FARGATE, FARGATE_SPOT};
    for p in providers {
        if p != FARGATE && p != FARGATE_SPOT {
            return Err(ApiError::invalid_parameter(format!(
                "The specified capacity provider {p} does not exist. Specify a valid name or ARN and try again."
            )));
        }
    }
    for item in strategy {
        let name = item.capacity_provider.as_deref().unwrap_or_default();
        if !providers.iter().any(|p| p == name) {
            return Err(ApiError::invalid_parameter(
                "The specified default capacity provider strategy cannot contain a capacity provider that is not associated with the cluster. Associate the capacity provider with the cluster or specify a valid capacity provider and try again.",
            ));
        }
    }
    if strategy.iter().filter(|i| i.base.unwrap_or(0) > 0).count() > 1 {
        return Err(ApiError::invalid_parameter(
            "Only one capacity provider in a capacity provider strategy can have a base defined.",
        ));
    }
    Ok(())
}

/// A strategy as ECS stores it: base and weight spelled out (0 when not given).
pub fn normalized_strategy(
    items: &[CapacityProviderStrategyItem],
) -> Vec<CapacityProviderStrategyItem> {
    items
        .iter()
        .map(|i| CapacityProviderStrategyItem {
            capacity_provider: i.capacity_provider.clone(),
            weight: Some(i.weight.unwrap_or(0)),
            base: Some(i.base.unwrap_or(0)),
        })
        .collect()
}

/// A new ACTIVE cluster as CreateCluster makes it.
pub fn create(
    scope: &Scope,
    req: &CreateClusterRequest,
    default_insights: &str,
) -> Result<Cluster, ApiError> {
    let name = req
        .cluster_name
        .clone()
        .unwrap_or_else(|| DEFAULT_CLUSTER.to_string());
    validate_name(&name)?;
    let tags = req.tags.clone().unwrap_or_default();
    tags::validate(&tags)?;
    let requested = req.settings.clone().unwrap_or_default();
    validate_settings(&requested)?;
    validate_capacity_providers(
        req.capacity_providers.as_deref().unwrap_or_default(),
        req.default_capacity_provider_strategy
            .as_deref()
            .unwrap_or_default(),
    )?;
    let base = vec![ClusterSetting {
        name: Some("containerInsights".into()),
        value: Some(default_insights.into()),
    }];
    Ok(Cluster {
        cluster_arn: Some(arn::cluster(scope, &name)),
        cluster_name: Some(name),
        status: Some(ACTIVE.into()),
        tags: Some(tags),
        settings: Some(merge_settings(&base, &requested)),
        configuration: req.configuration.clone(),
        capacity_providers: Some(req.capacity_providers.clone().unwrap_or_default()),
        default_capacity_provider_strategy: Some(normalized_strategy(
            req.default_capacity_provider_strategy
                .as_deref()
                .unwrap_or_default(),
        )),
        // Kept as given, as UpdateCluster keeps it (there is no Cloud Map here to name).
        service_connect_defaults: req.service_connect_defaults.as_ref().map(|sc| {
            ClusterServiceConnectDefaults {
                namespace: sc.namespace.clone(),
            }
        }),
        ..Default::default()
    })
}

/// The cluster as a response shows it: counts filled in, optional parts per `include`.
pub fn view(stored: &Cluster, include: &[String], counts: ClusterCounts) -> Cluster {
    let has = |what: &str| include.iter().any(|i| i == what);
    let mut c = stored.clone();
    c.registered_container_instances_count = Some(counts.registered_container_instances);
    c.running_tasks_count = Some(counts.running_tasks);
    c.pending_tasks_count = Some(counts.pending_tasks);
    c.active_services_count = Some(counts.active_services);
    c.statistics = Some(if has("STATISTICS") {
        statistics(counts)
    } else {
        vec![]
    });
    if !has("TAGS") {
        c.tags = None;
    }
    if !has("SETTINGS") {
        c.settings = None;
    }
    if !has("CONFIGURATIONS") {
        c.configuration = None;
    }
    if !has("ATTACHMENTS") {
        c.attachments = None;
    }
    c
}

fn statistics(counts: ClusterCounts) -> Vec<KeyValuePair> {
    let kv = |k: &str, v: i32| KeyValuePair {
        name: Some(k.into()),
        value: Some(v.to_string()),
    };
    // berth splits nothing by launch type yet: EC2 carries every count.
    vec![
        kv("runningEC2TasksCount", counts.running_tasks),
        kv("runningFargateTasksCount", 0),
        kv("pendingEC2TasksCount", counts.pending_tasks),
        kv("pendingFargateTasksCount", 0),
        kv("activeEC2ServiceCount", counts.active_services),
        kv("activeFargateServiceCount", 0),
        kv("drainingEC2ServiceCount", 0),
        kv("drainingFargateServiceCount", 0),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope() -> Scope {
        Scope::new("111122223333", "us-east-1")
    }

    #[test]
    fn create_without_a_name_makes_default() {
        let c = create(&scope(), &CreateClusterRequest::default(), "disabled").unwrap();
        assert_eq!(c.cluster_name.as_deref(), Some("default"));
        assert_eq!(
            c.cluster_arn.as_deref(),
            Some("arn:aws:ecs:us-east-1:111122223333:cluster/default")
        );
        assert_eq!(c.status.as_deref(), Some("ACTIVE"));
        assert_eq!(c.service_connect_defaults, None);
    }

    #[test]
    fn service_connect_defaults_are_kept() {
        let req = CreateClusterRequest {
            cluster_name: Some("c".into()),
            service_connect_defaults: Some(berth_api::ecs::ClusterServiceConnectDefaultsRequest {
                namespace: Some("internal".into()),
            }),
            ..Default::default()
        };
        let c = create(&scope(), &req, "disabled").unwrap();
        assert_eq!(
            c.service_connect_defaults
                .and_then(|d| d.namespace)
                .as_deref(),
            Some("internal")
        );
    }

    #[test]
    fn requested_settings_override_the_account_default() {
        let req = CreateClusterRequest {
            cluster_name: Some("c".into()),
            settings: Some(vec![ClusterSetting {
                name: Some("containerInsights".into()),
                value: Some("enabled".into()),
            }]),
            ..Default::default()
        };
        let c = create(&scope(), &req, "disabled").unwrap();
        let s = c.settings.unwrap();
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].value.as_deref(), Some("enabled"));
    }

    #[test]
    fn bad_names_and_settings_are_refused() {
        let req = CreateClusterRequest {
            cluster_name: Some("no spaces".into()),
            ..Default::default()
        };
        assert!(create(&scope(), &req, "disabled").is_err());
        let bad = [ClusterSetting {
            name: Some("containerInsights".into()),
            value: Some("maybe".into()),
        }];
        assert!(validate_settings(&bad).is_err());
    }

    #[test]
    fn clusters_that_hold_something_cannot_be_deleted() {
        use berth_api::ErrorCode::*;
        assert!(check_deletable(ClusterCounts::default()).is_ok());
        let code = |c: ClusterCounts| check_deletable(c).unwrap_err().code;
        let instances = ClusterCounts {
            registered_container_instances: 1,
            ..Default::default()
        };
        assert_eq!(code(instances), ClusterContainsContainerInstancesException);
        let services = ClusterCounts {
            active_services: 2,
            ..Default::default()
        };
        assert_eq!(code(services), ClusterContainsServicesException);
        let tasks = ClusterCounts {
            pending_tasks: 1,
            ..Default::default()
        };
        assert_eq!(code(tasks), ClusterContainsTasksException);
    }

    #[test]
    fn view_hides_what_was_not_included() {
        let c = create(&scope(), &CreateClusterRequest::default(), "disabled").unwrap();
        let counts = ClusterCounts {
            running_tasks: 2,
            ..Default::default()
        };
        let plain = view(&c, &[], counts);
        assert_eq!(plain.tags, None);
        assert_eq!(plain.settings, None);
        assert_eq!(plain.running_tasks_count, Some(2));
        assert_eq!(plain.statistics, Some(vec![]));
        let full = view(
            &c,
            &["TAGS".into(), "SETTINGS".into(), "STATISTICS".into()],
            counts,
        );
        assert_eq!(full.tags, Some(vec![]));
        assert!(full.settings.is_some());
        let stats = full.statistics.unwrap();
        assert_eq!(stats[0].value.as_deref(), Some("2"));
    }
}
