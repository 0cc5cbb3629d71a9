//! CloudWatch Logs JSON 1.1 (`Logs_20140328.*`, SigV4 service `logs`): log
//! groups and streams (records `logs/{account}/{region}/…` in the store) and
//! their events (event_store.rs).
pub mod event_store;
pub mod events;
pub mod filter;
pub mod groups;
pub mod housekeeping;
pub mod peers;
pub mod retention;
pub mod streams;
pub mod tags;

use crate::authz::Resource;
use crate::state::State;
use berth_api::logs::decode_input;
use berth_api::{ApiError, ErrorCode};
use berth_model::Scope;
use std::sync::Arc;

pub use crate::json_service::{Empty, Guard};

fn refuse(operation: &str) -> ApiError {
    crate::json_service::refusal(
        operation,
        berth_api::logs::OPERATIONS,
        ErrorCode::UnsupportedFeatureException,
    )
}

pub struct Ctx<'a> {
    pub state: &'a Arc<State>,
    pub scope: Scope,
    /// Epoch seconds, the State's clock.
    pub now: f64,
}

impl Ctx<'_> {
    /// Now in epoch milliseconds, Logs' unit.
    pub fn now_ms(&self) -> i64 {
        (self.now * 1000.0) as i64
    }
}

crate::json_service::operations! {
    decode: decode_input, refuse: refuse;
    "CreateLogGroup" => groups::create,
    "DeleteLogGroup" => groups::delete,
    "DescribeLogGroups" => groups::describe,
    "PutRetentionPolicy" => groups::put_retention,
    "DeleteRetentionPolicy" => groups::delete_retention,
    "CreateLogStream" => streams::create,
    "DeleteLogStream" => streams::delete,
    "DescribeLogStreams" => streams::describe,
    "PutLogEvents" => events::put,
    "GetLogEvents" => events::get,
    "FilterLogEvents" => filter::filter,
    "TagResource" => tags::tag_resource,
    "UntagResource" => tags::untag_resource,
    "ListTagsForResource" => tags::list_tags_for_resource,
    "TagLogGroup" => tags::tag_log_group,
    "UntagLogGroup" => tags::untag_log_group,
    "ListTagsLogGroup" => tags::list_tags_log_group,
}

pub fn group_arn(scope: &Scope, group: &str) -> String {
    format!(
        "arn:aws:logs:{}:{}:log-group:{group}",
        scope.region, scope.account
    )
}

pub fn stream_arn(scope: &Scope, group: &str, stream: &str) -> String {
    format!("{}:log-stream:{stream}", group_arn(scope, group))
}

/// The log group as an IAM resource.
pub fn group_resource(scope: &Scope, group: &str) -> Resource {
    Resource::arn(group_arn(scope, group))
}

pub fn group_not_found() -> ApiError {
    ApiError::new(
        ErrorCode::ResourceNotFoundException,
        "The specified log group does not exist.",
    )
}

pub fn stream_not_found() -> ApiError {
    ApiError::new(
        ErrorCode::ResourceNotFoundException,
        "The specified log stream does not exist.",
    )
}

/// A member the model marks required (decoding already refused its absence).
pub fn required<'a>(value: &'a Option<String>, member: &str) -> Result<&'a str, ApiError> {
    value.as_deref().ok_or_else(|| {
        ApiError::invalid_parameter(format!(
            "1 validation error detected: Value null at '{member}' failed to satisfy constraint: Member must not be null"
        ))
    })
}

/// The group a request names by `logGroupName`, or by `logGroupIdentifier`
/// (a name, or the group's ARN).
pub fn named_group(scope: &Scope, name: &Option<String>, identifier: &Option<String>) -> String {
    match (name, identifier) {
        (Some(n), _) => n.clone(),
        (None, Some(id)) => tags::group_of_arn(scope, id).unwrap_or_else(|_| id.clone()),
        (None, None) => String::new(),
    }
}

/// When the stream record was made: its events are that record's (see
/// `event_store::INCARNATIONS`).
pub fn stream_created(
    index: &crate::state::index::Index,
    scope: &Scope,
    group: &str,
    stream: &str,
) -> Result<i64, ApiError> {
    index
        .log_streams
        .get(&(scope.clone(), group.to_string(), stream.to_string()))
        .map(|r| r.value.created_at)
        .ok_or_else(stream_not_found)
}

/// The event store's key of a stream.
pub fn stream_key(scope: &Scope, group: &str, stream: &str) -> String {
    format!("{}/{}/{group}:{stream}", scope.account, scope.region)
}

#[cfg(test)]
mod tests;
