//! Secrets Manager JSON 1.1 (`secretsmanager.*`, SigV4 service
//! `secretsmanager`): secrets and their versions, records
//! `secretsmanager/{account}/{region}/secret/{name}` with every value sealed.
pub mod access;
pub mod secrets;
pub mod tags;
pub mod values;

use crate::auth::Caller;
use crate::state::index::Index;
use crate::state::secrets_records::SecretRecord;
use crate::state::State;
use berth_api::secretsmanager::decode_input;
use berth_api::{ApiError, ErrorCode};
use berth_model::secrets::{self as rules, SecretId};
use berth_model::Scope;
use std::sync::Arc;

pub use crate::json_service::{required, Empty, Guard};

fn refuse(operation: &str) -> ApiError {
    crate::json_service::refusal(
        operation,
        berth_api::secretsmanager::OPERATIONS,
        ErrorCode::InvalidRequestException,
    )
}

pub struct Ctx<'a> {
    pub state: &'a Arc<State>,
    pub scope: Scope,
    pub caller: &'a Caller,
    /// Epoch seconds, the State's clock.
    pub now: f64,
}

crate::json_service::operations! {
    decode: decode_input, refuse: refuse;
    "CreateSecret" => secrets::create,
    "DescribeSecret" => secrets::describe,
    "ListSecrets" => secrets::list,
    "UpdateSecret" => secrets::update,
    "DeleteSecret" => secrets::delete,
    "RestoreSecret" => secrets::restore,
    "GetSecretValue" => values::get,
    "PutSecretValue" => values::put,
    "ListSecretVersionIds" => values::list_version_ids,
    "UpdateSecretVersionStage" => values::update_stage,
    "TagResource" => tags::tag,
    "UntagResource" => tags::untag,
    "PutResourcePolicy" => access::put_policy,
    "GetResourcePolicy" => access::get_policy,
    "DeleteResourcePolicy" => access::delete_policy,
}

pub fn not_found() -> ApiError {
    ApiError::new(
        ErrorCode::ResourceNotFoundException,
        "Secrets Manager can't find the specified secret.",
    )
}

pub fn marked_for_deletion() -> ApiError {
    ApiError::new(
        ErrorCode::InvalidRequestException,
        "You can't perform this operation on the secret because it was marked for deletion.",
    )
}

/// The secret a `SecretId` names (by name, full or partial ARN): its name and record.
pub fn find<'i>(
    index: &'i Index,
    scope: &Scope,
    id: &str,
) -> Result<(&'i str, &'i SecretRecord), ApiError> {
    let hit = |name: &str| {
        index
            .secrets
            .get_key_value(&(scope.clone(), name.to_string()))
            .map(|((_, n), v)| (n.as_str(), &v.value))
    };
    match rules::secret_id(scope, id) {
        SecretId::Name(name) => hit(name),
        SecretId::Arn(tail) => {
            // The name is the tail, or the tail less its `-AbCdEf` suffix.
            let bare = tail.rsplit_once('-').map(|(n, _)| n);
            [Some(tail), bare]
                .into_iter()
                .flatten()
                .filter_map(hit)
                .find(|(name, r)| rules::arn_names(tail, name, &r.suffix))
        }
        SecretId::Elsewhere => None,
    }
    .ok_or_else(not_found)
}

/// The ARN IAM sees for a secret that does not exist: the one the request
/// names (a name gets AWS's `-??????` wildcard suffix).
pub fn missing_arn(scope: &Scope, id: &str) -> String {
    if id.starts_with("arn:") {
        id.to_string()
    } else {
        rules::secret_arn(scope, id, "??????")
    }
}

/// The sealing context of one version's value.
pub fn seal_context(scope: &Scope, name: &str, version: &str) -> String {
    format!(
        "secretsmanager/{}/{}/{name}/{version}",
        scope.account, scope.region
    )
}

#[cfg(test)]
mod tests;
