//! The behaviour every Store backend must show. A backend's tests call
//! `run_all` with a factory that yields a fresh, empty store each time.
use crate::*;
use std::future::Future;
use std::sync::Arc;

pub async fn run_all<G, S, F, Fut>(make: F)
where
    S: Store,
    F: Fn() -> Fut,
    Fut: Future<Output = (G, S)>,
{
    let (_g, s) = make().await;
    put_get_and_revisions(&s).await;
    let (_g, s) = make().await;
    compare_and_swap(&s).await;
    let (_g, s) = make().await;
    compare_value(&s).await;
    let (_g, s) = make().await;
    submissions_commit_in_order(&s).await;
    let (_g, s) = make().await;
    failed_compare_writes_nothing(&s).await;
    let (_g, s) = make().await;
    range_is_prefix_scoped_and_ordered(&s).await;
    let (_g, s) = make().await;
    delete(&s).await;
    let (_g, s) = make().await;
    watch_follows_snapshot_without_gap(&s).await;
    let (_g, s) = make().await;
    concurrent_increments_lose_nothing(Arc::new(s)).await;
}

pub async fn put_get_and_revisions<S: Store>(s: &S) {
    assert_eq!(s.get("a").await.unwrap(), None);
    assert_eq!(
        s.txn(Txn::new().put("a", b"1".to_vec())).await.unwrap(),
        TxnOutcome::Committed { revision: 1 }
    );
    assert_eq!(
        s.txn(Txn::new().put("a", b"2".to_vec())).await.unwrap(),
        TxnOutcome::Committed { revision: 2 }
    );
    let kv = s.get("a").await.unwrap().unwrap();
    assert_eq!(kv.value, b"2");
    assert_eq!(kv.create_revision, 1);
    assert_eq!(kv.mod_revision, 2);
}

pub async fn compare_and_swap<S: Store>(s: &S) {
    // Create-only: mod revision 0 means absent.
    let created = s
        .txn(Txn::new().compare_mod("c", 0).put("c", b"x".to_vec()))
        .await
        .unwrap();
    assert_eq!(created, TxnOutcome::Committed { revision: 1 });
    let again = s
        .txn(Txn::new().compare_mod("c", 0).put("c", b"y".to_vec()))
        .await
        .unwrap();
    assert_eq!(again, TxnOutcome::Conflict { revision: 1 });
    let swapped = s
        .txn(Txn::new().compare_mod("c", 1).put("c", b"z".to_vec()))
        .await
        .unwrap();
    assert_eq!(swapped, TxnOutcome::Committed { revision: 2 });
    let stale = s
        .txn(Txn::new().compare_mod("c", 1).put("c", b"w".to_vec()))
        .await
        .unwrap();
    assert_eq!(stale, TxnOutcome::Conflict { revision: 2 });
    assert_eq!(s.get("c").await.unwrap().unwrap().value, b"z");
}

pub async fn compare_value<S: Store>(s: &S) {
    // An absent key holds no value, not even an empty one.
    let absent = Txn::new()
        .compare_value("v", vec![])
        .put("v", b"a".to_vec());
    assert_eq!(
        s.txn(absent).await.unwrap(),
        TxnOutcome::Conflict { revision: 0 }
    );
    s.txn(Txn::new().put("v", b"a".to_vec())).await.unwrap();
    let wrong = Txn::new()
        .compare_value("v", b"b".to_vec())
        .put("v", b"c".to_vec());
    assert_eq!(
        s.txn(wrong).await.unwrap(),
        TxnOutcome::Conflict { revision: 1 }
    );
    let right = Txn::new()
        .compare_value("v", b"a".to_vec())
        .put("v", b"c".to_vec());
    assert_eq!(
        s.txn(right).await.unwrap(),
        TxnOutcome::Committed { revision: 2 }
    );
    assert_eq!(s.get("v").await.unwrap().unwrap().value, b"c");
}

pub async fn submissions_commit_in_order<S: Store>(s: &S) {
    // Each step guards on the value the step before it writes, and none is
    // awaited before the next is submitted.
    let steps: Vec<TxnFuture> = (1..=20u32)
        .map(|i| {
            let mut t = Txn::new();
            if i > 1 {
                t = t.compare_value("seq", (i - 1).to_string().into_bytes());
            }
            s.submit(t.put("seq", i.to_string().into_bytes()))
        })
        .collect();
    let mut revisions = vec![];
    for step in steps {
        match step.await.unwrap() {
            TxnOutcome::Committed { revision } => revisions.push(revision),
            other => panic!("a step submitted in order failed its guard: {other:?}"),
        }
    }
    assert_eq!(revisions, (1..=20).collect::<Vec<u64>>());
    assert_eq!(s.get("seq").await.unwrap().unwrap().value, b"20");
}

pub async fn failed_compare_writes_nothing<S: Store>(s: &S) {
    s.txn(Txn::new().put("g", b"1".to_vec())).await.unwrap();
    let t = Txn::new()
        .compare_mod("g", 0)
        .put("h", b"1".to_vec())
        .delete("g");
    assert!(matches!(
        s.txn(t).await.unwrap(),
        TxnOutcome::Conflict { .. }
    ));
    assert_eq!(s.get("h").await.unwrap(), None);
    assert!(s.get("g").await.unwrap().is_some());
    // Several ops in one transaction share one revision.
    let t = Txn::new()
        .compare_mod("g", 1)
        .put("h", b"2".to_vec())
        .put("i", b"3".to_vec());
    assert_eq!(
        s.txn(t).await.unwrap(),
        TxnOutcome::Committed { revision: 2 }
    );
    assert_eq!(s.get("i").await.unwrap().unwrap().mod_revision, 2);
    assert_eq!(s.get("h").await.unwrap().unwrap().mod_revision, 2);
}

pub async fn range_is_prefix_scoped_and_ordered<S: Store>(s: &S) {
    for k in ["p/b", "p/a", "q/a", "p/c", "pp/a"] {
        s.txn(Txn::new().put(k, k.as_bytes().to_vec()))
            .await
            .unwrap();
    }
    let (kvs, rev) = s.range("p/").await.unwrap();
    let keys: Vec<_> = kvs.iter().map(|k| k.key.as_str()).collect();
    assert_eq!(keys, ["p/a", "p/b", "p/c"]);
    assert_eq!(rev, 5);
    let (all, _) = s.range("").await.unwrap();
    assert_eq!(all.len(), 5);
}

pub async fn delete<S: Store>(s: &S) {
    s.txn(Txn::new().put("d", b"1".to_vec())).await.unwrap();
    assert_eq!(
        s.txn(Txn::new().delete("d")).await.unwrap(),
        TxnOutcome::Committed { revision: 2 }
    );
    assert_eq!(s.get("d").await.unwrap(), None);
    // Recreated keys start a new life.
    s.txn(Txn::new().compare_mod("d", 0).put("d", b"2".to_vec()))
        .await
        .unwrap();
    assert_eq!(s.get("d").await.unwrap().unwrap().create_revision, 3);
}

pub async fn watch_follows_snapshot_without_gap<S: Store>(s: &S) {
    s.txn(Txn::new().put("w/1", b"a".to_vec())).await.unwrap();
    s.txn(Txn::new().put("x/1", b"outside".to_vec()))
        .await
        .unwrap();
    let mut snap = s.snapshot_and_watch("w/").await.unwrap();
    assert_eq!(snap.revision, 2);
    assert_eq!(snap.kvs.len(), 1);
    s.txn(Txn::new().put("w/2", b"b".to_vec())).await.unwrap();
    s.txn(Txn::new().delete("w/1")).await.unwrap();
    let b1 = snap.watch.recv().await.unwrap();
    assert_eq!(b1.revision, 3);
    assert_eq!(b1.events[0].kind, EventKind::Put);
    assert_eq!(b1.events[0].kv.key, "w/2");
    assert_eq!(b1.events[0].kv.value, b"b");
    let b2 = snap.watch.recv().await.unwrap();
    assert_eq!(b2.revision, 4);
    assert_eq!(b2.events[0].kind, EventKind::Delete);
    assert_eq!(b2.events[0].kv.key, "w/1");
}

pub async fn concurrent_increments_lose_nothing<S: Store>(s: Arc<S>) {
    const WRITERS: u64 = 8;
    const EACH: u64 = 25;
    let mut handles = vec![];
    for _ in 0..WRITERS {
        let s = s.clone();
        handles.push(tokio::spawn(async move {
            for _ in 0..EACH {
                loop {
                    let cur = s.get("counter").await.unwrap();
                    let (n, rev) = match &cur {
                        Some(kv) => (
                            String::from_utf8_lossy(&kv.value).parse::<u64>().unwrap(),
                            kv.mod_revision,
                        ),
                        None => (0, 0),
                    };
                    let t = Txn::new()
                        .compare_mod("counter", rev)
                        .put("counter", (n + 1).to_string().into_bytes());
                    if let TxnOutcome::Committed { .. } = s.txn(t).await.unwrap() {
                        break;
                    }
                }
            }
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    let kv = s.get("counter").await.unwrap().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&kv.value),
        (WRITERS * EACH).to_string()
    );
}
