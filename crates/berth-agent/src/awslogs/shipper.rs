//! Ships a container's json-file log to the server's Logs API: one worker
//! per container reads the file from the position last acknowledged, joins
//! lines into events, sends PutLogEvents batches as the task's execution role
//! (or the host, for a task without one) and records each acknowledged end.
//! A server that is down is retried with backoff; in non-blocking mode the
//! reader keeps going meanwhile and drops what its buffer cannot hold.
use super::batch::{batch_until, next_batch, Batch};
use super::json_file;
use super::multiline::{Event, Joiner, Splitter};
use super::options::{Awslogs, Mode};
use super::positions::{Position, Positions};
use crate::client::{ApiClient, ClientError};
use crate::engine::{Engine, Phase};
use crate::task_endpoint::Endpoints;
use berth_api::logs::{
    CreateLogGroupRequest, CreateLogStreamRequest, PutLogEventsResponse, TARGET_PREFIX,
};
use std::collections::{HashMap, VecDeque};
use std::io::{Read, Seek, SeekFrom};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// How often an idle worker looks for new lines.
const IDLE_POLL: Duration = Duration::from_millis(50);
/// How often an idle worker asks whether its container has exited.
const STATE_CHECK: Duration = Duration::from_secs(1);
/// Bytes read from the log per pass.
const READ_CHUNK: usize = 256 << 10;
/// In blocking mode the file on disk is the buffer: reading pauses past this
/// (two batches: one in flight, the next read meanwhile).
const BLOCKING_QUEUE: usize = 2 << 20;
/// A multi-line event waits this long for more lines (Docker's force flush).
const MULTILINE_FLUSH_MS: i64 = 5_000;
/// A batch is retried for at most this long, then dropped and counted.
const GIVE_UP_AFTER: Duration = Duration::from_secs(6 * 3600);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Whose key a task's log events are sent with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    /// The host's own key (a container instance, as ECS uses the instance role).
    Host,
    ExecutionRole {
        task_arn: String,
    },
}

/// One container's destination.
#[derive(Debug, Clone)]
pub struct Target {
    pub options: Awslogs,
    pub stream: String,
    pub identity: Identity,
}

/// What every worker of this agent shares.
pub struct Shipping {
    pub client: ApiClient,
    /// A fleet host has no key that acts for an account.
    pub fleet: bool,
    pub endpoints: Arc<Endpoints>,
    pub engine: Arc<dyn Engine>,
    pub positions: Positions,
    /// Events dropped (non-blocking buffer full, or refused by the server).
    pub dropped: AtomicU64,
    /// Containers with a worker, and whether to ship again once it ends.
    running: Mutex<HashMap<String, bool>>,
}

/// How a call failed: worth trying again, or not.
enum Failure {
    Retry(String),
    Credentials(String),
    /// The stream is gone (deleted by hand): made again, then retried.
    NoStream(String),
    Drop(String),
}

fn classify(e: ClientError) -> Failure {
    match e {
        ClientError::Transport { .. } | ClientError::Decode(_) => Failure::Retry(e.to_string()),
        ClientError::Api { ref code, .. } => match code.as_str() {
            "ThrottlingException"
            | "ServiceUnavailableException"
            | "ServerException"
            | "InternalFailure" => Failure::Retry(e.to_string()),
            "ExpiredTokenException"
            | "UnrecognizedClientException"
            | "InvalidSignatureException" => Failure::Credentials(e.to_string()),
            "ResourceNotFoundException" => Failure::NoStream(e.to_string()),
            _ => Failure::Drop(e.to_string()),
        },
    }
}

impl Shipping {
    pub fn new(
        client: ApiClient,
        fleet: bool,
        endpoints: Arc<Endpoints>,
        engine: Arc<dyn Engine>,
        data_dir: &std::path::Path,
    ) -> Shipping {
        Shipping {
            client,
            fleet,
            endpoints,
            engine,
            positions: Positions::new(data_dir),
            dropped: AtomicU64::new(0),
            running: Default::default(),
        }
    }

    /// A client signing as `identity` in `region`, and when its session ends.
    async fn client_for(
        &self,
        identity: &Identity,
        region: &str,
    ) -> Result<(ApiClient, Option<i64>), String> {
        match identity {
            Identity::Host if self.fleet => {
                Err("a task on the shared fleet needs an execution role to send logs".into())
            }
            Identity::Host => Ok((self.client.in_region(region), None)),
            Identity::ExecutionRole { task_arn } => {
                let c = self.endpoints.execution_credentials(task_arn).await?;
                Ok((self.client.as_role(&c, region), Some(c.expiration)))
            }
        }
    }

    /// Makes the group (with `awslogs-create-group`) and the stream before the
    /// container starts; a missing group is refused in ECS's words.
    pub async fn prepare(&self, target: &Target) -> Result<(), String> {
        let (client, _) = self
            .client_for(&target.identity, &target.options.region)
            .await?;
        let group = &target.options.group;
        if target.options.create_group {
            let group = CreateLogGroupRequest {
                log_group_name: Some(group.clone()),
                ..Default::default()
            };
            create_unless_there(&client, "CreateLogGroup", &group)
                .await
                .map_err(|e| {
                    format!("failed to validate logger args: failed to create Cloudwatch log group: {e}")
                })?;
        }
        create_stream(&client, group, &target.stream).await
    }

    /// Starts shipping a container's log unless a worker already does.
    pub fn ship(self: &Arc<Self>, container_id: &str, target: Target) {
        {
            let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(again) = running.get_mut(container_id) {
                // A worker that has seen its container exit ends once drained:
                // a container started again is followed by another run.
                *again = true;
                return;
            }
            running.insert(container_id.to_string(), false);
        }
        let me = self.clone();
        let id = container_id.to_string();
        tokio::spawn(async move {
            loop {
                if let Err(e) = me.run(&id, &target).await {
                    tracing::warn!(container = %id, stream = %target.stream, error = %e, "log shipping stopped");
                }
                let mut running = me.running.lock().unwrap_or_else(|p| p.into_inner());
                match running.get_mut(&id) {
                    Some(again) if *again => *again = false,
                    _ => {
                        running.remove(&id);
                        return;
                    }
                }
            }
        });
    }

    async fn run(&self, id: &str, target: &Target) -> Result<(), String> {
        let mut sender = Sender {
            shipping: self,
            target,
            client: None,
        };
        let mut pos = self.positions.load(id);
        // The batch in flight when the agent stopped is cut again at the same end.
        let mut cut_at = pos.inflight_end;
        let path = self.log_path(id).await?;
        let mut file =
            std::fs::File::open(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        file.seek(SeekFrom::Start(pos.acked))
            .map_err(|e| e.to_string())?;
        let splitter = Splitter::new(&target.options.multiline)?;
        let mut intake = Intake {
            file,
            log: LogReader {
                offset: pos.acked,
                pending: vec![],
                entries: json_file::Reader::default(),
                joiner: Joiner::new(splitter),
                chunk: vec![],
            },
            queue: VecDeque::new(),
            queued_bytes: 0,
            mode: target.options.mode.clone(),
            dropped: &self.dropped,
        };
        let mut exited = false;
        let mut last_check = Instant::now();
        let mut retry: Option<(Batch, Instant, Duration)> = None;
        loop {
            let read = intake.fill(exited)?;
            // Send the batch due (a retry waits out its backoff).
            let due = match &retry {
                Some((_, at, _)) => Instant::now() >= *at,
                None => !intake.queue.is_empty(),
            };
            if due {
                let (batch, first_try, backoff) = match retry.take() {
                    Some((b, started, backoff)) => (b, started, backoff),
                    None => {
                        let b = match cut_at.take() {
                            Some(end) => batch_until(&mut intake.queue, end),
                            None => next_batch(&mut intake.queue),
                        };
                        intake.queued_bytes = intake.queued_bytes.saturating_sub(b.bytes);
                        (b, Instant::now(), Duration::from_millis(100))
                    }
                };
                // The next batch is read while this one travels and is stored.
                let (sent, more) = tokio::join!(sender.send(&batch, &mut pos, id), async {
                    intake.fill_batch(exited)
                });
                more?;
                match sent {
                    Ok(()) => {}
                    Err(e) if first_try.elapsed() > GIVE_UP_AFTER => {
                        self.give_up(id, &batch, &mut pos, &e);
                    }
                    Err(e) => {
                        tracing::debug!(container = %id, error = %e, "log batch not delivered; retrying");
                        retry = Some((
                            batch,
                            Instant::now() + backoff,
                            (backoff * 2).min(MAX_BACKOFF),
                        ));
                    }
                }
                continue;
            }
            if read > 0 {
                continue;
            }
            if exited
                && retry.is_none()
                && intake.queue.is_empty()
                && intake.log.joiner.pending_since().is_none()
            {
                return Ok(());
            }
            if !exited && last_check.elapsed() >= STATE_CHECK {
                last_check = Instant::now();
                // Docker writes a container's last lines before it says it exited.
                exited = match self.engine.inspect(id).await {
                    Ok(o) => o.phase == Phase::Exited,
                    Err(_) => true,
                };
                if exited {
                    continue;
                }
            }
            tokio::time::sleep(IDLE_POLL).await;
        }
    }

    fn give_up(&self, id: &str, batch: &Batch, pos: &mut Position, e: &str) {
        self.dropped
            .fetch_add(batch.events.len() as u64, Ordering::Relaxed);
        tracing::warn!(container = %id, events = batch.events.len(), error = %e, "log events dropped");
        pos.inflight_end = None;
        pos.acked = pos.acked.max(batch.end().unwrap_or(0));
        self.save(id, pos);
    }

    fn save(&self, id: &str, pos: &Position) {
        if let Err(e) = self.positions.save(id, pos) {
            tracing::warn!(container = %id, error = %e, "log position not saved");
        }
    }

    /// The json-file Docker keeps for the container (it may take a moment to appear).
    async fn log_path(&self, id: &str) -> Result<std::path::PathBuf, String> {
        for _ in 0..50 {
            if let Some(p) = self.engine.log_path(id).await {
                if p.exists() {
                    return Ok(p);
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(format!("container {id} has no json-file log"))
    }
}

/// Calls a Logs create operation; one that finds its resource already there succeeds.
async fn create_unless_there<R: serde::Serialize>(
    client: &ApiClient,
    operation: &str,
    request: &R,
) -> Result<(), ClientError> {
    let made: Result<serde_json::Value, _> = client
        .call_service("logs", TARGET_PREFIX, operation, request, CALL_TIMEOUT)
        .await;
    match made {
        Err(ClientError::Api { code, .. }) if code == "ResourceAlreadyExistsException" => Ok(()),
        other => other.map(|_| ()),
    }
}

async fn create_stream(client: &ApiClient, group: &str, stream: &str) -> Result<(), String> {
    let request = CreateLogStreamRequest {
        log_group_name: Some(group.to_string()),
        log_stream_name: Some(stream.to_string()),
    };
    match create_unless_there(client, "CreateLogStream", &request).await {
        Ok(()) => Ok(()),
        Err(ClientError::Api { code, message }) => Err(format!(
            "failed to validate logger args: create stream has been retried 1 times: failed to create Cloudwatch log stream: {code}: {message}"
        )),
        Err(e) => Err(format!(
            "failed to validate logger args: failed to create Cloudwatch log stream: {e}"
        )),
    }
}

fn now_ms() -> i64 {
    (crate::client::now() * 1000.0) as i64
}

/// The log file read into events, from a byte offset.
struct LogReader {
    offset: u64,
    /// Bytes of a line not yet ended.
    pending: Vec<u8>,
    entries: json_file::Reader,
    joiner: Joiner,
    chunk: Vec<u8>,
}

impl LogReader {
    /// Reads up to `max` bytes; complete lines become events. Answers the bytes read.
    fn read(
        &mut self,
        file: &mut std::fs::File,
        max: usize,
        out: &mut Vec<Event>,
    ) -> Result<usize, String> {
        // One buffer for every read: the agent's memory stays flat while it ships.
        let mut chunk = std::mem::take(&mut self.chunk);
        chunk.resize(max, 0);
        let n = file.read(&mut chunk).map_err(|e| e.to_string())?;
        chunk.truncate(n);
        let mut start = 0;
        for (i, b) in chunk.iter().enumerate() {
            if *b != b'\n' {
                continue;
            }
            let end = self.offset + (i + 1) as u64;
            let raw: &[u8] = if self.pending.is_empty() {
                &chunk[start..i]
            } else {
                self.pending.extend_from_slice(&chunk[start..i]);
                &self.pending
            };
            match self.entries.entry(raw, end) {
                Ok(Some(line)) => self.joiner.push(line, out),
                Ok(None) => {}
                Err(e) => tracing::debug!(error = %e, "unreadable json-file entry skipped"),
            }
            self.pending.clear();
            start = i + 1;
        }
        // A line's start waits for its end; offsets stay those of the file.
        self.pending.extend_from_slice(&chunk[start..]);
        self.offset += n as u64;
        self.chunk = chunk;
        Ok(n)
    }
}

/// The log read into a queue of events, as far as the mode's buffer allows.
struct Intake<'a> {
    file: std::fs::File,
    log: LogReader,
    queue: VecDeque<Event>,
    queued_bytes: usize,
    mode: Mode,
    dropped: &'a AtomicU64,
}

impl Intake<'_> {
    /// One read of what the container wrote; answers the bytes read.
    fn fill(&mut self, exited: bool) -> Result<usize, String> {
        let room = match self.mode {
            Mode::Blocking => BLOCKING_QUEUE.saturating_sub(self.queued_bytes),
            Mode::NonBlocking { .. } => READ_CHUNK,
        };
        let mut fresh = vec![];
        let read = if room > 0 {
            self.log
                .read(&mut self.file, room.min(READ_CHUNK), &mut fresh)?
        } else {
            0
        };
        if let Some(since) = self.log.joiner.pending_since() {
            if exited || now_ms() - since > MULTILINE_FLUSH_MS {
                fresh.extend(self.log.joiner.flush());
            }
        }
        let mut dropped = 0u64;
        for e in fresh {
            let size = e.message.len() + super::batch::EVENT_OVERHEAD;
            if let Mode::NonBlocking { max_buffer } = self.mode {
                if self.queued_bytes + size > max_buffer {
                    dropped += 1;
                    continue;
                }
            }
            self.queued_bytes += size;
            self.queue.push_back(e);
        }
        if dropped > 0 {
            let total = self.dropped.fetch_add(dropped, Ordering::Relaxed) + dropped;
            tracing::warn!(
                dropped,
                total,
                "non-blocking log buffer full (max-buffer-size): lines dropped"
            );
        }
        Ok(read)
    }

    /// Reads until a whole batch waits or nothing more is there.
    fn fill_batch(&mut self, exited: bool) -> Result<(), String> {
        while self.queue.len() < super::batch::MAX_BATCH_EVENTS
            && self.queued_bytes < super::batch::MAX_BATCH_BYTES
        {
            if self.fill(exited)? == 0 {
                break;
            }
        }
        Ok(())
    }
}

/// PutLogEventsRequest's members, borrowed.
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct Put<'a> {
    log_group_name: &'a str,
    log_stream_name: &'a str,
    log_events: Vec<PutEvent<'a>>,
    sequence_token: &'a str,
}

#[derive(serde::Serialize)]
struct PutEvent<'a> {
    timestamp: i64,
    message: &'a str,
}

/// Sends batches as the target's identity, renewing its session when due.
struct Sender<'a> {
    shipping: &'a Shipping,
    target: &'a Target,
    client: Option<(ApiClient, Option<i64>)>,
}

impl Sender<'_> {
    async fn client(&mut self) -> Result<ApiClient, String> {
        let now = crate::client::now() as i64;
        let stale = match &self.client {
            None => true,
            // Renewed five minutes before the session ends.
            Some((_, Some(expires))) => *expires - now < 300,
            Some((_, None)) => false,
        };
        if stale {
            self.client = Some(
                self.shipping
                    .client_for(&self.target.identity, &self.target.options.region)
                    .await?,
            );
        }
        Ok(self
            .client
            .as_ref()
            .expect("a client was just made")
            .0
            .clone())
    }

    /// Sends one batch; on success (or a refusal that retrying cannot fix)
    /// its end is recorded as acknowledged.
    async fn send(&mut self, batch: &Batch, pos: &mut Position, id: &str) -> Result<(), String> {
        let mut events: Vec<&Event> = batch.events.iter().collect();
        events.sort_by_key(|e| e.time_ms);
        if events.is_empty() {
            return Ok(());
        }
        let end = batch.end().unwrap_or(pos.acked);
        if pos.inflight_end != Some(end) {
            pos.inflight_end = Some(end);
            self.shipping.save(id, pos);
        }
        // Borrowed from the batch: PutLogEvents' shape, without copying messages.
        let token = format!("berth:{id}:{end}");
        let request = Put {
            log_group_name: &self.target.options.group,
            log_stream_name: &self.target.stream,
            log_events: events
                .iter()
                .map(|e| PutEvent {
                    timestamp: e.time_ms,
                    message: &e.message,
                })
                .collect(),
            // Names the batch, so the server stores it once however often it comes.
            sequence_token: &token,
        };
        let client = self.client().await?;
        let sent: Result<PutLogEventsResponse, _> = client
            .call_service(
                "logs",
                TARGET_PREFIX,
                "PutLogEvents",
                &request,
                CALL_TIMEOUT,
            )
            .await;
        let outcome = match sent {
            Ok(r) => {
                if r.rejected_log_events_info.is_some() {
                    tracing::warn!(container = %id, "Logs rejected events of a batch (too old or too new)");
                }
                Ok(())
            }
            Err(ClientError::Api { code, .. }) if code == "DataAlreadyAcceptedException" => Ok(()),
            Err(e) => match classify(e) {
                Failure::Retry(m) => Err(m),
                Failure::Credentials(m) => {
                    self.client = None;
                    Err(m)
                }
                Failure::NoStream(m) => {
                    create_stream(&client, &self.target.options.group, &self.target.stream)
                        .await
                        .map_err(|e| format!("{m}; {e}"))?;
                    Err(m)
                }
                Failure::Drop(m) => {
                    self.shipping
                        .dropped
                        .fetch_add(batch.events.len() as u64, Ordering::Relaxed);
                    tracing::warn!(container = %id, error = %m, "log events refused and dropped");
                    Ok(())
                }
            },
        };
        if outcome.is_ok() {
            pos.inflight_end = None;
            pos.acked = pos.acked.max(end);
            self.shipping.save(id, pos);
        }
        outcome
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(text: &str, second: u32) -> String {
        format!(
            "{{\"log\":\"{text}\\n\",\"stream\":\"stdout\",\"time\":\"2026-12-06T10:00:{second:02}.000000001Z\"}}\n"
        )
    }

    #[test]
    fn the_reader_counts_whole_lines_and_keeps_a_lines_rest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c-json.log");
        let first = entry("one", 1);
        let second = entry("two", 2);
        let half = second.len() / 2;
        std::fs::write(&path, format!("{first}{}", &second[..half])).unwrap();
        let mut file = std::fs::File::open(&path).unwrap();
        let mut r = LogReader {
            offset: 0,
            pending: vec![],
            entries: json_file::Reader::default(),
            joiner: Joiner::new(None),
            chunk: vec![],
        };
        let mut out = vec![];
        r.read(&mut file, READ_CHUNK, &mut out).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(
            (out[0].message.as_str(), out[0].end),
            ("one", first.len() as u64)
        );
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        f.write_all(&second.as_bytes()[half..]).unwrap();
        r.read(&mut file, READ_CHUNK, &mut out).unwrap();
        assert_eq!(out.len(), 2);
        assert_eq!(out[1].message, "two");
        assert_eq!(out[1].end, (first.len() + second.len()) as u64);
    }

    #[test]
    fn non_blocking_mode_drops_what_its_buffer_cannot_hold_and_counts_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c-json.log");
        let lines: String = (0..50).map(|i| entry(&format!("line {i:02}"), 1)).collect();
        std::fs::write(&path, lines).unwrap();
        let dropped = AtomicU64::new(0);
        let intake = |mode: Mode, dropped| Intake {
            file: std::fs::File::open(&path).unwrap(),
            log: LogReader {
                offset: 0,
                pending: vec![],
                entries: json_file::Reader::default(),
                joiner: Joiner::new(None),
                chunk: vec![],
            },
            queue: VecDeque::new(),
            queued_bytes: 0,
            mode,
            dropped,
        };
        // 10 events of 7 bytes (+26 each) fit in 330 bytes; the other 40 are dropped.
        let mut small = intake(Mode::NonBlocking { max_buffer: 330 }, &dropped);
        small.fill_batch(false).unwrap();
        assert_eq!(small.queue.len(), 10);
        assert_eq!(dropped.load(Ordering::Relaxed), 40);
        assert_eq!(small.queue.back().unwrap().message, "line 09");
        // Blocking mode keeps every line (the file is its buffer).
        let kept = AtomicU64::new(0);
        let mut blocking = intake(Mode::Blocking, &kept);
        blocking.fill_batch(false).unwrap();
        assert_eq!(
            (blocking.queue.len(), kept.load(Ordering::Relaxed)),
            (50, 0)
        );
    }

    #[test]
    fn failures_are_sorted_into_retry_renew_and_drop() {
        let api = |code: &str| ClientError::Api {
            code: code.into(),
            message: "m".into(),
        };
        assert!(matches!(
            classify(api("ThrottlingException")),
            Failure::Retry(_)
        ));
        assert!(matches!(
            classify(api("ServerException")),
            Failure::Retry(_)
        ));
        assert!(matches!(
            classify(api("ExpiredTokenException")),
            Failure::Credentials(_)
        ));
        assert!(matches!(
            classify(api("AccessDeniedException")),
            Failure::Drop(_)
        ));
        assert!(matches!(
            classify(ClientError::Decode("x".into())),
            Failure::Retry(_)
        ));
    }
}
