//! A repository's images as ECR's API shows them: ListImages, DescribeImages,
//! BatchGetImage, BatchDeleteImage. Deleting an image's record is what
//! deletes it: the registry serves only what these records name, and its
//! collector removes the rest from storage.
use super::repositories::{find, resource, tags_of};
use super::{required, Ctx, Guard};
use crate::state::ecr_records::ImageRecord;
use crate::state::index::{guarded_delete, Index, Versioned};
use crate::state::StoreKey;
use berth_api::ecr::*;
use berth_api::pagination::{page, PageLimits};
use berth_api::{ApiError, ErrorCode};
use berth_model::Scope;
use berth_store::Txn;
use std::collections::BTreeSet;

const LIST_LIMITS: PageLimits = PageLimits::new(100, 1000);
/// BatchGetImage and BatchDeleteImage take at most this many image ids.
const MAX_BATCH: usize = 100;

/// Every image of a repository, by digest, with its tags.
pub fn in_repository<'i>(
    index: &'i Index,
    scope: &Scope,
    name: &str,
) -> Vec<(&'i str, Vec<&'i str>)> {
    let lo = (scope.clone(), name.to_string(), String::new());
    index
        .ecr_images
        .range(lo..)
        .take_while(|((s, n, _), _)| s == scope && n == name)
        .map(|((_, _, d), _)| {
            let tags = index
                .ecr_image_tags
                .get(&(scope.clone(), name.to_string(), d.clone()))
                .map(|t| t.iter().map(String::as_str).collect())
                .unwrap_or_default();
            (d.as_str(), tags)
        })
        .collect()
}

/// The digest an image id names, if the repository holds it (a tag and a
/// digest together must agree).
pub fn resolve(
    index: &Index,
    scope: &Scope,
    name: &str,
    id: &ImageIdentifier,
) -> Result<String, (&'static str, &'static str)> {
    const NOT_FOUND: (&str, &str) = ("ImageNotFound", "Requested image not found");
    let by_tag = match &id.image_tag {
        Some(t) => Some(
            index
                .ecr_tags
                .get(&(scope.clone(), name.to_string(), t.clone()))
                .map(|r| r.value.digest.clone())
                .ok_or(NOT_FOUND)?,
        ),
        None => None,
    };
    match (&id.image_digest, by_tag) {
        (None, None) => Err((
            "MissingDigestAndTag",
            "Invalid request parameters: both tag and digest cannot be null",
        )),
        (Some(d), Some(t)) if *d != t => Err((
            "ImageTagDoesNotMatchDigest",
            "Invalid request parameters: image tag digest and image digest do not match",
        )),
        (_, Some(t)) => Ok(t),
        (Some(d), None) => index
            .ecr_images
            .contains_key(&(scope.clone(), name.to_string(), d.clone()))
            .then(|| d.clone())
            .ok_or(NOT_FOUND),
    }
}

fn failure(id: &ImageIdentifier, (code, reason): (&str, &str)) -> ImageFailure {
    ImageFailure {
        image_id: Some(id.clone()),
        failure_code: Some(code.into()),
        failure_reason: Some(reason.into()),
    }
}

fn tag_status_allows(status: Option<&str>, tagged: bool) -> bool {
    match status {
        Some("TAGGED") => tagged,
        Some("UNTAGGED") => !tagged,
        _ => true,
    }
}

fn image_record<'i>(
    index: &'i Index,
    scope: &Scope,
    name: &str,
    digest: &str,
) -> Option<&'i Versioned<ImageRecord>> {
    index
        .ecr_images
        .get(&(scope.clone(), name.to_string(), digest.to_string()))
}

/// Authorizes `action` on the repository, which must exist.
fn authorized(
    ctx: &Ctx<'_>,
    registry_id: Option<&str>,
    name: &str,
    action: &'static str,
    guard: &mut Guard<'_>,
) -> Result<Scope, ApiError> {
    let scope = super::registry_scope(ctx, registry_id);
    let tags = tags_of(&ctx.state.read(), &scope, name);
    guard(action, vec![resource(&scope, name, &tags)])?;
    let scope = super::repository_policy::scope_for(ctx, registry_id, name, action)?;
    find(&ctx.state.read(), &scope, name)?;
    Ok(scope)
}

pub async fn list(
    ctx: &Ctx<'_>,
    req: ListImagesRequest,
    guard: &mut Guard<'_>,
) -> Result<ListImagesResponse, ApiError> {
    let name = required(&req.repository_name, "repositoryName")?;
    let scope = authorized(
        ctx,
        req.registry_id.as_deref(),
        name,
        "ecr:ListImages",
        guard,
    )?;
    let status = req.filter.as_ref().and_then(|f| f.tag_status.as_deref());
    let index = ctx.state.read();
    // One entry per tag, and one for an untagged image; keyed so pages resume in order.
    let ids = in_repository(&index, &scope, name)
        .into_iter()
        .flat_map(|(digest, tags)| {
            let entries: Vec<(String, ImageIdentifier)> = if tags.is_empty() {
                vec![(
                    format!("{digest}/"),
                    ImageIdentifier {
                        image_digest: Some(digest.into()),
                        image_tag: None,
                    },
                )]
            } else {
                tags.iter()
                    .map(|t| {
                        (
                            format!("{digest}/{t}"),
                            ImageIdentifier {
                                image_digest: Some(digest.into()),
                                image_tag: Some(t.to_string()),
                            },
                        )
                    })
                    .collect()
            };
            entries
        })
        .filter(|(_, id)| tag_status_allows(status, id.image_tag.is_some()));
    let (found, next) = page(
        ids,
        |(k, _)| k.clone(),
        req.max_results,
        req.next_token.as_deref(),
        LIST_LIMITS,
    )?;
    Ok(ListImagesResponse {
        image_ids: Some(found.into_iter().map(|(_, id)| id).collect()),
        next_token: next,
    })
}

fn detail(
    scope: &Scope,
    name: &str,
    digest: &str,
    tags: Vec<&str>,
    r: &ImageRecord,
) -> ImageDetail {
    ImageDetail {
        registry_id: Some(scope.account.clone()),
        repository_name: Some(name.to_string()),
        image_digest: Some(digest.to_string()),
        image_tags: (!tags.is_empty()).then(|| tags.into_iter().map(String::from).collect()),
        image_size_in_bytes: Some(r.size),
        image_pushed_at: Some(r.pushed_at),
        image_manifest_media_type: Some(r.media_type.clone()),
        artifact_media_type: r.artifact_media_type.clone(),
        ..Default::default()
    }
}

pub async fn describe(
    ctx: &Ctx<'_>,
    req: DescribeImagesRequest,
    guard: &mut Guard<'_>,
) -> Result<DescribeImagesResponse, ApiError> {
    let name = required(&req.repository_name, "repositoryName")?;
    let scope = authorized(
        ctx,
        req.registry_id.as_deref(),
        name,
        "ecr:DescribeImages",
        guard,
    )?;
    let index = ctx.state.read();
    let all = in_repository(&index, &scope, name);
    if let Some(ids) = req.image_ids.filter(|i| !i.is_empty()) {
        let mut seen = BTreeSet::new();
        let mut out = vec![];
        for id in &ids {
            let digest = resolve(&index, &scope, name, id).map_err(|_| {
                ApiError::new(
                    ErrorCode::ImageNotFoundException,
                    format!(
                        "The image with imageId {{imageDigest:'{}', imageTag:'{}'}} does not exist within the repository with name '{name}' in the registry with id '{}'",
                        id.image_digest.as_deref().unwrap_or("null"),
                        id.image_tag.as_deref().unwrap_or("null"),
                        scope.account
                    ),
                )
            })?;
            if !seen.insert(digest.clone()) {
                continue;
            }
            let tags = all
                .iter()
                .find(|(d, _)| *d == digest)
                .map(|(_, t)| t.clone())
                .unwrap_or_default();
            if let Some(r) = image_record(&index, &scope, name, &digest) {
                out.push(detail(&scope, name, &digest, tags, &r.value));
            }
        }
        return Ok(DescribeImagesResponse {
            image_details: Some(out),
            next_token: None,
        });
    }
    let status = req.filter.as_ref().and_then(|f| f.tag_status.as_deref());
    let images = all
        .into_iter()
        .filter(|(_, tags)| tag_status_allows(status, !tags.is_empty()));
    let (found, next) = page(
        images,
        |(d, _)| d.to_string(),
        req.max_results,
        req.next_token.as_deref(),
        LIST_LIMITS,
    )?;
    let details = found
        .into_iter()
        .filter_map(|(d, tags)| {
            image_record(&index, &scope, name, d).map(|r| detail(&scope, name, d, tags, &r.value))
        })
        .collect();
    Ok(DescribeImagesResponse {
        image_details: Some(details),
        next_token: next,
    })
}

fn check_batch(ids: &[ImageIdentifier]) -> Result<(), ApiError> {
    if ids.is_empty() || ids.len() > MAX_BATCH {
        return Err(ApiError::invalid_parameter(format!(
            "Invalid parameter at 'imageIds' failed to satisfy constraint: 'Member must have length between 1 and {MAX_BATCH}'"
        )));
    }
    Ok(())
}

pub async fn batch_get(
    ctx: &Ctx<'_>,
    req: BatchGetImageRequest,
    guard: &mut Guard<'_>,
) -> Result<BatchGetImageResponse, ApiError> {
    let name = required(&req.repository_name, "repositoryName")?;
    let ids = req.image_ids.unwrap_or_default();
    check_batch(&ids)?;
    let scope = authorized(
        ctx,
        req.registry_id.as_deref(),
        name,
        "ecr:BatchGetImage",
        guard,
    )?;
    let accepted = req.accepted_media_types.unwrap_or_default();
    let index = ctx.state.read();
    let (mut images, mut failures) = (vec![], vec![]);
    for id in &ids {
        let found = resolve(&index, &scope, name, id).and_then(|d| {
            image_record(&index, &scope, name, &d)
                .map(|r| (d, r))
                .ok_or(("ImageNotFound", "Requested image not found"))
        });
        match found {
            Ok((_, r)) if !accepted.is_empty() && !accepted.contains(&r.value.media_type) => {
                failures.push(failure(
                    id,
                    (
                        "UnsupportedImageType",
                        "The image's manifest media type is not among acceptedMediaTypes",
                    ),
                ))
            }
            Ok((digest, r)) => images.push(Image {
                registry_id: Some(scope.account.clone()),
                repository_name: Some(name.to_string()),
                image_id: Some(ImageIdentifier {
                    image_digest: Some(digest),
                    image_tag: id.image_tag.clone(),
                }),
                image_manifest: Some(r.value.manifest.clone()),
                image_manifest_media_type: Some(r.value.media_type.clone()),
            }),
            Err(f) => failures.push(failure(id, f)),
        }
    }
    Ok(BatchGetImageResponse {
        images: Some(images),
        failures: Some(failures),
    })
}

pub async fn batch_delete(
    ctx: &Ctx<'_>,
    req: BatchDeleteImageRequest,
    guard: &mut Guard<'_>,
) -> Result<BatchDeleteImageResponse, ApiError> {
    let name = required(&req.repository_name, "repositoryName")?.to_string();
    let ids = req.image_ids.unwrap_or_default();
    check_batch(&ids)?;
    let scope = authorized(
        ctx,
        req.registry_id.as_deref(),
        &name,
        "ecr:BatchDeleteImage",
        guard,
    )?;
    let key = StoreKey::repository(&scope, &name);
    ctx.state
        .mutate(&key, |index| {
            let plan = delete_plan(index, &scope, &name, &ids);
            let mut txn = Txn::default();
            for t in &plan.tags {
                txn = guarded_delete(txn, index, &StoreKey::image_tag(&scope, &name, t));
            }
            for d in &plan.images {
                txn = guarded_delete(txn, index, &StoreKey::image(&scope, &name, d));
            }
            Ok((
                txn,
                BatchDeleteImageResponse {
                    image_ids: Some(plan.deleted),
                    failures: Some(plan.failures),
                },
            ))
        })
        .await
}

/// The deletes of these images and every tag on them.
pub fn delete_images(index: &Index, scope: &Scope, name: &str, digests: &[String]) -> Txn {
    let mut txn = Txn::default();
    for d in digests {
        let tags = index
            .ecr_image_tags
            .get(&(scope.clone(), name.to_string(), d.clone()));
        for t in tags.into_iter().flatten() {
            txn = guarded_delete(txn, index, &StoreKey::image_tag(scope, name, t));
        }
        txn = guarded_delete(txn, index, &StoreKey::image(scope, name, d));
    }
    txn
}

/// What a BatchDeleteImage removes: tags, and images left with none (or named by digest).
#[derive(Debug, Default, PartialEq)]
pub struct DeletePlan {
    pub tags: BTreeSet<String>,
    pub images: BTreeSet<String>,
    pub deleted: Vec<ImageIdentifier>,
    pub failures: Vec<ImageFailure>,
}

pub fn delete_plan(
    index: &Index,
    scope: &Scope,
    name: &str,
    ids: &[ImageIdentifier],
) -> DeletePlan {
    let mut plan = DeletePlan::default();
    let tags_of = |d: &str| -> BTreeSet<String> {
        index
            .ecr_image_tags
            .get(&(scope.clone(), name.to_string(), d.to_string()))
            .cloned()
            .unwrap_or_default()
    };
    for id in ids {
        let digest = match resolve(index, scope, name, id) {
            Ok(d) if !plan.images.contains(&d) => d,
            Ok(_) => continue,
            Err(f) => {
                plan.failures.push(failure(id, f));
                continue;
            }
        };
        match &id.image_tag {
            // A tag goes alone; the image goes with its last tag.
            Some(t) if id.image_digest.is_none() => {
                plan.tags.insert(t.clone());
                plan.deleted.push(ImageIdentifier {
                    image_digest: Some(digest.clone()),
                    image_tag: Some(t.clone()),
                });
                if tags_of(&digest).iter().all(|x| plan.tags.contains(x)) {
                    plan.images.insert(digest);
                }
            }
            _ => {
                let tags = tags_of(&digest);
                plan.deleted.push(ImageIdentifier {
                    image_digest: Some(digest.clone()),
                    image_tag: tags.iter().next().cloned(),
                });
                plan.tags.extend(tags);
                plan.images.insert(digest);
            }
        }
    }
    plan
}
