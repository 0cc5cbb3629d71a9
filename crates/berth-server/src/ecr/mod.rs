//! ECR JSON 1.1 (`AmazonEC2ContainerRegistry_V20150921.*`, SigV4 service
//! `ecr`): repositories, their images and tags, logins for `docker login`.
//! Records live under `ecr/{account}/{region}/…`; the images themselves are
//! in the registry (registry/).
pub mod images;
pub mod lifecycle;
pub mod login;
pub mod pushes;
pub mod repositories;
pub mod repository_policy;

use crate::auth::Caller;
use crate::state::State;
use berth_api::ecr::decode_input;
use berth_api::{ApiError, ErrorCode};
use berth_model::Scope;
use std::sync::Arc;

pub struct Ctx<'a> {
    pub state: &'a Arc<State>,
    pub scope: Scope,
    pub caller: &'a Caller,
    /// Epoch seconds, the State's clock.
    pub now: f64,
}

pub use crate::json_service::{unguarded, Guard};

fn refuse(operation: &str) -> ApiError {
    crate::json_service::refusal(
        operation,
        berth_api::ecr::OPERATIONS,
        ErrorCode::UnsupportedFeatureException,
    )
}

crate::json_service::operations! {
    decode: decode_input, refuse: refuse;
    "CreateRepository" => repositories::create,
    "DescribeRepositories" => repositories::describe,
    "DeleteRepository" => repositories::delete,
    "PutImageTagMutability" => repositories::put_tag_mutability,
    "PutImageScanningConfiguration" => repositories::put_scanning_configuration,
    "TagResource" => repositories::tag,
    "UntagResource" => repositories::untag,
    "ListTagsForResource" => repositories::list_tags,
    "DescribeRegistry" => repositories::describe_registry,
    "GetAuthorizationToken" => login::get_authorization_token,
    "ListImages" => images::list,
    "DescribeImages" => images::describe,
    "BatchGetImage" => images::batch_get,
    "BatchDeleteImage" => images::batch_delete,
    "PutLifecyclePolicy" => lifecycle::put,
    "GetLifecyclePolicy" => lifecycle::get,
    "DeleteLifecyclePolicy" => lifecycle::delete,
    "SetRepositoryPolicy" => repository_policy::put,
    "GetRepositoryPolicy" => repository_policy::get,
    "DeleteRepositoryPolicy" => repository_policy::delete,
}

/// The registry a request names (`registryId`, the caller's own by default).
pub fn registry_scope(ctx: &Ctx<'_>, registry_id: Option<&str>) -> Scope {
    match registry_id {
        Some(id) => Scope::new(id, ctx.scope.region.as_str()),
        None => ctx.scope.clone(),
    }
}

/// The scope of a repository a request names: the caller's own registry.
/// Another account's repositories are not there for the caller: ECR answers
/// as for a repository that does not exist.
pub fn repository_scope(
    ctx: &Ctx<'_>,
    registry_id: Option<&str>,
    name: &str,
) -> Result<Scope, ApiError> {
    let scope = registry_scope(ctx, registry_id);
    if scope != ctx.scope {
        return Err(repository_not_found(&scope, name));
    }
    Ok(scope)
}

pub fn repository_not_found(scope: &Scope, name: &str) -> ApiError {
    ApiError::new(
        ErrorCode::RepositoryNotFoundException,
        format!(
            "The repository with name '{name}' does not exist in the registry with id '{}'",
            scope.account
        ),
    )
}

/// A required member the model marks required: ECR's words for its absence.
pub fn required<'a>(value: &'a Option<String>, member: &str) -> Result<&'a str, ApiError> {
    value.as_deref().ok_or_else(|| {
        ApiError::invalid_parameter(format!(
            "Invalid parameter at '{member}' failed to satisfy constraint: 'must not be null'"
        ))
    })
}

#[cfg(test)]
mod tests;
