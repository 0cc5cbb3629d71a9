//! FilterLogEvents: the events of a group's streams, in time order across
//! streams, that a filter pattern (berth_model::logs_filter) matches.
use super::event_store::Position;
use super::groups::{find as find_group, streams_of};
use super::peers::{ask_everyone, merge_filtered, Answer, FilteredPart, Query};
use super::{group_resource, stream_created, stream_key, Ctx, Guard};
use berth_api::logs::*;
use berth_api::ApiError;
use berth_model::logs_filter;

const MAX_PAGE: usize = 10_000;
/// Events read per call before a page ends with a token, as Logs answers
/// partial (even empty) pages on a long search.
const SCAN_BUDGET: usize = 200_000;

fn token(p: Position) -> String {
    format!("{}/{}", p.timestamp, p.seq)
}

fn parse_token(t: &str) -> Option<Position> {
    let (ts, seq) = t.split_once('/')?;
    Some(Position {
        timestamp: ts.parse().ok()?,
        seq: seq.parse().ok()?,
    })
}

pub async fn filter(
    ctx: &Ctx<'_>,
    req: FilterLogEventsRequest,
    guard: &mut Guard<'_>,
) -> Result<FilterLogEventsResponse, ApiError> {
    let group = super::named_group(&ctx.scope, &req.log_group_name, &req.log_group_identifier);
    guard(
        "logs:FilterLogEvents",
        vec![group_resource(&ctx.scope, &group)],
    )?;
    if req.log_stream_names.is_some() && req.log_stream_name_prefix.is_some() {
        return Err(ApiError::invalid_parameter(
            "You cannot specify both LogStreamNames and LogStreamNamePrefix.",
        ));
    }
    // Refused here; each server parses it again for its own part.
    logs_filter::parse(req.filter_pattern.as_deref().unwrap_or(""))
        .map_err(|e| ApiError::invalid_parameter(e.to_string()))?;
    let after =
        match req.next_token.as_deref() {
            Some(t) => Some(parse_token(t).ok_or_else(|| {
                ApiError::invalid_parameter("The specified nextToken is invalid.")
            })?),
            None => None,
        };
    let (streams, keys): (Vec<String>, Vec<(String, i64)>) = {
        let index = ctx.state.read();
        find_group(&index, &ctx.scope, &group)?;
        let prefix = req.log_stream_name_prefix.as_deref().unwrap_or("");
        streams_of(&index, &ctx.scope, &group)
            .filter(|s| s.starts_with(prefix))
            .filter(|s| {
                req.log_stream_names
                    .as_ref()
                    .is_none_or(|names| names.iter().any(|n| n == s))
            })
            .filter_map(|s| {
                let created = stream_created(&index, &ctx.scope, &group, s).ok()?;
                Some((s.to_string(), (stream_key(&ctx.scope, &group, s), created)))
            })
            .unzip()
    };
    let limit = req.limit.map_or(MAX_PAGE, |l| l as usize);
    let query = Query::Filtered {
        keys,
        window: (req.start_time, req.end_time),
        after,
        limit,
        budget: SCAN_BUDGET,
        pattern: req.filter_pattern.clone().unwrap_or_default(),
    };
    let parts = ask_everyone(ctx.state, query)
        .await?
        .into_iter()
        .filter_map(Answer::into_filtered)
        .collect();
    let FilteredPart { events, resume } = merge_filtered(parts, limit);
    let out: Vec<FilteredLogEvent> = events
        .into_iter()
        .filter_map(|(i, e)| {
            Some(FilteredLogEvent {
                log_stream_name: Some(streams.get(i)?.clone()),
                timestamp: Some(e.at.timestamp),
                event_id: Some(event_id(e.at)),
                message: Some(e.message),
                ingestion_time: Some(e.ingestion_time),
            })
        })
        .collect();
    Ok(FilterLogEventsResponse {
        events: Some(out),
        searched_log_streams: Some(
            streams
                .iter()
                .map(|s| SearchedLogStream {
                    log_stream_name: Some(s.clone()),
                    searched_completely: Some(resume.is_none()),
                })
                .collect(),
        ),
        next_token: resume.map(token),
    })
}

/// Logs' event ids are long decimal strings, unique per event and stable
/// across calls (the CLI's `tail --follow` drops ids it has shown).
fn event_id(p: Position) -> String {
    format!("{:020}{:020}", p.timestamp.max(0), p.seq)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_event_ids_order_like_events() {
        let p = Position {
            timestamp: 1_700_000_000_000,
            seq: 42,
        };
        assert_eq!(parse_token(&token(p)), Some(p));
        assert_eq!(parse_token("x/1"), None);
        assert_eq!(parse_token("17"), None);
        let later = Position { seq: 43, ..p };
        assert!(event_id(p) < event_id(later));
        assert_eq!(event_id(p).len(), 40);
    }
}
