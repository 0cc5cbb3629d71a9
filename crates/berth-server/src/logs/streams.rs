//! Log streams: CreateLogStream, DeleteLogStream, DescribeLogStreams.
use super::event_store::Stats;
use super::groups::{find as find_group, streams_of};
use super::peers::{ask_everyone, merge_stats, Answer, Query};
use super::{
    group_resource, required, stream_arn, stream_key, stream_not_found, Ctx, Empty, Guard,
};
use crate::state::index::{guarded_delete, guarded_put};
use crate::state::logs_records::LogStreamRecord;
use crate::state::StoreKey;
use berth_api::logs::*;
use berth_api::pagination::{page, PageLimits};
use berth_api::{ApiError, ErrorCode};
use berth_store::Txn;

/// Logs' stream name expression: `[^:*]*`.
pub fn name_ok(name: &str) -> bool {
    !name.is_empty() && !name.contains([':', '*'])
}

pub async fn create(
    ctx: &Ctx<'_>,
    req: CreateLogStreamRequest,
    guard: &mut Guard<'_>,
) -> Result<Empty, ApiError> {
    let group = required(&req.log_group_name, "logGroupName")?.to_string();
    let name = required(&req.log_stream_name, "logStreamName")?.to_string();
    if !name_ok(&name) {
        return Err(ApiError::invalid_parameter(format!(
            "1 validation error detected: Value '{name}' at 'logStreamName' failed to satisfy constraint: Member must satisfy regular expression pattern: [^:*]*"
        )));
    }
    guard(
        "logs:CreateLogStream",
        vec![group_resource(&ctx.scope, &group)],
    )?;
    let key = StoreKey::log_stream(&ctx.scope, &group, &name);
    let record = LogStreamRecord {
        created_at: ctx.now_ms(),
    };
    ctx.state
        .mutate(&StoreKey::log_group(&ctx.scope, &group), |index| {
            find_group(index, &ctx.scope, &group)?;
            if index.mod_revision(&key) != 0 {
                return Err(ApiError::new(
                    ErrorCode::ResourceAlreadyExistsException,
                    "The specified log stream already exists",
                ));
            }
            // The group must still be there when the stream is made.
            let group_key = StoreKey::log_group(&ctx.scope, &group);
            let txn =
                Txn::default().compare_mod(group_key.encode(), index.mod_revision(&group_key));
            Ok((guarded_put(txn, index, &key, &record), ()))
        })
        .await?;
    Ok(Empty {})
}

/// Drops a stream's events from the event store (after its record is gone).
pub async fn forget_events(ctx: &Ctx<'_>, group: &str, stream: &str) {
    let events = ctx.state.log_events().clone();
    let key = stream_key(&ctx.scope, group, stream);
    let done = tokio::task::spawn_blocking(move || events.delete_stream(&key)).await;
    if let Ok(Err(e)) = done {
        tracing::warn!(error = %e, "a deleted stream's events were not removed");
    }
}

pub async fn delete(
    ctx: &Ctx<'_>,
    req: DeleteLogStreamRequest,
    guard: &mut Guard<'_>,
) -> Result<Empty, ApiError> {
    let group = required(&req.log_group_name, "logGroupName")?.to_string();
    let name = required(&req.log_stream_name, "logStreamName")?.to_string();
    guard(
        "logs:DeleteLogStream",
        vec![group_resource(&ctx.scope, &group)],
    )?;
    let key = StoreKey::log_stream(&ctx.scope, &group, &name);
    ctx.state
        .mutate(&StoreKey::log_group(&ctx.scope, &group), |index| {
            find_group(index, &ctx.scope, &group)?;
            if index.mod_revision(&key) == 0 {
                return Err(stream_not_found());
            }
            Ok((guarded_delete(Txn::default(), index, &key), ()))
        })
        .await?;
    forget_events(ctx, &group, &name).await;
    Ok(Empty {})
}

pub async fn describe(
    ctx: &Ctx<'_>,
    req: DescribeLogStreamsRequest,
    guard: &mut Guard<'_>,
) -> Result<DescribeLogStreamsResponse, ApiError> {
    let group = super::named_group(&ctx.scope, &req.log_group_name, &req.log_group_identifier);
    guard(
        "logs:DescribeLogStreams",
        vec![group_resource(&ctx.scope, &group)],
    )?;
    let by_time = req.order_by.as_deref() == Some("LastEventTime");
    if by_time && req.log_stream_name_prefix.is_some() {
        return Err(ApiError::invalid_parameter(
            "Cannot order by LastEventTime with a logStreamNamePrefix.",
        ));
    }
    let prefix = req.log_stream_name_prefix.as_deref().unwrap_or("");
    let descending = req.descending.unwrap_or(false);
    let listed: Vec<(String, i64)> = {
        let index = ctx.state.read();
        find_group(&index, &ctx.scope, &group)?;
        streams_of(&index, &ctx.scope, &group)
            .filter(|s| s.starts_with(prefix))
            .filter_map(|s| {
                let key = (ctx.scope.clone(), group.clone(), s.to_string());
                let record = index.log_streams.get(&key)?;
                Some((s.to_string(), record.value.created_at))
            })
            .collect()
    };
    let stats = stats_of(ctx, &group, &listed).await?;
    let mut streams: Vec<(String, LogStream)> = listed
        .into_iter()
        .zip(stats)
        .map(|((s, created_at), stats)| {
            let view = LogStream {
                log_stream_name: Some(s.clone()),
                creation_time: Some(created_at),
                first_event_timestamp: stats.map(|x| x.first_event),
                last_event_timestamp: stats.map(|x| x.last_event),
                last_ingestion_time: stats.map(|x| x.last_ingestion),
                upload_sequence_token: Some("1".into()),
                arn: Some(stream_arn(&ctx.scope, &group, &s)),
                stored_bytes: Some(0),
            };
            let key = if by_time {
                format!("{:020}/{s}", stats.map_or(0, |x| x.last_event.max(0)))
            } else {
                s
            };
            (key, view)
        })
        .collect();
    streams.sort_by(|a, b| a.0.cmp(&b.0));
    if descending {
        streams.reverse();
    }
    let limits = PageLimits {
        descending,
        ..PageLimits::new(50, 50)
    };
    let (found, next) = page(
        streams,
        |(k, _)| k.clone(),
        req.limit,
        req.next_token.as_deref(),
        limits,
    )?;
    Ok(DescribeLogStreamsResponse {
        log_streams: Some(found.into_iter().map(|(_, v)| v).collect()),
        next_token: next,
    })
}

/// Each stream's figures over every server's events, in the order named.
async fn stats_of(
    ctx: &Ctx<'_>,
    group: &str,
    streams: &[(String, i64)],
) -> Result<Vec<Option<Stats>>, ApiError> {
    let keys: Vec<(String, i64)> = streams
        .iter()
        .map(|(s, created)| (stream_key(&ctx.scope, group, s), *created))
        .collect();
    let n = keys.len();
    let parts: Vec<Vec<Option<Stats>>> = ask_everyone(ctx.state, Query::Stats { keys })
        .await?
        .into_iter()
        .filter_map(Answer::into_stats)
        .collect();
    Ok((0..n)
        .map(|i| merge_stats(parts.iter().map(|p| p.get(i).copied().flatten())))
        .collect())
}
