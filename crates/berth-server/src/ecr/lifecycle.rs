//! Lifecycle policies: Put/Get/DeleteLifecyclePolicy, and the pass that
//! expires what each repository's policy names (the controller runs it).
use super::images::{delete_images, in_repository};
use super::repositories::{authorized, find};
use super::{required, Ctx, Guard};
use crate::state::index::guarded_put;
use crate::state::{State, StoreKey};
use berth_api::ecr::*;
use berth_api::{ApiError, ErrorCode};
use berth_model::ecr_lifecycle::{ImageFacts, LifecyclePolicy};
use berth_model::Scope;
use berth_store::Txn;

fn not_found(scope: &Scope, name: &str) -> ApiError {
    ApiError::new(
        ErrorCode::LifecyclePolicyNotFoundException,
        format!(
            "Lifecycle policy does not exist for the repository with name '{name}' in the registry with id '{}'",
            scope.account
        ),
    )
}

/// Sets (None: removes) the repository's policy text; answers the text it had.
async fn set(
    state: &State,
    scope: &Scope,
    name: &str,
    text: Option<String>,
    now: f64,
) -> Result<Option<String>, ApiError> {
    let key = StoreKey::repository(scope, name);
    state
        .mutate(&key, |index| {
            let mut record = find(index, scope, name)?.value.clone();
            let before = record.lifecycle_policy.take();
            if text.is_none() && before.is_none() {
                return Err(not_found(scope, name));
            }
            record.lifecycle_policy = text.clone();
            record.lifecycle_policy_updated_at = text.as_ref().map(|_| now);
            Ok((guarded_put(Txn::default(), index, &key, &record), before))
        })
        .await
}

pub async fn put(
    ctx: &Ctx<'_>,
    req: PutLifecyclePolicyRequest,
    guard: &mut Guard<'_>,
) -> Result<PutLifecyclePolicyResponse, ApiError> {
    let name = required(&req.repository_name, "repositoryName")?;
    let text = required(&req.lifecycle_policy_text, "lifecyclePolicyText")?;
    let scope = authorized(
        ctx,
        req.registry_id.as_deref(),
        name,
        "ecr:PutLifecyclePolicy",
        guard,
    )?;
    LifecyclePolicy::parse(text)?;
    set(ctx.state, &scope, name, Some(text.to_string()), ctx.now).await?;
    Ok(PutLifecyclePolicyResponse {
        registry_id: Some(scope.account),
        repository_name: Some(name.to_string()),
        lifecycle_policy_text: Some(text.to_string()),
    })
}

pub async fn get(
    ctx: &Ctx<'_>,
    req: GetLifecyclePolicyRequest,
    guard: &mut Guard<'_>,
) -> Result<GetLifecyclePolicyResponse, ApiError> {
    let name = required(&req.repository_name, "repositoryName")?;
    let scope = authorized(
        ctx,
        req.registry_id.as_deref(),
        name,
        "ecr:GetLifecyclePolicy",
        guard,
    )?;
    let record = find(&ctx.state.read(), &scope, name)?.value.clone();
    let text = record
        .lifecycle_policy
        .ok_or_else(|| not_found(&scope, name))?;
    Ok(GetLifecyclePolicyResponse {
        registry_id: Some(scope.account),
        repository_name: Some(name.to_string()),
        lifecycle_policy_text: Some(text),
        last_evaluated_at: record.lifecycle_policy_updated_at,
    })
}

pub async fn delete(
    ctx: &Ctx<'_>,
    req: DeleteLifecyclePolicyRequest,
    guard: &mut Guard<'_>,
) -> Result<DeleteLifecyclePolicyResponse, ApiError> {
    let name = required(&req.repository_name, "repositoryName")?;
    let scope = authorized(
        ctx,
        req.registry_id.as_deref(),
        name,
        "ecr:DeleteLifecyclePolicy",
        guard,
    )?;
    let before = set(ctx.state, &scope, name, None, ctx.now).await?;
    Ok(DeleteLifecyclePolicyResponse {
        registry_id: Some(scope.account),
        repository_name: Some(name.to_string()),
        lifecycle_policy_text: before,
        last_evaluated_at: None,
    })
}

/// Expires, in every repository with a lifecycle policy, what the policy names.
pub async fn apply(state: &State) {
    let now = state.clock().epoch_secs();
    let with_policies: Vec<(Scope, String)> = state
        .read()
        .ecr_repositories
        .iter()
        .filter(|(_, r)| r.value.lifecycle_policy.is_some())
        .map(|(k, _)| k.clone())
        .collect();
    for (scope, name) in with_policies {
        let key = StoreKey::repository(&scope, &name);
        let result = state
            .mutate(&key, |index| {
                let Ok(repo) = find(index, &scope, &name) else {
                    return Ok((Txn::default(), 0));
                };
                let Some(Ok(policy)) = repo
                    .value
                    .lifecycle_policy
                    .as_deref()
                    .map(LifecyclePolicy::parse)
                else {
                    return Ok((Txn::default(), 0));
                };
                let images: Vec<ImageFacts<'_>> = in_repository(index, &scope, &name)
                    .into_iter()
                    .filter_map(|(digest, tags)| {
                        let r = index.ecr_images.get(&(
                            scope.clone(),
                            name.clone(),
                            digest.to_string(),
                        ))?;
                        Some(ImageFacts {
                            digest,
                            tags,
                            pushed_at: r.value.pushed_at,
                        })
                    })
                    .collect();
                let expired = policy.expired(&images, now);
                let n = expired.len();
                Ok((delete_images(index, &scope, &name, &expired), n))
            })
            .await;
        match result {
            Ok(0) => {}
            Ok(n) => {
                tracing::info!(repository = %name, account = %scope.account, expired = n, "lifecycle policy expired images")
            }
            Err(e) => {
                tracing::warn!(repository = %name, error = %e, "lifecycle policy pass failed")
            }
        }
    }
}
