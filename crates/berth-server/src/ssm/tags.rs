//! Parameter tags: AddTagsToResource, RemoveTagsFromResource, ListTagsForResource
//! (resource type `Parameter`, the one berth holds).
use super::{resolve, Ctx, Empty, Guard};
use crate::authz::Resource;
use crate::state::index::guarded_put;
use crate::state::StoreKey;
use berth_api::ssm::*;
use berth_api::{ApiError, ErrorCode};
use berth_model::secrets as rules;
use berth_store::Txn;

/// A parameter may carry at most this many tags.
const MAX_TAGS: usize = 50;

/// The parameter a tagging request names, authorized for `action`.
fn target(
    ctx: &Ctx<'_>,
    guard: &mut Guard<'_>,
    action: &'static str,
    kind: &Option<String>,
    id: &Option<String>,
) -> Result<String, ApiError> {
    if kind.as_deref() != Some("Parameter") {
        return Err(ApiError::new(
            ErrorCode::InvalidResourceType,
            format!(
                "berth holds tags of resource type Parameter, not {}.",
                kind.as_deref().unwrap_or_default()
            ),
        ));
    }
    let id = id.as_deref().unwrap_or_default();
    guard(
        action,
        vec![Resource::arn(rules::parameter_arn(&ctx.scope, id))],
    )?;
    resolve(&ctx.state.read(), &ctx.scope, id)
        .map(|(n, _)| n.to_string())
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::InvalidResourceId,
                format!("The parameter {id} does not exist."),
            )
        })
}

async fn retag(
    ctx: &Ctx<'_>,
    name: &str,
    change: impl Fn(&mut Vec<(String, String)>) -> Result<(), ApiError>,
) -> Result<(), ApiError> {
    let key = StoreKey::parameter(&ctx.scope, name);
    ctx.state
        .mutate(&key, |index| {
            let mut record = index
                .parameters
                .get(&(ctx.scope.clone(), name.to_string()))
                .map(|r| r.value.clone())
                .ok_or_else(|| {
                    ApiError::new(
                        ErrorCode::InvalidResourceId,
                        format!("The parameter {name} does not exist."),
                    )
                })?;
            change(&mut record.tags)?;
            Ok((guarded_put(Txn::default(), index, &key, &record), ()))
        })
        .await
}

pub async fn add(
    ctx: &Ctx<'_>,
    req: AddTagsToResourceRequest,
    guard: &mut Guard<'_>,
) -> Result<Empty, ApiError> {
    let name = target(
        ctx,
        guard,
        "ssm:AddTagsToResource",
        &req.resource_type,
        &req.resource_id,
    )?;
    let new: Vec<(String, String)> = req
        .tags
        .iter()
        .flatten()
        .map(|t| {
            (
                t.key.clone().unwrap_or_default(),
                t.value.clone().unwrap_or_default(),
            )
        })
        .collect();
    retag(ctx, &name, |tags| {
        crate::json_service::merge_tags(tags, &new);
        if tags.len() > MAX_TAGS {
            return Err(ApiError::new(
                ErrorCode::TooManyTagsError,
                format!("A resource can have at most {MAX_TAGS} tags."),
            ));
        }
        Ok(())
    })
    .await?;
    Ok(Empty {})
}

pub async fn remove(
    ctx: &Ctx<'_>,
    req: RemoveTagsFromResourceRequest,
    guard: &mut Guard<'_>,
) -> Result<Empty, ApiError> {
    let name = target(
        ctx,
        guard,
        "ssm:RemoveTagsFromResource",
        &req.resource_type,
        &req.resource_id,
    )?;
    let keys = req.tag_keys.clone().unwrap_or_default();
    retag(ctx, &name, |tags| {
        tags.retain(|(k, _)| !keys.contains(k));
        Ok(())
    })
    .await?;
    Ok(Empty {})
}

pub async fn list(
    ctx: &Ctx<'_>,
    req: ListTagsForResourceRequest,
    guard: &mut Guard<'_>,
) -> Result<ListTagsForResourceResult, ApiError> {
    let name = target(
        ctx,
        guard,
        "ssm:ListTagsForResource",
        &req.resource_type,
        &req.resource_id,
    )?;
    let index = ctx.state.read();
    let tags = index
        .parameters
        .get(&(ctx.scope.clone(), name))
        .map(|r| r.value.tags.clone())
        .unwrap_or_default();
    Ok(ListTagsForResourceResult {
        tag_list: Some(
            tags.into_iter()
                .map(|(k, v)| Tag {
                    key: Some(k),
                    value: Some(v),
                })
                .collect(),
        ),
    })
}
