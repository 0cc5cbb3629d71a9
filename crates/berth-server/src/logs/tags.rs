//! Log group tags: TagResource/UntagResource/ListTagsForResource by ARN, and
//! the older TagLogGroup/UntagLogGroup/ListTagsLogGroup by name.
use super::groups::find as find_group;
use super::{group_resource, required, Ctx, Empty, Guard};
use crate::state::index::guarded_put;
use crate::state::StoreKey;
use berth_api::logs::*;
use berth_api::{ApiError, ErrorCode};
use berth_model::Scope;
use berth_store::Txn;
use std::collections::BTreeMap;

/// A log group may carry at most this many tags.
const MAX_TAGS: usize = 50;

/// The group a resource ARN names in the caller's scope (another account's
/// or region's ARN names nothing, as a missing group).
pub fn group_of_arn(scope: &Scope, arn: &str) -> Result<String, ApiError> {
    let prefix = format!("arn:aws:logs:{}:{}:log-group:", scope.region, scope.account);
    arn.strip_prefix(&prefix)
        .map(|rest| rest.strip_suffix(":*").unwrap_or(rest))
        .filter(|name| super::groups::name_ok(name))
        .map(String::from)
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::ResourceNotFoundException,
                format!("The specified resource does not exist: {arn}"),
            )
        })
}

/// Tags after adding `new`: reserved keys refused, at most MAX_TAGS kept.
pub fn tagged(
    current: &BTreeMap<String, String>,
    new: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, ApiError> {
    if let Some(k) = new.keys().find(|k| k.starts_with("aws:")) {
        return Err(ApiError::invalid_parameter(format!(
            "Tag keys may not start with 'aws:': {k}"
        )));
    }
    let mut out = current.clone();
    out.extend(new.iter().map(|(k, v)| (k.clone(), v.clone())));
    if out.len() > MAX_TAGS {
        return Err(ApiError::invalid_parameter(format!(
            "A resource can have no more than {MAX_TAGS} tags."
        )));
    }
    Ok(out)
}

async fn change(
    ctx: &Ctx<'_>,
    group: &str,
    edit: impl Fn(&BTreeMap<String, String>) -> Result<BTreeMap<String, String>, ApiError>,
) -> Result<(), ApiError> {
    let key = StoreKey::log_group(&ctx.scope, group);
    ctx.state
        .mutate(&key, |index| {
            let mut record = find_group(index, &ctx.scope, group)?.clone();
            record.tags = edit(&record.tags)?;
            Ok((guarded_put(Txn::default(), index, &key, &record), ()))
        })
        .await
}

/// Adds tags to a group, authorized as `action`.
async fn tag(
    ctx: &Ctx<'_>,
    guard: &mut Guard<'_>,
    action: &'static str,
    group: &str,
    new: Option<BTreeMap<String, String>>,
) -> Result<Empty, ApiError> {
    guard(action, vec![group_resource(&ctx.scope, group)])?;
    let new = new.unwrap_or_default();
    change(ctx, group, |current| tagged(current, &new)).await?;
    Ok(Empty {})
}

/// Removes tag keys from a group, authorized as `action`.
async fn untag(
    ctx: &Ctx<'_>,
    guard: &mut Guard<'_>,
    action: &'static str,
    group: &str,
    keys: Option<Vec<String>>,
) -> Result<Empty, ApiError> {
    guard(action, vec![group_resource(&ctx.scope, group)])?;
    let keys = keys.unwrap_or_default();
    change(ctx, group, |current| {
        let mut out = current.clone();
        out.retain(|k, _| !keys.contains(k));
        Ok(out)
    })
    .await?;
    Ok(Empty {})
}

/// A group's tags, authorized as `action`.
fn list(
    ctx: &Ctx<'_>,
    guard: &mut Guard<'_>,
    action: &'static str,
    group: &str,
) -> Result<BTreeMap<String, String>, ApiError> {
    guard(action, vec![group_resource(&ctx.scope, group)])?;
    let index = ctx.state.read();
    Ok(find_group(&index, &ctx.scope, group)?.tags.clone())
}

fn by_arn(ctx: &Ctx<'_>, arn: &Option<String>) -> Result<String, ApiError> {
    group_of_arn(&ctx.scope, required(arn, "resourceArn")?)
}

pub async fn tag_resource(
    ctx: &Ctx<'_>,
    req: TagResourceRequest,
    guard: &mut Guard<'_>,
) -> Result<Empty, ApiError> {
    let group = by_arn(ctx, &req.resource_arn)?;
    tag(ctx, guard, "logs:TagResource", &group, req.tags).await
}

pub async fn untag_resource(
    ctx: &Ctx<'_>,
    req: UntagResourceRequest,
    guard: &mut Guard<'_>,
) -> Result<Empty, ApiError> {
    let group = by_arn(ctx, &req.resource_arn)?;
    untag(ctx, guard, "logs:UntagResource", &group, req.tag_keys).await
}

pub async fn list_tags_for_resource(
    ctx: &Ctx<'_>,
    req: ListTagsForResourceRequest,
    guard: &mut Guard<'_>,
) -> Result<ListTagsForResourceResponse, ApiError> {
    let group = by_arn(ctx, &req.resource_arn)?;
    let tags = list(ctx, guard, "logs:ListTagsForResource", &group)?;
    Ok(ListTagsForResourceResponse { tags: Some(tags) })
}

pub async fn tag_log_group(
    ctx: &Ctx<'_>,
    req: TagLogGroupRequest,
    guard: &mut Guard<'_>,
) -> Result<Empty, ApiError> {
    let group = required(&req.log_group_name, "logGroupName")?;
    tag(ctx, guard, "logs:TagLogGroup", group, req.tags).await
}

pub async fn untag_log_group(
    ctx: &Ctx<'_>,
    req: UntagLogGroupRequest,
    guard: &mut Guard<'_>,
) -> Result<Empty, ApiError> {
    let group = required(&req.log_group_name, "logGroupName")?;
    untag(ctx, guard, "logs:UntagLogGroup", group, req.tags).await
}

pub async fn list_tags_log_group(
    ctx: &Ctx<'_>,
    req: ListTagsLogGroupRequest,
    guard: &mut Guard<'_>,
) -> Result<ListTagsLogGroupResponse, ApiError> {
    let group = required(&req.log_group_name, "logGroupName")?;
    let tags = list(ctx, guard, "logs:ListTagsLogGroup", group)?;
    Ok(ListTagsLogGroupResponse { tags: Some(tags) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arns_name_groups_of_the_callers_scope_only() {
        let scope = Scope::new("111122223333", "us-east-1");
        let arn = "arn:aws:logs:us-east-1:111122223333:log-group:/ecs/web";
        assert_eq!(group_of_arn(&scope, arn).unwrap(), "/ecs/web");
        assert_eq!(
            group_of_arn(&scope, &format!("{arn}:*")).unwrap(),
            "/ecs/web"
        );
        let other = "arn:aws:logs:us-east-1:444455556666:log-group:/ecs/web";
        assert_eq!(
            group_of_arn(&scope, other).unwrap_err().code,
            ErrorCode::ResourceNotFoundException
        );
    }

    #[test]
    fn tags_merge_within_limits() {
        let current = BTreeMap::from([("a".to_string(), "1".to_string())]);
        let new = BTreeMap::from([("a".to_string(), "2".to_string()), ("b".into(), "3".into())]);
        let out = tagged(&current, &new).unwrap();
        assert_eq!(out.get("a").map(String::as_str), Some("2"));
        assert_eq!(out.len(), 2);
        let reserved = BTreeMap::from([("aws:x".to_string(), "1".to_string())]);
        assert!(tagged(&current, &reserved).is_err());
        let many: BTreeMap<String, String> =
            (0..51).map(|i| (format!("k{i}"), String::new())).collect();
        assert!(tagged(&BTreeMap::new(), &many).is_err());
    }
}
