//! Moves every key of one store into another (an embedded installation onto
//! etcd), and proves the two hold the same: same count, same checksum.
use crate::{KeyValue, Store, StoreError, Txn, TxnOutcome};
use sha2::{Digest, Sha256};

/// Most keys one copying transaction writes (etcd refuses more than 128 ops by default).
const BATCH_KEYS: usize = 100;
/// Most bytes one copying transaction carries (etcd refuses requests over 1.5 MiB by default).
const BATCH_BYTES: usize = 1024 * 1024;

/// What a store holds, summed up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contents {
    pub keys: usize,
    /// SHA-256 over every key and value in key order (revisions left out: they start over).
    pub checksum: String,
}

#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the destination already holds {0} keys; copy into an empty store")]
    DestinationNotEmpty(usize),
    #[error(
        "a key appeared in the destination while copying ({0}); nothing of that batch was written"
    )]
    Raced(String),
    #[error("the copy differs from the source: {source_keys} keys ({source_sum}) copied as {copy_keys} keys ({copy_sum})")]
    Mismatch {
        source_keys: usize,
        source_sum: String,
        copy_keys: usize,
        copy_sum: String,
    },
}

/// Sums up `kvs`, skipping keys under `skip` (servers' coordination: leases, presence).
pub fn contents(kvs: &[KeyValue], skip: &str) -> Contents {
    let mut sorted: Vec<&KeyValue> = kvs
        .iter()
        .filter(|kv| skip.is_empty() || !kv.key.starts_with(skip))
        .collect();
    sorted.sort_by(|a, b| a.key.cmp(&b.key));
    let mut hash = Sha256::new();
    for kv in &sorted {
        // Lengths first, so no two different sets of keys and values hash alike.
        hash.update((kv.key.len() as u64).to_le_bytes());
        hash.update(kv.key.as_bytes());
        hash.update((kv.value.len() as u64).to_le_bytes());
        hash.update(&kv.value);
    }
    let checksum = hash.finalize().iter().map(|b| format!("{b:02x}")).collect();
    Contents {
        keys: sorted.len(),
        checksum,
    }
}

/// The keys in transactions of at most `BATCH_KEYS` keys and about `BATCH_BYTES`.
fn batches(kvs: &[KeyValue]) -> Vec<&[KeyValue]> {
    let mut out = vec![];
    let (mut start, mut bytes) = (0, 0);
    for (i, kv) in kvs.iter().enumerate() {
        let size = kv.key.len() + kv.value.len();
        if i > start && (i - start == BATCH_KEYS || bytes + size > BATCH_BYTES) {
            out.push(&kvs[start..i]);
            (start, bytes) = (i, 0);
        }
        bytes += size;
    }
    if start < kvs.len() {
        out.push(&kvs[start..]);
    }
    out
}

/// Copies every key of `from` (but those under `skip`) into the empty store `to`, then reads
/// both again and compares them. Each batch is written only where its keys are still absent.
pub async fn copy(from: &dyn Store, to: &dyn Store, skip: &str) -> Result<Contents, CopyError> {
    let (already, _) = to.range("").await?;
    let already = contents(&already, skip).keys;
    if already > 0 {
        return Err(CopyError::DestinationNotEmpty(already));
    }
    let (kvs, _) = from.range("").await?;
    let kvs: Vec<KeyValue> = kvs
        .into_iter()
        .filter(|kv| skip.is_empty() || !kv.key.starts_with(skip))
        .collect();
    for batch in batches(&kvs) {
        let mut txn = Txn::new();
        for kv in batch {
            txn = txn
                .compare_mod(kv.key.clone(), 0)
                .put(kv.key.clone(), kv.value.clone());
        }
        if let TxnOutcome::Conflict { .. } = to.txn(txn).await? {
            return Err(CopyError::Raced(batch[0].key.clone()));
        }
    }
    let source = contents(&from.range("").await?.0, skip);
    let copied = contents(&to.range("").await?.0, skip);
    if source != copied {
        return Err(CopyError::Mismatch {
            source_keys: source.keys,
            source_sum: source.checksum,
            copy_keys: copied.keys,
            copy_sum: copied.checksum,
        });
    }
    Ok(copied)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemoryStore;

    fn kv(key: &str, value: &[u8]) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: value.to_vec(),
            create_revision: 1,
            mod_revision: 1,
        }
    }

    #[test]
    fn the_checksum_depends_on_keys_and_values_not_order_or_revisions() {
        let a = contents(&[kv("a", b"1"), kv("b", b"2")], "");
        let mut moved = kv("a", b"1");
        moved.mod_revision = 9;
        assert_eq!(a, contents(&[kv("b", b"2"), moved], ""));
        assert_eq!(a.keys, 2);
        assert_ne!(
            a.checksum,
            contents(&[kv("a", b"1"), kv("b", b"3")], "").checksum
        );
        // A byte moved from value to key is another store.
        assert_ne!(
            contents(&[kv("ab", b"")], "").checksum,
            contents(&[kv("a", b"b")], "").checksum
        );
        assert_eq!(contents(&[kv("c/x", b"1"), kv("a", b"1")], "c/").keys, 1);
    }

    #[test]
    fn batches_stay_within_etcds_limits() {
        let many: Vec<KeyValue> = (0..250).map(|i| kv(&format!("k{i:03}"), b"v")).collect();
        let sizes: Vec<usize> = batches(&many).iter().map(|b| b.len()).collect();
        assert_eq!(sizes, vec![100, 100, 50]);
        let big = vec![0u8; 600 * 1024];
        let large = [kv("a", &big), kv("b", &big), kv("c", b"x")];
        let sizes: Vec<usize> = batches(&large).iter().map(|b| b.len()).collect();
        assert_eq!(sizes, vec![1, 2]);
        assert!(batches(&[]).is_empty());
    }

    #[tokio::test]
    async fn a_copy_holds_what_the_source_holds_and_refuses_a_used_destination() {
        let (from, to) = (MemoryStore::new(), MemoryStore::new());
        let mut txn = Txn::new();
        for i in 0..230 {
            txn = txn.put(format!("clusters/{i}"), vec![i as u8; 10]);
        }
        from.txn(txn.put("coordination/leader", b"s1".to_vec()))
            .await
            .unwrap();
        let copied = copy(&from, &to, "coordination/").await.unwrap();
        assert_eq!(copied.keys, 230);
        assert_eq!(
            copied,
            contents(&from.range("").await.unwrap().0, "coordination/")
        );
        assert!(to.get("coordination/leader").await.unwrap().is_none());
        assert_eq!(
            to.get("clusters/7").await.unwrap().unwrap().value,
            vec![7u8; 10]
        );
        match copy(&from, &to, "coordination/").await {
            Err(CopyError::DestinationNotEmpty(230)) => {}
            other => panic!("{other:?}"),
        }
    }
}
