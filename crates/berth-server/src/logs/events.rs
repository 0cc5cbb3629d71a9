//! PutLogEvents and GetLogEvents, with Logs' batch limits, its rejected
//! events, and its forward and backward tokens.
use super::event_store::{From, Position};
use super::groups::find as find_group;
use super::peers::{ask_everyone, merge_pages, Answer, Query};
use super::{group_resource, required, stream_created, stream_key, Ctx, Guard};
use berth_api::logs::*;
use berth_api::{ApiError, ErrorCode};

/// PutLogEvents takes at most this many bytes: messages plus 26 bytes each.
pub const MAX_BATCH_BYTES: usize = 1_048_576;
pub const EVENT_OVERHEAD: usize = 26;
const DAY_MS: i64 = 86_400_000;
/// Events more than two hours ahead, or fourteen days behind, are refused.
const TOO_NEW_MS: i64 = 2 * 3_600_000;
const TOO_OLD_MS: i64 = 14 * DAY_MS;
const MAX_PAGE: usize = 10_000;

/// Which of a batch's events (sorted by time) Logs refuses, and why.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Rejected {
    pub too_new_start: Option<usize>,
    pub too_old_end: Option<usize>,
    pub expired_end: Option<usize>,
}

/// The events of a batch Logs keeps, and the ones it rejects, at `now` ms.
pub fn sort_out(
    timestamps: &[i64],
    now: i64,
    retention_days: Option<i32>,
) -> (std::ops::Range<usize>, Rejected) {
    let mut r = Rejected::default();
    let expired_before = retention_days.map(|d| now - d as i64 * DAY_MS);
    for (i, &t) in timestamps.iter().enumerate() {
        if t > now + TOO_NEW_MS {
            r.too_new_start.get_or_insert(i);
        } else if expired_before.is_some_and(|e| t < e) {
            r.expired_end = Some(i);
        } else if t < now - TOO_OLD_MS {
            r.too_old_end = Some(i);
        }
    }
    let start = r.expired_end.max(r.too_old_end).map_or(0, |i| i + 1);
    let end = r.too_new_start.unwrap_or(timestamps.len()).max(start);
    (start..end, r)
}

/// A batch berth's agent names in `sequenceToken` (which Logs otherwise
/// ignores): `berth:{writer}:{end}`, so a resent batch is accepted once.
pub fn named_batch(token: Option<&str>) -> Option<(&str, u64)> {
    let rest = token?.strip_prefix("berth:")?;
    let (writer, end) = rest.rsplit_once(':')?;
    (!writer.is_empty()).then_some(())?;
    Some((writer, end.parse().ok()?))
}

pub async fn put(
    ctx: &Ctx<'_>,
    req: PutLogEventsRequest,
    guard: &mut Guard<'_>,
) -> Result<PutLogEventsResponse, ApiError> {
    let group = required(&req.log_group_name, "logGroupName")?.to_string();
    let stream = required(&req.log_stream_name, "logStreamName")?.to_string();
    guard(
        "logs:PutLogEvents",
        vec![group_resource(&ctx.scope, &group)],
    )?;
    let mut events: Vec<(i64, String)> = req
        .log_events
        .unwrap_or_default()
        .into_iter()
        .map(|e| {
            (
                e.timestamp.unwrap_or_default(),
                e.message.unwrap_or_default(),
            )
        })
        .collect();
    let bytes: usize = events.iter().map(|(_, m)| m.len() + EVENT_OVERHEAD).sum();
    if bytes > MAX_BATCH_BYTES {
        return Err(ApiError::invalid_parameter(format!(
            "Upload too large: {bytes} bytes exceeds limit of {MAX_BATCH_BYTES}"
        )));
    }
    events.sort_by_key(|(t, _)| *t);
    if let (Some(first), Some(last)) = (events.first(), events.last()) {
        if last.0 - first.0 > DAY_MS {
            return Err(ApiError::invalid_parameter(
                "The batch of log events in a single PutLogEvents request cannot span more than 24 hours.",
            ));
        }
    }
    let (retention, created) = {
        let index = ctx.state.read();
        let g = find_group(&index, &ctx.scope, &group)?;
        let created = stream_created(&index, &ctx.scope, &group, &stream)?;
        (g.retention_in_days, created)
    };
    let now = ctx.now_ms();
    let timestamps: Vec<i64> = events.iter().map(|(t, _)| *t).collect();
    let (kept, rejected) = sort_out(&timestamps, now, retention);
    let store = ctx.state.log_events().clone();
    let key = stream_key(&ctx.scope, &group, &stream);
    let batch: Vec<(i64, String)> = events.drain(kept).collect();
    let token = req.sequence_token.clone();
    if !batch.is_empty() {
        let stored = tokio::task::spawn_blocking(move || {
            store.put_batch(
                &key,
                &batch,
                now,
                named_batch(token.as_deref()),
                Some(created),
            )
        })
        .await
        .map_err(|e| ApiError::server(e.to_string()))?
        .map_err(|e| ApiError::server(e.to_string()))?;
        if !stored {
            return Err(ApiError::new(
                ErrorCode::DataAlreadyAcceptedException,
                format!(
                    "The given batch of log events has already been accepted. The next batch can be sent with sequenceToken: {}",
                    req.sequence_token.as_deref().unwrap_or_default()
                ),
            ));
        }
    }
    let any = rejected != Rejected::default();
    let index = |i: Option<usize>| i.map(|i| i as i32);
    Ok(PutLogEventsResponse {
        next_sequence_token: None,
        rejected_log_events_info: any.then(|| RejectedLogEventsInfo {
            too_new_log_event_start_index: index(rejected.too_new_start),
            too_old_log_event_end_index: index(rejected.too_old_end),
            expired_log_event_end_index: index(rejected.expired_end),
        }),
        rejected_entity_info: None,
    })
}

fn token(direction: char, p: Position) -> String {
    format!("{direction}/{}/{}", p.timestamp, p.seq)
}

fn parse_token(t: &str) -> Option<From> {
    let mut parts = t.splitn(3, '/');
    let direction = parts.next()?;
    let p = Position {
        timestamp: parts.next()?.parse().ok()?,
        seq: parts.next()?.parse().ok()?,
    };
    match direction {
        "f" => Some(From::After(p)),
        "b" => Some(From::Before(p)),
        _ => None,
    }
}

pub async fn get(
    ctx: &Ctx<'_>,
    req: GetLogEventsRequest,
    guard: &mut Guard<'_>,
) -> Result<GetLogEventsResponse, ApiError> {
    let group = super::named_group(&ctx.scope, &req.log_group_name, &req.log_group_identifier);
    let stream = required(&req.log_stream_name, "logStreamName")?.to_string();
    guard(
        "logs:GetLogEvents",
        vec![group_resource(&ctx.scope, &group)],
    )?;
    let created = {
        let index = ctx.state.read();
        find_group(&index, &ctx.scope, &group)?;
        stream_created(&index, &ctx.scope, &group, &stream)?
    };
    let from = match req.next_token.as_deref() {
        Some(t) => parse_token(t).ok_or_else(|| {
            ApiError::new(
                ErrorCode::InvalidParameterException,
                "The specified nextToken is invalid.",
            )
        })?,
        None if req.start_from_head.unwrap_or(false) => From::Head,
        None => From::Tail,
    };
    let limit = req.limit.map_or(MAX_PAGE, |l| l as usize);
    let query = Query::Page {
        key: stream_key(&ctx.scope, &group, &stream),
        created,
        window: (req.start_time, req.end_time),
        from,
        limit,
    };
    let parts = ask_everyone(ctx.state, query)
        .await?
        .into_iter()
        .filter_map(Answer::into_page)
        .collect();
    let backward = matches!(from, From::Tail | From::Before(_));
    let events = merge_pages(parts, backward, limit);
    let (forward, backward) = match (events.first(), events.last()) {
        (Some(first), Some(last)) => (token('f', last.at), token('b', first.at)),
        // At an end, the token given comes back, and the other way starts from the same place.
        _ => match from {
            From::After(p) => (
                token('f', p),
                token(
                    'b',
                    Position {
                        seq: p.seq + 1,
                        ..p
                    },
                ),
            ),
            From::Before(p) => (
                token(
                    'f',
                    Position {
                        seq: p.seq.saturating_sub(1),
                        ..p
                    },
                ),
                token('b', p),
            ),
            _ => {
                let origin = Position {
                    timestamp: i64::MIN,
                    seq: 0,
                };
                (token('f', origin), token('b', origin))
            }
        },
    };
    Ok(GetLogEventsResponse {
        events: Some(
            events
                .into_iter()
                .map(|e| OutputLogEvent {
                    timestamp: Some(e.at.timestamp),
                    message: Some(e.message),
                    ingestion_time: Some(e.ingestion_time),
                })
                .collect(),
        ),
        next_forward_token: Some(forward),
        next_backward_token: Some(backward),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn too_old_expired_and_too_new_events_are_set_aside() {
        let now = 100 * DAY_MS;
        let ts = [
            now - 20 * DAY_MS,
            now - 15 * DAY_MS,
            now,
            now + 3 * 3_600_000,
        ];
        let (kept, r) = sort_out(&ts, now, None);
        assert_eq!(kept, 2..3);
        assert_eq!(
            r,
            Rejected {
                too_new_start: Some(3),
                too_old_end: Some(1),
                expired_end: None
            }
        );
        let (kept, r) = sort_out(&ts, now, Some(1));
        assert_eq!(kept, 2..3);
        assert_eq!(r.expired_end, Some(1));
        let (kept, r) = sort_out(&[now, now + 1], now, None);
        assert_eq!((kept, r), (0..2, Rejected::default()));
    }

    #[test]
    fn only_berths_own_tokens_name_a_batch() {
        assert_eq!(
            named_batch(Some("berth:c0ffee:1024")),
            Some(("c0ffee", 1024))
        );
        assert_eq!(named_batch(Some("49590302145546585396218806216")), None);
        assert_eq!(named_batch(Some("berth::5")), None);
        assert_eq!(named_batch(Some("berth:c:x")), None);
        assert_eq!(named_batch(None), None);
    }

    #[test]
    fn tokens_round_trip_and_garbage_is_refused() {
        let p = Position {
            timestamp: -5,
            seq: 9,
        };
        assert_eq!(parse_token(&token('f', p)), Some(From::After(p)));
        assert_eq!(parse_token(&token('b', p)), Some(From::Before(p)));
        assert_eq!(parse_token("x/1/2"), None);
        assert_eq!(parse_token("f/a/2"), None);
    }
}
