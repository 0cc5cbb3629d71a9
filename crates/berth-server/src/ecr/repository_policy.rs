//! Repository policies: Set/Get/DeleteRepositoryPolicy, and the check that
//! lets another account's principal act on a repository only where the
//! repository's policy allows it (its own identity policies must allow it too).
use super::repositories::{authorized, find};
use super::{registry_scope, repository_not_found, required, Ctx, Guard};
use crate::auth::Caller;
use crate::authz::{self, Refuser, Wording};
use crate::state::index::guarded_put;
use crate::state::{State, StoreKey};
use berth_api::ecr::*;
use berth_api::{ApiError, ErrorCode};
use berth_iam::{evaluate_resource_policy, Decision, Kind, Policy, Request};
use berth_model::{ecr, Scope};
use berth_store::Txn;

fn not_found(scope: &Scope, name: &str) -> ApiError {
    ApiError::new(
        ErrorCode::RepositoryPolicyNotFoundException,
        format!(
            "Repository policy does not exist for the repository with name '{name}' in the registry with id '{}'",
            scope.account
        ),
    )
}

fn parse(text: &str) -> Result<Policy, ApiError> {
    Policy::parse(text, Kind::Resource).map_err(|e| {
        ApiError::invalid_parameter(format!(
            "Invalid parameter at 'PolicyText' failed to satisfy constraint: 'Invalid repository policy provided: {}'",
            e.0
        ))
    })
}

/// Whether `caller`, of another account, may take `action` on the repository
/// by its policy. A missing repository, or one whose policy does not let the
/// caller in, answers as ECR does for another account's repository.
pub fn check_foreign(
    state: &State,
    scope: &Scope,
    name: &str,
    caller: &Caller,
    action: &str,
    source_ip: Option<&str>,
) -> Result<(), ApiError> {
    let text = {
        let index = state.read();
        find(&index, scope, name)?.value.policy.clone()
    };
    let arn = ecr::repository_arn(scope, name);
    let decision = match text.as_deref().map(parse) {
        Some(Ok(policy)) => {
            let arns = [caller.arn(), caller.principal_arn()];
            let who = berth_iam::Caller {
                account: &caller.account,
                arns: &arns,
                service: None,
            };
            let now = state.clock().epoch_secs() as i64;
            let context = authz::base_context(caller, &scope.region, source_ip, now);
            let req = Request {
                action,
                resource: &arn,
                context: &context,
            };
            evaluate_resource_policy(&policy, &who, &req).0
        }
        _ => Decision::ImplicitDeny,
    };
    if decision == Decision::Allow {
        return Ok(());
    }
    Err(authz::denied_by(
        Wording::Json,
        caller,
        action,
        &arn,
        decision == Decision::ExplicitDeny,
        Refuser::Resource,
    ))
}

/// The scope of the repository a request names, checked: the caller's own,
/// or another account's whose repository policy allows `action`.
pub fn scope_for(
    ctx: &Ctx<'_>,
    registry_id: Option<&str>,
    name: &str,
    action: &str,
) -> Result<Scope, ApiError> {
    let scope = registry_scope(ctx, registry_id);
    if scope == ctx.scope {
        return Ok(scope);
    }
    if !ctx
        .state
        .read()
        .ecr_repositories
        .contains_key(&(scope.clone(), name.to_string()))
    {
        return Err(repository_not_found(&scope, name));
    }
    check_foreign(ctx.state, &scope, name, ctx.caller, action, None)?;
    Ok(scope)
}

/// Sets (None: removes) the policy; answers the text it had.
async fn set(
    state: &State,
    scope: &Scope,
    name: &str,
    text: Option<String>,
) -> Result<Option<String>, ApiError> {
    let key = StoreKey::repository(scope, name);
    state
        .mutate(&key, |index| {
            let mut record = find(index, scope, name)?.value.clone();
            let before = record.policy.take();
            if text.is_none() && before.is_none() {
                return Err(not_found(scope, name));
            }
            record.policy = text.clone();
            Ok((guarded_put(Txn::default(), index, &key, &record), before))
        })
        .await
}

pub async fn put(
    ctx: &Ctx<'_>,
    req: SetRepositoryPolicyRequest,
    guard: &mut Guard<'_>,
) -> Result<SetRepositoryPolicyResponse, ApiError> {
    let name = required(&req.repository_name, "repositoryName")?;
    let text = required(&req.policy_text, "policyText")?;
    let scope = authorized(
        ctx,
        req.registry_id.as_deref(),
        name,
        "ecr:SetRepositoryPolicy",
        guard,
    )?;
    parse(text)?;
    set(ctx.state, &scope, name, Some(text.to_string())).await?;
    Ok(SetRepositoryPolicyResponse {
        registry_id: Some(scope.account),
        repository_name: Some(name.to_string()),
        policy_text: Some(text.to_string()),
    })
}

pub async fn get(
    ctx: &Ctx<'_>,
    req: GetRepositoryPolicyRequest,
    guard: &mut Guard<'_>,
) -> Result<GetRepositoryPolicyResponse, ApiError> {
    let name = required(&req.repository_name, "repositoryName")?;
    let scope = authorized(
        ctx,
        req.registry_id.as_deref(),
        name,
        "ecr:GetRepositoryPolicy",
        guard,
    )?;
    let text = find(&ctx.state.read(), &scope, name)?.value.policy.clone();
    Ok(GetRepositoryPolicyResponse {
        registry_id: Some(scope.account.clone()),
        repository_name: Some(name.to_string()),
        policy_text: Some(text.ok_or_else(|| not_found(&scope, name))?),
    })
}

pub async fn delete(
    ctx: &Ctx<'_>,
    req: DeleteRepositoryPolicyRequest,
    guard: &mut Guard<'_>,
) -> Result<DeleteRepositoryPolicyResponse, ApiError> {
    let name = required(&req.repository_name, "repositoryName")?;
    let scope = authorized(
        ctx,
        req.registry_id.as_deref(),
        name,
        "ecr:DeleteRepositoryPolicy",
        guard,
    )?;
    let before = set(ctx.state, &scope, name, None).await?;
    Ok(DeleteRepositoryPolicyResponse {
        registry_id: Some(scope.account),
        repository_name: Some(name.to_string()),
        policy_text: before,
    })
}
