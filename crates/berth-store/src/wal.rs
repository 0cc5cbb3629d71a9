//! The write-ahead log in front of the embedded store's B-tree: one
//! preallocated file of records, each the events of a group commit. Records
//! are written over blocks that already exist, so an `fdatasync` flushes data
//! only, not file-system metadata (on this class of disk about half the cost
//! of an append, and a fraction of a B-tree commit).
//!
//! Layout: a header block (magic, version, capacity), then records from
//! `HEADER_BYTES`: `[magic u32][payload len u32][crc32 of payload u32][payload]`.
//! After a checkpoint, writing starts over at the first record. Bytes past
//! the last record written since are older records or zeros: recovery keeps
//! only records that continue the revision sequence, so those are skipped.
use crate::{Event, EventBatch, EventKind, KeyValue, StoreError};
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

const FILE_MAGIC: &[u8; 8] = b"BERTHWAL";
const VERSION: u32 = 1;
const HEADER_BYTES: u64 = 4096;
const RECORD_MAGIC: u32 = 0xB3A7_0001;
const RECORD_HEAD: usize = 12;
/// Size of a new log; a batch that does not fit takes a checkpoint instead.
pub const DEFAULT_CAPACITY: u64 = 8 * 1024 * 1024;

pub struct Wal {
    file: File,
    capacity: u64,
    /// Where the next record goes.
    offset: u64,
}

fn io(e: std::io::Error) -> StoreError {
    StoreError::Backend(format!("write-ahead log: {e}"))
}

fn corrupt(what: &str) -> StoreError {
    StoreError::Backend(format!("write-ahead log: {what}"))
}

impl Wal {
    /// Opens `dir/berth.wal`, creating it (zero-filled to `capacity`) when it
    /// does not exist, and returns it with every well-formed record in file
    /// order. The caller decides which of them continue its revisions.
    pub fn open(dir: &Path, capacity: u64) -> Result<(Wal, Vec<EventBatch>), StoreError> {
        let path = dir.join("berth.wal");
        if !path.exists() {
            create(dir, &path, capacity)?;
        }
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(io)?;
        let mut header = [0u8; 20];
        file.read_exact(&mut header).map_err(io)?;
        if &header[0..8] != FILE_MAGIC {
            return Err(corrupt("berth.wal has no berth header"));
        }
        let version = u32::from_le_bytes(header[8..12].try_into().expect("4 bytes"));
        if version != VERSION {
            return Err(corrupt(&format!("berth.wal has version {version}")));
        }
        let capacity = u64::from_le_bytes(header[12..20].try_into().expect("8 bytes"));
        let len = file.metadata().map_err(io)?.len();
        if len < capacity || capacity <= HEADER_BYTES {
            return Err(corrupt(&format!(
                "berth.wal is {len} bytes, its header says {capacity}"
            )));
        }
        let batches = scan(&file, capacity)?;
        let wal = Wal {
            file,
            capacity,
            offset: HEADER_BYTES,
        };
        Ok((wal, batches))
    }

    /// Whether a record of `payload` bytes fits before the end of the log.
    pub fn fits(&self, payload: usize) -> bool {
        self.offset + (RECORD_HEAD + payload) as u64 <= self.capacity
    }

    /// Writes one record and waits until it is durable.
    pub fn append(&mut self, payload: &[u8]) -> Result<(), StoreError> {
        if !self.fits(payload.len()) {
            return Err(corrupt("record does not fit"));
        }
        let mut rec = Vec::with_capacity(RECORD_HEAD + payload.len());
        rec.extend_from_slice(&RECORD_MAGIC.to_le_bytes());
        rec.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        rec.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
        rec.extend_from_slice(payload);
        self.file.write_all_at(&rec, self.offset).map_err(io)?;
        self.file.sync_data().map_err(io)?;
        self.offset += rec.len() as u64;
        Ok(())
    }

    /// Everything logged so far is durable elsewhere: start over at the front.
    pub fn reset(&mut self) {
        self.offset = HEADER_BYTES;
    }
}

/// Makes the file whole under a temporary name, then renames it into place,
/// so a crash never leaves a log with a header but missing blocks.
fn create(dir: &Path, path: &Path, capacity: u64) -> Result<(), StoreError> {
    let tmp: PathBuf = dir.join("berth.wal.new");
    let mut f = File::create(&tmp).map_err(io)?;
    let mut header = vec![0u8; HEADER_BYTES as usize];
    header[0..8].copy_from_slice(FILE_MAGIC);
    header[8..12].copy_from_slice(&VERSION.to_le_bytes());
    header[12..20].copy_from_slice(&capacity.to_le_bytes());
    f.write_all(&header).map_err(io)?;
    // Real zero blocks, not a sparse or fallocated file: overwriting them
    // later changes no extent, so fdatasync has no metadata to journal.
    let zeros = vec![0u8; 1024 * 1024];
    let mut left = capacity - HEADER_BYTES;
    while left > 0 {
        let n = left.min(zeros.len() as u64) as usize;
        f.write_all(&zeros[..n]).map_err(io)?;
        left -= n as u64;
    }
    f.sync_all().map_err(io)?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(io)?;
    File::open(dir).and_then(|d| d.sync_all()).map_err(io)
}

/// Reads records from the front until one is missing, torn or corrupt.
fn scan(file: &File, capacity: u64) -> Result<Vec<EventBatch>, StoreError> {
    let mut out = Vec::new();
    let mut offset = HEADER_BYTES;
    let mut head = [0u8; RECORD_HEAD];
    while offset + RECORD_HEAD as u64 <= capacity {
        file.read_exact_at(&mut head, offset).map_err(io)?;
        let magic = u32::from_le_bytes(head[0..4].try_into().expect("4 bytes"));
        let len = u32::from_le_bytes(head[4..8].try_into().expect("4 bytes")) as u64;
        let crc = u32::from_le_bytes(head[8..12].try_into().expect("4 bytes"));
        let start = offset + RECORD_HEAD as u64;
        if magic != RECORD_MAGIC || start + len > capacity {
            break;
        }
        let mut payload = vec![0u8; len as usize];
        file.read_exact_at(&mut payload, start).map_err(io)?;
        if crc32fast::hash(&payload) != crc {
            break;
        }
        match decode(&payload) {
            Some(batches) => out.extend(batches),
            None => break,
        }
        offset = start + len;
    }
    Ok(out)
}

/// A record's payload: per transaction its revision and events.
pub fn encode(batches: &[&EventBatch], out: &mut Vec<u8>) {
    out.extend_from_slice(&(batches.len() as u32).to_le_bytes());
    for b in batches {
        out.extend_from_slice(&b.revision.to_le_bytes());
        out.extend_from_slice(&(b.events.len() as u32).to_le_bytes());
        for e in &b.events {
            out.push(match e.kind {
                EventKind::Put => 0,
                EventKind::Delete => 1,
            });
            out.extend_from_slice(&e.kv.create_revision.to_le_bytes());
            out.extend_from_slice(&e.kv.mod_revision.to_le_bytes());
            out.extend_from_slice(&(e.kv.key.len() as u32).to_le_bytes());
            out.extend_from_slice(e.kv.key.as_bytes());
            out.extend_from_slice(&(e.kv.value.len() as u32).to_le_bytes());
            out.extend_from_slice(&e.kv.value);
        }
    }
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        if self.0.len() < n {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    fn bytes(&mut self) -> Option<Vec<u8>> {
        let n = self.u32()? as usize;
        Some(self.take(n)?.to_vec())
    }
}

fn decode(payload: &[u8]) -> Option<Vec<EventBatch>> {
    let mut r = Reader(payload);
    let n = r.u32()?;
    let mut out = Vec::new();
    for _ in 0..n {
        let revision = r.u64()?;
        let count = r.u32()?;
        let mut events = Vec::new();
        for _ in 0..count {
            let kind = match r.take(1)?[0] {
                0 => EventKind::Put,
                1 => EventKind::Delete,
                _ => return None,
            };
            let create_revision = r.u64()?;
            let mod_revision = r.u64()?;
            let key = String::from_utf8(r.bytes()?).ok()?;
            let value = r.bytes()?;
            let kv = KeyValue {
                key,
                value,
                create_revision,
                mod_revision,
            };
            events.push(Event { kind, kv });
        }
        out.push(EventBatch { revision, events });
    }
    r.0.is_empty().then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(revision: u64, key: &str, value: &[u8]) -> EventBatch {
        let kv = KeyValue {
            key: key.into(),
            value: value.to_vec(),
            create_revision: 1,
            mod_revision: revision,
        };
        let events = vec![Event {
            kind: EventKind::Put,
            kv,
        }];
        EventBatch { revision, events }
    }

    fn payload(batches: &[EventBatch]) -> Vec<u8> {
        let mut out = Vec::new();
        encode(&batches.iter().collect::<Vec<_>>(), &mut out);
        out
    }

    #[test]
    fn records_come_back_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, found) = Wal::open(dir.path(), 64 * 1024).unwrap();
        assert!(found.is_empty());
        let (a, b, c) = (
            batch(1, "k/a", b"1"),
            batch(2, "k/b", b"2"),
            batch(3, "k/a", b""),
        );
        wal.append(&payload(&[a.clone(), b.clone()])).unwrap();
        wal.append(&payload(std::slice::from_ref(&c))).unwrap();
        drop(wal);
        let (_, found) = Wal::open(dir.path(), 64 * 1024).unwrap();
        assert_eq!(found, vec![a, b, c]);
    }

    #[test]
    fn a_torn_record_ends_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, _) = Wal::open(dir.path(), 64 * 1024).unwrap();
        wal.append(&payload(&[batch(1, "k/a", b"one")])).unwrap();
        let second_at = wal.offset;
        wal.append(&payload(&[batch(2, "k/b", b"two")])).unwrap();
        wal.append(&payload(&[batch(3, "k/c", b"three")])).unwrap();
        // One flipped byte inside the second record's payload.
        let f = OpenOptions::new()
            .write(true)
            .open(dir.path().join("berth.wal"))
            .unwrap();
        f.write_all_at(b"X", second_at + RECORD_HEAD as u64 + 30)
            .unwrap();
        let (_, found) = Wal::open(dir.path(), 64 * 1024).unwrap();
        assert_eq!(found, vec![batch(1, "k/a", b"one")]);
    }

    #[test]
    fn after_a_reset_older_records_follow_the_new_ones() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, _) = Wal::open(dir.path(), 64 * 1024).unwrap();
        let long = vec![b'v'; 300];
        wal.append(&payload(&[batch(1, "k/a", &long)])).unwrap();
        wal.append(&payload(&[batch(2, "k/b", &long)])).unwrap();
        wal.reset();
        wal.append(&payload(&[batch(3, "k/c", &long)])).unwrap();
        drop(wal);
        let (_, found) = Wal::open(dir.path(), 64 * 1024).unwrap();
        // Same-sized records line up, so the stale second one reads as well;
        // the store skips it because revision 2 does not follow 3.
        let revisions: Vec<u64> = found.iter().map(|b| b.revision).collect();
        assert_eq!(revisions, vec![3, 2]);
    }

    #[test]
    fn a_full_log_refuses_the_record() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, _) = Wal::open(dir.path(), HEADER_BYTES + 100).unwrap();
        let big = payload(&[batch(1, "k/a", &[0u8; 200])]);
        assert!(!wal.fits(big.len()));
        assert!(wal.append(&big).is_err());
        let small = payload(&[batch(1, "k/a", b"x")]);
        assert!(wal.fits(small.len()));
        wal.append(&small).unwrap();
    }

    #[test]
    fn a_foreign_file_is_refused_not_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("berth.wal"), vec![7u8; 8192]).unwrap();
        assert!(Wal::open(dir.path(), 64 * 1024).is_err());
        assert_eq!(
            std::fs::read(dir.path().join("berth.wal")).unwrap(),
            vec![7u8; 8192]
        );
    }
}
