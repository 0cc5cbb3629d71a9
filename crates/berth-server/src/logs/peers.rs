//! Log events across servers sharing a store: each server keeps the events it
//! took (its `logs.redb`), numbered in its own slot so positions are unique;
//! a read asks every listed server for its part of the answer at
//! `POST /_berth/log-events` and merges the parts by position, so any server
//! answers with every server's events and its tokens mean the same on all.
//! The request is sealed with the key the servers share (`--secrets-key-file`).
use super::event_store::{Event, From, LogEvents, Position, Stats};
use crate::state::State;
use axum::body::{Body, Bytes};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use berth_api::{ApiError, ErrorCode};
use http_body_util::{BodyExt, Limited};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::Duration;

pub const PATH: &str = "/_berth/log-events";
const SEAL: &str = "x-berth-peer";
/// A sealed request older (or newer) than this is refused.
const FRESH_SECS: i64 = 300;
const CONNECT_WITHIN: Duration = Duration::from_secs(2);
/// A part is one range read (a filter reads at most 200,000 events): seconds are plenty.
const ANSWER_WITHIN: Duration = Duration::from_secs(5);
/// A part holds at most 1 MB of messages; JSON may escape them to six times that.
const MAX_ANSWER_BYTES: usize = 8 << 20;
/// A page or a filtered page holds at most this many bytes of events.
pub const MAX_PAGE_BYTES: usize = 1_048_576;

/// What a read asks each server for.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Query {
    /// GetLogEvents: a stream's page.
    Page {
        key: String,
        /// The stream record's creation time (`event_store::INCARNATIONS`).
        created: i64,
        window: (Option<i64>, Option<i64>),
        from: From,
        limit: usize,
    },
    /// FilterLogEvents: matching events of several streams.
    Filtered {
        /// Each stream's key and its record's creation time.
        keys: Vec<(String, i64)>,
        window: (Option<i64>, Option<i64>),
        after: Option<Position>,
        limit: usize,
        budget: usize,
        pattern: String,
    },
    /// DescribeLogStreams: each stream's figures.
    Stats { keys: Vec<(String, i64)> },
}

/// A server's part of a page: its events, and whether it left some out
/// (by count or size) past the last one it gives (first, reading backward).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PagePart {
    pub events: Vec<Event>,
    pub cut: bool,
}

/// A server's part of a filtered page: (stream index, event), and where it
/// stopped reading (everything up to there it read, kept or not).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FilteredPart {
    pub events: Vec<(usize, Event)>,
    pub resume: Option<Position>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Answer {
    Page(PagePart),
    Filtered(FilteredPart),
    Stats(Vec<Option<Stats>>),
}

impl Answer {
    pub fn into_page(self) -> Option<PagePart> {
        match self {
            Answer::Page(p) => Some(p),
            _ => None,
        }
    }

    pub fn into_filtered(self) -> Option<FilteredPart> {
        match self {
            Answer::Filtered(p) => Some(p),
            _ => None,
        }
    }

    pub fn into_stats(self) -> Option<Vec<Option<Stats>>> {
        match self {
            Answer::Stats(s) => Some(s),
            _ => None,
        }
    }
}

fn event_bytes(e: &Event) -> usize {
    e.message.len() + super::events::EVENT_OVERHEAD
}

/// A page of events in time order cut to 1 MB, kept from the end it was read
/// from (the newest when reading backward); answers whether any went.
pub fn cut_page(mut events: Vec<Event>, backward: bool) -> (Vec<Event>, bool) {
    let mut bytes = 0;
    let mut fits = |e: &Event| {
        bytes += event_bytes(e);
        bytes <= MAX_PAGE_BYTES
    };
    let n = if backward {
        events.iter().rev().take_while(|e| fits(e)).count()
    } else {
        events.iter().take_while(|e| fits(e)).count()
    };
    let cut = n < events.len();
    if backward {
        events.drain(..events.len() - n);
    } else {
        events.truncate(n);
    }
    (events, cut)
}

/// The page the servers' parts make together: up to `limit` events from the
/// end read from, never past a part that left events out (its next ones could
/// come first), cut to 1 MB.
pub fn merge_pages(parts: Vec<PagePart>, backward: bool, limit: usize) -> Vec<Event> {
    let bound = parts
        .iter()
        .filter(|p| p.cut)
        .filter_map(|p| {
            if backward {
                p.events.first()
            } else {
                p.events.last()
            }
            .map(|e| e.at)
        })
        .reduce(|a, b| if backward { a.max(b) } else { a.min(b) });
    let mut events: Vec<Event> = parts.into_iter().flat_map(|p| p.events).collect();
    events.sort_by_key(|e| e.at);
    events.retain(|e| match bound {
        Some(b) if backward => e.at >= b,
        Some(b) => e.at <= b,
        None => true,
    });
    if backward {
        events.drain(..events.len().saturating_sub(limit));
    } else {
        events.truncate(limit);
    }
    cut_page(events, backward).0
}

/// A filtered page cut to 1 MB; where the next one starts moves back to its last event.
pub fn cut_filtered(part: FilteredPart) -> FilteredPart {
    let mut bytes = 0;
    let fits = part
        .events
        .iter()
        .take_while(|(_, e)| {
            bytes += event_bytes(e);
            bytes <= MAX_PAGE_BYTES
        })
        .count();
    if fits == part.events.len() {
        return part;
    }
    let mut events = part.events;
    events.truncate(fits);
    let resume = events.last().map(|(_, e)| e.at).or(part.resume);
    FilteredPart { events, resume }
}

/// The filtered page the servers' parts make together: events up to where the
/// first part stopped reading, at most `limit`, cut to 1 MB.
pub fn merge_filtered(parts: Vec<FilteredPart>, limit: usize) -> FilteredPart {
    let mut resume = parts.iter().filter_map(|p| p.resume).min();
    let mut events: Vec<(usize, Event)> = parts.into_iter().flat_map(|p| p.events).collect();
    events.sort_by_key(|(_, e)| e.at);
    if let Some(r) = resume {
        events.retain(|(_, e)| e.at <= r);
    }
    if events.len() > limit {
        events.truncate(limit);
        resume = events.last().map(|(_, e)| e.at);
    }
    cut_filtered(FilteredPart { events, resume })
}

/// A stream's figures over every server's events.
pub fn merge_stats(parts: impl IntoIterator<Item = Option<Stats>>) -> Option<Stats> {
    parts.into_iter().flatten().reduce(|a, b| Stats {
        first_event: a.first_event.min(b.first_event),
        last_event: a.last_event.max(b.last_event),
        last_ingestion: a.last_ingestion.max(b.last_ingestion),
        stored_bytes: a.stored_bytes + b.stored_bytes,
    })
}

/// Whether this store's events of `key` are the stream record's made at `created`
/// (events older than incarnations were kept are taken as theirs).
fn current(events: &LogEvents, key: &str, created: i64) -> Result<bool, String> {
    let held = events.incarnation(key).map_err(|e| e.to_string())?;
    Ok(held.is_none_or(|h| h == created))
}

/// This server's part of the answer.
pub fn answer_here(events: &LogEvents, query: &Query) -> Result<Answer, String> {
    let e = |e: super::event_store::StoreError| e.to_string();
    Ok(match query {
        Query::Page { key, created, .. } if !current(events, key, *created)? => {
            Answer::Page(PagePart::default())
        }
        Query::Page {
            key,
            created: _,
            window,
            from,
            limit,
        } => {
            let page = events
                .page(key, window.0, window.1, *from, *limit)
                .map_err(e)?;
            let backward = matches!(from, From::Tail | From::Before(_));
            let full = page.len() >= *limit;
            let (events, cut) = cut_page(page, backward);
            Answer::Page(PagePart {
                events,
                cut: cut || full,
            })
        }
        Query::Filtered {
            keys,
            window,
            after,
            limit,
            budget,
            pattern,
        } => {
            let pattern = berth_model::logs_filter::parse(pattern).map_err(|e| e.0)?;
            // A stream whose events here are an earlier record's is read as empty (no such key).
            let keys: Vec<String> = keys
                .iter()
                .map(|(k, created)| {
                    Ok(if current(events, k, *created)? {
                        k.clone()
                    } else {
                        String::new()
                    })
                })
                .collect::<Result<_, String>>()?;
            let (found, resume) = events
                .merged(&keys, *window, *after, *limit, *budget, &|m| {
                    pattern.matches(m)
                })
                .map_err(e)?;
            Answer::Filtered(cut_filtered(FilteredPart {
                events: found,
                resume,
            }))
        }
        Query::Stats { keys } => Answer::Stats(
            keys.iter()
                .map(|(k, created)| match current(events, k, *created)? {
                    true => events.stats(k).map_err(e),
                    false => Ok(None),
                })
                .collect::<Result<_, _>>()?,
        ),
    })
}

/// What a sealed request binds: its body.
fn seal_context(body: &[u8]) -> String {
    format!(
        "berth-peer-log-events:{}",
        hex::encode(Sha256::digest(body))
    )
}

/// Whether `sealed` was made for `body` by a server holding this key, within `FRESH_SECS` of `now`.
pub fn authentic(sealer: &crate::sealing::Sealer, sealed: &str, body: &[u8], now: i64) -> bool {
    sealer
        .open(sealed, &seal_context(body))
        .and_then(|at| Some(i64::from_le_bytes(at.as_slice().try_into().ok()?)))
        .is_some_and(|at| (now - at).abs() <= FRESH_SECS)
}

fn now_secs(state: &State) -> i64 {
    state.clock().epoch_secs() as i64
}

/// `POST /_berth/log-events`: this server's part, for another server sharing the store.
pub async fn serve(state: Arc<State>, headers: HeaderMap, body: Bytes) -> Response {
    let sealed = headers
        .get(SEAL)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !authentic(state.sealer(), sealed, &body, now_secs(&state)) {
        return (
            axum::http::StatusCode::FORBIDDEN,
            "not sealed by a server sharing the store",
        )
            .into_response();
    }
    let Ok(query) = serde_json::from_slice::<Query>(&body) else {
        return (
            axum::http::StatusCode::BAD_REQUEST,
            "not a log events query",
        )
            .into_response();
    };
    let events = state.log_events().clone();
    match tokio::task::spawn_blocking(move || answer_here(&events, &query)).await {
        Ok(Ok(answer)) => axum::Json(answer).into_response(),
        Ok(Err(e)) => (axum::http::StatusCode::INTERNAL_SERVER_ERROR, e).into_response(),
        Err(e) => (axum::http::StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

/// The part of the server at `url`.
async fn ask(url: &str, sealed: &str, body: Bytes) -> Result<Answer, String> {
    let (mut sender, host) = crate::peer_http::connect(url, CONNECT_WITHIN).await?;
    let request = hyper::Request::post(PATH)
        .header("host", host)
        .header("content-type", "application/json")
        .header(SEAL, sealed)
        .body(Body::from(body))
        .map_err(|e| e.to_string())?;
    let answered = async {
        let answer = sender
            .send_request(request)
            .await
            .map_err(|e| e.to_string())?;
        let status = answer.status();
        let bytes = Limited::new(answer.into_body(), MAX_ANSWER_BYTES)
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        if !status.is_success() {
            return Err(format!("{status}: {}", String::from_utf8_lossy(&bytes)));
        }
        serde_json::from_slice(&bytes).map_err(|e| e.to_string())
    };
    tokio::time::timeout(ANSWER_WITHIN, answered)
        .await
        .map_err(|_| "no answer in time".to_string())?
}

/// Every listed server's part, this one's first. A server that does not
/// answer fails the read (`ServiceUnavailableException`, which SDKs retry)
/// rather than leaving its events out unsaid; one that stops for good leaves
/// the list when its lease ends.
pub async fn ask_everyone(state: &State, query: Query) -> Result<Vec<Answer>, ApiError> {
    let unavailable = |e: String| ApiError::new(ErrorCode::ServiceUnavailableException, e);
    let others = state.other_server_urls();
    let events = state.log_events().clone();
    let local = {
        let query = query.clone();
        tokio::task::spawn_blocking(move || answer_here(&events, &query))
    };
    let mut parts = vec![];
    if !others.is_empty() {
        let body = Bytes::from(serde_json::to_vec(&query).unwrap_or_default());
        let sealed = state
            .sealer()
            .seal(&now_secs(state).to_le_bytes(), &seal_context(&body));
        let asks = others.iter().map(|url| ask(url, &sealed, body.clone()));
        for (url, answer) in others
            .iter()
            .zip(futures_util::future::join_all(asks).await)
        {
            match answer {
                Ok(a) => parts.push(a),
                Err(e) => {
                    tracing::warn!(url, error = e, "a server's log events could not be read");
                    return Err(unavailable(format!(
                        "The log events held by another server could not be read: {e}"
                    )));
                }
            }
        }
    }
    let here = local
        .await
        .map_err(|e| ApiError::server(e.to_string()))?
        .map_err(ApiError::server)?;
    parts.insert(0, here);
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(timestamp: i64, seq: u64, bytes: usize) -> Event {
        Event {
            at: Position { timestamp, seq },
            ingestion_time: 0,
            message: "x".repeat(bytes),
        }
    }

    /// A server's part of a page of stream "k" (its record made at `created`).
    fn part_of(events: &LogEvents, created: i64, from: From, limit: usize) -> PagePart {
        let query = Query::Page {
            key: "k".into(),
            created,
            window: (None, None),
            from,
            limit,
        };
        answer_here(events, &query).unwrap().into_page().unwrap()
    }

    fn seqs(events: &[Event]) -> Vec<u64> {
        events.iter().map(|e| e.at.seq).collect()
    }

    #[test]
    fn pages_merge_by_position_from_the_end_read() {
        let a = PagePart {
            events: vec![ev(1, 1, 1), ev(3, 3, 1)],
            cut: false,
        };
        let b = PagePart {
            events: vec![ev(2, 2, 1), ev(3, 4, 1)],
            cut: false,
        };
        assert_eq!(
            seqs(&merge_pages(vec![a.clone(), b.clone()], false, 3)),
            [1, 2, 3]
        );
        assert_eq!(seqs(&merge_pages(vec![a, b], true, 3)), [2, 3, 4]);
    }

    #[test]
    fn a_merged_page_never_passes_a_part_that_left_events_out() {
        // b stopped after seq 2: its next event may come before a's 3 and 4.
        let a = PagePart {
            events: vec![ev(1, 1, 1), ev(3, 3, 1), ev(4, 4, 1)],
            cut: false,
        };
        let b = PagePart {
            events: vec![ev(2, 2, 1)],
            cut: true,
        };
        assert_eq!(
            seqs(&merge_pages(vec![a.clone(), b.clone()], false, 10)),
            [1, 2]
        );
        // Backward, a part cut at its first event bounds from below.
        let b = PagePart {
            events: vec![ev(3, 5, 1)],
            cut: true,
        };
        assert_eq!(seqs(&merge_pages(vec![a, b], true, 10)), [5, 4]);
    }

    #[test]
    fn pages_are_cut_to_a_megabyte_from_the_end_read() {
        let big = MAX_PAGE_BYTES / 2;
        let events = vec![ev(1, 1, big), ev(2, 2, big), ev(3, 3, 10)];
        let (forward, cut) = cut_page(events.clone(), false);
        assert_eq!((seqs(&forward), cut), (vec![1], true));
        let (backward, cut) = cut_page(events, true);
        assert_eq!((seqs(&backward), cut), (vec![2, 3], true));
    }

    #[test]
    fn filtered_parts_merge_up_to_where_the_first_stopped_reading() {
        let a = FilteredPart {
            events: vec![(0, ev(1, 1, 1)), (0, ev(5, 5, 1))],
            resume: None,
        };
        let b = FilteredPart {
            events: vec![(1, ev(2, 2, 1))],
            resume: Some(Position {
                timestamp: 3,
                seq: 3,
            }),
        };
        let m = merge_filtered(vec![a.clone(), b.clone()], 10);
        assert_eq!(
            m.events
                .iter()
                .map(|(i, e)| (*i, e.at.seq))
                .collect::<Vec<_>>(),
            [(0, 1), (1, 2)]
        );
        assert_eq!(m.resume.map(|p| p.seq), Some(3));
        // A limit moves where the next page starts back to the last event given.
        let m = merge_filtered(vec![a.clone(), FilteredPart::default()], 1);
        assert_eq!((m.events.len(), m.resume.map(|p| p.seq)), (1, Some(1)));
        // Everything read, nothing left: no resume.
        assert_eq!(merge_filtered(vec![a], 10).resume, None);
    }

    #[test]
    fn stats_span_every_servers_events() {
        let s = |first, last, ingestion, bytes| Stats {
            first_event: first,
            last_event: last,
            last_ingestion: ingestion,
            stored_bytes: bytes,
        };
        assert_eq!(
            merge_stats([Some(s(5, 9, 10, 1)), None, Some(s(2, 7, 12, 3))]),
            Some(s(2, 9, 12, 4))
        );
        assert_eq!(merge_stats([None, None]), None);
    }

    #[test]
    fn only_a_fresh_seal_over_the_same_body_is_authentic() {
        let key = crate::sealing::Sealer::ephemeral();
        let body = br#"{"stats":{"keys":[]}}"#;
        let sealed = key.seal(&1000i64.to_le_bytes(), &seal_context(body));
        assert!(authentic(&key, &sealed, body, 1100));
        assert!(!authentic(&key, &sealed, b"{}", 1100));
        assert!(!authentic(&key, &sealed, body, 1000 + FRESH_SECS + 1));
        assert!(!authentic(
            &crate::sealing::Sealer::ephemeral(),
            &sealed,
            body,
            1100
        ));
        assert!(!authentic(&key, "", body, 1100));
    }

    #[test]
    fn servers_in_their_slots_number_events_apart_and_answer_alike() {
        let (a, b) = (LogEvents::in_memory(), LogEvents::in_memory());
        a.set_slot(1);
        b.set_slot(2);
        a.put("k", &[(10, "a1".into()), (10, "a2".into())], 0)
            .unwrap();
        b.put("k", &[(10, "b1".into())], 0).unwrap();
        let parts = [&a, &b].map(|s| part_of(s, 0, From::Head, 2));
        let page = merge_pages(parts.into(), false, 2);
        let messages: Vec<&str> = page.iter().map(|e| e.message.as_str()).collect();
        assert_eq!(messages, ["a1", "a2"]);
        assert!(page[0].at < page[1].at);
        // The page after it, asked of both with the same token, holds b's event.
        let parts = [&a, &b].map(|s| part_of(s, 0, From::After(page[1].at), 2));
        let next = merge_pages(parts.into(), false, 2);
        assert_eq!(
            next.iter().map(|e| e.message.as_str()).collect::<Vec<_>>(),
            ["b1"]
        );
    }

    #[test]
    fn events_of_an_earlier_record_of_the_name_are_not_the_streams() {
        let s = LogEvents::in_memory();
        s.put_batch("k", &[(1, "old".into())], 0, None, Some(5))
            .unwrap();
        let page = |created| part_of(&s, created, From::Head, 10).events.len();
        assert_eq!((page(5), page(6)), (1, 0));
        let stats = answer_here(
            &s,
            &Query::Stats {
                keys: vec![("k".into(), 6)],
            },
        )
        .unwrap();
        assert_eq!(stats, Answer::Stats(vec![None]));
        // The new record's first events replace the old one's.
        s.put_batch("k", &[(2, "new".into())], 0, None, Some(6))
            .unwrap();
        assert_eq!(page(6), 1);
        assert_eq!(s.stats("k").unwrap().map(|x| x.first_event), Some(2));
    }
}
