//! Reads of the index that request handlers, the agent channel and the
//! controllers share: the cluster a request names, the task definition a
//! reference names.
use crate::state::index::{Index, TaskDefinitionRecord, Versioned};
use berth_api::ecs::Cluster;
use berth_api::{ApiError, ErrorCode};
use berth_model::task_definition::{self as td, Reference};
use berth_model::{arn, cluster, Scope};

pub fn cluster_not_found() -> ApiError {
    ApiError::new(ErrorCode::ClusterNotFoundException, "Cluster not found.")
}

/// The name a request's `cluster` member refers to ("default" when absent).
pub fn resolve_name(scope: &Scope, cluster: Option<&str>) -> Option<String> {
    let c = cluster.unwrap_or(cluster::DEFAULT_CLUSTER);
    arn::cluster_name(scope, c).map(|n| n.into_owned())
}

/// The ACTIVE cluster a request names, or ECS's ClusterNotFoundException.
pub fn find_active<'a>(
    index: &'a Index,
    scope: &Scope,
    cluster: Option<&str>,
) -> Result<&'a Versioned<Cluster>, ApiError> {
    let name = resolve_name(scope, cluster).ok_or_else(cluster_not_found)?;
    index
        .clusters
        .get(&(scope.clone(), name))
        .filter(|c| c.value.status.as_deref() == Some(cluster::ACTIVE))
        .ok_or_else(cluster_not_found)
}

/// The name of the ACTIVE cluster a request names.
pub fn active_name(
    index: &Index,
    scope: &Scope,
    cluster: Option<&str>,
) -> Result<String, ApiError> {
    Ok(find_active(index, scope, cluster)?
        .value
        .cluster_name
        .clone()
        .unwrap_or_default())
}

/// The revision a reference names: the given one, or the family's latest ACTIVE one.
pub fn task_definition<'a>(
    index: &'a Index,
    scope: &Scope,
    r: &Reference,
) -> Option<&'a Versioned<TaskDefinitionRecord>> {
    match r.revision {
        Some(rev) => index
            .task_definitions
            .get(&(scope.clone(), r.family.clone(), rev)),
        // Newest first within the family only: O(log n) for the usual case.
        None => index
            .task_definitions_range(scope, Some(&r.family), None, true)
            .map(|(_, v)| v)
            .find(|v| v.value.task_definition.status.as_deref() == Some(td::ACTIVE)),
    }
}

/// Whether an ARN names an IAM role of this account (what a task definition may name).
pub fn role_in_account(index: &Index, account: &str, role_arn: &str) -> bool {
    let Some((owner, name)) = berth_model::iam::parse_role_arn(role_arn) else {
        return false;
    };
    owner == account
        && index
            .iam_roles
            .get(&(account.to_string(), name.to_string()))
            .is_some_and(|r| {
                berth_model::iam::arn(account, "role", &r.value.path, name) == role_arn
            })
}
