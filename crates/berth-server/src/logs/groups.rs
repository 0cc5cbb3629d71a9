//! Log groups: CreateLogGroup, DeleteLogGroup, DescribeLogGroups, retention.
use super::{group_arn, group_not_found, group_resource, required, stream_key, Ctx, Empty, Guard};
use crate::authz::Resource;
use crate::state::index::{guarded_delete, guarded_put, Index};
use crate::state::logs_records::LogGroupRecord;
use crate::state::StoreKey;
use berth_api::logs::*;
use berth_api::pagination::{page, PageLimits};
use berth_api::{ApiError, ErrorCode};
use berth_model::Scope;
use berth_store::Txn;

const LIST_LIMITS: PageLimits = PageLimits::new(50, 50);
/// The retention periods Logs accepts, in days.
pub const RETENTION_DAYS: &[i32] = &[
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922,
    3288, 3653,
];

/// Logs' group name expression: `[\.\-_/#A-Za-z0-9]+`.
pub fn name_ok(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b'/' | b'#'))
}

fn check_name(name: &str) -> Result<(), ApiError> {
    if name_ok(name) {
        return Ok(());
    }
    Err(ApiError::invalid_parameter(format!(
        "1 validation error detected: Value '{name}' at 'logGroupName' failed to satisfy constraint: Member must satisfy regular expression pattern: [\\.\\-_/#A-Za-z0-9]+"
    )))
}

fn check_retention(days: i32) -> Result<(), ApiError> {
    if RETENTION_DAYS.contains(&days) {
        return Ok(());
    }
    let allowed: Vec<String> = RETENTION_DAYS.iter().map(|d| d.to_string()).collect();
    Err(ApiError::invalid_parameter(format!(
        "1 validation error detected: Value '{days}' at 'retentionInDays' failed to satisfy constraint: Member must satisfy enum value set: [{}]",
        allowed.join(", ")
    )))
}

pub fn find<'i>(
    index: &'i Index,
    scope: &Scope,
    name: &str,
) -> Result<&'i LogGroupRecord, ApiError> {
    index
        .log_groups
        .get(&(scope.clone(), name.to_string()))
        .map(|v| &v.value)
        .ok_or_else(group_not_found)
}

/// The streams of a group, by name.
pub fn streams_of<'i>(
    index: &'i Index,
    scope: &Scope,
    group: &str,
) -> impl Iterator<Item = &'i str> + 'i {
    let lo = (scope.clone(), group.to_string(), String::new());
    let (s, g) = (scope.clone(), group.to_string());
    index
        .log_streams
        .range(lo..)
        .take_while(move |((sc, gr, _), _)| *sc == s && *gr == g)
        .map(|((_, _, name), _)| name.as_str())
}

fn view(
    state: &crate::state::State,
    scope: &Scope,
    name: &str,
    r: &LogGroupRecord,
    index: &Index,
) -> LogGroup {
    let stored: u64 = streams_of(index, scope, name)
        .filter_map(|s| {
            state
                .log_events()
                .stats(&stream_key(scope, name, s))
                .ok()
                .flatten()
        })
        .map(|s| s.stored_bytes)
        .sum();
    LogGroup {
        log_group_name: Some(name.to_string()),
        creation_time: Some(r.created_at),
        retention_in_days: r.retention_in_days,
        metric_filter_count: Some(0),
        arn: Some(format!("{}:*", group_arn(scope, name))),
        log_group_arn: Some(group_arn(scope, name)),
        stored_bytes: Some(stored as i64),
        log_group_class: Some("STANDARD".into()),
        ..Default::default()
    }
}

pub async fn create(
    ctx: &Ctx<'_>,
    req: CreateLogGroupRequest,
    guard: &mut Guard<'_>,
) -> Result<Empty, ApiError> {
    let name = required(&req.log_group_name, "logGroupName")?.to_string();
    check_name(&name)?;
    guard(
        "logs:CreateLogGroup",
        vec![group_resource(&ctx.scope, &name)],
    )?;
    let record = LogGroupRecord {
        created_at: ctx.now_ms(),
        retention_in_days: None,
        tags: req.tags.unwrap_or_default(),
    };
    let key = StoreKey::log_group(&ctx.scope, &name);
    ctx.state
        .mutate(&key, |index| {
            if find(index, &ctx.scope, &name).is_ok() {
                return Err(ApiError::new(
                    ErrorCode::ResourceAlreadyExistsException,
                    "The specified log group already exists",
                ));
            }
            Ok((guarded_put(Txn::default(), index, &key, &record), ()))
        })
        .await?;
    Ok(Empty {})
}

pub async fn delete(
    ctx: &Ctx<'_>,
    req: DeleteLogGroupRequest,
    guard: &mut Guard<'_>,
) -> Result<Empty, ApiError> {
    let name = required(&req.log_group_name, "logGroupName")?.to_string();
    guard(
        "logs:DeleteLogGroup",
        vec![group_resource(&ctx.scope, &name)],
    )?;
    let key = StoreKey::log_group(&ctx.scope, &name);
    let streams = ctx
        .state
        .mutate(&key, |index| {
            find(index, &ctx.scope, &name)?;
            let streams: Vec<String> = streams_of(index, &ctx.scope, &name)
                .map(String::from)
                .collect();
            let mut txn = guarded_delete(Txn::default(), index, &key);
            for s in &streams {
                txn = guarded_delete(txn, index, &StoreKey::log_stream(&ctx.scope, &name, s));
            }
            Ok((txn, streams))
        })
        .await?;
    for s in streams {
        super::streams::forget_events(ctx, &name, &s).await;
    }
    Ok(Empty {})
}

pub async fn describe(
    ctx: &Ctx<'_>,
    req: DescribeLogGroupsRequest,
    guard: &mut Guard<'_>,
) -> Result<DescribeLogGroupsResponse, ApiError> {
    guard(
        "logs:DescribeLogGroups",
        vec![Resource::arn(format!("{}:*", group_arn(&ctx.scope, "*")))],
    )?;
    if req.log_group_name_prefix.is_some() && req.log_group_name_pattern.is_some() {
        return Err(ApiError::invalid_parameter(
            "LogGroup name prefix and LogGroup name pattern are mutually exclusive parameters.",
        ));
    }
    let index = ctx.state.read();
    let prefix = req.log_group_name_prefix.as_deref().unwrap_or("");
    let pattern = req.log_group_name_pattern.as_deref();
    let scope = ctx.scope.clone();
    let groups = index
        .log_groups
        .range((scope.clone(), prefix.to_string())..)
        .take_while(|((s, n), _)| *s == scope && n.starts_with(prefix))
        .filter(|((_, n), _)| pattern.is_none_or(|p| n.contains(p)));
    let (found, next) = page(
        groups,
        |((_, n), _)| n.clone(),
        req.limit,
        req.next_token.as_deref(),
        LIST_LIMITS,
    )?;
    Ok(DescribeLogGroupsResponse {
        log_groups: Some(
            found
                .into_iter()
                .map(|((_, n), r)| view(ctx.state, &ctx.scope, n, &r.value, &index))
                .collect(),
        ),
        next_token: next,
    })
}

async fn set_retention(ctx: &Ctx<'_>, name: &str, days: Option<i32>) -> Result<(), ApiError> {
    let key = StoreKey::log_group(&ctx.scope, name);
    ctx.state
        .mutate(&key, |index| {
            let mut record = find(index, &ctx.scope, name)?.clone();
            record.retention_in_days = days;
            Ok((guarded_put(Txn::default(), index, &key, &record), ()))
        })
        .await
}

pub async fn put_retention(
    ctx: &Ctx<'_>,
    req: PutRetentionPolicyRequest,
    guard: &mut Guard<'_>,
) -> Result<Empty, ApiError> {
    let name = required(&req.log_group_name, "logGroupName")?;
    let days = req.retention_in_days.unwrap_or_default();
    check_retention(days)?;
    guard(
        "logs:PutRetentionPolicy",
        vec![group_resource(&ctx.scope, name)],
    )?;
    set_retention(ctx, name, Some(days)).await?;
    Ok(Empty {})
}

pub async fn delete_retention(
    ctx: &Ctx<'_>,
    req: DeleteRetentionPolicyRequest,
    guard: &mut Guard<'_>,
) -> Result<Empty, ApiError> {
    let name = required(&req.log_group_name, "logGroupName")?;
    guard(
        "logs:DeleteRetentionPolicy",
        vec![group_resource(&ctx.scope, name)],
    )?;
    set_retention(ctx, name, None).await?;
    Ok(Empty {})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_names_and_retention_follow_logs_rules() {
        assert!(name_ok("/ecs/web-app_1.x#2"));
        assert!(!name_ok("a:b") && !name_ok("") && !name_ok("a b"));
        assert!(check_retention(14).is_ok());
        let e = check_retention(2).unwrap_err();
        assert!(
            e.message
                .contains("Member must satisfy enum value set: [1, 3, 5"),
            "{}",
            e.message
        );
    }
}
