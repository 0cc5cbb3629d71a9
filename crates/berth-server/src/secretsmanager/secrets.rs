//! Secrets: CreateSecret, DescribeSecret, ListSecrets, UpdateSecret,
//! DeleteSecret (a recovery window, or at once), RestoreSecret, and the purge
//! of secrets whose recovery window has passed.
use super::access::{authorize, authorized, update_record};
use super::values::{add_version, given, NewVersion};
use super::{marked_for_deletion, required, Ctx, Guard};
use crate::state::index::{guarded_delete, guarded_put};
use crate::state::secrets_records::SecretRecord;
use crate::state::{State, StoreKey};
use berth_api::secretsmanager::*;
use berth_api::{ApiError, ErrorCode};
use berth_model::secrets::{self as rules, AWSCURRENT};
use berth_model::Scope;
use berth_store::Txn;

const DAY_SECS: f64 = 86_400.0;

/// Six characters of `A-Za-z0-9`, as AWS ends a secret's ARN.
fn arn_suffix() -> String {
    const CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    uuid::Uuid::new_v4().as_bytes()[..6]
        .iter()
        .map(|b| CHARS[*b as usize % CHARS.len()] as char)
        .collect()
}

pub fn tags_out(tags: &[(String, String)]) -> Option<Vec<Tag>> {
    (!tags.is_empty()).then(|| {
        tags.iter()
            .map(|(k, v)| Tag {
                key: Some(k.clone()),
                value: Some(v.clone()),
            })
            .collect()
    })
}

pub async fn create(
    ctx: &Ctx<'_>,
    req: CreateSecretRequest,
    guard: &mut Guard<'_>,
) -> Result<CreateSecretResponse, ApiError> {
    let name = required(&req.name, "Name")?.to_string();
    if !rules::secret_name_ok(&name) {
        return Err(ApiError::new(
            ErrorCode::ValidationException,
            "Invalid name. Must be a valid name containing alphanumeric characters, or any of the following: -/_+=.@!",
        ));
    }
    let value = given(&req.secret_string, &req.secret_binary)?;
    let tags: Vec<(String, String)> = req
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
    super::tags::check(&tags)?;
    let suffix = arn_suffix();
    let arn = rules::secret_arn(&ctx.scope, &name, &suffix);
    authorize(ctx, guard, "secretsmanager:CreateSecret", &arn, None)?;
    let version = req
        .client_request_token
        .clone()
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let mut record = SecretRecord {
        suffix: suffix.clone(),
        description: req.description.clone(),
        kms_key_id: req.kms_key_id.clone(),
        created: ctx.now,
        last_changed: ctx.now,
        deletion_date: None,
        tags,
        policy: None,
        versions: vec![],
    };
    if let Some((v, binary)) = &value {
        let current = [AWSCURRENT.to_string()];
        add_version(
            ctx.state,
            &ctx.scope,
            &name,
            &mut record,
            NewVersion {
                id: &version,
                value: v,
                binary: *binary,
                stages: &current,
            },
            ctx.now,
        )?;
    }
    let key = StoreKey::secret(&ctx.scope, &name);
    ctx.state
        .mutate(&key, |index| {
            match index.secrets.get(&(ctx.scope.clone(), name.clone())) {
                Some(r) if r.value.deletion_date.is_some() => Err(ApiError::new(
                    ErrorCode::InvalidRequestException,
                    "You can't create this secret because a secret with this name is already scheduled for deletion.",
                )),
                Some(_) => Err(ApiError::new(
                    ErrorCode::ResourceExistsException,
                    format!("The operation failed because the secret {name} already exists."),
                )),
                None => Ok((guarded_put(Txn::default(), index, &key, &record), ())),
            }
        })
        .await?;
    Ok(CreateSecretResponse {
        arn: Some(arn),
        name: Some(name),
        version_id: value.map(|_| version),
        ..Default::default()
    })
}

fn entry(scope: &Scope, name: &str, r: &SecretRecord) -> SecretListEntry {
    SecretListEntry {
        arn: Some(rules::secret_arn(scope, name, &r.suffix)),
        name: Some(name.to_string()),
        description: r.description.clone(),
        kms_key_id: r.kms_key_id.clone(),
        last_changed_date: Some(r.last_changed),
        deleted_date: r.deletion_date,
        tags: tags_out(&r.tags),
        created_date: Some(r.created),
        secret_versions_to_stages: Some(
            r.versions
                .iter()
                .filter(|v| !v.stages.is_empty())
                .map(|v| (v.id.clone(), v.stages.clone()))
                .collect(),
        ),
        ..Default::default()
    }
}

pub async fn describe(
    ctx: &Ctx<'_>,
    req: DescribeSecretRequest,
    guard: &mut Guard<'_>,
) -> Result<DescribeSecretResponse, ApiError> {
    let id = required(&req.secret_id, "SecretId")?;
    let (name, r) = authorized(ctx, guard, "secretsmanager:DescribeSecret", id)?;
    let e = entry(&ctx.scope, &name, &r);
    Ok(DescribeSecretResponse {
        arn: e.arn,
        name: e.name,
        description: e.description,
        kms_key_id: e.kms_key_id,
        last_changed_date: e.last_changed_date,
        deleted_date: e.deleted_date,
        tags: e.tags,
        version_ids_to_stages: e.secret_versions_to_stages,
        created_date: e.created_date,
        ..Default::default()
    })
}

/// Whether a secret passes one ListSecrets filter: any value a prefix of the
/// field (a value starting `!` negates), as Secrets Manager matches them.
fn passes(name: &str, r: &SecretRecord, f: &Filter) -> Result<bool, ApiError> {
    let key = f.key.as_deref().unwrap_or_default();
    let fields: Vec<&str> = match key {
        "name" => vec![name],
        "description" => r.description.as_deref().into_iter().collect(),
        "tag-key" => r.tags.iter().map(|(k, _)| k.as_str()).collect(),
        "tag-value" => r.tags.iter().map(|(_, v)| v.as_str()).collect(),
        "primary-region" | "owning-service" => vec![],
        "all" => std::iter::once(name)
            .chain(r.description.as_deref())
            .chain(r.tags.iter().flat_map(|(k, v)| [k.as_str(), v.as_str()]))
            .collect(),
        other => {
            return Err(ApiError::new(
                ErrorCode::ValidationException,
                format!("1 validation error detected: Value '{other}' at 'filters.1.member.key' failed to satisfy constraint: Member must satisfy enum value set: [all, name, tag-key, description, owning-service, tag-value, primary-region]"),
            ))
        }
    };
    Ok(f.values
        .iter()
        .flatten()
        .any(|v| match v.strip_prefix('!') {
            Some(neg) => !fields.iter().any(|x| x.starts_with(neg)),
            None => fields.iter().any(|x| x.starts_with(v.as_str())),
        }))
}

pub async fn list(
    ctx: &Ctx<'_>,
    req: ListSecretsRequest,
    guard: &mut Guard<'_>,
) -> Result<ListSecretsResponse, ApiError> {
    guard("secretsmanager:ListSecrets", vec![])?;
    let filters = req.filters.clone().unwrap_or_default();
    let planned = req.include_planned_deletion.unwrap_or(false);
    let mut entries = vec![];
    {
        let index = ctx.state.read();
        let lo = (ctx.scope.clone(), String::new());
        for ((scope, name), r) in index.secrets.range(lo..) {
            if *scope != ctx.scope {
                break;
            }
            if r.value.deletion_date.is_some() && !planned {
                continue;
            }
            let mut keep = true;
            for f in &filters {
                keep &= passes(name, &r.value, f)?;
            }
            if keep {
                entries.push(entry(&ctx.scope, name, &r.value));
            }
        }
    }
    let descending = req.sort_order.as_deref() == Some("desc");
    let (page, next_token) = berth_api::pagination::page(
        entries,
        |e| e.name.clone().unwrap_or_default(),
        req.max_results,
        req.next_token.as_deref(),
        berth_api::pagination::PageLimits::new(100, 100),
    )?;
    let mut page = page;
    if descending {
        page.reverse();
    }
    Ok(ListSecretsResponse {
        secret_list: Some(page),
        next_token,
    })
}

pub async fn update(
    ctx: &Ctx<'_>,
    req: UpdateSecretRequest,
    guard: &mut Guard<'_>,
) -> Result<UpdateSecretResponse, ApiError> {
    let id = required(&req.secret_id, "SecretId")?;
    let value = given(&req.secret_string, &req.secret_binary)?;
    let (name, record) = authorized(ctx, guard, "secretsmanager:UpdateSecret", id)?;
    if record.deletion_date.is_some() {
        return Err(marked_for_deletion());
    }
    let version = value.as_ref().map(|_| {
        req.client_request_token
            .clone()
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string())
    });
    let now = ctx.now;
    update_record(ctx, &name, &record.suffix, |r| {
        if let Some(d) = &req.description {
            r.description = Some(d.clone());
        }
        if let Some(k) = &req.kms_key_id {
            r.kms_key_id = Some(k.clone());
        }
        r.last_changed = now;
        if let (Some((v, binary)), Some(version)) = (&value, &version) {
            let current = [AWSCURRENT.to_string()];
            add_version(
                ctx.state,
                &ctx.scope,
                &name,
                r,
                NewVersion {
                    id: version,
                    value: v,
                    binary: *binary,
                    stages: &current,
                },
                now,
            )?;
        }
        Ok(())
    })
    .await?;
    Ok(UpdateSecretResponse {
        arn: Some(rules::secret_arn(&ctx.scope, &name, &record.suffix)),
        name: Some(name),
        version_id: version,
    })
}

pub async fn delete(
    ctx: &Ctx<'_>,
    req: DeleteSecretRequest,
    guard: &mut Guard<'_>,
) -> Result<DeleteSecretResponse, ApiError> {
    let id = required(&req.secret_id, "SecretId")?;
    let force = req.force_delete_without_recovery.unwrap_or(false);
    if force && req.recovery_window_in_days.is_some() {
        return Err(ApiError::invalid_parameter(
            "You can't use ForceDeleteWithoutRecovery in conjunction with RecoveryWindowInDays.",
        ));
    }
    let days = req.recovery_window_in_days.unwrap_or(30);
    if !(7..=30).contains(&days) {
        return Err(ApiError::invalid_parameter(
            "The RecoveryWindowInDays value must be between 7 and 30 days (inclusive).",
        ));
    }
    let (name, record) = authorized(ctx, guard, "secretsmanager:DeleteSecret", id)?;
    let arn = rules::secret_arn(&ctx.scope, &name, &record.suffix);
    if force {
        let key = StoreKey::secret(&ctx.scope, &name);
        ctx.state
            .mutate(&key, |index| {
                Ok((guarded_delete(Txn::default(), index, &key), ()))
            })
            .await?;
        return Ok(DeleteSecretResponse {
            arn: Some(arn),
            name: Some(name),
            deletion_date: Some(ctx.now),
        });
    }
    if record.deletion_date.is_some() {
        return Err(marked_for_deletion());
    }
    let when = ctx.now + days as f64 * DAY_SECS;
    update_record(ctx, &name, &record.suffix, |r| {
        r.deletion_date = Some(when);
        Ok(())
    })
    .await?;
    Ok(DeleteSecretResponse {
        arn: Some(arn),
        name: Some(name),
        deletion_date: Some(when),
    })
}

pub async fn restore(
    ctx: &Ctx<'_>,
    req: RestoreSecretRequest,
    guard: &mut Guard<'_>,
) -> Result<RestoreSecretResponse, ApiError> {
    let id = required(&req.secret_id, "SecretId")?;
    let (name, record) = authorized(ctx, guard, "secretsmanager:RestoreSecret", id)?;
    update_record(ctx, &name, &record.suffix, |r| {
        r.deletion_date = None;
        Ok(())
    })
    .await?;
    Ok(RestoreSecretResponse {
        arn: Some(rules::secret_arn(&ctx.scope, &name, &record.suffix)),
        name: Some(name),
    })
}

/// Deletes the secrets whose recovery window has passed (the controllers' full pass).
pub async fn purge(state: &State) {
    let now = state.clock().epoch_secs();
    let due: Vec<(Scope, String)> = state
        .read()
        .secrets
        .iter()
        .filter(|(_, r)| r.value.deletion_date.is_some_and(|d| d <= now))
        .map(|(k, _)| k.clone())
        .collect();
    for (scope, name) in due {
        let key = StoreKey::secret(&scope, &name);
        let done = state
            .mutate(&key, |index| {
                let still = index
                    .secrets
                    .get(&(scope.clone(), name.clone()))
                    .is_some_and(|r| r.value.deletion_date.is_some_and(|d| d <= now));
                let txn = if still {
                    guarded_delete(Txn::default(), index, &key)
                } else {
                    Txn::default()
                };
                Ok((txn, ()))
            })
            .await;
        if let Err(e) = done {
            tracing::warn!(secret = %name, error = %e, "a secret due for deletion was not deleted");
        }
    }
}
