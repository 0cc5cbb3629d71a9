//! Writing parameters: PutParameter (versions, overwrite, allowed patterns,
//! tiers), DeleteParameter(s), LabelParameterVersion, UnlabelParameterVersion.
use super::{not_found, required, resolve, seal_context, Ctx, Empty, Guard, SECURE_STRING};
use crate::authz::Resource;
use crate::state::index::{guarded_delete, guarded_put};
use crate::state::secrets_records::{ParameterRecord, ParameterVersion};
use crate::state::StoreKey;
use berth_api::ssm::*;
use berth_api::{ApiError, ErrorCode};
use berth_model::secrets as rules;
use berth_store::Txn;

/// Versions a parameter keeps.
const MAX_VERSIONS: usize = 100;
/// Labels one version may carry.
const MAX_LABELS: usize = 10;
/// The Standard tier's longest value.
const STANDARD_MAX_CHARS: usize = 4096;

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::ValidationException, message)
}

fn check_name(name: &str) -> Result<(), ApiError> {
    match rules::parameter_name_problem(name) {
        None => Ok(()),
        Some(p) => Err(invalid(p)),
    }
}

fn check_value(value: &str, pattern: Option<&str>, tier: &str) -> Result<(), ApiError> {
    if tier == "Standard" && value.chars().count() > STANDARD_MAX_CHARS {
        return Err(invalid("Standard tier parameters support a maximum parameter value of 4096 characters. To create a larger parameter value, upgrade the parameter to use the advanced-parameter tier. For more information, see https://docs.aws.amazon.com/systems-manager/latest/userguide/parameter-store-advanced-parameters.html"));
    }
    let Some(pattern) = pattern else {
        return Ok(());
    };
    let re = regex::Regex::new(&format!("^(?:{pattern})$")).map_err(|e| {
        ApiError::new(
            ErrorCode::ValidationException,
            format!("Parameter allowedPattern is not a valid regular expression: {e}"),
        )
    })?;
    if re.is_match(value) {
        return Ok(());
    }
    Err(ApiError::new(
        ErrorCode::ParameterPatternMismatchException,
        format!("Parameter value, cannot be validated against allowedPattern: {pattern}"),
    ))
}

/// The version after `record`'s newest, and the versions it keeps: the oldest
/// goes once there are MAX_VERSIONS, unless a label holds it.
fn make_room(record: &mut ParameterRecord, name: &str) -> Result<i64, ApiError> {
    let next = record.latest().map_or(1, |p| p.version + 1);
    if record.versions.len() >= MAX_VERSIONS {
        if record
            .versions
            .first()
            .is_some_and(|p| !p.labels.is_empty())
        {
            return Err(ApiError::new(
                ErrorCode::ParameterMaxVersionLimitExceeded,
                format!("You attempted to create a new version of {name} by calling the PutParameter API with the overwrite flag. Version {}, the oldest version, can't be deleted because it has a label associated with it. Move the label to another version of the parameter, and try again.", record.versions[0].version),
            ));
        }
        record.versions.remove(0);
    }
    Ok(next)
}

pub async fn put(
    ctx: &Ctx<'_>,
    req: PutParameterRequest,
    guard: &mut Guard<'_>,
) -> Result<PutParameterResult, ApiError> {
    let name = required(&req.name, "name")?.to_string();
    let value = required(&req.value, "value")?.to_string();
    check_name(&name)?;
    let overwrite = req.overwrite.unwrap_or(false);
    if overwrite && req.tags.as_ref().is_some_and(|t| !t.is_empty()) {
        return Err(invalid("Invalid request: tags and overwrite can't be used together. To create a parameter with tags, please remove overwrite flag. To update tags for an existing parameter, please use AddTagsToResource or RemoveTagsFromResource."));
    }
    if req
        .data_type
        .as_deref()
        .is_some_and(|d| d != "text" && d != "aws:ec2:image")
    {
        return Err(invalid(format!(
            "The following data type is not supported: {} (Data type names are all lowercase.)",
            req.data_type.as_deref().unwrap_or_default()
        )));
    }
    guard(
        "ssm:PutParameter",
        vec![Resource::arn(rules::parameter_arn(&ctx.scope, &name))],
    )?;
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
    let key = StoreKey::parameter(&ctx.scope, &name);
    let user = ctx.caller.arn();
    ctx.state
        .mutate(&key, |index| {
            let existing = index.parameters.get(&(ctx.scope.clone(), name.clone()));
            if existing.is_some() && !overwrite {
                return Err(ApiError::new(
                    ErrorCode::ParameterAlreadyExists,
                    "The parameter already exists. To overwrite this value, set the overwrite option in the request to true.",
                ));
            }
            let mut record = existing.map(|r| r.value.clone()).unwrap_or(ParameterRecord {
                tags: tags.clone(),
                versions: vec![],
            });
            let before = record.latest().cloned();
            let r#type = match (req.r#type.clone(), &before) {
                (Some(t), _) => t,
                (None, Some(b)) => b.r#type.clone(),
                (None, None) => {
                    return Err(invalid("A parameter type is required when you create a parameter."))
                }
            };
            let tier = match req.tier.as_deref() {
                None | Some("Intelligent-Tiering") => before
                    .as_ref()
                    .map_or("Standard".to_string(), |b| b.tier.clone()),
                Some(t) => t.to_string(),
            };
            if before.as_ref().is_some_and(|b| b.tier == "Advanced") && tier == "Standard" {
                return Err(invalid("This parameter uses the advanced-parameter tier. You can't downgrade a parameter from the advanced-parameter tier to the standard-parameter tier. If necessary, you can delete the advanced parameter and recreate it as a standard parameter."));
            }
            let allowed_pattern = req
                .allowed_pattern
                .clone()
                .or_else(|| before.as_ref().and_then(|b| b.allowed_pattern.clone()));
            check_value(&value, allowed_pattern.as_deref(), &tier)?;
            let version = make_room(&mut record, &name)?;
            let stored = if r#type == SECURE_STRING {
                let context = seal_context(&ctx.scope, &name, version);
                ctx.state.sealer().seal(value.as_bytes(), &context)
            } else {
                value.clone()
            };
            let key_id = (r#type == SECURE_STRING).then(|| {
                req.key_id
                    .clone()
                    .or_else(|| before.as_ref().and_then(|b| b.key_id.clone()))
                    .unwrap_or_else(|| "alias/aws/ssm".to_string())
            });
            record.versions.push(ParameterVersion {
                version,
                r#type,
                value: stored,
                modified: ctx.now,
                user: user.clone(),
                description: req
                    .description
                    .clone()
                    .or_else(|| before.as_ref().and_then(|b| b.description.clone())),
                allowed_pattern,
                key_id,
                tier: tier.clone(),
                data_type: req.data_type.clone().unwrap_or_else(|| "text".into()),
                labels: vec![],
            });
            let txn = guarded_put(Txn::default(), index, &key, &record);
            Ok((txn, PutParameterResult {
                version: Some(version),
                tier: Some(tier),
            }))
        })
        .await
}

/// Deletes parameter `name` if it exists; answers whether it did.
async fn delete_one(ctx: &Ctx<'_>, id: &str) -> Result<bool, ApiError> {
    let Some(name) = resolve(&ctx.state.read(), &ctx.scope, id).map(|(n, _)| n.to_string()) else {
        return Ok(false);
    };
    let key = StoreKey::parameter(&ctx.scope, &name);
    ctx.state
        .mutate(&key, |index| {
            let there = index
                .parameters
                .contains_key(&(ctx.scope.clone(), name.clone()));
            let txn = if there {
                guarded_delete(Txn::default(), index, &key)
            } else {
                Txn::default()
            };
            Ok((txn, there))
        })
        .await
}

pub async fn delete(
    ctx: &Ctx<'_>,
    req: DeleteParameterRequest,
    guard: &mut Guard<'_>,
) -> Result<Empty, ApiError> {
    let name = required(&req.name, "name")?;
    guard(
        "ssm:DeleteParameter",
        vec![Resource::arn(arn_of(ctx, name))],
    )?;
    if delete_one(ctx, name).await? {
        Ok(Empty {})
    } else {
        Err(not_found(name))
    }
}

fn arn_of(ctx: &Ctx<'_>, id: &str) -> String {
    if id.starts_with("arn:") {
        id.to_string()
    } else {
        rules::parameter_arn(&ctx.scope, id)
    }
}

pub async fn delete_many(
    ctx: &Ctx<'_>,
    req: DeleteParametersRequest,
    guard: &mut Guard<'_>,
) -> Result<DeleteParametersResult, ApiError> {
    let names = req.names.clone().unwrap_or_default();
    let resources = names
        .iter()
        .map(|n| Resource::arn(arn_of(ctx, n)))
        .collect();
    guard("ssm:DeleteParameters", resources)?;
    let (mut deleted, mut invalid) = (vec![], vec![]);
    for n in names {
        if delete_one(ctx, &n).await? {
            deleted.push(n);
        } else {
            invalid.push(n);
        }
    }
    Ok(DeleteParametersResult {
        deleted_parameters: Some(deleted),
        invalid_parameters: Some(invalid),
    })
}

/// Labels may not look like versions or start with aws/ssm; up to 100 of `A-Za-z0-9_.-`.
fn label_ok(l: &str) -> bool {
    let lower = l.to_ascii_lowercase();
    !l.is_empty()
        && l.len() <= 100
        && !l.starts_with(|c: char| c.is_ascii_digit())
        && !lower.starts_with("aws")
        && !lower.starts_with("ssm")
        && l.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
}

/// Changes the labels of a parameter's version (the latest when none is
/// named); `change` gets the record and the version's index.
async fn relabel<T>(
    ctx: &Ctx<'_>,
    id: &str,
    version: Option<i64>,
    mut change: impl FnMut(&mut ParameterRecord, usize) -> Result<T, ApiError>,
) -> Result<(i64, T), ApiError> {
    let name = resolve(&ctx.state.read(), &ctx.scope, id)
        .map(|(n, _)| n.to_string())
        .ok_or_else(|| not_found(id))?;
    let key = StoreKey::parameter(&ctx.scope, &name);
    ctx.state
        .mutate(&key, |index| {
            let mut record = index
                .parameters
                .get(&(ctx.scope.clone(), name.clone()))
                .map(|r| r.value.clone())
                .ok_or_else(|| not_found(&name))?;
            let want = version.or(record.latest().map(|p| p.version)).unwrap_or(0);
            let at = record
                .versions
                .iter()
                .position(|p| p.version == want)
                .ok_or_else(|| {
                    ApiError::new(
                        ErrorCode::ParameterVersionNotFound,
                        format!("Systems Manager could not find version {want} of {name}. Verify the version and try again."),
                    )
                })?;
            let out = change(&mut record, at)?;
            Ok((guarded_put(Txn::default(), index, &key, &record), (want, out)))
        })
        .await
}

pub async fn label(
    ctx: &Ctx<'_>,
    req: LabelParameterVersionRequest,
    guard: &mut Guard<'_>,
) -> Result<LabelParameterVersionResult, ApiError> {
    let name = required(&req.name, "name")?;
    guard(
        "ssm:LabelParameterVersion",
        vec![Resource::arn(arn_of(ctx, name))],
    )?;
    let labels = req.labels.clone().unwrap_or_default();
    let (version, invalid) = relabel(ctx, name, req.parameter_version, |record, at| {
        let (good, bad): (Vec<String>, Vec<String>) =
            labels.iter().cloned().partition(|l| label_ok(l));
        for p in record.versions.iter_mut() {
            p.labels.retain(|l| !good.contains(l));
        }
        let target = &mut record.versions[at];
        for l in &good {
            target.labels.push(l.clone());
        }
        if target.labels.len() > MAX_LABELS {
            return Err(ApiError::new(
                ErrorCode::ParameterVersionLabelLimitExceeded,
                format!("A parameter version can have maximum {MAX_LABELS} labels. Move one or more labels to another version and try again."),
            ));
        }
        Ok(bad)
    })
    .await?;
    Ok(LabelParameterVersionResult {
        invalid_labels: Some(invalid),
        parameter_version: Some(version),
    })
}

pub async fn unlabel(
    ctx: &Ctx<'_>,
    req: UnlabelParameterVersionRequest,
    guard: &mut Guard<'_>,
) -> Result<UnlabelParameterVersionResult, ApiError> {
    let name = required(&req.name, "name")?;
    guard(
        "ssm:UnlabelParameterVersion",
        vec![Resource::arn(arn_of(ctx, name))],
    )?;
    let labels = req.labels.clone().unwrap_or_default();
    let (_, (removed, invalid)) = relabel(ctx, name, req.parameter_version, |record, at| {
        let target = &mut record.versions[at];
        let (removed, invalid): (Vec<String>, Vec<String>) = labels
            .iter()
            .cloned()
            .partition(|l| target.labels.contains(l));
        target.labels.retain(|l| !removed.contains(l));
        Ok((removed, invalid))
    })
    .await?;
    Ok(UnlabelParameterVersionResult {
        removed_labels: Some(removed),
        invalid_labels: Some(invalid),
    })
}
