//! The Store on an etcd cluster (v3 API, through the `etcd-client` crate):
//! keys are etcd keys, a transaction is one etcd Txn, a watch is etcd's own.
//! etcd's revisions start at 1 with no key written; berth's start at 0, so
//! every revision crosses this boundary shifted by one.
use crate::*;
use etcd_client::{
    Client, Compare as EtcdCompare, CompareOp, ConnectOptions, EventType, GetOptions, PutOptions,
    TxnOp, WatchOptions,
};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// Events a watcher may fall behind by before it must take a new snapshot.
const WATCH_BUFFER: usize = 65_536;
/// How long a watch that broke tries to resume where it was.
const RESUME_FOR: Duration = Duration::from_secs(600);

/// How to reach the etcd cluster.
#[derive(Clone, Debug, Default)]
pub struct EtcdOptions {
    pub endpoints: Vec<String>,
    /// etcd's own users (`etcdctl user add`), when auth is on.
    pub user: Option<(String, String)>,
    /// For `https://` endpoints: the CA that signed etcd's certificate, and
    /// this client's certificate and key when etcd asks for one.
    pub tls: Option<EtcdTls>,
}

/// PEM files' contents, as etcd's own `--cacert`, `--cert` and `--key` take them.
#[derive(Clone, Default)]
pub struct EtcdTls {
    pub ca_pem: Option<Vec<u8>>,
    pub identity: Option<(Vec<u8>, Vec<u8>)>,
}

// Says what is set, never the key.
impl std::fmt::Debug for EtcdTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdTls")
            .field("ca", &self.ca_pem.is_some())
            .field("identity", &self.identity.is_some())
            .finish()
    }
}

type Submitted = (Txn, oneshot::Sender<Result<TxnOutcome, StoreError>>);

pub struct EtcdStore {
    client: Client,
    /// One writer sends transactions in the order they were submitted.
    submit: mpsc::UnboundedSender<Submitted>,
}

fn backend(e: etcd_client::Error) -> StoreError {
    StoreError::Backend(format!("etcd: {e}"))
}

/// Attempts of a call that can go to another member; a member that is down
/// answers at once, so this is quick.
const ATTEMPTS: usize = 10;
const BETWEEN_ATTEMPTS: Duration = Duration::from_millis(100);

/// Whether the call failed before reaching any member (so sending it again cannot apply it twice).
fn never_sent(e: &etcd_client::Error) -> bool {
    matches!(e, etcd_client::Error::GRpcStatus(s)
        if s.code() == tonic::Code::Unavailable && s.message().contains("connect"))
}

/// Whether a read may be asked again of another member: its member was
/// unreachable, or did not answer in time (a stopped or partitioned one).
fn unavailable(e: &etcd_client::Error) -> bool {
    matches!(e, etcd_client::Error::GRpcStatus(s) if matches!(
        s.code(),
        tonic::Code::Unavailable | tonic::Code::DeadlineExceeded | tonic::Code::Cancelled
    ))
}

/// Runs `call` until it succeeds, fails for a reason `again` does not accept, or runs out of attempts.
async fn with_retries<T, F, Fut>(
    again: fn(&etcd_client::Error) -> bool,
    mut call: F,
) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, etcd_client::Error>>,
{
    let mut attempt = 1;
    loop {
        match call().await {
            Ok(v) => return Ok(v),
            Err(e) if attempt < ATTEMPTS && again(&e) => {
                attempt += 1;
                tokio::time::sleep(BETWEEN_ATTEMPTS).await;
            }
            Err(e) => return Err(backend(e)),
        }
    }
}

/// berth's revision of an etcd revision.
fn ours(etcd_revision: i64) -> u64 {
    (etcd_revision - 1).max(0) as u64
}

/// etcd's revision of berth's (0, "absent", stays 0).
fn theirs(revision: u64) -> i64 {
    if revision == 0 {
        0
    } else {
        revision as i64 + 1
    }
}

fn key_value(kv: &etcd_client::KeyValue) -> KeyValue {
    KeyValue {
        key: String::from_utf8_lossy(kv.key()).into_owned(),
        value: kv.value().to_vec(),
        create_revision: ours(kv.create_revision()),
        mod_revision: ours(kv.mod_revision()),
    }
}

/// Keys a range read asks for per page.
const PAGE_KEYS: i64 = 2000;

/// The end of the key range under `prefix` (exclusive; `[0]`, etcd's "to the
/// last key", for "" or a prefix of 0xff bytes), as etcd's own prefix reads make it.
fn range_end(prefix: &str) -> Vec<u8> {
    let mut end = prefix.as_bytes().to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

fn etcd_txn(txn: &Txn) -> etcd_client::Txn {
    let compares: Vec<EtcdCompare> = txn
        .compares
        .iter()
        .map(|c| match c {
            Compare::ModRevision(k, r) => {
                EtcdCompare::mod_revision(k.as_str(), CompareOp::Equal, theirs(*r))
            }
            // etcd fails a value compare on an absent key, as the Store requires.
            Compare::Value(k, v) => EtcdCompare::value(k.as_str(), CompareOp::Equal, v.clone()),
        })
        .collect();
    let ops: Vec<TxnOp> = txn
        .ops
        .iter()
        .map(|op| match op {
            Op::Put(k, v) => TxnOp::put(k.as_str(), v.clone(), None),
            Op::Delete(k) => TxnOp::delete(k.as_str(), None),
        })
        .collect();
    etcd_client::Txn::new().when(compares).and_then(ops)
}

async fn apply(client: &Client, txn: &Txn) -> Result<TxnOutcome, StoreError> {
    let answer = with_retries(never_sent, || {
        let mut kv = client.kv_client();
        let txn = etcd_txn(txn);
        async move { kv.txn(txn).await }
    })
    .await?;
    let revision = ours(answer.header().map(|h| h.revision()).unwrap_or(0));
    Ok(if answer.succeeded() {
        TxnOutcome::Committed { revision }
    } else {
        TxnOutcome::Conflict { revision }
    })
}

impl EtcdStore {
    pub async fn connect(options: &EtcdOptions) -> Result<EtcdStore, StoreError> {
        // A member that stops answering (stopped, partitioned) keeps its connections open:
        // HTTP/2 pings find it within two seconds, and calls move to the other members.
        let mut connect = ConnectOptions::new()
            .with_connect_timeout(Duration::from_secs(2))
            .with_timeout(Duration::from_secs(5))
            .with_keep_alive(Duration::from_secs(1), Duration::from_secs(1))
            .with_keep_alive_while_idle(true);
        if let Some((user, password)) = &options.user {
            connect = connect.with_user(user.clone(), password.clone());
        }
        if let Some(tls) = &options.tls {
            let mut config = etcd_client::TlsOptions::new();
            if let Some(ca) = &tls.ca_pem {
                config = config.ca_certificate(etcd_client::Certificate::from_pem(ca));
            }
            if let Some((cert, key)) = &tls.identity {
                config = config.identity(etcd_client::Identity::from_pem(cert, key));
            }
            connect = connect.with_tls(config);
        }
        let client = Client::connect(&options.endpoints, Some(connect))
            .await
            .map_err(backend)?;
        let (submit, mut submitted) = mpsc::unbounded_channel::<Submitted>();
        let writer = client.clone();
        tokio::spawn(async move {
            while let Some((txn, done)) = submitted.recv().await {
                let _ = done.send(apply(&writer, &txn).await);
            }
        });
        Ok(EtcdStore { client, submit })
    }
}

/// Sends one watch response's events on as batches, one per revision.
fn batches(events: &[etcd_client::Event]) -> Vec<EventBatch> {
    let mut out: Vec<EventBatch> = vec![];
    for e in events {
        let Some(kv) = e.kv() else { continue };
        let kind = match e.event_type() {
            EventType::Put => EventKind::Put,
            EventType::Delete => EventKind::Delete,
        };
        let mut kv = key_value(kv);
        if kind == EventKind::Delete {
            kv.value.clear();
        }
        let revision = kv.mod_revision;
        let event = Event { kind, kv };
        match out.last_mut() {
            Some(b) if b.revision == revision => b.events.push(event),
            _ => out.push(EventBatch {
                revision,
                events: vec![event],
            }),
        }
    }
    out
}

/// Follows etcd's watch of `prefix` from after `revision`, resuming where it was when the
/// stream breaks; stops when no one listens, or when it cannot resume (the channel closes).
async fn follow(
    client: Client,
    prefix: String,
    mut revision: u64,
    publish: tokio::sync::broadcast::Sender<EventBatch>,
) {
    let mut broke_at: Option<tokio::time::Instant> = None;
    loop {
        let options = WatchOptions::new().with_start_revision(theirs(revision + 1));
        let options = if prefix.is_empty() {
            options.with_all_keys()
        } else {
            options.with_prefix()
        };
        let watched = client
            .watch_client()
            .watch(prefix.as_str(), Some(options))
            .await;
        if let Ok(mut stream) = watched {
            while let Ok(Some(answer)) = stream.message().await {
                broke_at = None;
                if answer.compact_revision() > 0 {
                    // What came after `revision` is gone: the follower must take a new snapshot.
                    return;
                }
                for batch in batches(answer.events()) {
                    revision = batch.revision;
                    if publish.send(batch).is_err() {
                        return;
                    }
                }
                if answer.canceled() {
                    break;
                }
            }
        }
        if publish.receiver_count() == 0 {
            return;
        }
        let since = *broke_at.get_or_insert_with(tokio::time::Instant::now);
        if since.elapsed() > RESUME_FOR {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A campaign for leadership: whether this holder leads now, and the task that campaigns.
pub struct Campaign {
    /// Who campaigns (the value the key holds while it leads).
    pub holder: String,
    pub leading: tokio::sync::watch::Receiver<bool>,
    pub task: tokio::task::JoinHandle<()>,
}

/// Seconds a leader's lease lasts without a keep-alive: how long a dead leader leads.
pub const LEADER_TTL_SECS: i64 = 2;
/// How often the campaign keeps its lease alive and, not leading, tries to lead.
const CAMPAIGN_TICK: Duration = Duration::from_millis(400);

impl EtcdStore {
    /// Campaigns to hold `key` (with `holder` as its value) on a lease: the holder leads
    /// while its lease lives; when it dies the lease runs out and another takes the key.
    /// A holder stops leading the moment a keep-alive fails, before its lease can run out.
    pub fn campaign(&self, key: &str, holder: &str) -> Campaign {
        let (tell, leading) = tokio::sync::watch::channel(false);
        let (client, key, campaigner) = (self.client.clone(), key.to_string(), holder.to_string());
        let holder = campaigner.clone();
        let task = tokio::spawn(async move {
            loop {
                tell.send_replace(false);
                let mut leases = client.lease_client();
                let Ok(lease) = leases.grant(LEADER_TTL_SECS, None).await else {
                    tokio::time::sleep(CAMPAIGN_TICK).await;
                    continue;
                };
                let lease = lease.id();
                let Ok((mut keeper, mut kept)) = leases.keep_alive(lease).await else {
                    continue;
                };
                loop {
                    let alive = keeper.keep_alive().await.is_ok()
                        && matches!(kept.message().await, Ok(Some(r)) if r.ttl() > 0);
                    if !alive {
                        break;
                    }
                    if !*tell.borrow() {
                        let take = etcd_client::Txn::new()
                            .when([EtcdCompare::create_revision(
                                key.as_str(),
                                CompareOp::Equal,
                                0,
                            )])
                            .and_then([TxnOp::put(
                                key.as_str(),
                                holder.as_str(),
                                Some(PutOptions::new().with_lease(lease)),
                            )]);
                        if let Ok(r) = client.kv_client().txn(take).await {
                            if r.succeeded() {
                                tell.send_replace(true);
                            }
                        }
                    }
                    tokio::time::sleep(CAMPAIGN_TICK).await;
                }
                let _ = leases.revoke(lease).await;
            }
        });
        Campaign {
            holder: campaigner,
            leading,
            task,
        }
    }
}

/// Seconds a server's read lease lasts without a keep-alive: how long writers
/// wait for a server that died before they acknowledge without it.
pub const READ_LEASE_TTL_SECS: i64 = 2;

impl EtcdStore {
    /// Keeps `key` (holding `value(lease)`) on a lease of this process for as long as
    /// it can, taking a new lease when one is lost; the receiver tells the tenure it
    /// can be sure of (None while it has none).
    pub fn join(
        &self,
        key: &str,
        value: impl Fn(i64) -> Vec<u8> + Send + 'static,
    ) -> (
        tokio::sync::watch::Receiver<Option<Tenure>>,
        tokio::task::JoinHandle<()>,
    ) {
        let (tell, tenure) = tokio::sync::watch::channel(None);
        let (client, key) = (self.client.clone(), key.to_string());
        let task = tokio::spawn(async move {
            loop {
                tell.send_replace(None);
                let mut leases = client.lease_client();
                let sent = std::time::Instant::now();
                let Ok(granted) = leases.grant(READ_LEASE_TTL_SECS, None).await else {
                    tokio::time::sleep(CAMPAIGN_TICK).await;
                    continue;
                };
                let lease = granted.id();
                let put = client
                    .kv_client()
                    .put(
                        key.as_str(),
                        value(lease),
                        Some(PutOptions::new().with_lease(lease)),
                    )
                    .await;
                let fresh_from = match put {
                    Ok(p) => ours(p.header().map(|h| h.revision()).unwrap_or(0)),
                    Err(_) => {
                        let _ = leases.revoke(lease).await;
                        tokio::time::sleep(CAMPAIGN_TICK).await;
                        continue;
                    }
                };
                let ttl = Duration::from_secs(granted.ttl().max(0) as u64);
                let mut standing = Tenure {
                    lease,
                    fresh_from,
                    valid_until: Tenure::valid_until(sent, ttl),
                };
                tell.send_replace(Some(standing));
                let Ok((mut keeper, mut kept)) = leases.keep_alive(lease).await else {
                    continue;
                };
                loop {
                    tokio::time::sleep(CAMPAIGN_TICK).await;
                    let sent = std::time::Instant::now();
                    let renewed = keeper.keep_alive().await.is_ok()
                        && match tokio::time::timeout(ttl, kept.message()).await {
                            Ok(Ok(Some(r))) if r.ttl() > 0 => {
                                let ttl = Duration::from_secs(r.ttl() as u64);
                                standing.valid_until = Tenure::valid_until(sent, ttl);
                                true
                            }
                            _ => false,
                        };
                    if !renewed {
                        break;
                    }
                    tell.send_replace(Some(standing));
                }
                tell.send_replace(None);
                let _ = leases.revoke(lease).await;
            }
        });
        (tenure, task)
    }
}

#[async_trait]
impl Store for EtcdStore {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError> {
        let answer = with_retries(unavailable, || {
            let mut kv = self.client.kv_client();
            async move { kv.get(key, None).await }
        })
        .await?;
        Ok(answer.kvs().first().map(key_value))
    }

    async fn range(&self, prefix: &str) -> Result<(Vec<KeyValue>, u64), StoreError> {
        // In pages, all at the first page's revision: one answer holds at most 4 MiB.
        let end = range_end(prefix);
        let mut from = if prefix.is_empty() {
            vec![0]
        } else {
            prefix.as_bytes().to_vec()
        };
        let (mut at, mut limit, mut kvs) = (0i64, PAGE_KEYS, vec![]);
        loop {
            let mut options = GetOptions::new().with_range(end.clone()).with_limit(limit);
            if at > 0 {
                options = options.with_revision(at);
            }
            let answer = with_retries(unavailable, || {
                let mut kv = self.client.kv_client();
                let (from, options) = (from.clone(), options.clone());
                async move { kv.get(from, Some(options)).await }
            })
            .await;
            let answer = match answer {
                // Large values: fewer keys per page.
                Err(e) if limit > 1 && e.to_string().contains("message length too large") => {
                    limit = (limit / 4).max(1);
                    continue;
                }
                other => other?,
            };
            if at == 0 {
                at = answer.header().map(|h| h.revision()).unwrap_or(0);
            }
            kvs.extend(answer.kvs().iter().map(key_value));
            match answer.kvs().last() {
                Some(last) if answer.more() => {
                    from = last.key().to_vec();
                    from.push(0);
                }
                _ => return Ok((kvs, ours(at))),
            }
        }
    }

    fn submit(&self, txn: Txn) -> TxnFuture {
        let (done, outcome) = oneshot::channel();
        let sent = self.submit.send((txn, done));
        Box::pin(async move {
            sent.map_err(|_| StoreError::Closed)?;
            outcome.await.map_err(|_| StoreError::Closed)?
        })
    }

    async fn latest_revision(&self) -> Result<Option<u64>, StoreError> {
        // A linearizable (quorum) read: its header names a revision no older than any write
        // acknowledged before it, on any server.
        let answer = with_retries(unavailable, || {
            let mut kv = self.client.kv_client();
            async move { kv.get("\0", None).await }
        })
        .await?;
        Ok(Some(ours(
            answer.header().map(|h| h.revision()).unwrap_or(0),
        )))
    }

    async fn revoke_lease(&self, lease: i64) -> Result<(), StoreError> {
        match self.client.lease_client().revoke(lease).await {
            Ok(_) => Ok(()),
            // Already gone (it ran out, or another revoked it): what was asked for.
            Err(etcd_client::Error::GRpcStatus(s)) if s.code() == tonic::Code::NotFound => Ok(()),
            Err(e) => Err(backend(e)),
        }
    }

    async fn snapshot_and_watch(&self, prefix: &str) -> Result<Snapshot, StoreError> {
        let (kvs, revision) = self.range(prefix).await?;
        let (publish, watch) = tokio::sync::broadcast::channel(WATCH_BUFFER);
        tokio::spawn(follow(
            self.client.clone(),
            prefix.to_string(),
            revision,
            publish,
        ));
        Ok(Snapshot {
            revision,
            kvs,
            watch,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Child, Command, Stdio};

    /// A one-member etcd of its own on free loopback ports, removed when dropped.
    struct Etcd {
        child: Child,
        _dir: tempfile::TempDir,
        endpoint: String,
    }

    impl Drop for Etcd {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    fn free_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }

    async fn etcd() -> (Etcd, EtcdStore) {
        let dir = tempfile::tempdir().unwrap();
        let (client, peer) = (free_port(), free_port());
        let endpoint = format!("http://127.0.0.1:{client}");
        let peer_url = format!("http://127.0.0.1:{peer}");
        let child = Command::new("etcd")
            .args(["--data-dir", &dir.path().to_string_lossy()])
            .args(["--name", "conformance"])
            .args(["--listen-client-urls", &endpoint])
            .args(["--advertise-client-urls", &endpoint])
            .args(["--listen-peer-urls", &peer_url])
            .args(["--initial-advertise-peer-urls", &peer_url])
            .args(["--initial-cluster", &format!("conformance={peer_url}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("etcd from Debian's etcd-server (scripts/docker-up installs it)");
        let running = Etcd {
            child,
            _dir: dir,
            endpoint,
        };
        let options = EtcdOptions {
            endpoints: vec![running.endpoint.clone()],
            user: None,
            tls: None,
        };
        // Bounded: etcd answers within a second or two of starting.
        for _ in 0..100 {
            if let Ok(store) = EtcdStore::connect(&options).await {
                if store.get("probe").await.is_ok() {
                    return (running, store);
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("etcd did not answer at {}", running.endpoint);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn conformance_on_a_real_etcd() {
        crate::conformance::run_all(etcd).await;
    }

    /// A second client of the same etcd, as another server would be.
    async fn another_client(running: &Etcd) -> EtcdStore {
        let options = EtcdOptions {
            endpoints: vec![running.endpoint.clone()],
            user: None,
            tls: None,
        };
        EtcdStore::connect(&options).await.unwrap()
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn the_latest_revision_covers_another_clients_acknowledged_write() {
        let (running, first) = etcd().await;
        let second = another_client(&running).await;
        assert_eq!(second.latest_revision().await.unwrap(), Some(0));
        for n in 1..=5u64 {
            let written = first.txn(Txn::new().put("k", vec![n as u8])).await.unwrap();
            assert_eq!(written, TxnOutcome::Committed { revision: n });
            assert_eq!(second.latest_revision().await.unwrap(), Some(n));
        }
    }

    /// Waits (bounded) until `leading` says `want`.
    async fn until(leading: &mut tokio::sync::watch::Receiver<bool>, want: bool) {
        let waited =
            tokio::time::timeout(Duration::from_secs(10), leading.wait_for(|l| *l == want)).await;
        assert!(waited.is_ok(), "leadership never became {want}");
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn one_holder_leads_and_another_takes_over_when_it_dies() {
        let (running, first) = etcd().await;
        let second = another_client(&running).await;
        let mut a = first.campaign("leader", "a");
        until(&mut a.leading, true).await;
        let mut b = second.campaign("leader", "b");
        // b campaigns for several ticks while a lives, and never leads.
        for _ in 0..5 {
            tokio::time::sleep(CAMPAIGN_TICK).await;
            assert!(!*b.leading.borrow());
            assert!(*a.leading.borrow());
        }
        assert_eq!(first.get("leader").await.unwrap().unwrap().value, b"a");
        // a dies without a word (its lease is not revoked): b leads once the lease runs out.
        a.task.abort();
        let died = std::time::Instant::now();
        until(&mut b.leading, true).await;
        let took = died.elapsed();
        assert!(
            took < Duration::from_secs(LEADER_TTL_SECS as u64 + 1),
            "{took:?}"
        );
        assert_eq!(second.get("leader").await.unwrap().unwrap().value, b"b");
    }

    #[test]
    fn a_prefix_range_ends_where_the_next_prefix_begins() {
        assert_eq!(range_end("clusters/"), b"clusters0".to_vec());
        assert_eq!(range_end(""), vec![0]);
        assert_eq!(range_end("a"), b"b".to_vec());
    }

    #[tokio::test]
    async fn a_range_larger_than_one_answer_is_read_in_pages_at_one_revision() {
        let (_etcd, store) = etcd().await;
        // 12 MB under one prefix: three times what one gRPC answer may carry.
        let value = vec![b'x'; 200_000];
        // Five values per transaction: etcd takes requests of up to 1.5 MiB.
        for batch in 0..12 {
            let mut txn = Txn::new();
            for i in 0..5 {
                txn = txn.put(format!("big/{batch:02}{i:02}"), value.clone());
            }
            assert!(matches!(
                store.txn(txn).await.unwrap(),
                TxnOutcome::Committed { .. }
            ));
        }
        store
            .txn(Txn::new().put("bigger", b"1".to_vec()))
            .await
            .unwrap();
        let (kvs, revision) = store.range("big/").await.unwrap();
        assert_eq!(kvs.len(), 60);
        assert!(kvs.windows(2).all(|w| w[0].key < w[1].key));
        assert!(kvs.iter().all(|kv| kv.value == value));
        let (all, at) = store.range("").await.unwrap();
        assert_eq!(all.len(), 61);
        assert_eq!(at, revision);
    }

    #[test]
    fn revisions_cross_over_by_one_and_absent_stays_absent() {
        assert_eq!(theirs(0), 0);
        assert_eq!(theirs(1), 2);
        assert_eq!(ours(2), 1);
        assert_eq!(ours(1), 0);
        assert_eq!(ours(theirs(41)), 41);
    }
}
