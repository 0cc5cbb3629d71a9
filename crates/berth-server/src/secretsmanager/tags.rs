//! Secret tags: TagResource, UntagResource.
use super::access::{authorized, update_record};
use super::{required, Ctx, Empty, Guard};
use berth_api::secretsmanager::*;
use berth_api::{ApiError, ErrorCode};

/// A secret may carry at most this many tags.
const MAX_TAGS: usize = 50;

/// Refuses reserved keys and too many tags.
pub fn check(tags: &[(String, String)]) -> Result<(), ApiError> {
    if tags.iter().any(|(k, _)| k.starts_with("aws:")) {
        return Err(ApiError::invalid_parameter(
            "Tag keys may not start with the reserved prefix aws:.",
        ));
    }
    if tags.len() > MAX_TAGS {
        return Err(ApiError::new(
            ErrorCode::ValidationException,
            format!("Number of tags exceeds the limit of {MAX_TAGS}."),
        ));
    }
    Ok(())
}

pub async fn tag(
    ctx: &Ctx<'_>,
    req: TagResourceRequest,
    guard: &mut Guard<'_>,
) -> Result<Empty, ApiError> {
    let id = required(&req.secret_id, "SecretId")?;
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
    let (name, record) = authorized(ctx, guard, "secretsmanager:TagResource", id)?;
    update_record(ctx, &name, &record.suffix, |r| {
        crate::json_service::merge_tags(&mut r.tags, &new);
        check(&r.tags)
    })
    .await?;
    Ok(Empty {})
}

pub async fn untag(
    ctx: &Ctx<'_>,
    req: UntagResourceRequest,
    guard: &mut Guard<'_>,
) -> Result<Empty, ApiError> {
    let id = required(&req.secret_id, "SecretId")?;
    let keys = req.tag_keys.clone().unwrap_or_default();
    let (name, record) = authorized(ctx, guard, "secretsmanager:UntagResource", id)?;
    update_record(ctx, &name, &record.suffix, |r| {
        r.tags.retain(|(k, _)| !keys.contains(k));
        Ok(())
    })
    .await?;
    Ok(Empty {})
}
