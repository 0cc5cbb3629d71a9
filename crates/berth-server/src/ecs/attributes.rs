//! PutAttributes, DeleteAttributes, ListAttributes: custom attributes kept on the
//! container instance records they describe, where placement's `attribute:` expressions
//! and ListContainerInstances filters read them.
use super::clusters::{active_name, resolve_name};
use super::container_instances::resolve;
use super::Ctx;
use crate::state::index::{guarded_put, Index};
use crate::state::StoreKey;
use berth_api::ecs::*;
use berth_api::pagination::{page, PageLimits};
use berth_api::{ApiError, ErrorCode};
use berth_model::attributes::{self as rules, CONTAINER_INSTANCE};
use berth_model::container_instance::INACTIVE;
use berth_model::Scope;
use berth_store::Txn;
use std::collections::BTreeMap;

const LIST_LIMITS: PageLimits = PageLimits::new(100, 100);

/// The id of the instance an attribute's target names in `cluster`, or ECS's error.
fn target_id(
    index: &Index,
    scope: &Scope,
    cluster: &str,
    a: &Attribute,
) -> Result<String, ApiError> {
    let given = a.target_id.as_deref().unwrap_or_default();
    if !given.starts_with("arn:") && a.target_type.as_deref() != Some(CONTAINER_INSTANCE) {
        return Err(ApiError::invalid_parameter(format!(
            "targetType is required when targetId '{given}' is not an ARN."
        )));
    }
    resolve(scope, cluster, given)
        .filter(|id| {
            index
                .container_instances
                .get(&(scope.clone(), cluster.to_string(), id.clone()))
                .is_some_and(|c| c.value.status.as_deref() != Some(INACTIVE))
        })
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::TargetNotFoundException,
                format!("Could not find target {given} in cluster {cluster}."),
            )
        })
}

/// The attributes a request names, grouped by the instance each targets.
fn by_target(
    index: &Index,
    scope: &Scope,
    cluster: &str,
    given: &[Attribute],
) -> Result<BTreeMap<String, Vec<Attribute>>, ApiError> {
    let mut out: BTreeMap<String, Vec<Attribute>> = BTreeMap::new();
    for a in given {
        out.entry(target_id(index, scope, cluster, a)?)
            .or_default()
            .push(a.clone());
    }
    Ok(out)
}

/// Applies `change` to every targeted instance's attributes in one transaction.
async fn change_attributes(
    ctx: &Ctx<'_>,
    cluster: Option<&str>,
    given: &[Attribute],
    change: impl Fn(&ContainerInstance, &[Attribute]) -> Result<Vec<Attribute>, ApiError>,
) -> Result<(), ApiError> {
    let scope = &ctx.scope;
    let lock = StoreKey::Cluster {
        scope: scope.clone(),
        name: resolve_name(scope, cluster).unwrap_or_default(),
    };
    ctx.state
        .mutate(&lock, |index| {
            let cluster = active_name(index, scope, cluster)?;
            let mut txn = Txn::new();
            for (id, attrs) in by_target(index, scope, &cluster, given)? {
                let key = (scope.clone(), cluster.clone(), id.clone());
                let Some(current) = index.container_instances.get(&key) else {
                    continue;
                };
                let mut c = current.value.clone();
                c.attributes = Some(change(&c, &attrs)?);
                txn = guarded_put(
                    txn,
                    index,
                    &StoreKey::container_instance(scope, &cluster, &id),
                    &c,
                );
            }
            Ok((txn, ()))
        })
        .await
}

pub async fn put_attributes(
    ctx: &Ctx<'_>,
    req: PutAttributesRequest,
) -> Result<PutAttributesResponse, ApiError> {
    let given = req.attributes.unwrap_or_default();
    rules::check_count(&given)?;
    for a in &given {
        rules::check_request_attribute(a, true)?;
    }
    change_attributes(ctx, req.cluster.as_deref(), &given, |c, attrs| {
        let arn = c.container_instance_arn.as_deref().unwrap_or_default();
        rules::put(c.attributes.as_deref().unwrap_or_default(), attrs, arn).ok_or_else(|| {
            ApiError::new(
                ErrorCode::AttributeLimitExceededException,
                format!(
                    "Container instance {arn} would have more than {} custom attributes.",
                    rules::MAX_CUSTOM
                ),
            )
        })
    })
    .await?;
    Ok(PutAttributesResponse {
        attributes: Some(given),
    })
}

pub async fn delete_attributes(
    ctx: &Ctx<'_>,
    req: DeleteAttributesRequest,
) -> Result<DeleteAttributesResponse, ApiError> {
    let given = req.attributes.unwrap_or_default();
    rules::check_count(&given)?;
    for a in &given {
        rules::check_request_attribute(a, false)?;
    }
    change_attributes(ctx, req.cluster.as_deref(), &given, |c, attrs| {
        let names: Vec<&str> = attrs.iter().filter_map(|a| a.name.as_deref()).collect();
        Ok(rules::delete(c.attributes.as_deref().unwrap_or_default(), &names).0)
    })
    .await?;
    Ok(DeleteAttributesResponse {
        attributes: Some(given),
    })
}

pub async fn list_attributes(
    ctx: &Ctx<'_>,
    req: ListAttributesRequest,
) -> Result<ListAttributesResponse, ApiError> {
    let scope = &ctx.scope;
    if req.attribute_value.is_some() && req.attribute_name.is_none() {
        return Err(ApiError::invalid_parameter(
            "attributeValue can only be given with attributeName.",
        ));
    }
    let index = ctx.state.read();
    let cluster = active_name(&index, scope, req.cluster.as_deref())?;
    let (name, value) = (
        req.attribute_name.as_deref(),
        req.attribute_value.as_deref(),
    );
    let mut found: Vec<Attribute> = index
        .container_instances_in(scope, &cluster)
        .filter(|(_, v)| v.value.status.as_deref() != Some(INACTIVE))
        .flat_map(|(_, v)| {
            let arn = v.value.container_instance_arn.clone().unwrap_or_default();
            v.value
                .attributes
                .iter()
                .flatten()
                .filter(move |a| rules::matches(a, name, value))
                .map(move |a| Attribute {
                    target_id: Some(arn.clone()),
                    target_type: Some(CONTAINER_INSTANCE.into()),
                    ..a.clone()
                })
        })
        .collect();
    let key = |a: &Attribute| {
        format!(
            "{}\n{}",
            a.target_id.as_deref().unwrap_or_default(),
            a.name.as_deref().unwrap_or_default()
        )
    };
    // Tokens continue after a key, so the listing goes in key order.
    found.sort_by_key(key);
    let (attributes, next_token) = page(
        found,
        key,
        req.max_results,
        req.next_token.as_deref(),
        LIST_LIMITS,
    )?;
    Ok(ListAttributesResponse {
        attributes: Some(attributes),
        next_token,
    })
}
