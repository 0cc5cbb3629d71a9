//! SSM Parameter Store JSON 1.1 (`AmazonSSM.*`, SigV4 service `ssm`):
//! parameters and their history, records `ssm/{account}/{region}/parameter/{name}`,
//! SecureString values sealed.
pub mod parameters;
pub mod reads;
pub mod tags;

use crate::auth::Caller;
use crate::state::index::Index;
use crate::state::secrets_records::{ParameterRecord, ParameterVersion};
use crate::state::State;
use berth_api::ssm::{decode_input, Parameter};
use berth_api::{ApiError, ErrorCode};
use berth_model::secrets::{self as rules, Selector};
use berth_model::Scope;
use std::sync::Arc;

pub use crate::json_service::{required, Empty, Guard};

/// berth answers Parameter Store's operations; the rest of SSM are unknown to it.
fn refuse(operation: &str) -> ApiError {
    ApiError::new(
        ErrorCode::UnknownOperationException,
        format!(
            "Unknown operation {operation}: berth answers Parameter Store's operations of SSM."
        ),
    )
}

pub const SECURE_STRING: &str = "SecureString";

pub struct Ctx<'a> {
    pub state: &'a Arc<State>,
    pub scope: Scope,
    pub caller: &'a Caller,
    /// Epoch seconds, the State's clock.
    pub now: f64,
}

crate::json_service::operations! {
    decode: decode_input, refuse: refuse;
    "PutParameter" => parameters::put,
    "DeleteParameter" => parameters::delete,
    "DeleteParameters" => parameters::delete_many,
    "LabelParameterVersion" => parameters::label,
    "UnlabelParameterVersion" => parameters::unlabel,
    "GetParameter" => reads::get,
    "GetParameters" => reads::get_many,
    "GetParametersByPath" => reads::by_path,
    "GetParameterHistory" => reads::history,
    "DescribeParameters" => reads::describe,
    "AddTagsToResource" => tags::add,
    "RemoveTagsFromResource" => tags::remove,
    "ListTagsForResource" => tags::list,
}

pub fn not_found(name: &str) -> ApiError {
    ApiError::new(
        ErrorCode::ParameterNotFound,
        format!("Parameter {name} not found."),
    )
}

/// The stored name a request's name or ARN refers to, if the parameter exists.
pub fn resolve<'i>(
    index: &'i Index,
    scope: &Scope,
    id: &str,
) -> Option<(&'i str, &'i ParameterRecord)> {
    let hit = |name: &str| {
        index
            .parameters
            .get_key_value(&(scope.clone(), name.to_string()))
            .map(|((_, n), v)| (n.as_str(), &v.value))
    };
    if id.starts_with("arn:") {
        let names = rules::parameter_of_arn(scope, id)?;
        return names.iter().find_map(|n| hit(n));
    }
    hit(id)
}

/// The parameter and version `id` (`name`, `name:3`, `name:label`, or an ARN) selects.
pub fn select<'i>(
    index: &'i Index,
    scope: &Scope,
    id: &str,
) -> Result<(&'i str, &'i ParameterVersion, Option<String>), ApiError> {
    let (name, selector) = rules::parameter_selector(id);
    let (stored, record) = resolve(index, scope, name).ok_or_else(|| not_found(name))?;
    let (version, sel) = match &selector {
        Selector::Latest => (record.latest(), None),
        Selector::Version(v) => (
            record.versions.iter().find(|p| p.version == *v),
            Some(format!(":{v}")),
        ),
        Selector::Label(l) => (
            record.versions.iter().find(|p| p.labels.contains(l)),
            Some(format!(":{l}")),
        ),
    };
    let version = version.ok_or_else(|| {
        let what = match selector {
            Selector::Version(v) => format!("version {v}"),
            Selector::Label(l) => format!("label {l}"),
            Selector::Latest => "a version".into(),
        };
        ApiError::new(
            ErrorCode::ParameterVersionNotFound,
            format!("Systems Manager could not find {what} of {name}. Verify the version and try again."),
        )
    })?;
    Ok((stored, version, sel))
}

/// The sealing context of one SecureString version.
pub fn seal_context(scope: &Scope, name: &str, version: i64) -> String {
    format!("ssm/{}/{}/{name}/{version}", scope.account, scope.region)
}

/// A version as GetParameter answers it; a SecureString in clear only `decrypt`ed.
pub fn view(
    state: &State,
    scope: &Scope,
    name: &str,
    p: &ParameterVersion,
    decrypt: bool,
) -> Result<Parameter, ApiError> {
    Ok(Parameter {
        name: Some(name.to_string()),
        r#type: Some(p.r#type.clone()),
        value: Some(value_of(state, scope, name, p, decrypt)?),
        version: Some(p.version),
        last_modified_date: Some(p.modified),
        arn: Some(rules::parameter_arn(scope, name)),
        data_type: Some(p.data_type.clone()),
        ..Default::default()
    })
}

/// A version's value: a SecureString's opened when `decrypt`, else its ciphertext.
pub fn value_of(
    state: &State,
    scope: &Scope,
    name: &str,
    p: &ParameterVersion,
    decrypt: bool,
) -> Result<String, ApiError> {
    if p.r#type != SECURE_STRING || !decrypt {
        return Ok(p.value.clone());
    }
    state
        .sealer()
        .open(&p.value, &seal_context(scope, name, p.version))
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::InvalidKeyId,
                format!("The SecureString parameter {name} could not be decrypted."),
            )
        })
}

#[cfg(test)]
mod tests;
