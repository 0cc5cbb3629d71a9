//! TagResource, UntagResource, ListTagsForResource for clusters, task
//! definitions, tasks, container instances and services.
use super::Ctx;
use crate::state::index::{guarded_put, Index};
use crate::state::StoreKey;
use berth_api::ecs::*;
use berth_api::{ApiError, ErrorCode};
use berth_model::{arn, cluster, service, tags, task_definition as td};
use berth_store::Txn;

/// What ECS answers for a resource of this ARN type that is not there (errors
/// the SDKs know for these operations, not a generic not-found).
fn not_there(kind: &str) -> ApiError {
    match kind {
        "cluster" => ApiError::new(ErrorCode::ClusterNotFoundException, "Cluster not found."),
        "task-definition" => ApiError::client(td::NOT_FOUND),
        "service" => ApiError::new(ErrorCode::ServiceNotFoundException, "Service not found."),
        "task" => ApiError::invalid_parameter("The specified task was not found."),
        "container-instance" => {
            ApiError::invalid_parameter("The specified container instance was not found.")
        }
        _ => ApiError::invalid_parameter("The ARN given as resourceArn is not valid."),
    }
}

/// `not_there` for a stored resource's key.
fn not_found(key: &StoreKey) -> ApiError {
    not_there(match key {
        StoreKey::Cluster { .. } => "cluster",
        StoreKey::TaskDefinition { .. } => "task-definition",
        StoreKey::Service { .. } => "service",
        StoreKey::Task { .. } => "task",
        StoreKey::ContainerInstance { .. } => "container-instance",
        _ => "",
    })
}

/// The stored resource an ARN names; another account's or region's ARN names nothing.
fn resolve(ctx: &Ctx<'_>, resource_arn: &str) -> Result<StoreKey, ApiError> {
    let a = arn::parse(resource_arn)
        .ok_or_else(|| ApiError::invalid_parameter("The ARN given as resourceArn is not valid."))?;
    let missing = || not_there(&a.resource_type);
    if a.account != ctx.scope.account || a.region != ctx.scope.region {
        return Err(missing());
    }
    match a.resource_type.as_str() {
        "cluster" => Ok(StoreKey::Cluster {
            scope: ctx.scope.clone(),
            name: a.resource,
        }),
        "task-definition" => {
            let r = td::parse_reference(&ctx.scope, &a.resource).ok_or_else(missing)?;
            let revision = r.revision.ok_or_else(missing)?;
            Ok(StoreKey::TaskDefinition {
                scope: ctx.scope.clone(),
                family: r.family,
                revision,
            })
        }
        "service" => {
            let (cluster, name) = a.resource.split_once('/').ok_or_else(missing)?;
            Ok(StoreKey::Service {
                scope: ctx.scope.clone(),
                cluster: cluster.to_string(),
                name: name.to_string(),
            })
        }
        kind @ ("task" | "container-instance") => {
            // Only the long ARN format names its cluster, and only it is accepted here.
            let (cluster, id) = a.resource.split_once('/').ok_or_else(missing)?;
            let (scope, cluster, id) = (ctx.scope.clone(), cluster.to_string(), id.to_string());
            Ok(if kind == "task" {
                StoreKey::Task { scope, cluster, id }
            } else {
                StoreKey::ContainerInstance { scope, cluster, id }
            })
        }
        _ => Err(missing()),
    }
}

fn current_tags(index: &Index, key: &StoreKey) -> Result<Vec<Tag>, ApiError> {
    match key {
        StoreKey::Cluster { scope, name } => index
            .clusters
            .get(&(scope.clone(), name.clone()))
            .filter(|c| c.value.status.as_deref() == Some(cluster::ACTIVE))
            .map(|c| c.value.tags.clone().unwrap_or_default())
            .ok_or_else(|| not_found(key)),
        StoreKey::TaskDefinition {
            scope,
            family,
            revision,
        } => index
            .task_definitions
            .get(&(scope.clone(), family.clone(), *revision))
            .map(|t| t.value.tags.clone())
            .ok_or_else(|| not_found(key)),
        StoreKey::Task { scope, cluster, id } => index
            .tasks
            .get(&(scope.clone(), cluster.clone(), id.clone()))
            .map(|t| t.value.task().tags.unwrap_or_default())
            .ok_or_else(|| not_found(key)),
        StoreKey::ContainerInstance { scope, cluster, id } => index
            .container_instances
            .get(&(scope.clone(), cluster.clone(), id.clone()))
            .map(|c| c.value.tags.clone().unwrap_or_default())
            .ok_or_else(|| not_found(key)),
        StoreKey::Service {
            scope,
            cluster,
            name,
        } => index
            .services
            .get(&(scope.clone(), cluster.clone(), name.clone()))
            .filter(|s| s.value.service.status.as_deref() != Some(service::INACTIVE))
            .map(|s| s.value.service.tags.clone().unwrap_or_default())
            .ok_or_else(|| not_found(key)),
        _ => Err(not_found(key)),
    }
}

fn put_tags(txn: Txn, index: &Index, key: &StoreKey, new_tags: Vec<Tag>) -> Result<Txn, ApiError> {
    match key {
        StoreKey::Cluster { scope, name } => {
            let mut c = index
                .clusters
                .get(&(scope.clone(), name.clone()))
                .ok_or_else(|| not_found(key))?
                .value
                .clone();
            c.tags = Some(new_tags);
            Ok(guarded_put(txn, index, key, &c))
        }
        StoreKey::TaskDefinition {
            scope,
            family,
            revision,
        } => {
            let mut t = index
                .task_definitions
                .get(&(scope.clone(), family.clone(), *revision))
                .ok_or_else(|| not_found(key))?
                .value
                .clone();
            t.tags = new_tags;
            Ok(guarded_put(txn, index, key, &t))
        }
        StoreKey::Task { scope, cluster, id } => {
            let mut t = index
                .tasks
                .get(&(scope.clone(), cluster.clone(), id.clone()))
                .ok_or_else(|| not_found(key))?
                .value
                .record();
            t.task.tags = Some(new_tags);
            Ok(guarded_put(txn, index, key, &t))
        }
        StoreKey::ContainerInstance { scope, cluster, id } => {
            let mut c = index
                .container_instances
                .get(&(scope.clone(), cluster.clone(), id.clone()))
                .ok_or_else(|| not_found(key))?
                .value
                .clone();
            c.tags = Some(new_tags);
            Ok(guarded_put(txn, index, key, &c))
        }
        StoreKey::Service {
            scope,
            cluster,
            name,
        } => {
            let mut s = index
                .services
                .get(&(scope.clone(), cluster.clone(), name.clone()))
                .ok_or_else(|| not_found(key))?
                .value
                .clone();
            s.service.tags = Some(new_tags);
            Ok(guarded_put(txn, index, key, &s))
        }
        _ => Err(not_found(key)),
    }
}

pub async fn tag_resource(
    ctx: &Ctx<'_>,
    req: TagResourceRequest,
) -> Result<TagResourceResponse, ApiError> {
    let key = resolve(ctx, req.resource_arn.as_deref().unwrap_or_default())?;
    let new = req.tags.unwrap_or_default();
    tags::validate(&new)?;
    ctx.state
        .mutate(&key, |index| {
            let merged = tags::merge(&current_tags(index, &key)?, &new);
            tags::validate(&merged)?;
            Ok((put_tags(Txn::new(), index, &key, merged)?, ()))
        })
        .await?;
    Ok(TagResourceResponse {})
}

pub async fn untag_resource(
    ctx: &Ctx<'_>,
    req: UntagResourceRequest,
) -> Result<UntagResourceResponse, ApiError> {
    let key = resolve(ctx, req.resource_arn.as_deref().unwrap_or_default())?;
    let keys = req.tag_keys.unwrap_or_default();
    ctx.state
        .mutate(&key, |index| {
            let kept = tags::remove(&current_tags(index, &key)?, &keys);
            Ok((put_tags(Txn::new(), index, &key, kept)?, ()))
        })
        .await?;
    Ok(UntagResourceResponse {})
}

pub async fn list_tags_for_resource(
    ctx: &Ctx<'_>,
    req: ListTagsForResourceRequest,
) -> Result<ListTagsForResourceResponse, ApiError> {
    let key = resolve(ctx, req.resource_arn.as_deref().unwrap_or_default())?;
    let tags = current_tags(&ctx.state.read(), &key)?;
    Ok(ListTagsForResourceResponse { tags: Some(tags) })
}
