//! Secret values: GetSecretValue, PutSecretValue, ListSecretVersionIds,
//! UpdateSecretVersionStage. Each version's value is sealed for its secret
//! and version; staging labels move as Secrets Manager moves them.
use super::access::{authorized, update_record};
use super::{marked_for_deletion, required, seal_context, Ctx, Guard};
use crate::state::secrets_records::{SecretRecord, SecretVersion};
use berth_api::secretsmanager::*;
use berth_api::{ApiError, ErrorCode};
use berth_model::secrets::{self as rules, AWSCURRENT};
use berth_model::Scope;

/// Versions a secret keeps: those with labels, and the newest unlabelled ones up to this.
const MAX_VERSIONS: usize = 100;

/// A value as a request gives it: exactly one of the string and the binary.
pub fn given(
    string: &Option<String>,
    binary: &Option<String>,
) -> Result<Option<(String, bool)>, ApiError> {
    match (string, binary) {
        (Some(_), Some(_)) => Err(ApiError::invalid_parameter(
            "You can't specify both a binary secret value and a string secret value in the same secret.",
        )),
        (Some(s), None) => Ok(Some((s.clone(), false))),
        (None, Some(b)) => Ok(Some((b.clone(), true))),
        (None, None) => Ok(None),
    }
}

/// Adds a version holding `value` with `stages` (AWSCURRENT moves to it and
/// the old current becomes AWSPREVIOUS). A token already used for the same
/// value is the same version again; for another value it is refused.
/// A version a request adds.
pub struct NewVersion<'a> {
    pub id: &'a str,
    pub value: &'a str,
    pub binary: bool,
    pub stages: &'a [String],
}

pub fn add_version(
    state: &crate::state::State,
    scope: &Scope,
    name: &str,
    record: &mut SecretRecord,
    new: NewVersion<'_>,
    now: f64,
) -> Result<(), ApiError> {
    let NewVersion {
        id,
        value,
        binary,
        stages,
    } = new;
    let context = seal_context(scope, name, id);
    if let Some(v) = record.versions.iter().find(|v| v.id == id) {
        let same = v.binary == binary
            && state.sealer().open(&v.sealed, &context).as_deref() == Some(value.as_bytes());
        if same {
            return Ok(());
        }
        return Err(ApiError::new(
            ErrorCode::ResourceExistsException,
            "You can't modify an existing version, you can only create a new version.",
        ));
    }
    record.versions.push(SecretVersion {
        id: id.to_string(),
        created: now,
        stages: vec![],
        sealed: state.sealer().seal(value.as_bytes(), &context),
        binary,
    });
    relabel(record, id, stages);
    record.last_changed = now;
    Ok(())
}

/// Gives `labels` to version `id`, taking them from the others.
fn relabel(record: &mut SecretRecord, id: &str, labels: &[String]) {
    let mut stages: Vec<(String, Vec<String>)> = record
        .versions
        .iter()
        .map(|v| (v.id.clone(), v.stages.clone()))
        .collect();
    rules::move_stages(&mut stages, id, labels);
    for (v, (_, s)) in record.versions.iter_mut().zip(stages) {
        v.stages = s;
    }
    let unlabelled = record
        .versions
        .iter()
        .filter(|v| v.stages.is_empty())
        .count();
    let mut drop = record
        .versions
        .len()
        .saturating_sub(MAX_VERSIONS)
        .min(unlabelled);
    record.versions.retain(|v| {
        let gone = drop > 0 && v.stages.is_empty();
        if gone {
            drop -= 1;
        }
        !gone
    });
}

/// The version a request selects: by id, by label, else AWSCURRENT.
fn selected<'r>(
    record: &'r SecretRecord,
    version_id: Option<&str>,
    stage: Option<&str>,
) -> Result<&'r SecretVersion, ApiError> {
    let hit = match (version_id, stage) {
        (Some(id), stage) => record
            .versions
            .iter()
            .find(|v| v.id == id && stage.is_none_or(|s| v.stages.iter().any(|l| l == s))),
        (None, stage) => {
            let label = stage.unwrap_or(AWSCURRENT);
            record
                .versions
                .iter()
                .find(|v| v.stages.iter().any(|l| l == label))
        }
    };
    hit.ok_or_else(|| {
        let what = match (version_id, stage) {
            (Some(id), _) => format!("VersionId: {id}"),
            (None, s) => format!("staging label: {}", s.unwrap_or(AWSCURRENT)),
        };
        ApiError::new(
            ErrorCode::ResourceNotFoundException,
            format!("Secrets Manager can't find the specified secret value for {what}"),
        )
    })
}

pub async fn get(
    ctx: &Ctx<'_>,
    req: GetSecretValueRequest,
    guard: &mut Guard<'_>,
) -> Result<GetSecretValueResponse, ApiError> {
    let id = required(&req.secret_id, "SecretId")?;
    let (name, record) = authorized(ctx, guard, "secretsmanager:GetSecretValue", id)?;
    if record.deletion_date.is_some() {
        return Err(marked_for_deletion());
    }
    let v = selected(
        &record,
        req.version_id.as_deref(),
        req.version_stage.as_deref(),
    )?;
    let value = ctx
        .state
        .sealer()
        .open(&v.sealed, &seal_context(&ctx.scope, &name, &v.id))
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::DecryptionFailure,
                "Secrets Manager can't decrypt the protected secret text using the provided KMS key.",
            )
        })?;
    let (secret_string, secret_binary) = if v.binary {
        (None, Some(value))
    } else {
        (Some(value), None)
    };
    Ok(GetSecretValueResponse {
        arn: Some(rules::secret_arn(&ctx.scope, &name, &record.suffix)),
        name: Some(name),
        version_id: Some(v.id.clone()),
        secret_string,
        secret_binary,
        version_stages: Some(v.stages.clone()),
        created_date: Some(v.created),
    })
}

pub async fn put(
    ctx: &Ctx<'_>,
    req: PutSecretValueRequest,
    guard: &mut Guard<'_>,
) -> Result<PutSecretValueResponse, ApiError> {
    let id = required(&req.secret_id, "SecretId")?;
    let value = given(&req.secret_string, &req.secret_binary)?.ok_or_else(|| {
        ApiError::invalid_parameter("You must provide either SecretString or SecretBinary.")
    })?;
    let (name, record) = authorized(ctx, guard, "secretsmanager:PutSecretValue", id)?;
    if record.deletion_date.is_some() {
        return Err(marked_for_deletion());
    }
    let version = req
        .client_request_token
        .clone()
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let stages = req
        .version_stages
        .clone()
        .unwrap_or_else(|| vec![AWSCURRENT.to_string()]);
    let now = ctx.now;
    let labels = update_record(ctx, &name, &record.suffix, |r| {
        add_version(
            ctx.state,
            &ctx.scope,
            &name,
            r,
            NewVersion {
                id: &version,
                value: &value.0,
                binary: value.1,
                stages: &stages,
            },
            now,
        )?;
        Ok(r.versions
            .iter()
            .find(|v| v.id == version)
            .map(|v| v.stages.clone())
            .unwrap_or_default())
    })
    .await?;
    Ok(PutSecretValueResponse {
        arn: Some(rules::secret_arn(&ctx.scope, &name, &record.suffix)),
        name: Some(name),
        version_id: Some(version),
        version_stages: Some(labels),
    })
}

pub async fn list_version_ids(
    ctx: &Ctx<'_>,
    req: ListSecretVersionIdsRequest,
    guard: &mut Guard<'_>,
) -> Result<ListSecretVersionIdsResponse, ApiError> {
    let id = required(&req.secret_id, "SecretId")?;
    let (name, record) = authorized(ctx, guard, "secretsmanager:ListSecretVersionIds", id)?;
    let all = req.include_deprecated.unwrap_or(false);
    // Pages go by version id.
    let mut versions: Vec<SecretVersionsListEntry> = record
        .versions
        .iter()
        .filter(|v| all || !v.stages.is_empty())
        .map(|v| SecretVersionsListEntry {
            version_id: Some(v.id.clone()),
            version_stages: Some(v.stages.clone()),
            created_date: Some(v.created),
            ..Default::default()
        })
        .collect();
    versions.sort_by(|a, b| a.version_id.cmp(&b.version_id));
    let (versions, next_token) = berth_api::pagination::page(
        versions,
        |v| v.version_id.clone().unwrap_or_default(),
        req.max_results,
        req.next_token.as_deref(),
        berth_api::pagination::PageLimits::new(100, 100),
    )?;
    Ok(ListSecretVersionIdsResponse {
        arn: Some(rules::secret_arn(&ctx.scope, &name, &record.suffix)),
        name: Some(name),
        versions: Some(versions),
        next_token,
    })
}

pub async fn update_stage(
    ctx: &Ctx<'_>,
    req: UpdateSecretVersionStageRequest,
    guard: &mut Guard<'_>,
) -> Result<UpdateSecretVersionStageResponse, ApiError> {
    let id = required(&req.secret_id, "SecretId")?;
    let stage = required(&req.version_stage, "VersionStage")?.to_string();
    let (name, record) = authorized(ctx, guard, "secretsmanager:UpdateSecretVersionStage", id)?;
    update_record(ctx, &name, &record.suffix, |r| {
        let holder = r
            .versions
            .iter()
            .find(|v| v.stages.contains(&stage))
            .map(|v| v.id.clone());
        if holder != req.remove_from_version_id && holder.is_some() && req.move_to_version_id.is_some() {
            return Err(ApiError::invalid_parameter(format!(
                "The staging label {stage} is currently attached to version {}, so you must explicitly reference that version in RemoveFromVersionId.",
                holder.unwrap_or_default()
            )));
        }
        match &req.move_to_version_id {
            Some(to) => {
                if !r.versions.iter().any(|v| &v.id == to) {
                    return Err(ApiError::new(
                        ErrorCode::ResourceNotFoundException,
                        format!("Secrets Manager can't find the specified secret value for VersionId: {to}"),
                    ));
                }
                relabel(r, to, std::slice::from_ref(&stage));
            }
            None => {
                if stage == AWSCURRENT {
                    return Err(ApiError::invalid_parameter(
                        "You can only move staging label AWSCURRENT to a different secret version. It can't be completely removed.",
                    ));
                }
                for v in &mut r.versions {
                    v.stages.retain(|l| l != &stage);
                }
            }
        }
        Ok(())
    })
    .await?;
    Ok(UpdateSecretVersionStageResponse {
        arn: Some(rules::secret_arn(&ctx.scope, &name, &record.suffix)),
        name: Some(name),
    })
}
