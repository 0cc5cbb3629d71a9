//! The in-memory view of the store. Reads never touch disk; writes go to the
//! store first and are answered once the view has caught up with them.
pub mod borrowed_key;
pub mod ecr_records;
pub mod iam_records;
pub mod index;
pub mod indexed_task;
pub mod keys;
pub mod log_slots;
pub mod logs_records;
pub mod readers;
pub mod records;
pub mod registry_fence;
pub mod revision_reads;
pub mod secrets_records;
pub mod shared_presence;

use crate::time::{Clock, SystemClock};
use berth_api::ApiError;
use berth_store::{Store, Txn, TxnOutcome};
pub use index::Index;
pub use keys::StoreKey;
use std::collections::HashMap;
use std::sync::{Arc, RwLock, RwLockReadGuard};
use tokio::sync::{oneshot, watch};

/// A writer's turn on a resource (see `State::mutate`).
pub(crate) type Turn = tokio::sync::OwnedMutexGuard<()>;

/// A batch's sequence number and what it left behind (see `mutate_batched`).
type Ahead = (u64, Box<dyn std::any::Any + Send>);

/// Conflicting writers retry for this long before giving up: writers racing on
/// one key through several servers each win in turn, but may lose many times first.
const WRITE_PATIENCE: std::time::Duration = std::time::Duration::from_secs(10);
/// Writers to the same resource queue on one of these instead of racing.
const WRITE_LOCK_STRIPES: usize = 1024;
/// An agent with no poll open and none for this long counts as disconnected
/// (`--instance-timeout`).
pub const DEFAULT_INSTANCE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(45);

/// When an instance's agent last polled, and how many of its polls are open.
#[derive(Debug, Clone, Copy)]
struct Presence {
    last: std::time::Instant,
    polling: u32,
}

/// Task role sessions last six hours, as ECS's do.
pub const DEFAULT_TASK_CREDENTIALS_SECS: u64 = 6 * 3600;

/// Keys under this prefix coordinate servers that share a store (the leader's
/// lease); they hold no resource.
pub const COORDINATION_PREFIX: &str = "coordination/";
/// The key whose holder runs the controllers.
pub const LEADER_KEY: &str = "coordination/leader";
/// Under this prefix each server sharing the store says which agents poll it.
pub const PRESENCE_PREFIX: &str = "coordination/presence/";
/// Under this prefix each server answering reads from its own view holds a key
/// on its read lease (writers wait for every listed view before acknowledging).
pub const READERS_PREFIX: &str = "coordination/readers/";
/// How long a writer waits for another server's view to show its write before
/// it ends that server's read lease.
const READER_PATIENCE: std::time::Duration = std::time::Duration::from_secs(5);

/// How long a request waits for the view to reach the store's latest revision.
const CATCH_UP_FOR: std::time::Duration = std::time::Duration::from_secs(5);

pub struct State {
    index: RwLock<Index>,
    applied: watch::Sender<u64>,
    store: Arc<dyn Store>,
    write_locks: Vec<Arc<tokio::sync::Mutex<()>>>,
    /// Jobs waiting for a batched write, per resource key (see `mutate_batched`).
    queues: std::sync::Mutex<HashMap<String, Vec<Box<dyn std::any::Any + Send>>>>,
    /// Per queue, what its last submitted batch left behind while that batch
    /// may not be in the view yet, tagged with the batch's sequence number.
    ahead: std::sync::Mutex<HashMap<String, Ahead>>,
    ahead_seq: std::sync::atomic::AtomicU64,
    /// When each container instance's agent last polled (in RAM: a restarted
    /// server hears from every live agent within one poll).
    heartbeats: std::sync::Mutex<HashMap<String, Presence>>,
    /// What the other servers sharing the store heard (apart from the index: read under it).
    shared_presence: RwLock<shared_presence::SharedPresence>,
    instance_timeout_ms: std::sync::atomic::AtomicU64,
    /// How long a task role session lasts (agents refresh it well before).
    task_credentials_secs: std::sync::atomic::AtomicU64,
    /// Agents not heard from since this server started count from here.
    started: std::time::Instant,
    /// Where `assignPublicIp` takes addresses from ([fleet] public_ip_pool).
    public_ip_pool: std::sync::OnceLock<berth_model::vpc::Cidr>,
    /// The host (and port) of berth's registry, as repository URIs name it.
    registry_host: std::sync::OnceLock<String>,
    /// Log events (in memory unless the server gave it a file).
    log_events: std::sync::OnceLock<Arc<crate::logs::event_store::LogEvents>>,
    /// Seals secret values (a key made at startup unless the server gave one).
    sealer: std::sync::OnceLock<Arc<crate::sealing::Sealer>>,
    /// Whether this server runs the controllers: always, unless servers sharing
    /// a store elect one (then, while this one holds the lease).
    leading: std::sync::OnceLock<tokio::sync::watch::Receiver<bool>>,
    clock: Arc<dyn Clock>,
    session_policies: iam_records::SessionPolicies,
    metrics: Arc<crate::metrics::Metrics>,
    /// Concurrent requests share one read of the store's latest revision.
    revision_reads: revision_reads::RevisionReads,
    /// The servers answering reads from their own views, and how far each has got.
    readers: RwLock<readers::Readers>,
    /// This server's own key among the readers and its tenure (servers sharing a store).
    tenure: std::sync::OnceLock<(String, watch::Receiver<Option<berth_store::Tenure>>)>,
    /// Set when the server stops: long-lived answers (applied revisions) end.
    stopping: watch::Sender<bool>,
    /// Woken when an agent not heard from here is heard (see `share_presence`).
    newly_heard: tokio::sync::Notify,
    /// Collections of the shared registry storage and the servers holding pushes for them.
    registry_fence: RwLock<registry_fence::RegistryFence>,
}

impl State {
    /// Loads everything from the store and starts following its changes.
    pub async fn open(store: Arc<dyn Store>) -> Result<Arc<State>, berth_store::StoreError> {
        State::open_with_clock(store, Arc::new(SystemClock)).await
    }

    /// `open`, with the time read from `clock` (tests move it by hand).
    pub async fn open_with_clock(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
    ) -> Result<Arc<State>, berth_store::StoreError> {
        let metrics = Arc::new(crate::metrics::Metrics::new());
        let store: Arc<dyn Store> = Arc::new(crate::metrics::measured_store::MeasuredStore::new(
            store,
            metrics.clone(),
        ));
        let began = std::time::Instant::now();
        let snap = store.snapshot_and_watch("").await?;
        let read = began.elapsed();
        let mut index = Index::default();
        index.load(snap.revision, &snap.kvs);
        let mut shared = shared_presence::SharedPresence::default();
        shared.load(&snap.kvs);
        let mut readers = readers::Readers::default();
        let follow_readers = readers.load(&snap.kvs);
        let mut fence = registry_fence::RegistryFence::default();
        fence.load(&snap.kvs);
        let keys = snap.kvs.len();
        drop(snap.kvs);
        tracing::info!(
            keys,
            read_ms = read.as_millis() as u64,
            total_ms = began.elapsed().as_millis() as u64,
            "loaded the store into the index"
        );
        let (applied, _) = watch::channel(snap.revision);
        let write_locks = (0..WRITE_LOCK_STRIPES)
            .map(|_| Arc::new(tokio::sync::Mutex::new(())))
            .collect();
        let state = Arc::new(State {
            index: RwLock::new(index),
            applied,
            store,
            write_locks,
            queues: Default::default(),
            ahead: Default::default(),
            ahead_seq: Default::default(),
            heartbeats: Default::default(),
            shared_presence: RwLock::new(shared),
            instance_timeout_ms: (DEFAULT_INSTANCE_TIMEOUT.as_millis() as u64).into(),
            task_credentials_secs: DEFAULT_TASK_CREDENTIALS_SECS.into(),
            started: clock.instant(),
            public_ip_pool: std::sync::OnceLock::new(),
            registry_host: std::sync::OnceLock::new(),
            log_events: std::sync::OnceLock::new(),
            sealer: std::sync::OnceLock::new(),
            leading: std::sync::OnceLock::new(),
            clock,
            session_policies: Default::default(),
            metrics,
            revision_reads: Default::default(),
            readers: RwLock::new(readers),
            tenure: std::sync::OnceLock::new(),
            stopping: watch::channel(false).0,
            newly_heard: tokio::sync::Notify::new(),
            registry_fence: RwLock::new(fence),
        });
        state.follow_readers(follow_readers);
        tokio::spawn(follow(Arc::downgrade(&state), snap.watch));
        Ok(state)
    }

    pub fn read(&self) -> RwLockReadGuard<'_, Index> {
        self.index.read().unwrap_or_else(|p| p.into_inner())
    }

    /// The services that changed since the last call (see `Index::dirty_services`).
    pub fn take_dirty_services(&self) -> std::collections::BTreeSet<index::ClusterScoped> {
        std::mem::take(
            &mut self
                .index
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .dirty_services,
        )
    }

    pub fn metrics(&self) -> &crate::metrics::Metrics {
        &self.metrics
    }

    /// Role sessions' session policies, parsed once per session.
    pub fn session_policies(&self) -> &iam_records::SessionPolicies {
        &self.session_policies
    }

    /// Sets the public address pool once, at startup.
    pub fn set_public_ip_pool(&self, pool: berth_model::vpc::Cidr) {
        let _ = self.public_ip_pool.set(pool);
    }

    /// Sets the log event store once, at startup, before any call uses it.
    /// Hands the controllers to an election: they run only while it says this server leads.
    pub fn set_leadership(&self, leading: tokio::sync::watch::Receiver<bool>) {
        let _ = self.leading.set(leading);
    }

    pub fn leading(&self) -> bool {
        self.leading.get().is_none_or(|l| *l.borrow())
    }

    /// Waits (at most `timeout`) until this server leads.
    pub async fn until_leading(&self, timeout: std::time::Duration) {
        if let Some(l) = self.leading.get() {
            let mut l = l.clone();
            let _ = tokio::time::timeout(timeout, l.wait_for(|leads| *leads)).await;
        }
    }

    pub fn set_log_events(&self, events: Arc<crate::logs::event_store::LogEvents>) {
        let _ = self.log_events.set(events);
    }

    pub fn log_events(&self) -> &Arc<crate::logs::event_store::LogEvents> {
        self.log_events
            .get_or_init(|| Arc::new(crate::logs::event_store::LogEvents::in_memory()))
    }

    /// Sets the key that seals secret values once, at startup, before any call uses it.
    pub fn set_sealer(&self, sealer: Arc<crate::sealing::Sealer>) {
        let _ = self.sealer.set(sealer);
    }

    pub fn sealer(&self) -> &crate::sealing::Sealer {
        self.sealer
            .get_or_init(|| Arc::new(crate::sealing::Sealer::ephemeral()))
    }

    /// Sets the registry's host once, at startup.
    pub fn set_registry_host(&self, host: String) {
        let _ = self.registry_host.set(host);
    }

    /// The registry's host; without a registry, a name that resolves nowhere
    /// (never ECR's own, which a push would send to AWS).
    pub fn registry_host(&self) -> &str {
        self.registry_host
            .get()
            .map(String::as_str)
            .unwrap_or("registry.berth.invalid")
    }

    pub fn public_ip_pool(&self) -> Option<berth_model::vpc::Cidr> {
        self.public_ip_pool.get().copied()
    }

    pub fn set_instance_timeout(&self, timeout: std::time::Duration) {
        self.instance_timeout_ms.store(
            timeout.as_millis() as u64,
            std::sync::atomic::Ordering::Relaxed,
        );
    }

    pub fn set_task_credentials_lifetime(&self, secs: u64) {
        self.task_credentials_secs
            .store(secs, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn task_credentials_lifetime(&self) -> u64 {
        self.task_credentials_secs
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The time, as this server reads it.
    pub fn clock(&self) -> &dyn Clock {
        &*self.clock
    }

    /// How long ago `then` was, by this server's clock.
    fn since(&self, then: std::time::Instant) -> std::time::Duration {
        self.clock.instant().saturating_duration_since(then)
    }

    fn presence<T>(&self, arn: &str, f: impl FnOnce(&mut Presence) -> T) -> T {
        let now = self.clock.instant();
        let timeout = self.instance_timeout();
        let mut map = self.heartbeats.lock().unwrap_or_else(|p| p.into_inner());
        let heard = map
            .get(arn)
            .is_some_and(|p| p.polling > 0 || self.since(p.last) < timeout);
        if !heard {
            // The other servers should learn of it soon, not a quarter of a timeout later.
            self.newly_heard.notify_one();
        }
        let p = map.entry(arn.to_string()).or_insert(Presence {
            last: now,
            polling: 0,
        });
        f(p)
    }

    /// Resolves once an agent this server had not heard from (within the timeout) is heard.
    pub async fn agent_newly_heard(&self) {
        self.newly_heard.notified().await;
    }

    /// Records that a container instance's agent is talking to us.
    pub fn heartbeat(&self, container_instance_arn: &str) {
        let now = self.clock.instant();
        self.presence(container_instance_arn, |p| p.last = now);
    }

    /// An agent's long poll began (it counts as connected while one is open).
    pub fn poll_started(&self, container_instance_arn: &str) {
        let was_connected = self.agent_connected(container_instance_arn);
        let now = self.clock.instant();
        self.presence(container_instance_arn, |p| {
            p.polling += 1;
            p.last = now;
        });
        if !was_connected {
            self.cluster_changed(container_instance_arn);
        }
    }

    /// An agent (re)connected: its cluster's services may now place tasks on it.
    fn cluster_changed(&self, container_instance_arn: &str) {
        let Some(a) = berth_model::arn::parse(container_instance_arn) else {
            return;
        };
        let Some((cluster, _)) = a.resource.split_once('/') else {
            return;
        };
        let scope = berth_model::Scope::new(a.account, a.region);
        let mut index = self.index.write().unwrap_or_else(|p| p.into_inner());
        let names: Vec<String> = index
            .services_in(&scope, cluster)
            .map(|(n, _)| n.to_string())
            .collect();
        for n in names {
            index
                .dirty_services
                .insert((scope.clone(), cluster.to_string(), n));
        }
    }

    pub fn poll_ended(&self, container_instance_arn: &str) {
        let now = self.clock.instant();
        self.presence(container_instance_arn, |p| {
            p.polling = p.polling.saturating_sub(1);
            p.last = now;
        });
    }

    pub fn instance_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_millis(
            self.instance_timeout_ms
                .load(std::sync::atomic::Ordering::Relaxed),
        )
    }

    /// The agent has been silent past the instance timeout: its host counts as
    /// lost. An agent not heard from since this server started gets a full
    /// timeout from the start, so a restart loses no host.
    pub fn agent_lost(&self, container_instance_arn: &str) -> bool {
        let timeout = self.instance_timeout();
        let silent_here = match self
            .heartbeats
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(container_instance_arn)
        {
            Some(p) => p.polling == 0 && self.since(p.last) >= timeout,
            None => self.since(self.started) >= timeout,
        };
        silent_here && !self.heard_elsewhere(container_instance_arn)
    }

    /// Whether another server sharing the store heard from this agent within the timeout.
    fn heard_elsewhere(&self, container_instance_arn: &str) -> bool {
        // A server alone on its store (no election) hears every agent itself.
        if self.leading.get().is_none() {
            return false;
        }
        let timeout = self.instance_timeout().as_secs_f64();
        let now = self.clock.epoch_secs();
        self.shared_presence
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .heard_within(container_instance_arn, now, timeout)
    }

    /// How many agents this server heard from within the timeout.
    pub fn agents_heard_here(&self) -> usize {
        self.heard_here().len()
    }

    /// The agents this server heard from within the timeout, and when (epoch seconds).
    fn heard_here(&self) -> HashMap<String, f64> {
        let timeout = self.instance_timeout();
        let now = self.clock.epoch_secs();
        self.heartbeats
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter_map(|(arn, p)| {
                let ago = if p.polling > 0 {
                    std::time::Duration::ZERO
                } else {
                    self.since(p.last)
                };
                (ago < timeout).then(|| (arn.clone(), now - ago.as_secs_f64()))
            })
            .collect()
    }

    /// Tells the servers sharing the store which agents poll this one (`holder` names it).
    pub async fn share_presence(&self, holder: &str) -> Result<(), berth_store::StoreError> {
        let heard = serde_json::to_vec(&self.heard_here()).unwrap_or_default();
        let key = format!("{PRESENCE_PREFIX}{holder}");
        self.store.txn(Txn::new().put(key, heard)).await.map(|_| ())
    }

    /// How soon the next silent agent crosses the instance timeout, if one is on its way there.
    pub fn next_loss_in(&self) -> Option<std::time::Duration> {
        let timeout = self.instance_timeout();
        self.heartbeats
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .filter(|p| p.polling == 0)
            .filter_map(|p| timeout.checked_sub(self.since(p.last)))
            .min()
    }

    pub fn agent_connected(&self, container_instance_arn: &str) -> bool {
        let timeout = self.instance_timeout();
        let here = self
            .heartbeats
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(container_instance_arn)
            .is_some_and(|p| p.polling > 0 || self.since(p.last) < timeout);
        here || self.heard_elsewhere(container_instance_arn)
    }

    /// Waits until the view moves past `revision`, or `timeout` passes.
    pub async fn wait_past(&self, revision: u64, timeout: std::time::Duration) {
        let mut rx = self.applied.subscribe();
        let _ = tokio::time::timeout(timeout, rx.wait_for(|r| *r > revision)).await;
    }

    /// The key a server named `holder` lists itself under among the readers.
    pub fn reader_key(holder: &str) -> String {
        format!("{READERS_PREFIX}{holder}")
    }

    /// This server answers reads from its own view while `tenure` says its read
    /// lease (on its key `key`, see `reader_key`) is alive.
    pub fn set_tenure(&self, key: String, tenure: watch::Receiver<Option<berth_store::Tenure>>) {
        let _ = self.tenure.set((key, tenure));
    }

    /// This server's read lease now, if it holds one.
    pub fn tenure(&self) -> Option<berth_store::Tenure> {
        self.tenure.get().and_then(|(_, t)| *t.borrow())
    }

    /// The revision the view has reached, as it moves.
    pub fn applied_revisions(&self) -> watch::Receiver<u64> {
        self.applied.subscribe()
    }

    /// Ends long-lived answers, so the server can stop.
    pub fn stop(&self) {
        self.stopping.send_replace(true);
    }

    pub fn stopping(&self) -> watch::Receiver<bool> {
        self.stopping.subscribe()
    }

    /// Updates the views of the servers' coordination keys (before the index, so a
    /// writer that sees its revision applied sees them too), following new readers.
    fn coordination(
        &self,
        update: impl FnOnce(
            &mut shared_presence::SharedPresence,
            &mut readers::Readers,
            &mut registry_fence::RegistryFence,
        ) -> Vec<readers::Follow>,
    ) {
        let follow = update(
            &mut self
                .shared_presence
                .write()
                .unwrap_or_else(|p| p.into_inner()),
            &mut self.readers.write().unwrap_or_else(|p| p.into_inner()),
            &mut self
                .registry_fence
                .write()
                .unwrap_or_else(|p| p.into_inner()),
        );
        self.follow_readers(follow);
    }

    fn follow_readers(&self, follow: Vec<readers::Follow>) {
        let mine = self.tenure.get().map(|(key, _)| key.as_str());
        for f in follow.into_iter().filter(|f| Some(f.key.as_str()) != mine) {
            tokio::spawn(crate::read_leases::follow_reader(f.url, f.applied));
        }
    }

    /// How many other servers sharing the store answer from their own views.
    pub fn other_servers(&self) -> usize {
        self.other_readers().len()
    }

    /// Where each other server sharing the store serves.
    pub fn other_server_urls(&self) -> Vec<String> {
        let mine = self.tenure.get().map(|(key, _)| key.as_str());
        let readers = self.readers.read().unwrap_or_else(|p| p.into_inner());
        readers.urls(mine)
    }

    /// Where the leader serves, when another server leads and is listed.
    pub fn leader_url(&self) -> Option<String> {
        if self.leading() {
            return None;
        }
        let readers = self.readers.read().unwrap_or_else(|p| p.into_inner());
        readers.leader_url().map(str::to_string)
    }

    /// The name this server goes by among the servers sharing its store.
    pub fn server_name(&self) -> Option<&str> {
        let (key, _) = self.tenure.get()?;
        key.strip_prefix(READERS_PREFIX)
    }

    /// The names of the other servers answering from their own views.
    pub fn other_server_names(&self) -> Vec<String> {
        let readers = self.readers.read().unwrap_or_else(|p| p.into_inner());
        readers
            .keys()
            .filter_map(|k| k.strip_prefix(READERS_PREFIX))
            .filter(|name| Some(*name) != self.server_name())
            .map(str::to_string)
            .collect()
    }

    /// Whether the server named `name` is listed among those answering from their views.
    pub fn lists_server(&self, name: &str) -> bool {
        let readers = self.readers.read().unwrap_or_else(|p| p.into_inner());
        let listed = readers
            .keys()
            .any(|k| k.strip_prefix(READERS_PREFIX) == Some(name));
        listed
    }

    /// Collections of the shared registry storage, as this view shows them.
    pub fn registry_fence(&self) -> RwLockReadGuard<'_, registry_fence::RegistryFence> {
        self.registry_fence
            .read()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Writes (or, with None, deletes) a coordination key; answers once this view shows it.
    /// Puts `value` at `key` only if its mod revision is still `guard` (0:
    /// absent); the revision written at, None if another write came first.
    pub async fn coordinate_guarded(
        &self,
        key: &str,
        guard: u64,
        value: Vec<u8>,
    ) -> Result<Option<u64>, berth_store::StoreError> {
        let txn = Txn::new().compare_mod(key, guard).put(key, value);
        let outcome = self.store.txn(txn).await?;
        let revision = match outcome {
            TxnOutcome::Committed { revision } | TxnOutcome::Conflict { revision } => revision,
        };
        self.wait_for(revision).await;
        Ok(matches!(outcome, TxnOutcome::Committed { .. }).then_some(revision))
    }

    pub async fn coordinate(
        &self,
        key: &str,
        value: Option<Vec<u8>>,
    ) -> Result<u64, berth_store::StoreError> {
        let txn = match value {
            Some(v) => Txn::new().put(key, v),
            None => Txn::new().delete(key),
        };
        let revision = match self.store.txn(txn).await? {
            TxnOutcome::Committed { revision } | TxnOutcome::Conflict { revision } => revision,
        };
        self.wait_for(revision).await;
        Ok(revision)
    }

    /// Every other server answering from its own view: its lease, and how far its view got.
    fn other_readers(&self) -> Vec<(i64, watch::Receiver<u64>)> {
        let mine = self.tenure.get().map(|(key, _)| key.as_str());
        let readers = self.readers.read().unwrap_or_else(|p| p.into_inner());
        readers.others(mine)
    }

    /// Whether this server's read lease lets it answer from its view as it is.
    fn serves_reads(&self) -> bool {
        let Some((_, tenure)) = self.tenure.get() else {
            return false;
        };
        let standing = *tenure.borrow();
        standing.is_some_and(|t| t.serves_reads(std::time::Instant::now(), *self.applied.borrow()))
    }

    /// Brings the view up to every write acknowledged before this call, by any
    /// server sharing the store (a no-op where this server is the only writer,
    /// or while its read lease holds: writers wait for its view then).
    pub async fn catch_up(&self) -> Result<(), berth_store::StoreError> {
        // A server alone on its store (no election) wrote everything it must show.
        if self.leading.get().is_none() {
            return Ok(());
        }
        if self.serves_reads() {
            self.metrics.view_read("lease");
            return Ok(());
        }
        self.metrics.view_read("store");
        let latest = self
            .revision_reads
            .latest(|| self.store.latest_revision())
            .await?;
        if let Some(revision) = latest {
            let mut rx = self.applied.subscribe();
            let caught = rx.wait_for(|r| *r >= revision);
            if tokio::time::timeout(CATCH_UP_FOR, caught).await.is_err() {
                return Err(berth_store::StoreError::Backend(format!(
                    "the view did not reach revision {revision} within {CATCH_UP_FOR:?}"
                )));
            }
        }
        Ok(())
    }

    async fn wait_for(&self, revision: u64) {
        let mut rx = self.applied.subscribe();
        let _ = rx.wait_for(|r| *r >= revision).await;
    }

    /// Waits until a committed write may be acknowledged: this view shows it, and
    /// so does every other server answering reads from its own view. A server
    /// that does not show it in time loses its read lease (and with it, once the
    /// lease has surely run out where it counts it, any say in this write).
    async fn acknowledge(&self, revision: u64) {
        self.wait_for(revision).await;
        for (lease, mut applied) in self.other_readers() {
            // Err: it left the list, so it no longer answers from its view.
            let shown = applied.wait_for(|r| *r >= revision);
            if tokio::time::timeout(READER_PATIENCE, shown).await.is_ok() {
                continue;
            }
            tracing::warn!(
                lease,
                revision,
                "a server's view did not show a write in time; ending its read lease"
            );
            self.metrics.read_lease_ended();
            if let Err(e) = self.store.revoke_lease(lease).await {
                tracing::error!(error = %e, lease, "ending a read lease failed; acknowledging anyway");
            }
            // It counts its lease alive for at most its time to live after its last renewal.
            let ttl = berth_store::READ_LEASE_TTL_SECS as u64;
            tokio::time::sleep(std::time::Duration::from_secs(ttl)).await;
        }
    }

    fn stripe(&self, resource: &StoreKey) -> &Arc<tokio::sync::Mutex<()>> {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        resource.encode().hash(&mut h);
        &self.write_locks[(h.finish() as usize) % WRITE_LOCK_STRIPES]
    }

    async fn turn(&self, resource: &StoreKey) -> tokio::sync::MutexGuard<'_, ()> {
        self.stripe(resource).lock().await
    }

    /// A turn that can move into a task of its own.
    pub(crate) async fn owned_turn(&self, resource: &StoreKey) -> Turn {
        self.stripe(resource).clone().lock_owned().await
    }

    /// Builds a transaction from the current view and commits it, rebuilding
    /// and retrying when another writer got there first. Writers naming the
    /// same `resource` take turns on this server, so they do not livelock on a
    /// hot key; compare-and-swap still guards against other servers.
    pub async fn mutate<T, F>(&self, resource: &StoreKey, plan: F) -> Result<T, ApiError>
    where
        F: FnMut(&Index) -> Result<(Txn, T), ApiError>,
    {
        let _turn = self.turn(resource).await;
        self.commit_planned(plan).await
    }

    /// Like `mutate`, but writers queued on the same `resource` while another
    /// holds its turn are folded into one transaction (one fsync): `plan` gets
    /// every queued job and answers one result per job, in order.
    ///
    /// The turn passes on as soon as a batch is submitted, not once it is
    /// durable, so the next batch commits right behind it. That batch cannot
    /// see the one before it in the view yet: `plan` also gets what the
    /// queue's last submitted batch said it left behind (`ahead`, None when
    /// nothing is in flight) and guards on that, and returns what it leaves
    /// behind itself. A batch whose guard fails is planned again from the view.
    ///
    /// The batch commits in a task of its own, so every writer in it is
    /// answered even if the one whose turn it was goes away (its client hung up).
    pub async fn mutate_batched<J, T, A, F>(
        self: &Arc<Self>,
        resource: &StoreKey,
        job: J,
        plan: F,
    ) -> Result<T, ApiError>
    where
        J: Send + Sync + 'static,
        T: Send + 'static,
        A: Clone + Send + 'static,
        F: Fn(&Index, Option<&A>, &[J]) -> Result<Batch<T, A>, ApiError> + Send + Sync + 'static,
    {
        type Queued<J, T> = (J, oneshot::Sender<Result<T, ApiError>>);
        // The job type is part of the queue's name, so each queue holds one type.
        let key = format!("{}#{}", std::any::type_name::<J>(), resource.encode());
        let (reply, answer) = oneshot::channel();
        self.queues
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(key.clone())
            .or_default()
            .push(Box::new((job, reply)) as Box<dyn std::any::Any + Send>);
        let mut answer = answer;
        // A writer whose job another took along is answered without waiting its turn.
        let turn = tokio::select! {
            biased;
            result = &mut answer => return result.unwrap_or_else(|_| Err(dropped())),
            turn = self.owned_turn(resource) => turn,
        };
        let queued = self
            .queues
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&key);
        let (jobs, replies): (Vec<J>, Vec<_>) = queued
            .unwrap_or_default()
            .into_iter()
            .filter_map(|b| b.downcast::<Queued<J, T>>().ok().map(|b| *b))
            .unzip();
        if jobs.is_empty() {
            // A batch already in flight took this job along; its answer is on the way.
            drop(turn);
            return answer.await.unwrap_or_else(|_| Err(dropped()));
        }
        let (state, resource) = (self.clone(), resource.clone());
        tokio::spawn(async move {
            let planned = state
                .commit_ahead(&resource, &key, turn, |index, ahead| {
                    plan(index, ahead, &jobs).map(|b| (b.txn, b.ahead, b.results))
                })
                .await;
            match planned {
                Ok(results) => {
                    for (reply, result) in replies.into_iter().zip(results) {
                        let _ = reply.send(result);
                    }
                }
                Err(e) => {
                    for reply in replies {
                        let _ = reply.send(Err(e.clone()));
                    }
                }
            }
        });
        answer.await.unwrap_or_else(|_| Err(dropped()))
    }

    /// Plans under `turn`, submits, hands the turn on, then waits for the
    /// outcome (see `mutate_batched`).
    async fn commit_ahead<T, A, F>(
        &self,
        resource: &StoreKey,
        queue: &str,
        mut turn: Turn,
        plan: F,
    ) -> Result<T, ApiError>
    where
        A: Clone + Send + 'static,
        F: Fn(&Index, Option<&A>) -> Result<(Txn, A, T), ApiError>,
    {
        let began = std::time::Instant::now();
        for attempt in 0.. {
            let ahead = self.ahead::<A>(queue);
            let (txn, next, out) = plan(&self.read(), ahead.as_ref())?;
            if txn.ops.is_empty() {
                return Ok(out);
            }
            let seq = self.set_ahead(queue, next);
            let outcome = self.store.submit(txn);
            drop(turn);
            match outcome.await {
                Ok(TxnOutcome::Committed { revision }) => {
                    self.acknowledge(revision).await;
                    // The view shows this batch now; a later one may still be in flight.
                    self.clear_ahead(queue, Some(seq));
                    return Ok(out);
                }
                Ok(TxnOutcome::Conflict { revision }) => {
                    // Whatever was planned on top of this batch fails its guard too.
                    self.clear_ahead(queue, None);
                    if began.elapsed() >= WRITE_PATIENCE {
                        break;
                    }
                    self.wait_for(revision).await;
                    tokio::time::sleep(conflict_backoff(attempt, fastrand::f64())).await;
                }
                Err(e) => {
                    self.clear_ahead(queue, None);
                    return Err(ApiError::server(e.to_string()));
                }
            }
            turn = self.owned_turn(resource).await;
        }
        Err(too_many_attempts())
    }

    /// Jobs waiting in batched-write queues (for tests to know a writer is queued).
    #[cfg(test)]
    pub(crate) fn queued_jobs(&self) -> usize {
        let queues = self.queues.lock().unwrap_or_else(|p| p.into_inner());
        queues.values().map(Vec::len).sum()
    }

    fn ahead<A: Clone + 'static>(&self, queue: &str) -> Option<A> {
        let ahead = self.ahead.lock().unwrap_or_else(|p| p.into_inner());
        ahead.get(queue)?.1.downcast_ref::<A>().cloned()
    }

    fn set_ahead<A: Send + 'static>(&self, queue: &str, value: A) -> u64 {
        let seq = self
            .ahead_seq
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.ahead
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(queue.to_string(), (seq, Box::new(value)));
        seq
    }

    /// Forgets the queue's `ahead`: only if it is still batch `seq`'s, when given.
    fn clear_ahead(&self, queue: &str, seq: Option<u64>) {
        let mut ahead = self.ahead.lock().unwrap_or_else(|p| p.into_inner());
        if seq.is_none() || ahead.get(queue).map(|(s, _)| *s) == seq {
            ahead.remove(queue);
        }
    }

    async fn commit_planned<T, F>(&self, mut plan: F) -> Result<T, ApiError>
    where
        F: FnMut(&Index) -> Result<(Txn, T), ApiError>,
    {
        let began = std::time::Instant::now();
        for attempt in 0.. {
            let (txn, out) = plan(&self.read())?;
            if txn.ops.is_empty() {
                return Ok(out);
            }
            match self
                .store
                .txn(txn)
                .await
                .map_err(|e| ApiError::server(e.to_string()))?
            {
                TxnOutcome::Committed { revision } => {
                    self.acknowledge(revision).await;
                    return Ok(out);
                }
                TxnOutcome::Conflict { revision } => {
                    if began.elapsed() >= WRITE_PATIENCE {
                        break;
                    }
                    self.wait_for(revision).await;
                    tokio::time::sleep(conflict_backoff(attempt, fastrand::f64())).await;
                }
            }
        }
        Err(too_many_attempts())
    }
}

/// How long a writer whose transaction lost to another server's waits before
/// planning again: a random share of a window that doubles with each loss
/// (1 ms, 2 ms, … up to 64 ms), so writers racing on one key through several
/// servers spread out instead of colliding again. `unit` is in [0, 1).
pub(crate) fn conflict_backoff(attempt: usize, unit: f64) -> std::time::Duration {
    let window_ms = (1u64 << attempt.min(6)) as f64;
    std::time::Duration::from_secs_f64(window_ms * unit.clamp(0.0, 1.0) / 1000.0)
}

fn too_many_attempts() -> ApiError {
    ApiError::server("Too many concurrent updates; try again.")
}

/// One batch's plan for `State::mutate_batched`.
pub struct Batch<T, A> {
    pub txn: Txn,
    /// One per job, in order.
    pub results: Vec<Result<T, ApiError>>,
    /// What the queue's next batch builds on until this one is in the view.
    pub ahead: A,
}

fn dropped() -> ApiError {
    ApiError::server("The write was dropped; try again.")
}

async fn follow(
    state: std::sync::Weak<State>,
    mut watch: tokio::sync::broadcast::Receiver<berth_store::EventBatch>,
) {
    loop {
        match watch.recv().await {
            Ok(batch) => {
                let Some(state) = state.upgrade() else { return };
                state.coordination(|presence, readers, fence| {
                    presence.apply(&batch);
                    fence.apply(&batch);
                    readers.apply(&batch)
                });
                state
                    .index
                    .write()
                    .unwrap_or_else(|p| p.into_inner())
                    .apply(&batch);
                state.applied.send_replace(batch.revision);
            }
            Err(e) => {
                // Events were dropped, or the watch ended (etcd compacted past it, or gave up
                // resuming): take a fresh snapshot and carry on from it.
                tracing::warn!(error = %e, "store watch lagged or ended; reloading the view");
                let Some(state) = state.upgrade() else { return };
                match state.store.snapshot_and_watch("").await {
                    Ok(snap) => {
                        state.coordination(|presence, readers, fence| {
                            presence.load(&snap.kvs);
                            fence.load(&snap.kvs);
                            readers.load(&snap.kvs)
                        });
                        state
                            .index
                            .write()
                            .unwrap_or_else(|p| p.into_inner())
                            .load(snap.revision, &snap.kvs);
                        state.applied.send_replace(snap.revision);
                        watch = snap.watch;
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "reloading the view failed");
                        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_store::{MemoryStore, Snapshot, StoreError, TxnFuture};
    use std::sync::atomic::{AtomicBool, Ordering};

    /// A store whose first watch ends at once, as etcd's does when it compacts past it.
    struct EndingWatch {
        inner: MemoryStore,
        ended: AtomicBool,
    }

    #[async_trait::async_trait]
    impl Store for EndingWatch {
        async fn get(&self, key: &str) -> Result<Option<berth_store::KeyValue>, StoreError> {
            self.inner.get(key).await
        }
        async fn range(
            &self,
            prefix: &str,
        ) -> Result<(Vec<berth_store::KeyValue>, u64), StoreError> {
            self.inner.range(prefix).await
        }
        fn submit(&self, txn: Txn) -> TxnFuture {
            self.inner.submit(txn)
        }
        async fn snapshot_and_watch(&self, prefix: &str) -> Result<Snapshot, StoreError> {
            let mut snap = self.inner.snapshot_and_watch(prefix).await?;
            if !self.ended.swap(true, Ordering::SeqCst) {
                let (_gone, closed) = tokio::sync::broadcast::channel(1);
                snap.watch = closed;
            }
            Ok(snap)
        }
    }

    #[test]
    fn a_writer_that_lost_waits_a_random_share_of_a_doubling_window() {
        use std::time::Duration;
        assert_eq!(conflict_backoff(0, 0.0), Duration::ZERO);
        assert_eq!(conflict_backoff(0, 0.5), Duration::from_micros(500));
        assert_eq!(conflict_backoff(3, 0.5), Duration::from_millis(4));
        // The window stops doubling at 64 ms.
        assert_eq!(conflict_backoff(6, 0.5), Duration::from_millis(32));
        assert_eq!(conflict_backoff(31, 0.5), Duration::from_millis(32));
        assert!(conflict_backoff(31, 0.999) < Duration::from_millis(64));
    }

    #[tokio::test]
    async fn a_watch_that_ends_is_replaced_by_a_new_snapshot() {
        let store = Arc::new(EndingWatch {
            inner: MemoryStore::new(),
            ended: AtomicBool::new(false),
        });
        let state = State::open(store.clone()).await.unwrap();
        let key = StoreKey::FleetHost { id: "i-1".into() }.encode();
        let host = serde_json::json!({"id": "i-1"});
        let written = store
            .txn(Txn::new().put(key, serde_json::to_vec(&host).unwrap()))
            .await
            .unwrap();
        let TxnOutcome::Committed { revision } = written else {
            panic!("{written:?}")
        };
        // The view reaches the write through the second watch.
        state
            .wait_past(revision - 1, std::time::Duration::from_secs(5))
            .await;
        assert!(store.ended.load(Ordering::SeqCst));
        assert_eq!(state.read().revision, revision);
    }
}
