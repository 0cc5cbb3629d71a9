//! Who may act on a secret: the caller's own policies, and the secret's
//! resource policy (Put/Get/DeleteResourcePolicy), which can allow a caller
//! in the account its policies do not, and whose explicit deny refuses anyone.
use super::{find, required, Ctx, Guard};
use crate::authz::{self, Refuser, Resource, Wording};
use crate::state::index::guarded_put;
use crate::state::StoreKey;
use berth_api::secretsmanager::*;
use berth_api::{ApiError, ErrorCode};
use berth_iam::{evaluate_resource_policy, Decision, Kind, Policy, Request};
use berth_model::secrets::secret_arn;
use berth_store::Txn;

fn parse(text: &str) -> Result<Policy, ApiError> {
    Policy::parse(text, Kind::Resource).map_err(|e| {
        ApiError::new(
            ErrorCode::MalformedPolicyDocumentException,
            format!(
                "This resource policy contains an unsupported principal or syntax error: {}",
                e.0
            ),
        )
    })
}

/// Authorizes `action` on the secret at `arn`, which carries `policy`.
pub fn authorize(
    ctx: &Ctx<'_>,
    guard: &mut Guard<'_>,
    action: &'static str,
    arn: &str,
    policy: Option<&str>,
) -> Result<(), ApiError> {
    let decision = match policy.map(parse) {
        Some(Ok(policy)) => {
            let arns = [ctx.caller.arn(), ctx.caller.principal_arn()];
            let who = berth_iam::Caller {
                account: &ctx.caller.account,
                arns: &arns,
                service: None,
            };
            let context = authz::base_context(ctx.caller, &ctx.scope.region, None, ctx.now as i64);
            let req = Request {
                action,
                resource: arn,
                context: &context,
            };
            evaluate_resource_policy(&policy, &who, &req).0
        }
        _ => Decision::ImplicitDeny,
    };
    match decision {
        Decision::Allow => Ok(()),
        Decision::ExplicitDeny => Err(authz::denied_by(
            Wording::Json,
            ctx.caller,
            action,
            arn,
            true,
            Refuser::Resource,
        )),
        Decision::ImplicitDeny => guard(action, vec![Resource::arn(arn)]),
    }
}

/// Finds the secret `id` names and authorizes `action` on it; a secret that
/// does not exist is authorized on the ARN the request names, then not found.
pub fn authorized(
    ctx: &Ctx<'_>,
    guard: &mut Guard<'_>,
    action: &'static str,
    id: &str,
) -> Result<(String, crate::state::secrets_records::SecretRecord), ApiError> {
    let found = {
        let index = ctx.state.read();
        find(&index, &ctx.scope, id).map(|(n, r)| (n.to_string(), r.clone()))
    };
    match found {
        Ok((name, record)) => {
            let arn = secret_arn(&ctx.scope, &name, &record.suffix);
            authorize(ctx, guard, action, &arn, record.policy.as_deref())?;
            Ok((name, record))
        }
        Err(e) => {
            guard(
                action,
                vec![Resource::arn(super::missing_arn(&ctx.scope, id))],
            )?;
            Err(e)
        }
    }
}

/// Writes the secret `name`'s record as `change` leaves it, guarded on the
/// record it read (a secret deleted or recreated meanwhile is not found).
pub async fn update_record<T>(
    ctx: &Ctx<'_>,
    name: &str,
    suffix: &str,
    mut change: impl FnMut(&mut crate::state::secrets_records::SecretRecord) -> Result<T, ApiError>,
) -> Result<T, ApiError> {
    let key = StoreKey::secret(&ctx.scope, name);
    ctx.state
        .mutate(&key, |index| {
            let current = index
                .secrets
                .get(&(ctx.scope.clone(), name.to_string()))
                .filter(|r| r.value.suffix == suffix)
                .ok_or_else(super::not_found)?;
            let mut record = current.value.clone();
            let out = change(&mut record)?;
            Ok((guarded_put(Txn::default(), index, &key, &record), out))
        })
        .await
}

pub async fn put_policy(
    ctx: &Ctx<'_>,
    req: PutResourcePolicyRequest,
    guard: &mut Guard<'_>,
) -> Result<PutResourcePolicyResponse, ApiError> {
    let id = required(&req.secret_id, "SecretId")?;
    let text = required(&req.resource_policy, "ResourcePolicy")?.to_string();
    parse(&text)?;
    let (name, record) = authorized(ctx, guard, "secretsmanager:PutResourcePolicy", id)?;
    update_record(ctx, &name, &record.suffix, |r| {
        r.policy = Some(text.clone());
        Ok(())
    })
    .await?;
    Ok(PutResourcePolicyResponse {
        arn: Some(secret_arn(&ctx.scope, &name, &record.suffix)),
        name: Some(name),
        ..Default::default()
    })
}

pub async fn get_policy(
    ctx: &Ctx<'_>,
    req: GetResourcePolicyRequest,
    guard: &mut Guard<'_>,
) -> Result<GetResourcePolicyResponse, ApiError> {
    let id = required(&req.secret_id, "SecretId")?;
    let (name, record) = authorized(ctx, guard, "secretsmanager:GetResourcePolicy", id)?;
    Ok(GetResourcePolicyResponse {
        arn: Some(secret_arn(&ctx.scope, &name, &record.suffix)),
        name: Some(name),
        resource_policy: record.policy,
        ..Default::default()
    })
}

pub async fn delete_policy(
    ctx: &Ctx<'_>,
    req: DeleteResourcePolicyRequest,
    guard: &mut Guard<'_>,
) -> Result<DeleteResourcePolicyResponse, ApiError> {
    let id = required(&req.secret_id, "SecretId")?;
    let (name, record) = authorized(ctx, guard, "secretsmanager:DeleteResourcePolicy", id)?;
    update_record(ctx, &name, &record.suffix, |r| {
        r.policy = None;
        Ok(())
    })
    .await?;
    Ok(DeleteResourcePolicyResponse {
        arn: Some(secret_arn(&ctx.scope, &name, &record.suffix)),
        name: Some(name),
        ..Default::default()
    })
}
