//! The block store: block bytes in append-only pack files, located through an index in the db.
//!
//! Layout of `<data>/blocks/`: [`crate::packs`] files whose records are keyed by CID bytes.
//! The index (tree
//! [`TreeName::Blocks`]) maps CID bytes to `segment (4) | offset of data (8) | len (4)`; the pin
//! tree maps a root CID to `pin count (4) | complete (1)`.
//!
//! Crash safety: records are appended and `fsync`ed before their index entries are written, so an
//! index entry never points at bytes that were not synced; a crash can only leave unindexed bytes,
//! which compaction reclaims. "Complete" is only set after every block of the DAG was found.
//!
//! The store is synchronous (file IO, hashing, db): async callers use `spawn_blocking`.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};

use super::cid::Cid;
use super::unixfs::{self, MAX_BLOCK_SIZE};
use super::Block;
use crate::db::{self, Batch, Db, Tree, TreeName};
use crate::packs::{self, Location, Packs};

mod dag;
mod gc;
mod pins;
mod writer;

pub use dag::Stat;
pub use gc::{GcReport, COMPACT_BELOW_LIVE};
pub use pins::Hold;
pub use writer::{Commits, Writer, Written};

/// Default largest segment file.
pub const DEFAULT_SEGMENT_BYTES: u64 = 256 * 1024 * 1024;

/// Errors of the block store.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Db(#[from] db::Error),
    #[error("block store IO: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Block(Box<unixfs::Error>),
    #[error("quota exceeded: storing {incoming} more bytes would use {would_use} of the {quota}-byte quota")]
    QuotaExceeded { incoming: u64, would_use: u64, quota: u64 },
    #[error("corrupt block index entry for {0}")]
    CorruptIndex(String),
    #[error("block store lock poisoned")]
    Poisoned,
    #[error("block {cid} is needed by pinned root {root}: unpin it first")]
    Pinned { cid: String, root: String },
}

impl From<packs::Error> for Error {
    fn from(e: packs::Error) -> Self {
        match e {
            packs::Error::Io(e) => Error::Io(e),
            packs::Error::Poisoned => Error::Poisoned,
            other => Error::Io(std::io::Error::other(other)),
        }
    }
}

impl From<unixfs::Error> for Error {
    fn from(e: unixfs::Error) -> Self {
        Error::Block(Box::new(e))
    }
}

/// Settings of the block store (the `[store]` section of the config file).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Largest number of block bytes stored (absent: unlimited).
    pub quota: Option<u64>,
    /// Size at which a pack file is closed and a new one started.
    pub segment_bytes: u64,
    /// Bytes of sled's page cache for the index (messages, blocks, pins).
    pub db_cache_bytes: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self { quota: None, segment_bytes: DEFAULT_SEGMENT_BYTES, db_cache_bytes: db::DEFAULT_CACHE_BYTES }
    }
}

/// Where block bytes live.
enum Bytes {
    Memory(RwLock<HashMap<Cid, Arc<Vec<u8>>>>),
    Packs(Packs),
}

/// Handle to the block store; cheap to clone.
#[derive(Clone)]
pub struct BlockStore {
    inner: Arc<Inner>,
}

struct Inner {
    db: Db,
    index: Tree,
    pins: Tree,
    bytes: Bytes,
    quota: Option<u64>,
    /// Bytes of indexed blocks.
    used: Mutex<u64>,
    /// Serialises writers with GC, so GC never drops a block a concurrent put just indexed.
    gc_lock: RwLock<()>,
    /// Roots of fetches in progress, with how many fetches hold each: GC keeps what is
    /// already stored under them (a temporary pin, never persisted).
    held: Mutex<HashMap<Cid, usize>>,
}

impl BlockStore {
    /// Opens the disk store: pack files in `dir`, index in `db`.
    pub fn open(db: &Db, dir: &Path, config: Config) -> Result<Self, Error> {
        let packs = Packs::open(dir.to_path_buf(), config.segment_bytes)?;
        Self::with_bytes(db, Bytes::Packs(packs), config.quota)
    }

    /// An in-memory store (tests).
    pub fn memory(config: Config) -> Self {
        Self::with_bytes(&Db::memory(), Bytes::Memory(RwLock::default()), config.quota)
            .expect("a fresh in-memory store opens")
    }

    fn with_bytes(db: &Db, bytes: Bytes, quota: Option<u64>) -> Result<Self, Error> {
        let index = db.tree(TreeName::Blocks)?;
        let mut used = 0u64;
        for row in index.range(&[], None) {
            let (k, v) = row?;
            let loc = Location::decode(&v).ok_or_else(|| Error::CorruptIndex(hex::encode(&k)))?;
            used += u64::from(loc.len);
        }
        Ok(Self {
            inner: Arc::new(Inner {
                db: db.clone(),
                index,
                pins: db.tree(TreeName::Pins)?,
                bytes,
                quota,
                used: Mutex::new(used),
                gc_lock: RwLock::new(()),
                held: Mutex::default(),
            }),
        })
    }

    /// Bytes of blocks stored.
    pub fn used_bytes(&self) -> u64 {
        self.inner.used.lock().map(|u| *u).unwrap_or(0)
    }

    /// True when the block is stored.
    pub fn has(&self, cid: &Cid) -> Result<bool, Error> {
        match &self.inner.bytes {
            Bytes::Memory(m) => Ok(m.read().map_err(|_| Error::Poisoned)?.contains_key(cid)),
            Bytes::Packs(_) => Ok(self.inner.index.contains_key(&cid.to_bytes())?),
        }
    }

    /// Reads a block (not re-hashed: it was verified when stored; readers of files verify).
    pub fn get(&self, cid: &Cid) -> Result<Option<Vec<u8>>, Error> {
        match &self.inner.bytes {
            Bytes::Memory(m) => Ok(m.read().map_err(|_| Error::Poisoned)?.get(cid).map(|b| b.to_vec())),
            Bytes::Packs(p) => match self.inner.index.get(&cid.to_bytes())? {
                None => Ok(None),
                Some(v) => {
                    let loc = Location::decode(&v).ok_or(Error::CorruptIndex(cid.to_string()))?;
                    Ok(Some(p.read(loc)?))
                }
            },
        }
    }

    /// Reads `len` bytes at `offset` of a block (a part of a raw leaf), without reading the rest
    /// of it; not re-hashed either. None: no such block. A range past the block's end is an error.
    pub fn get_part(&self, cid: &Cid, offset: u64, len: usize) -> Result<Option<Vec<u8>>, Error> {
        match &self.inner.bytes {
            Bytes::Memory(m) => {
                let blocks = m.read().map_err(|_| Error::Poisoned)?;
                let Some(b) = blocks.get(cid) else { return Ok(None) };
                let start = usize::try_from(offset).unwrap_or(usize::MAX);
                let part = start.checked_add(len).and_then(|end| b.get(start..end));
                let part = part.ok_or(packs::Error::OutOfRecord { offset, len, record: b.len() as u32 })?;
                Ok(Some(part.to_vec()))
            }
            Bytes::Packs(p) => match self.inner.index.get(&cid.to_bytes())? {
                None => Ok(None),
                Some(v) => {
                    let loc = Location::decode(&v).ok_or(Error::CorruptIndex(cid.to_string()))?;
                    Ok(Some(p.read_part(loc, offset, len)?))
                }
            },
        }
    }

    /// Stores one block.
    pub fn put(&self, block: &Block) -> Result<bool, Error> {
        Ok(self.put_many(std::slice::from_ref(block))? == 1)
    }

    /// Stores blocks with one sync for the batch; returns how many were new. Nothing is written
    /// when the quota would be exceeded.
    pub fn put_many(&self, blocks: &[Block]) -> Result<usize, Error> {
        let _gc = self.inner.gc_lock.read().map_err(|_| Error::Poisoned)?;
        let mut seen = HashSet::new();
        let mut fresh = Vec::with_capacity(blocks.len());
        for b in blocks {
            if seen.insert(*b.cid()) && !self.has(b.cid())? {
                fresh.push((*b.cid(), b.data()));
            }
        }
        if fresh.is_empty() {
            return Ok(0);
        }
        let incoming: u64 = fresh.iter().map(|(_, d)| d.len() as u64).sum();
        // The bytes are counted before they are written, so the lock is never held across the
        // sync (readers of `used_bytes` would wait for the disk), and given back on failure.
        {
            let mut used = self.inner.used.lock().map_err(|_| Error::Poisoned)?;
            if let Some(quota) = self.inner.quota {
                if *used + incoming > quota {
                    return Err(Error::QuotaExceeded { incoming, would_use: *used + incoming, quota });
                }
            }
            *used += incoming;
        }
        let written = self.write_fresh(&fresh);
        if written.is_err() {
            let mut used = self.inner.used.lock().map_err(|_| Error::Poisoned)?;
            *used = used.saturating_sub(incoming);
        }
        written.map(|()| fresh.len())
    }

    fn write_fresh(&self, fresh: &[(Cid, &[u8])]) -> Result<(), Error> {
        match &self.inner.bytes {
            Bytes::Memory(m) => {
                let mut m = m.write().map_err(|_| Error::Poisoned)?;
                for (cid, data) in fresh {
                    m.insert(*cid, Arc::new(data.to_vec()));
                }
            }
            Bytes::Packs(p) => {
                let keys: Vec<Vec<u8>> = fresh.iter().map(|(c, _)| c.to_bytes()).collect();
                let records: Vec<(&[u8], &[u8])> =
                    keys.iter().zip(fresh).map(|(k, (_, d))| (k.as_slice(), *d)).collect();
                let locs = p.append(&records)?;
                let mut batch = Batch::default();
                for (key, loc) in keys.into_iter().zip(locs) {
                    batch.insert(key, loc.encode().to_vec());
                }
                self.inner.index.apply(batch)?;
            }
        }
        Ok(())
    }

    pub(super) fn remove_many(&self, cids: &[(Cid, u64)]) -> Result<(), Error> {
        let mut used = self.inner.used.lock().map_err(|_| Error::Poisoned)?;
        match &self.inner.bytes {
            Bytes::Memory(m) => {
                let mut m = m.write().map_err(|_| Error::Poisoned)?;
                for (cid, _) in cids {
                    m.remove(cid);
                }
            }
            Bytes::Packs(_) => {
                let mut batch = Batch::default();
                for (cid, _) in cids {
                    batch.remove(cid.to_bytes());
                }
                self.inner.index.apply(batch)?;
            }
        }
        *used -= cids.iter().map(|(_, l)| *l).sum::<u64>().min(*used);
        Ok(())
    }

    pub(super) fn block_len(&self, cid: &Cid) -> Result<Option<u64>, Error> {
        match &self.inner.bytes {
            Bytes::Memory(m) => Ok(m.read().map_err(|_| Error::Poisoned)?.get(cid).map(|b| b.len() as u64)),
            Bytes::Packs(_) => match self.inner.index.get(&cid.to_bytes())? {
                None => Ok(None),
                Some(v) => {
                    Ok(Some(u64::from(Location::decode(&v).ok_or(Error::CorruptIndex(cid.to_string()))?.len)))
                }
            },
        }
    }

    /// Makes index writes durable. Blocking.
    pub fn flush(&self) -> Result<(), Error> {
        Ok(self.inner.db.flush()?)
    }
}

/// Longest block a record may declare (what [`MAX_BLOCK_SIZE`] allows).
pub const MAX_RECORD_DATA: usize = MAX_BLOCK_SIZE;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blocks::unixfs::{import, Layout};

    fn add(store: &BlockStore, bytes: &[u8], layout: Layout) -> Cid {
        let mut sink = |b: Block| {
            store.put(&b).map_err(|e| unixfs::Error::Sink(e.to_string()))?;
            Ok(())
        };
        import(&mut &bytes[..], layout, &mut sink).unwrap().root
    }

    fn small() -> Layout {
        Layout { chunk_size: 1000, max_links: 4 }
    }

    fn disk() -> (tempfile::TempDir, BlockStore) {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("db")).unwrap();
        let s = BlockStore::open(
            &db,
            &dir.path().join("blocks"),
            Config { quota: None, segment_bytes: 8192, ..Config::default() },
        )
        .unwrap();
        (dir, s)
    }

    fn read_back(store: &BlockStore, root: Cid) -> Vec<u8> {
        unixfs::Exporter::new(root, |c: &Cid| store.get(c).map_err(|e| e.to_string())).read_all().unwrap()
    }

    #[test]
    fn put_get_and_refuse_bad_blocks() {
        for store in [BlockStore::memory(Config::default()), disk().1] {
            let cid = crate::blocks::cid::raw(b"hello");
            let block = Block::verify(cid, b"hello".to_vec()).unwrap();
            assert!(store.put(&block).unwrap());
            assert!(!store.put(&block).unwrap());
            assert_eq!(store.get(&cid).unwrap().unwrap(), b"hello");
            assert!(matches!(Block::verify(cid, b"hellO".to_vec()), Err(unixfs::Error::HashMismatch(_))));
            assert_eq!(store.used_bytes(), 5);
        }
    }

    #[test]
    fn complete_flag_and_missing_listing() {
        let (_d, store) = disk();
        let data: Vec<u8> = (0..20_000u32).map(|i| (i % 251) as u8).collect();
        let root = add(&store, &data, small());
        assert!(store.mark_complete_if_whole(&root).unwrap());
        assert_eq!(read_back(&store, root), data);

        // A second store that holds every block but two leaves: not complete, and the listing
        // names exactly those leaves.
        let other = BlockStore::memory(Config::default());
        let mut all = Vec::new();
        store.walk(&root, |c, _| all.push(*c)).unwrap();
        let leaves: Vec<_> = all.iter().filter(|c| c.codec() == crate::blocks::cid::RAW).copied().collect();
        for c in &all {
            if c != &leaves[3] && c != &leaves[7] {
                other.put(&Block::verify(*c, store.get(c).unwrap().unwrap()).unwrap()).unwrap();
            }
        }
        assert!(!other.mark_complete_if_whole(&root).unwrap());
        assert_eq!(other.missing(&root).unwrap(), vec![leaves[3], leaves[7]]);
        assert!(!other.is_complete(&root).unwrap());
    }

    #[test]
    fn quota_refuses_without_writing_anything() {
        let store = BlockStore::memory(Config { quota: Some(2500), ..Default::default() });
        // Three distinct 1000-byte leaves: the third would pass the quota.
        let data: Vec<u8> = (0..3000u32).map(|i| (i % 251) as u8).collect();
        let mut sink = |b: Block| store.put(&b).map(|_| ()).map_err(|e| unixfs::Error::Sink(e.to_string()));
        let err = import(&mut &data[..], small(), &mut sink).unwrap_err();
        assert!(err.to_string().contains("quota exceeded"), "{err}");
        assert_eq!(store.used_bytes(), 2000);

        // A batch that does not fit is refused whole.
        let batch: Vec<Block> = (0..2u8)
            .map(|i| Block::verify(crate::blocks::cid::raw(&[i; 300]), vec![i; 300]).unwrap())
            .collect();
        assert!(matches!(store.put_many(&batch), Err(Error::QuotaExceeded { quota: 2500, .. })));
        assert_eq!(store.used_bytes(), 2000);
        assert!(!store.has(batch[0].cid()).unwrap());
    }

    #[test]
    fn gc_keeps_pinned_dags_drops_the_rest_and_compacts() {
        let (dir, store) = disk();
        let keep: Vec<u8> = (0..9_000u32).map(|i| (i * 7 % 256) as u8).collect();
        let drop: Vec<u8> = (0..30_000u32).map(|i| (i * 13 % 256) as u8).collect();
        let kept = add(&store, &keep, small());
        let dropped = add(&store, &drop, small());
        store.pin(&kept).unwrap();
        store.mark_complete_if_whole(&kept).unwrap();
        store.mark_complete_if_whole(&dropped).unwrap();
        let segments_before = std::fs::read_dir(dir.path().join("blocks")).unwrap().count();

        let report = store.gc().unwrap();
        assert!(report.removed_blocks > 0);
        assert!(report.compacted_segments > 0, "{report:?}");
        assert_eq!(read_back(&store, kept), keep);
        assert!(store.is_complete(&kept).unwrap());
        assert!(!store.is_complete(&dropped).unwrap());
        assert!(!store.missing(&dropped).unwrap().is_empty());
        let segments_after = std::fs::read_dir(dir.path().join("blocks")).unwrap().count();
        assert!(segments_after < segments_before, "{segments_before} -> {segments_after}");

        // Deleting a block of the pinned DAG is refused; of nothing pinned, allowed.
        let leaf = store.missing(&kept).unwrap();
        assert!(leaf.is_empty());
        let mut kept_blocks = Vec::new();
        store.walk(&kept, |c, _| kept_blocks.push(*c)).unwrap();
        assert!(matches!(store.delete(&kept_blocks[1]), Err(Error::Pinned { .. })));

        // Unpinned, the rest goes too.
        store.unpin(&kept).unwrap();
        assert!(store.delete(&kept_blocks[1]).unwrap());
        assert!(!store.is_complete(&kept).unwrap());
        store.gc().unwrap();
        assert_eq!(store.used_bytes(), 0);
    }

    #[test]
    fn gc_keeps_what_a_fetch_in_progress_stored_until_it_ends() {
        let (_d, store) = disk();
        let data: Vec<u8> = (0..20_000u32).map(|i| (i * 3 % 256) as u8).collect();
        let full = BlockStore::memory(Config::default());
        let root = add(&full, &data, small());
        // Half of the DAG arrived so far, root included; nothing is pinned yet.
        let mut all = Vec::new();
        full.walk(&root, |c, _| all.push(*c)).unwrap();
        for c in all.iter().take(all.len() / 2) {
            store.put(&Block::verify(*c, full.get(c).unwrap().unwrap()).unwrap()).unwrap();
        }
        let stored = store.used_bytes();
        let hold = store.hold(root);
        let twice = store.hold(root);
        assert_eq!(store.gc().unwrap().removed_blocks, 0, "held: nothing of the fetch goes");
        assert_eq!(store.used_bytes(), stored);
        drop(hold);
        assert_eq!(store.gc().unwrap().removed_blocks, 0, "still held by the second fetch");
        drop(twice);
        assert!(store.held_roots().is_empty());
        assert!(store.gc().unwrap().removed_blocks > 0, "released: unpinned blocks go");
    }

    #[test]
    fn reopen_keeps_blocks_pins_and_flags() {
        let dir = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..5_000u32).map(|i| (i % 7) as u8).collect();
        let root;
        {
            let db = Db::open(&dir.path().join("db")).unwrap();
            let store = BlockStore::open(&db, &dir.path().join("blocks"), Config::default()).unwrap();
            root = add(&store, &data, small());
            store.pin(&root).unwrap();
            store.mark_complete_if_whole(&root).unwrap();
            store.flush().unwrap();
        }
        let db = Db::open(&dir.path().join("db")).unwrap();
        let store = BlockStore::open(&db, &dir.path().join("blocks"), Config::default()).unwrap();
        assert_eq!(read_back(&store, root), data);
        assert!(store.is_complete(&root).unwrap());
        assert_eq!(store.pins().unwrap().get(&root), Some(&1));
        assert!(store.used_bytes() > 5_000);
        let st = store.stat(&root).unwrap();
        assert_eq!((st.size, st.complete, st.pins), (Some(5_000), true, 1));
    }
}
