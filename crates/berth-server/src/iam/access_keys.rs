//! IAM users' access keys: made, listed, switched off and deleted; a key signs
//! requests as its user from the moment it is made, across restarts.
use super::{no_such_entity, required, Ctx};
use crate::state::iam_records::{AccessKeyRecord, UserRecord};
use crate::state::index::{guarded_delete, guarded_put};
use crate::state::keys::StoreKey;
use berth_api::amz_date::format_iso8601;
use berth_api::query::{empty, response, IAM_NS};
use berth_api::{ApiError, ErrorCode};
use berth_store::Txn;

/// IAM's quota of access keys per user.
pub const PER_USER: usize = 2;

fn user_param<'a>(ctx: &'a Ctx<'_>) -> Result<&'a str, ApiError> {
    match (ctx.params.get("UserName"), ctx.user.as_deref()) {
        (Some(u), _) | (None, Some(u)) => Ok(u),
        (None, None) => Err(ApiError::new(
            ErrorCode::ValidationError,
            "Must specify userName when calling with non-User credentials",
        )),
    }
}

fn user_exists(ctx: &Ctx<'_>, user: &str) -> Result<(), ApiError> {
    let index = ctx.state.read();
    super::entities::find::<UserRecord>(&index, &ctx.account, user)
        .map(|_| ())
        .ok_or_else(|| no_such_entity(format!("The user with name {user} cannot be found.")))
}

pub async fn create(ctx: &Ctx<'_>) -> Result<String, ApiError> {
    let user = user_param(ctx)?;
    user_exists(ctx, user)?;
    let id = crate::ids::iam("AKIA");
    let record = AccessKeyRecord {
        account: ctx.account.clone(),
        user: user.to_string(),
        secret: crate::ids::secret_access_key(),
        status: "Active".into(),
        created: ctx.now,
    };
    let key = StoreKey::AccessKey { id: id.clone() };
    // The user's turn: its key count is checked and the key written in one step.
    let turn = StoreKey::iam(&ctx.account, crate::state::keys::IamKind::User, user);
    ctx.state
        .mutate(&turn, |index| {
            let held = index
                .access_keys
                .values()
                .filter(|k| k.value.account == ctx.account && k.value.user == user)
                .count();
            if held >= PER_USER {
                return Err(ApiError::new(
                    ErrorCode::LimitExceeded,
                    format!("Cannot exceed quota for AccessKeysPerUser: {PER_USER}"),
                ));
            }
            Ok((guarded_put(Txn::new(), index, &key, &record), ()))
        })
        .await?;
    Ok(response("CreateAccessKey", IAM_NS, &ctx.request_id, |x| {
        x.elem("AccessKey", |x| {
            x.text("UserName", user);
            x.text("AccessKeyId", &id);
            x.text("Status", &record.status);
            x.text("SecretAccessKey", &record.secret);
            x.text("CreateDate", format_iso8601(record.created));
        })
    }))
}

pub fn list(ctx: &Ctx<'_>) -> Result<String, ApiError> {
    let user = user_param(ctx)?;
    user_exists(ctx, user)?;
    let index = ctx.state.read();
    let keys: Vec<(&String, &AccessKeyRecord)> = index
        .access_keys
        .iter()
        .filter(|(_, k)| k.value.account == ctx.account && k.value.user == user)
        .map(|(id, k)| (id, &k.value))
        .collect();
    Ok(response("ListAccessKeys", IAM_NS, &ctx.request_id, |x| {
        x.text("UserName", user);
        x.members("AccessKeyMetadata", &keys, |x, (id, k)| {
            x.text("UserName", &k.user);
            x.text("AccessKeyId", id);
            x.text("Status", &k.status);
            x.text("CreateDate", format_iso8601(k.created));
        });
        x.text("IsTruncated", false);
    }))
}

async fn change(
    ctx: &Ctx<'_>,
    mut apply: impl FnMut(&crate::state::index::Index, &StoreKey, AccessKeyRecord) -> Txn,
) -> Result<(), ApiError> {
    let user = user_param(ctx)?;
    let id = required(&ctx.params, "AccessKeyId")?;
    let key = StoreKey::AccessKey { id: id.to_string() };
    ctx.state
        .mutate(&key, |index| {
            let k = index
                .access_keys
                .get(id)
                .map(|k| k.value.clone())
                .filter(|k| k.account == ctx.account && k.user == user)
                .ok_or_else(|| {
                    no_such_entity(format!("The Access Key with id {id} cannot be found."))
                })?;
            Ok((apply(index, &key, k), ()))
        })
        .await
}

pub async fn update(ctx: &Ctx<'_>) -> Result<String, ApiError> {
    let status = required(&ctx.params, "Status")?;
    if status != "Active" && status != "Inactive" {
        return Err(ApiError::new(
            ErrorCode::ValidationError,
            format!("1 validation error detected: Value '{status}' at 'status' failed to satisfy constraint: Member must satisfy enum value set: [Active, Inactive]"),
        ));
    }
    change(ctx, |index, key, mut k| {
        k.status = status.to_string();
        guarded_put(Txn::new(), index, key, &k)
    })
    .await?;
    Ok(empty("UpdateAccessKey", IAM_NS, &ctx.request_id))
}

pub async fn delete(ctx: &Ctx<'_>) -> Result<String, ApiError> {
    change(ctx, |index, key, _| guarded_delete(Txn::new(), index, key)).await?;
    Ok(empty("DeleteAccessKey", IAM_NS, &ctx.request_id))
}
