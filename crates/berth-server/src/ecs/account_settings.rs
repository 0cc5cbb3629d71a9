//! ListAccountSettings, PutAccountSetting, PutAccountSettingDefault, DeleteAccountSetting.
//! A principal's own setting wins over the account root's, which wins over AWS's default.
use super::Ctx;
use crate::state::index::{guarded_delete, guarded_put, AccountSettingRecord, Index};
use crate::state::StoreKey;
use berth_api::ecs::*;
use berth_api::pagination::{page, PageLimits};
use berth_api::ApiError;
use berth_model::{account_setting, arn, Scope};
use berth_store::Txn;

const LIST_LIMITS: PageLimits = PageLimits::new(10, 10);

fn root(scope: &Scope) -> String {
    arn::iam_principal(&scope.account, None)
}

fn explicit(index: &Index, scope: &Scope, name: &str, principal: &str) -> Option<String> {
    index
        .account_settings
        .get(&(scope.clone(), name.to_string(), principal.to_string()))
        .map(|v| v.value.value.clone())
}

/// The value in force for `principal`, and the principal ARN and type it comes from.
pub fn effective_value(
    index: &Index,
    scope: &Scope,
    principal: &str,
    name: &str,
) -> (String, String, &'static str) {
    if let Some(v) = explicit(index, scope, name, principal) {
        return (v, principal.to_string(), "user");
    }
    let root = root(scope);
    if let Some(v) = explicit(index, scope, name, &root) {
        return (v, root, "user");
    }
    (
        account_setting::default_value(name)
            .unwrap_or_default()
            .to_string(),
        root,
        "aws_managed",
    )
}

/// The principal a request acts for: the one it names (in the caller's account) or the caller.
fn principal_for(ctx: &Ctx<'_>, given: Option<&str>) -> Result<String, ApiError> {
    match given {
        None => Ok(ctx.principal.clone()),
        Some(p) => {
            let prefix = format!("arn:aws:iam::{}:", ctx.scope.account);
            let rest = p.strip_prefix(&prefix).unwrap_or("");
            if rest == "root" || rest.starts_with("user/") || rest.starts_with("role/") {
                Ok(p.to_string())
            } else {
                Err(ApiError::invalid_parameter(format!(
                    "principalArn '{p}' is not an IAM user, role or root ARN of account {}.",
                    ctx.scope.account
                )))
            }
        }
    }
}

fn setting(name: &str, value: &str, principal: &str, kind: &str) -> Setting {
    Setting {
        name: Some(name.into()),
        value: Some(value.into()),
        principal_arn: Some(principal.into()),
        r#type: Some(kind.into()),
    }
}

async fn put(
    ctx: &Ctx<'_>,
    name: &str,
    value: &str,
    principal: String,
) -> Result<Setting, ApiError> {
    account_setting::validate(name, value)?;
    let key = StoreKey::AccountSetting {
        scope: ctx.scope.clone(),
        name: name.to_string(),
        principal: principal.clone(),
    };
    ctx.state
        .mutate(&key, |index| {
            Ok((
                guarded_put(
                    Txn::new(),
                    index,
                    &key,
                    &AccountSettingRecord {
                        value: value.into(),
                    },
                ),
                (),
            ))
        })
        .await?;
    Ok(setting(name, value, &principal, "user"))
}

pub async fn put_account_setting(
    ctx: &Ctx<'_>,
    req: PutAccountSettingRequest,
) -> Result<PutAccountSettingResponse, ApiError> {
    let principal = principal_for(ctx, req.principal_arn.as_deref())?;
    let s = put(
        ctx,
        req.name.as_deref().unwrap_or_default(),
        req.value.as_deref().unwrap_or_default(),
        principal,
    )
    .await?;
    Ok(PutAccountSettingResponse { setting: Some(s) })
}

pub async fn put_account_setting_default(
    ctx: &Ctx<'_>,
    req: PutAccountSettingDefaultRequest,
) -> Result<PutAccountSettingDefaultResponse, ApiError> {
    let s = put(
        ctx,
        req.name.as_deref().unwrap_or_default(),
        req.value.as_deref().unwrap_or_default(),
        root(&ctx.scope),
    )
    .await?;
    Ok(PutAccountSettingDefaultResponse { setting: Some(s) })
}

pub async fn delete_account_setting(
    ctx: &Ctx<'_>,
    req: DeleteAccountSettingRequest,
) -> Result<DeleteAccountSettingResponse, ApiError> {
    let name = req.name.unwrap_or_default();
    if account_setting::default_value(&name).is_none() {
        return Err(ApiError::invalid_parameter(format!(
            "Unknown account setting name: {name}."
        )));
    }
    let principal = principal_for(ctx, req.principal_arn.as_deref())?;
    let key = StoreKey::AccountSetting {
        scope: ctx.scope.clone(),
        name: name.clone(),
        principal: principal.clone(),
    };
    let s = ctx
        .state
        .mutate(&key, |index| {
            match explicit(index, &ctx.scope, &name, &principal) {
                Some(v) => Ok((
                    guarded_delete(Txn::new(), index, &key),
                    setting(&name, &v, &principal, "user"),
                )),
                None => {
                    let (v, p, kind) = effective_value(index, &ctx.scope, &principal, &name);
                    Ok((Txn::new(), setting(&name, &v, &p, kind)))
                }
            }
        })
        .await?;
    Ok(DeleteAccountSettingResponse { setting: Some(s) })
}

pub async fn list_account_settings(
    ctx: &Ctx<'_>,
    req: ListAccountSettingsRequest,
) -> Result<ListAccountSettingsResponse, ApiError> {
    let principal = principal_for(ctx, req.principal_arn.as_deref())?;
    let index = ctx.state.read();
    let mut out: Vec<Setting> = vec![];
    for (name, _, _) in account_setting::SETTINGS {
        if req.name.as_deref().is_some_and(|n| n != *name) {
            continue;
        }
        let s = if req.effective_settings.unwrap_or(false) {
            let (v, p, kind) = effective_value(&index, &ctx.scope, &principal, name);
            Some(setting(name, &v, &p, kind))
        } else {
            explicit(&index, &ctx.scope, name, &principal)
                .map(|v| setting(name, &v, &principal, "user"))
        };
        if let Some(s) = s.filter(|s| {
            req.value
                .as_ref()
                .is_none_or(|v| s.value.as_ref() == Some(v))
        }) {
            out.push(s);
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    let (out, next) = page(
        out,
        |s| s.name.clone().unwrap_or_default(),
        req.max_results,
        req.next_token.as_deref(),
        LIST_LIMITS,
    )?;
    Ok(ListAccountSettingsResponse {
        settings: Some(out),
        next_token: next,
    })
}
