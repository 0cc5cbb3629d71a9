//! The embedded backend: one redb file, written by a single committer
//! thread that folds concurrent transactions into one group commit. A group
//! is durable once its record is in the write-ahead log; redb then commits it
//! without syncing, and syncs (a checkpoint) only when the log is full.
use crate::wal::{self, Wal};
use crate::*;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use std::path::Path;
use std::sync::{mpsc, Arc, Mutex};
use tokio::sync::oneshot;

const KV: TableDefinition<&str, &[u8]> = TableDefinition::new("kv");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const REVISION_KEY: &str = "revision";
/// Most transactions one fsync may carry.
const MAX_BATCH: usize = 256;
const WATCH_BUFFER: usize = 65_536;

type Request = (Txn, oneshot::Sender<Result<TxnOutcome, StoreError>>);

pub struct EmbeddedStore {
    db: Arc<Database>,
    submit: Mutex<Option<mpsc::Sender<Request>>>,
    /// Held while a batch is published so a snapshot never straddles one.
    publish: Arc<Mutex<broadcast::Sender<EventBatch>>>,
    committer: Mutex<Option<std::thread::JoinHandle<()>>>,
}

fn backend<E: std::fmt::Display>(e: E) -> StoreError {
    StoreError::Backend(e.to_string())
}

// Stored value layout: create_revision (8 bytes LE), mod_revision (8 bytes LE), value.
fn encode(create: u64, modr: u64, value: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(16 + value.len());
    v.extend_from_slice(&create.to_le_bytes());
    v.extend_from_slice(&modr.to_le_bytes());
    v.extend_from_slice(value);
    v
}

/// A stored record's (create_revision, mod_revision, value), read in place.
fn split<'a>(key: &str, raw: &'a [u8]) -> Result<(u64, u64, &'a [u8]), StoreError> {
    if raw.len() < 16 {
        return Err(StoreError::Backend(format!("corrupt record for {key}")));
    }
    let create_revision = u64::from_le_bytes(raw[0..8].try_into().map_err(backend)?);
    let mod_revision = u64::from_le_bytes(raw[8..16].try_into().map_err(backend)?);
    Ok((create_revision, mod_revision, &raw[16..]))
}

fn decode(key: &str, raw: &[u8]) -> Result<KeyValue, StoreError> {
    let (create_revision, mod_revision, value) = split(key, raw)?;
    Ok(KeyValue {
        key: key.to_string(),
        value: value.to_vec(),
        create_revision,
        mod_revision,
    })
}

/// redb's page cache: enough for the B-tree's interior pages and a commit's dirty ones.
const PAGE_CACHE_BYTES: usize = 32 * 1024 * 1024;

impl EmbeddedStore {
    /// Opens (or creates) the store file `dir/berth.redb`.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        Self::open_with_log(dir, wal::DEFAULT_CAPACITY)
    }

    /// As `open`, with a log of `log_bytes` for a new store (tests use a
    /// small one to make checkpoints happen).
    pub fn open_with_log(dir: &Path, log_bytes: u64) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(backend)?;
        // Reads are served from the server's in-memory view; the file is read
        // whole only at startup, so redb's 1 GiB default page cache would just
        // keep that pass resident.
        let db = Database::builder()
            .set_cache_size(PAGE_CACHE_BYTES)
            .create(dir.join("berth.redb"))
            .map_err(backend)?;
        let db = Arc::new(db);
        {
            let w = db.begin_write().map_err(backend)?;
            w.open_table(KV).map_err(backend)?;
            w.open_table(META).map_err(backend)?;
            w.commit().map_err(backend)?;
        }
        let (log, logged) = Wal::open(dir, log_bytes)?;
        recover(&db, logged)?;
        let (tx, _) = broadcast::channel(WATCH_BUFFER);
        let publish = Arc::new(Mutex::new(tx));
        let (submit, requests) = mpsc::channel::<Request>();
        let (db2, publish2) = (db.clone(), publish.clone());
        let handle = std::thread::Builder::new()
            .name("berth-store-commit".into())
            .spawn(move || committer(db2, log, publish2, requests))
            .map_err(backend)?;
        let committer = Mutex::new(Some(handle));
        Ok(EmbeddedStore {
            db,
            submit: Mutex::new(Some(submit)),
            publish,
            committer,
        })
    }

    fn read_revision(r: &redb::ReadTransaction) -> Result<u64, StoreError> {
        stored_revision(&r.open_table(META).map_err(backend)?)
    }

    fn range_sync(&self, prefix: &str) -> Result<(Vec<KeyValue>, u64), StoreError> {
        let r = self.db.begin_read().map_err(backend)?;
        let rev = Self::read_revision(&r)?;
        let t = r.open_table(KV).map_err(backend)?;
        let mut out = Vec::new();
        for item in t.range(prefix..).map_err(backend)? {
            let (k, v) = item.map_err(backend)?;
            let key = k.value();
            if !key.starts_with(prefix) {
                break;
            }
            out.push(decode(key, v.value())?);
        }
        Ok((out, rev))
    }
}

impl Drop for EmbeddedStore {
    fn drop(&mut self) {
        // Closing the channel ends the committer thread after pending work.
        if let Ok(mut s) = self.submit.lock() {
            s.take();
        }
        // Joining releases the file lock before a reopen in the same process.
        if let Some(h) = self.committer.lock().ok().and_then(|mut h| h.take()) {
            let _ = h.join();
        }
    }
}

/// The store's revision as `meta` holds it (0 for a new store).
fn stored_revision(meta: &impl ReadableTable<&'static str, u64>) -> Result<u64, StoreError> {
    Ok(meta
        .get(REVISION_KEY)
        .map_err(backend)?
        .map(|v| v.value())
        .unwrap_or(0))
}

/// Applies the log's records that continue the store's revisions, in one
/// synced commit, so the log can start over. Older records (already in redb)
/// and anything after a gap (stale, from before a checkpoint) are skipped.
fn recover(db: &Database, logged: Vec<EventBatch>) -> Result<(), StoreError> {
    let w = db.begin_write().map_err(backend)?;
    let mut applied = 0usize;
    {
        let mut kv = w.open_table(KV).map_err(backend)?;
        let mut meta = w.open_table(META).map_err(backend)?;
        let mut rev = stored_revision(&meta)?;
        for batch in logged {
            if batch.revision <= rev {
                continue;
            }
            if batch.revision != rev + 1 {
                break;
            }
            for e in &batch.events {
                let key = e.kv.key.as_str();
                match e.kind {
                    EventKind::Put => {
                        let raw = encode(e.kv.create_revision, e.kv.mod_revision, &e.kv.value);
                        kv.insert(key, raw.as_slice()).map_err(backend)?;
                    }
                    EventKind::Delete => {
                        kv.remove(key).map_err(backend)?;
                    }
                }
            }
            rev = batch.revision;
            applied += 1;
        }
        meta.insert(REVISION_KEY, rev).map_err(backend)?;
    }
    if applied == 0 {
        w.abort().map_err(backend)?;
        return Ok(());
    }
    w.commit().map_err(backend)
}

fn committer(
    db: Arc<Database>,
    mut log: Wal,
    publish: Arc<Mutex<broadcast::Sender<EventBatch>>>,
    requests: mpsc::Receiver<Request>,
) {
    // Set when a group reached the log but not redb: its revisions would be
    // given out again, so nothing more may be written until a restart replays it.
    // Its writers were answered: the log holds their writes.
    let mut broken: Option<String> = None;
    while let Ok(first) = requests.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match requests.try_recv() {
                Ok(r) => batch.push(r),
                Err(_) => break,
            }
        }
        let result = match &broken {
            Some(why) => Err(StoreError::Backend(why.clone())),
            None => commit_batch(&db, &mut log, &batch),
        };
        match result {
            Ok((results, pending)) => {
                // The group is durable: answer first, then let redb catch up.
                // Readers of redb take the publish lock, so none of them sees
                // the store without a write that has been answered.
                let tx = publish.lock().unwrap_or_else(|p| p.into_inner());
                for (outcome, events) in &results {
                    if let (TxnOutcome::Committed { .. }, Some(events)) = (outcome, events) {
                        let _ = tx.send(events.clone());
                    }
                }
                for ((_, reply), (outcome, _)) in batch.into_iter().zip(results) {
                    let _ = reply.send(Ok(outcome));
                }
                if let Some(Err(e)) = pending.map(|w| w.commit()) {
                    // Its revisions would be given out again; a restart replays the log.
                    broken = Some(format!(
                        "store needs a restart: a logged commit failed in redb: {e}"
                    ));
                }
                drop(tx);
            }
            Err(e) => {
                for (_, reply) in batch {
                    let _ = reply.send(Err(StoreError::Backend(e.to_string())));
                }
            }
        }
    }
    // A clean shutdown leaves redb synced, so the next open replays nothing.
    if broken.is_none() {
        if let Ok(w) = db.begin_write() {
            let _ = w.commit();
        }
    }
}

type Applied = (TxnOutcome, Option<EventBatch>);

/// Whether the stored record at the compare's key satisfies it, read in place.
fn compare_holds(
    kv: &impl ReadableTable<&'static str, &'static [u8]>,
    c: &Compare,
) -> Result<bool, StoreError> {
    let (Compare::ModRevision(key, _) | Compare::Value(key, _)) = c;
    let stored = kv.get(key.as_str()).map_err(backend)?;
    let record = stored.as_ref().map(|v| v.value());
    Ok(match (c, record) {
        (Compare::ModRevision(_, want), None) => *want == 0,
        (Compare::ModRevision(_, want), Some(raw)) => split(key, raw)?.1 == *want,
        (Compare::Value(_, _), None) => false,
        (Compare::Value(_, want), Some(raw)) => split(key, raw)?.2 == want.as_slice(),
    })
}

/// Checks and applies a group, makes it durable in the log, and returns
/// the outcomes with the redb transaction still to commit (None when redb
/// has nothing left to do).
fn commit_batch(
    db: &Database,
    log: &mut Wal,
    batch: &[Request],
) -> Result<(Vec<Applied>, Option<redb::WriteTransaction>), StoreError> {
    let mut w = db.begin_write().map_err(backend)?;
    let mut results = Vec::with_capacity(batch.len());
    {
        let mut kv = w.open_table(KV).map_err(backend)?;
        let mut meta = w.open_table(META).map_err(backend)?;
        let mut rev = stored_revision(&meta)?;
        for (txn, _) in batch {
            let mut holds = true;
            for c in &txn.compares {
                if !compare_holds(&kv, c)? {
                    holds = false;
                    break;
                }
            }
            if !holds {
                results.push((TxnOutcome::Conflict { revision: rev }, None));
                continue;
            }
            rev += 1;
            let mut events = Vec::with_capacity(txn.ops.len());
            for op in &txn.ops {
                match op {
                    Op::Put(key, value) => {
                        let create = match kv.get(key.as_str()).map_err(backend)? {
                            Some(v) => split(key, v.value())?.0,
                            None => rev,
                        };
                        kv.insert(key.as_str(), encode(create, rev, value).as_slice())
                            .map_err(backend)?;
                        let kv = KeyValue {
                            key: key.clone(),
                            value: value.clone(),
                            create_revision: create,
                            mod_revision: rev,
                        };
                        events.push(Event {
                            kind: EventKind::Put,
                            kv,
                        });
                    }
                    Op::Delete(key) => {
                        let old = kv
                            .remove(key.as_str())
                            .map_err(backend)?
                            .map(|v| decode(key, v.value()));
                        if let Some(old) = old {
                            let old = old?;
                            let kv = KeyValue {
                                key: key.clone(),
                                value: vec![],
                                create_revision: old.create_revision,
                                mod_revision: rev,
                            };
                            events.push(Event {
                                kind: EventKind::Delete,
                                kv,
                            });
                        }
                    }
                }
            }
            let events = EventBatch {
                revision: rev,
                events,
            };
            results.push((TxnOutcome::Committed { revision: rev }, Some(events)));
        }
        meta.insert(REVISION_KEY, rev).map_err(backend)?;
    }
    let groups: Vec<&EventBatch> = results.iter().filter_map(|(_, e)| e.as_ref()).collect();
    if groups.is_empty() {
        // Only failed compares: nothing to make durable.
        w.abort().map_err(backend)?;
        return Ok((results, None));
    }
    let mut record = Vec::new();
    wal::encode(&groups, &mut record);
    if !log.fits(record.len()) {
        // Checkpoint: this commit syncs redb (and every unsynced commit
        // before it), so the log's records are no longer needed.
        w.commit().map_err(backend)?;
        log.reset();
        return Ok((results, None));
    }
    // Durable from here: the record is synced. Until then nothing is applied.
    log.append(&record)?;
    w.set_durability(redb::Durability::None).map_err(backend)?;
    Ok((results, Some(w)))
}

#[async_trait]
impl Store for EmbeddedStore {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError> {
        // Not while the committer is between answering a group and committing it to redb.
        let publishing = self.publish.lock().map_err(|_| StoreError::Closed)?;
        let r = self.db.begin_read().map_err(backend)?;
        drop(publishing);
        let t = r.open_table(KV).map_err(backend)?;
        let v = t.get(key).map_err(backend)?;
        v.map(|v| decode(key, v.value())).transpose()
    }

    async fn range(&self, prefix: &str) -> Result<(Vec<KeyValue>, u64), StoreError> {
        let _publishing = self.publish.lock().map_err(|_| StoreError::Closed)?;
        self.range_sync(prefix)
    }

    fn submit(&self, txn: Txn) -> TxnFuture {
        let (reply, rx) = oneshot::channel();
        // The committer takes requests in the order they enter its channel.
        let sent = match self.submit.lock() {
            Ok(submit) => submit
                .as_ref()
                .is_some_and(|s| s.send((txn, reply)).is_ok()),
            Err(_) => false,
        };
        Box::pin(async move {
            if !sent {
                return Err(StoreError::Closed);
            }
            rx.await.map_err(|_| StoreError::Closed)?
        })
    }

    async fn snapshot_and_watch(&self, prefix: &str) -> Result<Snapshot, StoreError> {
        // The publish lock orders this read against batch publication: batches
        // published before it are in the snapshot, later ones reach the receiver.
        let tx = self.publish.lock().map_err(|_| StoreError::Closed)?;
        let watch = tx.subscribe();
        let (kvs, revision) = self.range_sync(prefix)?;
        drop(tx);
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

    async fn fresh() -> (tempfile::TempDir, EmbeddedStore) {
        let dir = tempfile::tempdir().unwrap();
        let s = EmbeddedStore::open(dir.path()).unwrap();
        (dir, s)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn conformance_suite() {
        crate::conformance::run_all(|| async { fresh().await }).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn acknowledged_writes_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = EmbeddedStore::open(dir.path()).unwrap();
            for i in 0..20 {
                let out = s
                    .txn(Txn::new().put(format!("k/{i:02}"), vec![i]))
                    .await
                    .unwrap();
                assert_eq!(
                    out,
                    TxnOutcome::Committed {
                        revision: i as u64 + 1
                    }
                );
            }
        }
        let s = EmbeddedStore::open(dir.path()).unwrap();
        let (kvs, rev) = s.range("k/").await.unwrap();
        assert_eq!(rev, 20);
        assert_eq!(kvs.len(), 20);
        assert_eq!(kvs[7].value, vec![7]);
        assert_eq!(kvs[7].mod_revision, 8);
        // Revisions keep counting from where they were.
        let out = s.txn(Txn::new().put("k/new", vec![1])).await.unwrap();
        assert_eq!(out, TxnOutcome::Committed { revision: 21 });
    }

    /// A log this small takes a checkpoint every few commits.
    const TINY_LOG: u64 = 4096 + 600;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn checkpoints_keep_every_write() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = EmbeddedStore::open_with_log(dir.path(), TINY_LOG).unwrap();
            for i in 0..50u8 {
                let value = vec![i; 40];
                let out = s.txn(Txn::new().put(format!("k/{}", i % 7), value)).await;
                assert_eq!(
                    out.unwrap(),
                    TxnOutcome::Committed {
                        revision: i as u64 + 1
                    }
                );
            }
            s.txn(Txn::new().delete("k/0")).await.unwrap();
        }
        let s = EmbeddedStore::open_with_log(dir.path(), TINY_LOG).unwrap();
        let (kvs, rev) = s.range("k/").await.unwrap();
        assert_eq!(rev, 51);
        let keys: Vec<&str> = kvs.iter().map(|kv| kv.key.as_str()).collect();
        assert_eq!(keys, ["k/1", "k/2", "k/3", "k/4", "k/5", "k/6"]);
        // k/6 was last written by write 48 (revision 49).
        assert_eq!(kvs[5].value, vec![48u8; 40]);
        assert_eq!((kvs[5].create_revision, kvs[5].mod_revision), (7, 49));
    }

    const CRASH_DIR: &str = "BERTH_STORE_CRASH_DIR";
    const CRASH_LOG: u64 = 4096 + 5000;

    /// In the child: write, report each acknowledged revision, then die
    /// without dropping the store (no final sync, as with kill -9).
    async fn write_then_abort(dir: &str) -> ! {
        let s = EmbeddedStore::open_with_log(Path::new(dir), CRASH_LOG).unwrap();
        for i in 0..300u32 {
            let txn = Txn::new()
                .put(format!("k/{i:04}"), i.to_le_bytes().to_vec())
                .put("last", i.to_le_bytes().to_vec());
            if let TxnOutcome::Committed { revision } = s.txn(txn).await.unwrap() {
                println!("acked {i} {revision}");
            }
        }
        std::process::abort();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_crash_loses_nothing_acknowledged() {
        if let Ok(dir) = std::env::var(CRASH_DIR) {
            write_then_abort(&dir).await;
        }
        let dir = tempfile::tempdir().unwrap();
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "embedded::tests::a_crash_loses_nothing_acknowledged",
            ])
            .args(["--nocapture", "--test-threads", "1"])
            .env(CRASH_DIR, dir.path())
            .output()
            .unwrap();
        assert!(!out.status.success(), "the child was meant to abort");
        let acked: Vec<(u32, u64)> = String::from_utf8_lossy(&out.stdout)
            .lines()
            // The harness's "test … " may precede the first line.
            .filter_map(|l| l.split_once("acked ").map(|(_, rest)| rest))
            .map(|l| {
                let (i, r) = l.split_once(' ').unwrap();
                (i.parse().unwrap(), r.parse().unwrap())
            })
            .collect();
        assert_eq!(acked.len(), 300);
        let s = EmbeddedStore::open_with_log(dir.path(), CRASH_LOG).unwrap();
        let (kvs, rev) = s.range("k/").await.unwrap();
        assert_eq!(rev, 300);
        assert_eq!(kvs.len(), 300);
        for (i, revision) in acked {
            let kv = &kvs[i as usize];
            assert_eq!(kv.key, format!("k/{i:04}"));
            assert_eq!(kv.value, i.to_le_bytes().to_vec());
            assert_eq!(kv.mod_revision, revision);
        }
        let last = s.get("last").await.unwrap().unwrap();
        assert_eq!(last.value, 299u32.to_le_bytes().to_vec());
        assert_eq!((last.create_revision, last.mod_revision), (1, 300));
    }
}
