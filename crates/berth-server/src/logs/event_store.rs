//! Log events, kept apart from the control plane's store: an embedded redb
//! database (`logs.redb` in the data dir). A batch's events of one
//! millisecond are one row, keyed (stream, timestamp, first sequence), so a
//! stream's events are a range in (timestamp, sequence) order: its newest are
//! read from the range's end and never by a scan, a fast writer's events cost
//! one B-tree insert per millisecond rather than per line, writes are one
//! durable transaction per PutLogEvents, and memory is redb's bounded page
//! cache whatever the volume.
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

/// (stream id, timestamp ms, first sequence) -> a group (see `encode`).
const GROUPS: TableDefinition<(u64, i64, u64), &[u8]> = TableDefinition::new("event-groups");
/// Stream key (`account/region/group:stream`) -> stream id.
const STREAMS: TableDefinition<&str, u64> = TableDefinition::new("streams");
/// Stream id -> (first event ms, last event ms, last ingestion ms, stored bytes).
const STATS: TableDefinition<u64, (i64, i64, i64, u64)> = TableDefinition::new("stats");
/// Stream id -> (writer, the end of its last stored batch): a writer that
/// names its batches (berth's agent: container id and log offset) never has
/// one stored twice, however often it resends.
const WRITERS: TableDefinition<u64, (&str, u64)> = TableDefinition::new("writers");
/// Stream id -> the creation time of the stream record its events belong to:
/// a stream deleted and made again under its name does not show the old
/// one's events, wherever they are held.
const INCARNATIONS: TableDefinition<u64, i64> = TableDefinition::new("incarnations");
/// "next-stream", "next-seq" (this server's counter), "store-id".
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

/// A sequence is a server's slot above this bit and its own counter below:
/// servers sharing a store number events uniquely without asking each other,
/// so a position (and a token made from it) means the same on every server.
const SLOT_SHIFT: u32 = 48;
pub const MAX_SLOT: u64 = (1 << (64 - SLOT_SHIFT)) - 1;

/// redb's page cache: the log store's memory, whatever the volume of events.
const CACHE_BYTES: usize = 64 << 20;

#[derive(Debug, thiserror::Error)]
#[error("log event store: {0}")]
pub struct StoreError(String);

fn err<E: std::fmt::Display>(e: E) -> StoreError {
    StoreError(e.to_string())
}

/// One event's place in its stream: the order GetLogEvents pages in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Position {
    pub timestamp: i64,
    pub seq: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub at: Position,
    pub ingestion_time: i64,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Stats {
    pub first_event: i64,
    pub last_event: i64,
    pub last_ingestion: i64,
    pub stored_bytes: u64,
}

/// Where a page starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum From {
    /// The oldest events in the window.
    Head,
    /// The newest.
    Tail,
    /// The events right after this one (forward).
    After(Position),
    /// The events right before this one (backward).
    Before(Position),
}

/// A stream's id, read in the caller's transaction.
fn stream_id(
    streams: &impl ReadableTable<&'static str, u64>,
    key: &str,
) -> Result<Option<u64>, StoreError> {
    Ok(streams.get(key).map_err(err)?.map(|v| v.value()))
}

impl Stats {
    fn from_row(
        (first_event, last_event, last_ingestion, stored_bytes): (i64, i64, i64, u64),
    ) -> Stats {
        Stats {
            first_event,
            last_event,
            last_ingestion,
            stored_bytes,
        }
    }

    fn row(&self) -> (i64, i64, i64, u64) {
        (
            self.first_event,
            self.last_event,
            self.last_ingestion,
            self.stored_bytes,
        )
    }
}

/// A group's row: ingestion ms (8 bytes), then each message as its length
/// (4 bytes) and its bytes; its events have consecutive sequences.
fn encode(ingestion: i64, messages: &[&str]) -> Vec<u8> {
    let size = 8 + messages.iter().map(|m| 4 + m.len()).sum::<usize>();
    let mut out = Vec::with_capacity(size);
    out.extend_from_slice(&ingestion.to_le_bytes());
    for m in messages {
        out.extend_from_slice(&(m.len() as u32).to_le_bytes());
        out.extend_from_slice(m.as_bytes());
    }
    out
}

/// The events of a group row keyed (_, timestamp, first sequence).
fn decode(timestamp: i64, first_seq: u64, row: &[u8]) -> Vec<Event> {
    let Some((ingestion, mut rest)) = row.split_first_chunk::<8>() else {
        return vec![];
    };
    let ingestion_time = i64::from_le_bytes(*ingestion);
    let mut out = vec![];
    while let Some((len, tail)) = rest.split_first_chunk::<4>() {
        let len = (u32::from_le_bytes(*len) as usize).min(tail.len());
        out.push(Event {
            at: Position {
                timestamp,
                seq: first_seq + out.len() as u64,
            },
            ingestion_time,
            message: String::from_utf8_lossy(&tail[..len]).into_owned(),
        });
        rest = &tail[len..];
    }
    out
}

/// A group row's message bytes, without decoding its messages.
fn group_bytes(row: &[u8]) -> u64 {
    let mut rest = row.get(8..).unwrap_or_default();
    let mut total = 0u64;
    while let Some((len, tail)) = rest.split_first_chunk::<4>() {
        let len = (u32::from_le_bytes(*len) as usize).min(tail.len());
        total += len as u64;
        rest = &tail[len..];
    }
    total
}

type GroupRange<'a> = redb::Range<'a, (u64, i64, u64), &'static [u8]>;

/// A stream's events in order (or reversed), from its group rows.
struct Events<'a> {
    groups: GroupRange<'a>,
    buffered: VecDeque<Event>,
    reverse: bool,
}

impl Events<'_> {
    fn next(&mut self) -> Result<Option<Event>, StoreError> {
        loop {
            let e = if self.reverse {
                self.buffered.pop_back()
            } else {
                self.buffered.pop_front()
            };
            if e.is_some() {
                return Ok(e);
            }
            let item = if self.reverse {
                self.groups.next_back()
            } else {
                self.groups.next()
            };
            let Some(item) = item else { return Ok(None) };
            let (k, v) = item.map_err(err)?;
            let (_, ts, first) = k.value();
            self.buffered = decode(ts, first, v.value()).into();
        }
    }
}

pub struct LogEvents {
    /// Every call shares it; compaction (which needs no transaction open) takes it alone.
    db: std::sync::RwLock<Database>,
    next_seq: AtomicU64,
    /// This server's slot among the servers sharing the store (0 alone).
    slot: AtomicU64,
    /// Made with the file: names this store when it asks for a slot.
    id: u64,
}

impl LogEvents {
    pub fn open(path: &Path) -> Result<LogEvents, StoreError> {
        let db = Database::builder()
            .set_cache_size(CACHE_BYTES)
            .create(path)
            .map_err(err)?;
        Self::from_db(db)
    }

    /// In memory, for tests and a server without a data dir.
    pub fn in_memory() -> LogEvents {
        let db = Database::builder()
            .create_with_backend(redb::backends::InMemoryBackend::new())
            .expect("an in-memory database opens");
        Self::from_db(db).expect("an in-memory database has its tables")
    }

    fn from_db(db: Database) -> Result<LogEvents, StoreError> {
        let w = db.begin_write().map_err(err)?;
        let next = {
            w.open_table(GROUPS).map_err(err)?;
            w.open_table(STREAMS).map_err(err)?;
            w.open_table(STATS).map_err(err)?;
            w.open_table(WRITERS).map_err(err)?;
            w.open_table(INCARNATIONS).map_err(err)?;
            let mut meta = w.open_table(META).map_err(err)?;
            let next = meta.get("next-seq").map_err(err)?.map(|v| v.value());
            let id = meta.get("store-id").map_err(err)?.map(|v| v.value());
            let id = match id {
                Some(id) => id,
                None => {
                    let id = fastrand::u64(1..);
                    meta.insert("store-id", id).map_err(err)?;
                    id
                }
            };
            (next.unwrap_or(0), id)
        };
        w.commit().map_err(err)?;
        let (next, id) = next;
        Ok(LogEvents {
            db: std::sync::RwLock::new(db),
            next_seq: AtomicU64::new(next),
            slot: AtomicU64::new(0),
            id,
        })
    }

    /// What names this store when it asks the shared store for a slot.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The slot its new events' sequences carry (see `SLOT_SHIFT`).
    pub fn set_slot(&self, slot: u64) {
        self.slot.store(slot.min(MAX_SLOT), Ordering::SeqCst);
    }

    fn shared(&self) -> std::sync::RwLockReadGuard<'_, Database> {
        self.db.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Gives the file's free pages back to the file system (after retention
    /// or deletes removed events); calls wait meanwhile.
    pub fn compact(&self) -> Result<bool, StoreError> {
        let mut db = self.db.write().unwrap_or_else(|p| p.into_inner());
        db.compact().map_err(err)
    }

    /// Appends events (timestamp ms, message) to a stream, durably, in one transaction.
    pub fn put(
        &self,
        key: &str,
        events: &[(i64, String)],
        ingestion: i64,
    ) -> Result<(), StoreError> {
        self.put_batch(key, events, ingestion, None, None)
            .map(|_| ())
    }

    /// Like `put`, for a batch a writer names (writer, end): a batch ending
    /// no later than that writer's last stored one is not stored again; and
    /// for the stream record created at `incarnation`: events of an earlier
    /// record of the name go first. Answers whether it was stored.
    pub fn put_batch(
        &self,
        key: &str,
        events: &[(i64, String)],
        ingestion: i64,
        batch: Option<(&str, u64)>,
        incarnation: Option<i64>,
    ) -> Result<bool, StoreError> {
        let w = self.shared().begin_write().map_err(err)?;
        {
            let mut streams = w.open_table(STREAMS).map_err(err)?;
            let mut meta = w.open_table(META).map_err(err)?;
            let existing = streams.get(key).map_err(err)?.map(|v| v.value());
            let id = match existing {
                Some(id) => id,
                None => {
                    let id = meta
                        .get("next-stream")
                        .map_err(err)?
                        .map_or(1, |v| v.value());
                    meta.insert("next-stream", id + 1).map_err(err)?;
                    streams.insert(key, id).map_err(err)?;
                    id
                }
            };
            if let Some(created) = incarnation {
                let mut incarnations = w.open_table(INCARNATIONS).map_err(err)?;
                let held = incarnations.get(id).map_err(err)?.map(|v| v.value());
                if held.is_some_and(|h| h != created) {
                    clear(&w, id)?;
                }
                incarnations.insert(id, created).map_err(err)?;
            }
            if let Some((writer, end)) = batch {
                let mut writers = w.open_table(WRITERS).map_err(err)?;
                let last = writers.get(id).map_err(err)?.map(|v| {
                    let (w, e) = v.value();
                    (w.to_string(), e)
                });
                if last.is_some_and(|(w, e)| w == writer && end <= e) {
                    return Ok(false);
                }
                writers.insert(id, (writer, end)).map_err(err)?;
            }
            let mut groups = w.open_table(GROUPS).map_err(err)?;
            let mut stats_table = w.open_table(STATS).map_err(err)?;
            let mut stats = stats_table
                .get(id)
                .map_err(err)?
                .map(|v| Stats::from_row(v.value()));
            let mut seq = self.next_seq.load(Ordering::SeqCst);
            let slot = self.slot.load(Ordering::SeqCst) << SLOT_SHIFT;
            // Runs of one timestamp become one row each.
            for run in events.chunk_by(|a, b| a.0 == b.0) {
                let ts = run[0].0;
                let messages: Vec<&str> = run.iter().map(|(_, m)| m.as_str()).collect();
                groups
                    .insert(
                        (id, ts, slot | (seq + 1)),
                        encode(ingestion, &messages).as_slice(),
                    )
                    .map_err(err)?;
                seq += run.len() as u64;
                let s = stats.get_or_insert(Stats {
                    first_event: ts,
                    last_event: ts,
                    ..Default::default()
                });
                s.first_event = s.first_event.min(ts);
                s.last_event = s.last_event.max(ts);
                s.last_ingestion = ingestion;
                s.stored_bytes += messages.iter().map(|m| m.len() as u64).sum::<u64>();
            }
            if let Some(s) = stats {
                stats_table.insert(id, s.row()).map_err(err)?;
            }
            meta.insert("next-seq", seq).map_err(err)?;
            self.next_seq.store(seq, Ordering::SeqCst);
        }
        w.commit().map_err(err)?;
        Ok(true)
    }

    /// The creation time of the stream record this store's events of `key` belong to.
    pub fn incarnation(&self, key: &str) -> Result<Option<i64>, StoreError> {
        let r = self.shared().begin_read().map_err(err)?;
        let Some(id) = stream_id(&r.open_table(STREAMS).map_err(err)?, key)? else {
            return Ok(None);
        };
        let t = r.open_table(INCARNATIONS).map_err(err)?;
        Ok(t.get(id).map_err(err)?.map(|v| v.value()))
    }

    pub fn stats(&self, key: &str) -> Result<Option<Stats>, StoreError> {
        let r = self.shared().begin_read().map_err(err)?;
        let Some(id) = stream_id(&r.open_table(STREAMS).map_err(err)?, key)? else {
            return Ok(None);
        };
        let t = r.open_table(STATS).map_err(err)?;
        Ok(t.get(id).map_err(err)?.map(|v| Stats::from_row(v.value())))
    }

    /// Up to `limit` events of the stream with timestamps in [start, end), from
    /// `from`, in time order.
    pub fn page(
        &self,
        key: &str,
        start: Option<i64>,
        end: Option<i64>,
        from: From,
        limit: usize,
    ) -> Result<Vec<Event>, StoreError> {
        let r = self.shared().begin_read().map_err(err)?;
        let Some(id) = stream_id(&r.open_table(STREAMS).map_err(err)?, key)? else {
            return Ok(vec![]);
        };
        let t = r.open_table(GROUPS).map_err(err)?;
        let lo = (id, start.unwrap_or(i64::MIN), 0u64);
        let hi = (id, end.unwrap_or(i64::MAX), 0u64);
        let mut out = vec![];
        match from {
            From::Head | From::After(_) => {
                let lo = match from {
                    // Groups of that millisecond may hold events on either side of it.
                    From::After(p) => lo.max((id, p.timestamp, 0)),
                    _ => lo,
                };
                if lo >= hi {
                    return Ok(out);
                }
                let mut events = Events {
                    groups: t.range(lo..hi).map_err(err)?,
                    buffered: VecDeque::new(),
                    reverse: false,
                };
                while out.len() < limit {
                    let Some(e) = events.next()? else { break };
                    if matches!(from, From::After(p) if e.at <= p) {
                        continue;
                    }
                    out.push(e);
                }
            }
            From::Tail | From::Before(_) => {
                let hi = match from {
                    From::Before(p) => hi.min((id, p.timestamp, p.seq.saturating_add(1))),
                    _ => hi,
                };
                if lo >= hi {
                    return Ok(out);
                }
                let mut events = Events {
                    groups: t.range(lo..hi).map_err(err)?,
                    buffered: VecDeque::new(),
                    reverse: true,
                };
                while out.len() < limit {
                    let Some(e) = events.next()? else { break };
                    if matches!(from, From::Before(p) if e.at >= p) {
                        continue;
                    }
                    out.push(e);
                }
                out.reverse();
            }
        }
        Ok(out)
    }

    /// Events of several streams with timestamps in [start, end), after
    /// `after`, in (timestamp, sequence) order (sequences are unique across
    /// streams, so that order is total): up to `limit` that `keep` accepts,
    /// reading at most `budget` events. Answers (stream index, event) and
    /// where to resume when the page ended before the streams did.
    pub fn merged(
        &self,
        keys: &[String],
        window: (Option<i64>, Option<i64>),
        after: Option<Position>,
        limit: usize,
        budget: usize,
        keep: &dyn Fn(&str) -> bool,
    ) -> Result<Merged, StoreError> {
        let r = self.shared().begin_read().map_err(err)?;
        let names = r.open_table(STREAMS).map_err(err)?;
        let ids: Vec<(usize, u64)> = keys
            .iter()
            .enumerate()
            .filter_map(|(i, k)| {
                stream_id(&names, k)
                    .transpose()
                    .map(|id| id.map(|id| (i, id)))
            })
            .collect::<Result<_, _>>()?;
        let t = r.open_table(GROUPS).map_err(err)?;
        let (start, end) = (window.0.unwrap_or(i64::MIN), window.1.unwrap_or(i64::MAX));
        let mut streams = vec![];
        for (i, id) in ids {
            let mut lo = (id, start, 0u64);
            if let Some(p) = after {
                lo = lo.max((id, p.timestamp, 0));
            }
            let hi = (id, end, 0u64);
            if lo < hi {
                let events = Events {
                    groups: t.range(lo..hi).map_err(err)?,
                    buffered: VecDeque::new(),
                    reverse: false,
                };
                streams.push((i, events));
            }
        }
        let mut heads: std::collections::BinaryHeap<Head> = Default::default();
        let mut pending: Vec<Option<Event>> = vec![None; streams.len()];
        for slot in 0..streams.len() {
            advance(slot, &mut streams, &mut pending, &mut heads, after)?;
        }
        let mut out = vec![];
        let mut read = 0;
        let mut last = None;
        while let Some(std::cmp::Reverse((timestamp, seq, slot))) = heads.pop() {
            if out.len() == limit || read == budget {
                return Ok((out, last));
            }
            read += 1;
            last = Some(Position { timestamp, seq });
            if let Some(e) = pending[slot].take() {
                if keep(&e.message) {
                    out.push((streams[slot].0, e));
                }
            }
            advance(slot, &mut streams, &mut pending, &mut heads, after)?;
        }
        Ok((out, None))
    }

    /// Removes a stream's events older than `before` ms (retention) and
    /// answers how many went.
    pub fn expire(&self, key: &str, before: i64) -> Result<u64, StoreError> {
        let w = self.shared().begin_write().map_err(err)?;
        let Some(id) = stream_id(&w.open_table(STREAMS).map_err(err)?, key)? else {
            return Ok(0);
        };
        let mut removed = 0u64;
        {
            let mut groups = w.open_table(GROUPS).map_err(err)?;
            let mut freed = 0u64;
            let mut rows = 0u64;
            // A group's events share one timestamp: a group goes whole.
            groups
                .retain_in((id, i64::MIN, 0)..(id, before, 0), |k, v| {
                    let (_, ts, first) = k;
                    removed += decode(ts, first, v).len() as u64;
                    freed += group_bytes(v);
                    rows += 1;
                    false
                })
                .map_err(err)?;
            if rows > 0 {
                let first = groups
                    .range((id, before, 0)..=(id, i64::MAX, u64::MAX))
                    .map_err(err)?
                    .next()
                    .transpose()
                    .map_err(err)?
                    .map(|(k, _)| k.value().1);
                let mut stats = w.open_table(STATS).map_err(err)?;
                let old = stats
                    .get(id)
                    .map_err(err)?
                    .map(|v| Stats::from_row(v.value()));
                if let Some(old) = old {
                    let kept = Stats {
                        first_event: first.unwrap_or(old.last_event),
                        stored_bytes: old.stored_bytes.saturating_sub(freed),
                        ..old
                    };
                    stats.insert(id, kept.row()).map_err(err)?;
                }
            }
        }
        w.commit().map_err(err)?;
        Ok(removed)
    }

    /// Every stream this store holds events of, by key.
    /// Every stream held here with the creation time of the stream record its events
    /// belong to (None for events from before incarnations were kept), read in one
    /// transaction.
    pub fn stream_incarnations(&self) -> Result<Vec<(String, Option<i64>)>, StoreError> {
        let r = self.shared().begin_read().map_err(err)?;
        let streams = r.open_table(STREAMS).map_err(err)?;
        let incarnations = r.open_table(INCARNATIONS).map_err(err)?;
        let mut out = vec![];
        for row in streams.iter().map_err(err)? {
            let (key, id) = row.map_err(err)?;
            let at = incarnations
                .get(id.value())
                .map_err(err)?
                .map(|v| v.value());
            out.push((key.value().to_string(), at));
        }
        Ok(out)
    }

    /// Removes a stream's events (DeleteLogStream, DeleteLogGroup).
    pub fn delete_stream(&self, key: &str) -> Result<(), StoreError> {
        let w = self.shared().begin_write().map_err(err)?;
        let Some(id) = stream_id(&w.open_table(STREAMS).map_err(err)?, key)? else {
            return Ok(());
        };
        clear(&w, id)?;
        w.open_table(INCARNATIONS)
            .map_err(err)?
            .remove(id)
            .map_err(err)?;
        w.open_table(STREAMS)
            .map_err(err)?
            .remove(key)
            .map_err(err)?;
        w.commit().map_err(err)
    }
}

/// Removes a stream's events, figures and writers, in the caller's transaction.
fn clear(w: &redb::WriteTransaction, id: u64) -> Result<(), StoreError> {
    let mut groups = w.open_table(GROUPS).map_err(err)?;
    groups
        .retain_in((id, i64::MIN, 0)..=(id, i64::MAX, u64::MAX), |_, _| false)
        .map_err(err)?;
    w.open_table(STATS).map_err(err)?.remove(id).map_err(err)?;
    w.open_table(WRITERS)
        .map_err(err)?
        .remove(id)
        .map_err(err)?;
    Ok(())
}

/// A merged page: (stream index, event), and where the next page starts.
pub type Merged = (Vec<(usize, Event)>, Option<Position>);

/// A min-heap entry: the next event of one stream (timestamp, sequence, slot).
type Head = std::cmp::Reverse<(i64, u64, usize)>;

/// The next event of a stream after `after`, kept aside, and its place in the heap.
fn advance(
    slot: usize,
    streams: &mut [(usize, Events<'_>)],
    pending: &mut [Option<Event>],
    heads: &mut std::collections::BinaryHeap<Head>,
    after: Option<Position>,
) -> Result<(), StoreError> {
    while let Some(e) = streams[slot].1.next()? {
        if after.is_some_and(|p| e.at <= p) {
            continue;
        }
        heads.push(std::cmp::Reverse((e.at.timestamp, e.at.seq, slot)));
        pending[slot] = Some(e);
        break;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filled(n: i64) -> LogEvents {
        let s = LogEvents::in_memory();
        let events: Vec<(i64, String)> = (0..n).map(|i| (1000 + i, format!("line {i}"))).collect();
        s.put("a/r/g:s", &events, 5000).unwrap();
        s.put("a/r/g:other", &[(1, "x".into())], 5000).unwrap();
        s
    }

    fn messages(events: &[Event]) -> Vec<&str> {
        events.iter().map(|e| e.message.as_str()).collect()
    }

    #[test]
    fn pages_read_from_either_end_and_continue_both_ways() {
        let s = filled(10);
        let tail = s.page("a/r/g:s", None, None, From::Tail, 3).unwrap();
        assert_eq!(messages(&tail), ["line 7", "line 8", "line 9"]);
        let before = s
            .page("a/r/g:s", None, None, From::Before(tail[0].at), 3)
            .unwrap();
        assert_eq!(messages(&before), ["line 4", "line 5", "line 6"]);
        let after = s
            .page("a/r/g:s", None, None, From::After(before[2].at), 2)
            .unwrap();
        assert_eq!(messages(&after), ["line 7", "line 8"]);
        let head = s.page("a/r/g:s", None, None, From::Head, 2).unwrap();
        assert_eq!(messages(&head), ["line 0", "line 1"]);
        assert!(s
            .page("a/r/g:s", None, None, From::After(tail[2].at), 5)
            .unwrap()
            .is_empty());
        // A time window bounds every direction; other streams never mix in.
        let window = s
            .page("a/r/g:s", Some(1002), Some(1005), From::Head, 100)
            .unwrap();
        assert_eq!(messages(&window), ["line 2", "line 3", "line 4"]);
        assert!(s
            .page("a/r/g:none", None, None, From::Head, 5)
            .unwrap()
            .is_empty());
    }

    #[test]
    fn every_stream_is_listed_with_its_incarnation_in_one_read() {
        let s = filled(2);
        s.put_batch("a/r/g:new", &[(5, "n".into())], 6, None, Some(77))
            .unwrap();
        let mut listed = s.stream_incarnations().unwrap();
        listed.sort();
        assert_eq!(
            listed,
            vec![
                ("a/r/g:new".to_string(), Some(77)),
                ("a/r/g:other".to_string(), None),
                ("a/r/g:s".to_string(), None),
            ]
        );
        assert_eq!(s.incarnation("a/r/g:new").unwrap(), Some(77));
    }

    #[test]
    fn stats_follow_the_events_and_a_deleted_stream_is_empty() {
        let s = filled(3);
        let st = s.stats("a/r/g:s").unwrap().unwrap();
        assert_eq!(
            (st.first_event, st.last_event, st.last_ingestion),
            (1000, 1002, 5000)
        );
        assert_eq!(st.stored_bytes, 18);
        s.delete_stream("a/r/g:s").unwrap();
        assert_eq!(s.stats("a/r/g:s").unwrap(), None);
        assert!(s
            .page("a/r/g:s", None, None, From::Head, 5)
            .unwrap()
            .is_empty());
        assert_eq!(
            s.page("a/r/g:other", None, None, From::Head, 5)
                .unwrap()
                .len(),
            1
        );
    }

    #[test]
    fn merged_pages_interleave_streams_in_time_order_and_resume() {
        let s = LogEvents::in_memory();
        s.put("a", &[(1, "a1".into()), (4, "a4".into())], 9)
            .unwrap();
        s.put("b", &[(2, "b2".into()), (3, "b3 skip".into())], 9)
            .unwrap();
        let keys = ["a".to_string(), "b".to_string(), "none".to_string()];
        let all = |_: &str| true;
        let (page, next) = s.merged(&keys, (None, None), None, 2, 100, &all).unwrap();
        let names: Vec<(usize, &str)> =
            page.iter().map(|(i, e)| (*i, e.message.as_str())).collect();
        assert_eq!(names, [(0, "a1"), (1, "b2")]);
        let (rest, end) = s.merged(&keys, (None, None), next, 10, 100, &all).unwrap();
        let names: Vec<&str> = rest.iter().map(|(_, e)| e.message.as_str()).collect();
        assert_eq!((names, end), (vec!["b3 skip", "a4"], None));
        // A filter that skips events, and a read budget that ends the page early.
        let no_skip = |m: &str| !m.contains("skip");
        let (page, next) = s
            .merged(&keys, (None, None), None, 10, 3, &no_skip)
            .unwrap();
        let names: Vec<&str> = page.iter().map(|(_, e)| e.message.as_str()).collect();
        assert_eq!(names, ["a1", "b2"]);
        let (page, end) = s
            .merged(&keys, (None, None), next, 10, 3, &no_skip)
            .unwrap();
        assert_eq!((page.len(), end), (1, None));
        let (window, _) = s
            .merged(&keys, (Some(2), Some(4)), None, 10, 100, &all)
            .unwrap();
        assert_eq!(window.len(), 2);
    }

    #[test]
    fn expiry_removes_old_events_and_their_bytes() {
        let s = filled(10);
        assert_eq!(s.expire("a/r/g:s", 1004).unwrap(), 4);
        let left = s.page("a/r/g:s", None, None, From::Head, 100).unwrap();
        assert_eq!(left.first().map(|e| e.message.as_str()), Some("line 4"));
        assert_eq!(left.len(), 6);
        let st = s.stats("a/r/g:s").unwrap().unwrap();
        assert_eq!((st.first_event, st.stored_bytes), (1004, 36));
        assert_eq!(s.expire("a/r/g:s", 1004).unwrap(), 0);
    }

    #[test]
    fn a_named_batch_is_stored_once() {
        let s = LogEvents::in_memory();
        let one = [(1, "a".to_string()), (2, "b".to_string())];
        assert!(s.put_batch("k", &one, 5, Some(("c1", 100)), None).unwrap());
        // Resent (its answer was lost, or the agent restarted): not stored again.
        assert!(!s.put_batch("k", &one, 6, Some(("c1", 100)), None).unwrap());
        assert!(s
            .put_batch("k", &[(3, "c".into())], 7, Some(("c1", 150)), None)
            .unwrap());
        // Another writer's batches are its own.
        assert!(s
            .put_batch("k", &[(4, "d".into())], 7, Some(("c2", 10)), None)
            .unwrap());
        let all = s.page("k", None, None, From::Head, 10).unwrap();
        assert_eq!(messages(&all), ["a", "b", "c", "d"]);
    }

    #[test]
    fn events_of_one_millisecond_page_one_at_a_time_across_batches() {
        let s = LogEvents::in_memory();
        let same = |from: usize, n: usize| -> Vec<(i64, String)> {
            (from..from + n).map(|i| (7, format!("e{i}"))).collect()
        };
        s.put("k", &same(0, 3), 1).unwrap();
        s.put("k", &[(5, "early".into()), (9, "late".into())], 2)
            .unwrap();
        s.put("k", &same(3, 3), 3).unwrap();
        let all = s.page("k", None, None, From::Head, 100).unwrap();
        assert_eq!(
            messages(&all),
            ["early", "e0", "e1", "e2", "e3", "e4", "e5", "late"]
        );
        assert!(all.windows(2).all(|w| w[0].at < w[1].at));
        // Pages of two, either way, split groups and lose nothing.
        let mut forward = vec![];
        let mut page = s.page("k", None, None, From::Head, 2).unwrap();
        while let Some(last) = page.last().map(|e| e.at) {
            forward.extend(page.iter().map(|e| e.message.clone()));
            page = s.page("k", None, None, From::After(last), 2).unwrap();
        }
        assert_eq!(forward, messages(&all));
        let mut backward = vec![];
        let mut page = s.page("k", None, None, From::Tail, 2).unwrap();
        while let Some(first) = page.first().map(|e| e.at) {
            let mut m: Vec<String> = page.iter().map(|e| e.message.clone()).collect();
            m.extend(backward);
            backward = m;
            page = s.page("k", None, None, From::Before(first), 2).unwrap();
        }
        assert_eq!(backward, messages(&all));
        // Filtering across the same groups resumes inside one.
        let keys = ["k".to_string()];
        let all_of = |_: &str| true;
        let (first, next) = s
            .merged(&keys, (None, None), None, 3, 100, &all_of)
            .unwrap();
        let (rest, _) = s
            .merged(&keys, (None, None), next, 100, 100, &all_of)
            .unwrap();
        let walked: Vec<&str> = first
            .iter()
            .chain(rest.iter())
            .map(|(_, e)| e.message.as_str())
            .collect();
        assert_eq!(walked, messages(&all));
        assert_eq!(s.expire("k", 8).unwrap(), 7);
        assert_eq!(
            messages(&s.page("k", None, None, From::Head, 10).unwrap()),
            ["late"]
        );
    }

    #[test]
    fn expired_events_give_their_space_back_to_the_file_system() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("logs.redb");
        let s = LogEvents::open(&path).unwrap();
        let line = "x".repeat(200);
        for b in 0..20 {
            let events: Vec<(i64, String)> =
                (0..2000).map(|i| (b * 2000 + i, line.clone())).collect();
            s.put("k", &events, 1).unwrap();
        }
        s.put("k", &[(1_000_000, "kept".into())], 2).unwrap();
        let full = std::fs::metadata(&path).unwrap().len();
        assert_eq!(s.expire("k", 1_000_000).unwrap(), 40_000);
        while s.compact().unwrap() {}
        let compacted = std::fs::metadata(&path).unwrap().len();
        assert!(
            compacted * 2 < full,
            "{full} bytes before, {compacted} after"
        );
        assert_eq!(
            messages(&s.page("k", None, None, From::Head, 10).unwrap()),
            ["kept"]
        );
    }

    #[test]
    fn events_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("logs.redb");
        {
            let s = LogEvents::open(&path).unwrap();
            s.put("k", &[(1, "one".into()), (2, "two".into())], 3)
                .unwrap();
        }
        let s = LogEvents::open(&path).unwrap();
        s.put("k", &[(3, "three".into())], 4).unwrap();
        let all = s.page("k", None, None, From::Head, 10).unwrap();
        assert_eq!(messages(&all), ["one", "two", "three"]);
        assert!(all.windows(2).all(|w| w[0].at < w[1].at));
    }
}
