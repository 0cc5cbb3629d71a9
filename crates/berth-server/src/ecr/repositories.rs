//! Repositories: CreateRepository, DescribeRepositories, DeleteRepository,
//! their tag mutability and scanning settings, their resource tags, and
//! DescribeRegistry.
use super::{registry_scope, repository_not_found, repository_scope, required, Ctx, Guard};
use crate::authz::Resource;
use crate::state::ecr_records::RepositoryRecord;
use crate::state::index::{guarded_delete, guarded_put, Index, Versioned};
use crate::state::StoreKey;
use berth_api::ecr::*;
use berth_api::pagination::{page, PageLimits};
use berth_api::{ApiError, ErrorCode};
use berth_model::{ecr, Scope};
use berth_store::Txn;

const LIST_LIMITS: PageLimits = PageLimits::new(100, 1000);
/// ECR keeps AES256 unless KMS is asked for, and then AWS's own key unless one is named.
const AES256: &str = "AES256";

/// The repository as an IAM resource: its ARN and its tags.
pub fn resource(scope: &Scope, name: &str, tags: &[Tag]) -> Resource {
    tags.iter().fold(
        Resource::arn(ecr::repository_arn(scope, name)),
        |r, t| match (&t.key, &t.value) {
            (Some(k), v) => r.with(
                format!("aws:ResourceTag/{k}"),
                v.clone().unwrap_or_default(),
            ),
            _ => r,
        },
    )
}

/// The repository named, from the view, or ECR's not-found error.
pub fn find<'i>(
    index: &'i Index,
    scope: &Scope,
    name: &str,
) -> Result<&'i Versioned<RepositoryRecord>, ApiError> {
    index
        .ecr_repositories
        .get(&(scope.clone(), name.to_string()))
        .ok_or_else(|| repository_not_found(scope, name))
}

/// The repository's tags (none when it does not exist), for its IAM resource.
pub fn tags_of(index: &Index, scope: &Scope, name: &str) -> Vec<Tag> {
    find(index, scope, name)
        .map(|r| r.value.tags.clone())
        .unwrap_or_default()
}

/// The repository's wire shape.
pub fn view(
    state: &crate::state::State,
    scope: &Scope,
    name: &str,
    r: &RepositoryRecord,
) -> Repository {
    Repository {
        repository_arn: Some(ecr::repository_arn(scope, name)),
        registry_id: Some(scope.account.clone()),
        repository_name: Some(name.to_string()),
        repository_uri: Some(ecr::repository_uri(state.registry_host(), scope, name)),
        created_at: Some(r.created_at),
        image_tag_mutability: Some(r.image_tag_mutability.clone()),
        image_scanning_configuration: Some(ImageScanningConfiguration {
            scan_on_push: Some(r.scan_on_push),
        }),
        encryption_configuration: Some(r.encryption.clone()),
        ..Default::default()
    }
}

fn encryption(
    scope: &Scope,
    given: Option<EncryptionConfiguration>,
) -> Result<EncryptionConfiguration, ApiError> {
    let Some(e) = given else {
        return Ok(EncryptionConfiguration {
            encryption_type: Some(AES256.into()),
            kms_key: None,
        });
    };
    match e.encryption_type.as_deref() {
        Some(AES256) if e.kms_key.is_some() => Err(ApiError::invalid_parameter(
            "Invalid parameter at 'encryptionConfiguration' failed to satisfy constraint: 'kmsKey can only be specified when encryptionType is KMS'",
        )),
        Some(AES256) => Ok(e),
        _ => Ok(EncryptionConfiguration {
            kms_key: e.kms_key.or_else(|| {
                Some(format!(
                    "arn:aws:kms:{}:{}:alias/aws/ecr",
                    scope.region, scope.account
                ))
            }),
            ..e
        }),
    }
}

pub async fn create(
    ctx: &Ctx<'_>,
    req: CreateRepositoryRequest,
    guard: &mut Guard<'_>,
) -> Result<CreateRepositoryResponse, ApiError> {
    let name = required(&req.repository_name, "repositoryName")?.to_string();
    ecr::check_repository_name(&name)?;
    let tags = req.tags.unwrap_or_default();
    ecr::check_tags(&tags)?;
    let tags = ecr::merge_tags(&[], &tags)?;
    let scope = registry_scope(ctx, req.registry_id.as_deref());
    guard("ecr:CreateRepository", vec![resource(&scope, &name, &tags)])?;
    let scope = repository_scope(ctx, req.registry_id.as_deref(), &name)?;
    let record = RepositoryRecord {
        created_at: ctx.now,
        image_tag_mutability: req
            .image_tag_mutability
            .unwrap_or_else(|| ecr::DEFAULT_TAG_MUTABILITY.into()),
        scan_on_push: req
            .image_scanning_configuration
            .and_then(|c| c.scan_on_push)
            .unwrap_or(false),
        encryption: encryption(&scope, req.encryption_configuration)?,
        tags,
        policy: None,
        lifecycle_policy: None,
        lifecycle_policy_updated_at: None,
    };
    let key = StoreKey::repository(&scope, &name);
    ctx.state
        .mutate(&key, |index| {
            if find(index, &scope, &name).is_ok() {
                return Err(ApiError::new(
                    ErrorCode::RepositoryAlreadyExistsException,
                    format!(
                        "The repository with name '{name}' already exists in the registry with id '{}'",
                        scope.account
                    ),
                ));
            }
            Ok((guarded_put(Txn::default(), index, &key, &record), ()))
        })
        .await?;
    Ok(CreateRepositoryResponse {
        repository: Some(view(ctx.state, &scope, &name, &record)),
    })
}

pub async fn describe(
    ctx: &Ctx<'_>,
    req: DescribeRepositoriesRequest,
    guard: &mut Guard<'_>,
) -> Result<DescribeRepositoriesResponse, ApiError> {
    let scope = registry_scope(ctx, req.registry_id.as_deref());
    let names = req.repository_names.unwrap_or_default();
    if !names.is_empty() && (req.max_results.is_some() || req.next_token.is_some()) {
        return Err(ApiError::invalid_parameter(
            "Invalid parameter at 'maxResults' failed to satisfy constraint: 'maxResults and nextToken cannot be used with repositoryNames'",
        ));
    }
    let index = ctx.state.read();
    if names.is_empty() {
        guard(
            "ecr:DescribeRepositories",
            vec![Resource::arn(ecr::repository_arn(&scope, "*"))],
        )?;
        let mine = scope == ctx.scope;
        let all = index
            .ecr_repositories
            .range((scope.clone(), String::new())..)
            .take_while(|((s, _), _)| *s == scope && mine);
        let (found, next) = page(
            all,
            |((_, n), _)| n.clone(),
            req.max_results,
            req.next_token.as_deref(),
            LIST_LIMITS,
        )?;
        return Ok(DescribeRepositoriesResponse {
            repositories: Some(
                found
                    .into_iter()
                    .map(|((_, n), r)| view(ctx.state, &scope, n, &r.value))
                    .collect(),
            ),
            next_token: next,
        });
    }
    let mut out = Vec::with_capacity(names.len());
    for name in &names {
        let scope = repository_scope(ctx, req.registry_id.as_deref(), name)?;
        let r = find(&index, &scope, name)?;
        guard(
            "ecr:DescribeRepositories",
            vec![resource(&scope, name, &r.value.tags)],
        )?;
        out.push(view(ctx.state, &scope, name, &r.value));
    }
    Ok(DescribeRepositoriesResponse {
        repositories: Some(out),
        next_token: None,
    })
}

pub async fn delete(
    ctx: &Ctx<'_>,
    req: DeleteRepositoryRequest,
    guard: &mut Guard<'_>,
) -> Result<DeleteRepositoryResponse, ApiError> {
    let name = required(&req.repository_name, "repositoryName")?.to_string();
    let scope = repository_scope(ctx, req.registry_id.as_deref(), &name)?;
    let tags = tags_of(&ctx.state.read(), &scope, &name);
    guard("ecr:DeleteRepository", vec![resource(&scope, &name, &tags)])?;
    let force = req.force.unwrap_or(false);
    let key = StoreKey::repository(&scope, &name);
    let record = ctx
        .state
        .mutate(&key, |index| {
            let record = find(index, &scope, &name)?.value.clone();
            let images = super::images::in_repository(index, &scope, &name);
            if !force && !images.is_empty() {
                return Err(ApiError::new(
                    ErrorCode::RepositoryNotEmptyException,
                    format!(
                        "The repository with name '{name}' in registry with id '{}' cannot be deleted because it still contains images",
                        scope.account
                    ),
                ));
            }
            let digests: Vec<String> = images.into_iter().map(|(d, _)| d.to_string()).collect();
            let txn = super::images::delete_images(index, &scope, &name, &digests);
            let txn = guarded_delete(txn, index, &key);
            Ok((txn, record))
        })
        .await?;
    Ok(DeleteRepositoryResponse {
        repository: Some(view(ctx.state, &scope, &name, &record)),
    })
}

/// Authorizes `action` on a repository of the caller's own registry, which must exist.
pub fn authorized(
    ctx: &Ctx<'_>,
    registry_id: Option<&str>,
    name: &str,
    action: &'static str,
    guard: &mut Guard<'_>,
) -> Result<Scope, ApiError> {
    let scope = repository_scope(ctx, registry_id, name)?;
    let tags = tags_of(&ctx.state.read(), &scope, name);
    guard(action, vec![resource(&scope, name, &tags)])?;
    find(&ctx.state.read(), &scope, name)?;
    Ok(scope)
}

/// Applies `change` to the named repository's record; answers the record after.
async fn update<F>(
    ctx: &Ctx<'_>,
    registry_id: Option<&str>,
    name: &str,
    action: &'static str,
    guard: &mut Guard<'_>,
    change: F,
) -> Result<(Scope, RepositoryRecord), ApiError>
where
    F: Fn(&mut RepositoryRecord) -> Result<(), ApiError>,
{
    let scope = authorized(ctx, registry_id, name, action, guard)?;
    let key = StoreKey::repository(&scope, name);
    let record = ctx
        .state
        .mutate(&key, |index| {
            let mut record = find(index, &scope, name)?.value.clone();
            change(&mut record)?;
            Ok((guarded_put(Txn::default(), index, &key, &record), record))
        })
        .await?;
    Ok((scope, record))
}

pub async fn put_tag_mutability(
    ctx: &Ctx<'_>,
    req: PutImageTagMutabilityRequest,
    guard: &mut Guard<'_>,
) -> Result<PutImageTagMutabilityResponse, ApiError> {
    let name = required(&req.repository_name, "repositoryName")?;
    let mutability = required(&req.image_tag_mutability, "imageTagMutability")?;
    let (scope, record) = update(
        ctx,
        req.registry_id.as_deref(),
        name,
        "ecr:PutImageTagMutability",
        guard,
        |r| {
            r.image_tag_mutability = mutability.to_string();
            Ok(())
        },
    )
    .await?;
    Ok(PutImageTagMutabilityResponse {
        registry_id: Some(scope.account),
        repository_name: Some(name.to_string()),
        image_tag_mutability: Some(record.image_tag_mutability),
        image_tag_mutability_exclusion_filters: None,
    })
}

pub async fn put_scanning_configuration(
    ctx: &Ctx<'_>,
    req: PutImageScanningConfigurationRequest,
    guard: &mut Guard<'_>,
) -> Result<PutImageScanningConfigurationResponse, ApiError> {
    let name = required(&req.repository_name, "repositoryName")?;
    let scan = req
        .image_scanning_configuration
        .and_then(|c| c.scan_on_push)
        .unwrap_or(false);
    let (scope, record) = update(
        ctx,
        req.registry_id.as_deref(),
        name,
        "ecr:PutImageScanningConfiguration",
        guard,
        |r| {
            r.scan_on_push = scan;
            Ok(())
        },
    )
    .await?;
    Ok(PutImageScanningConfigurationResponse {
        registry_id: Some(scope.account),
        repository_name: Some(name.to_string()),
        image_scanning_configuration: Some(ImageScanningConfiguration {
            scan_on_push: Some(record.scan_on_push),
        }),
    })
}

/// The repository a tagging call's `resourceArn` names, in the caller's region.
fn tagged(ctx: &Ctx<'_>, arn: &str) -> Result<(Option<String>, String), ApiError> {
    let invalid = || {
        ApiError::invalid_parameter(format!(
            "Invalid parameter at 'resourceArn' failed to satisfy constraint: 'Invalid ARN: {arn}'"
        ))
    };
    let rest = arn.strip_prefix("arn:aws:ecr:").ok_or_else(invalid)?;
    let mut p = rest.splitn(3, ':');
    let (region, account, resource) = (
        p.next().ok_or_else(invalid)?,
        p.next().ok_or_else(invalid)?,
        p.next().ok_or_else(invalid)?,
    );
    let name = resource.strip_prefix("repository/").ok_or_else(invalid)?;
    if region != ctx.scope.region {
        return Err(invalid());
    }
    Ok((Some(account.to_string()), name.to_string()))
}

pub async fn tag(
    ctx: &Ctx<'_>,
    req: TagResourceRequest,
    guard: &mut Guard<'_>,
) -> Result<TagResourceResponse, ApiError> {
    let (registry, name) = tagged(ctx, required(&req.resource_arn, "resourceArn")?)?;
    let new = req.tags.unwrap_or_default();
    ecr::check_tags(&new)?;
    update(
        ctx,
        registry.as_deref(),
        &name,
        "ecr:TagResource",
        guard,
        |r| {
            r.tags = ecr::merge_tags(&r.tags, &new)?;
            Ok(())
        },
    )
    .await?;
    Ok(TagResourceResponse {})
}

pub async fn untag(
    ctx: &Ctx<'_>,
    req: UntagResourceRequest,
    guard: &mut Guard<'_>,
) -> Result<UntagResourceResponse, ApiError> {
    let (registry, name) = tagged(ctx, required(&req.resource_arn, "resourceArn")?)?;
    let keys = req.tag_keys.unwrap_or_default();
    update(
        ctx,
        registry.as_deref(),
        &name,
        "ecr:UntagResource",
        guard,
        |r| {
            r.tags
                .retain(|t| !keys.iter().any(|k| t.key.as_deref() == Some(k)));
            Ok(())
        },
    )
    .await?;
    Ok(UntagResourceResponse {})
}

pub async fn list_tags(
    ctx: &Ctx<'_>,
    req: ListTagsForResourceRequest,
    guard: &mut Guard<'_>,
) -> Result<ListTagsForResourceResponse, ApiError> {
    let (registry, name) = tagged(ctx, required(&req.resource_arn, "resourceArn")?)?;
    let scope = repository_scope(ctx, registry.as_deref(), &name)?;
    let tags = tags_of(&ctx.state.read(), &scope, &name);
    guard(
        "ecr:ListTagsForResource",
        vec![resource(&scope, &name, &tags)],
    )?;
    let tags = find(&ctx.state.read(), &scope, &name)?.value.tags.clone();
    Ok(ListTagsForResourceResponse { tags: Some(tags) })
}

pub async fn describe_registry(
    ctx: &Ctx<'_>,
    _req: DescribeRegistryRequest,
    guard: &mut Guard<'_>,
) -> Result<DescribeRegistryResponse, ApiError> {
    guard("ecr:DescribeRegistry", vec![Resource::any()])?;
    Ok(DescribeRegistryResponse {
        registry_id: Some(ctx.scope.account.clone()),
        replication_configuration: Some(ReplicationConfiguration {
            rules: Some(vec![]),
        }),
    })
}
