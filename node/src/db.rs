//! The embedded key-value database: sled on disk, or an in-memory map for tests.
//!
//! This is the only module that imports sled. Stores above it (messages, archive state, block
//! index) see named [`Tree`]s with ordered keys, atomic per-tree batches and range scans, so the
//! backend can be replaced without touching them.

use std::collections::BTreeMap;
use std::ops::{Bound, Deref};
use std::path::Path;
use std::sync::{Arc, RwLock};

/// Version of the on-disk layout this build writes. A database of another version is refused
/// on open, but for [`OLDEST_MIGRATED`] and later, which the stores migrate when they open
/// (version 2: large messages moved out of sled, see `message_store`).
pub const SCHEMA_VERSION: u32 = 2;
/// The oldest version this build migrates.
pub const OLDEST_MIGRATED: u32 = 1;
const SCHEMA_KEY: &[u8] = b"schema_version";
/// How long [`Db::open`] waits for a lock held by a process that is shutting down.
pub const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(3);
/// sled's page cache, by default. sled counts a page at its serialized size, while in memory a
/// page of small records costs several times that (measured, `scripts/bench.sh memory-small`:
/// 64 MiB configured held about 46 MiB of values alone, and the member peaked at 420 MiB
/// catching up 1,000,000 small messages; 16 MiB: 365 MiB).
pub const DEFAULT_CACHE_BYTES: u64 = 16 * 1024 * 1024;

/// Errors of the database layer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("database at {path} is in use by another process (is a daemon running on this data dir?)")]
    Locked { path: String },
    #[error("database schema version {found} is not supported (this build reads versions {OLDEST_MIGRATED} to {SCHEMA_VERSION})")]
    Schema { found: u32 },
    #[error("database error: {0}")]
    Backend(String),
    #[error("cannot open the database at {path}: {reason}")]
    Open { path: String, reason: String },
}

impl From<sled::Error> for Error {
    fn from(e: sled::Error) -> Self {
        Error::Backend(e.to_string())
    }
}

/// Every tree of the database, named in one place.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TreeName {
    /// Node-wide metadata: schema version.
    Meta,
    /// `community | timestamp_be | hash` -> stored message.
    Messages,
    /// Per-community archive state: last_archive_end, index entries.
    Archives,
    /// CID -> block location in the pack files.
    Blocks,
    /// Root CID -> pin count and completeness.
    Pins,
    /// Community id -> the community's record.
    Communities,
    /// Community descriptions and requests to join.
    Membership,
    /// Community id -> bytes of messages stored (for the quota).
    MessageBytes,
}

impl TreeName {
    fn as_str(self) -> &'static str {
        match self {
            TreeName::Meta => "meta",
            TreeName::Messages => "messages",
            TreeName::Archives => "archives",
            TreeName::Blocks => "blocks",
            TreeName::Pins => "pins",
            TreeName::Communities => "communities",
            TreeName::Membership => "membership",
            TreeName::MessageBytes => "message_bytes",
        }
    }
}

/// A value read from the database; cheap to clone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Value(sled::IVec);

impl Deref for Value {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl AsRef<[u8]> for Value {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

type MemMap = Arc<RwLock<BTreeMap<Vec<u8>, sled::IVec>>>;

/// An open database.
#[derive(Clone)]
pub struct Db {
    inner: DbInner,
    /// The database directory (None: in memory).
    path: Option<std::path::PathBuf>,
}

#[derive(Clone)]
enum DbInner {
    Sled(sled::Db),
    Memory(Arc<RwLock<BTreeMap<TreeName, MemMap>>>),
}

impl Db {
    /// Opens (or creates) the database in directory `path`, checking its schema version.
    ///
    /// sled releases its file lock from a background thread shortly after the last handle is
    /// dropped, so a quick reopen (a restart, a CLI command right after a daemon stopped) waits
    /// up to [`LOCK_WAIT`] for the lock before reporting the database as in use.
    pub fn open(path: &Path) -> Result<Self, Error> {
        Self::open_with_cache(path, DEFAULT_CACHE_BYTES)
    }

    /// [`Self::open`] with sled's page cache bounded at `cache_bytes` (`[store] db_cache_bytes`).
    pub fn open_with_cache(path: &Path, cache_bytes: u64) -> Result<Self, Error> {
        let deadline = std::time::Instant::now() + LOCK_WAIT;
        loop {
            match Self::open_once(path, cache_bytes) {
                Err(Error::Locked { .. }) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                other => return other,
            }
        }
    }

    fn open_once(path: &Path, cache_bytes: u64) -> Result<Self, Error> {
        let db = sled::Config::new().path(path).cache_capacity(cache_bytes).open().map_err(|e| match e {
            sled::Error::Io(ref io) if io.kind() == std::io::ErrorKind::WouldBlock => {
                Error::Locked { path: path.display().to_string() }
            }
            sled::Error::Io(ref io) if io.to_string().contains("lock") => {
                Error::Locked { path: path.display().to_string() }
            }
            other => Error::Open { path: path.display().to_string(), reason: other.to_string() },
        })?;
        let db = Db { inner: DbInner::Sled(db), path: Some(path.to_path_buf()) };
        db.check_schema()?;
        Ok(db)
    }

    /// A fresh in-memory database (tests, `--only-hash` style commands).
    pub fn memory() -> Self {
        Db { inner: DbInner::Memory(Arc::default()), path: None }
    }

    fn check_schema(&self) -> Result<(), Error> {
        let meta = self.tree(TreeName::Meta)?;
        match meta.get(SCHEMA_KEY)? {
            None => {
                meta.insert(SCHEMA_KEY, &SCHEMA_VERSION.to_be_bytes())?;
                self.flush()?;
                Ok(())
            }
            Some(_) => {
                let found = self.schema_version()?;
                if (OLDEST_MIGRATED..=SCHEMA_VERSION).contains(&found) {
                    Ok(())
                } else {
                    Err(Error::Schema { found })
                }
            }
        }
    }

    /// The layout version the database is at (older than [`SCHEMA_VERSION`] until migrated).
    pub fn schema_version(&self) -> Result<u32, Error> {
        let v = self.tree(TreeName::Meta)?.get(SCHEMA_KEY)?;
        Ok(v.and_then(|v| <[u8; 4]>::try_from(&v[..]).ok()).map_or(u32::MAX, u32::from_be_bytes))
    }

    /// Records that the database is at `version` (after a migration), durably. Blocking.
    pub fn set_schema_version(&self, version: u32) -> Result<(), Error> {
        self.flush()?;
        self.tree(TreeName::Meta)?.insert(SCHEMA_KEY, &version.to_be_bytes())?;
        self.flush()
    }

    /// A directory for bytes kept out of sled, inside the database's own (`<db>/<name>`), so
    /// that a database and its large values are always copied, moved and removed together
    /// (sled itself only touches `conf`, `db`, `snap.*` and `blobs/` there). None in memory.
    pub fn side_dir(&self, name: &str) -> Option<std::path::PathBuf> {
        self.path.as_ref().map(|p| p.join(name))
    }

    /// Opens a named tree.
    pub fn tree(&self, name: TreeName) -> Result<Tree, Error> {
        Ok(match &self.inner {
            DbInner::Sled(db) => Tree(TreeInner::Sled(db.open_tree(name.as_str())?)),
            DbInner::Memory(trees) => {
                let mut trees = trees.write().map_err(poisoned)?;
                Tree(TreeInner::Memory(trees.entry(name).or_default().clone()))
            }
        })
    }

    /// Makes every write so far durable. Blocking: call it from a blocking thread.
    pub fn flush(&self) -> Result<(), Error> {
        if let DbInner::Sled(db) = &self.inner {
            db.flush()?;
        }
        Ok(())
    }
}

fn poisoned<T>(_: T) -> Error {
    Error::Backend("in-memory tree lock poisoned".into())
}

/// A batch of writes applied atomically to one tree.
#[derive(Default)]
pub struct Batch {
    ops: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

impl Batch {
    /// Adds an insert.
    pub fn insert(&mut self, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) {
        self.ops.push((key.into(), Some(value.into())));
    }

    /// Adds a removal.
    pub fn remove(&mut self, key: impl Into<Vec<u8>>) {
        self.ops.push((key.into(), None));
    }

    /// Number of operations in the batch.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// True when the batch holds no operation.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}

/// One ordered key space.
#[derive(Clone)]
pub struct Tree(TreeInner);

#[derive(Clone)]
enum TreeInner {
    Sled(sled::Tree),
    Memory(MemMap),
}

impl Tree {
    /// Reads one key.
    pub fn get(&self, key: &[u8]) -> Result<Option<Value>, Error> {
        match &self.0 {
            TreeInner::Sled(t) => Ok(t.get(key)?.map(Value)),
            TreeInner::Memory(m) => Ok(m.read().map_err(poisoned)?.get(key).cloned().map(Value)),
        }
    }

    /// True when `key` is present.
    pub fn contains_key(&self, key: &[u8]) -> Result<bool, Error> {
        match &self.0 {
            TreeInner::Sled(t) => Ok(t.contains_key(key)?),
            TreeInner::Memory(m) => Ok(m.read().map_err(poisoned)?.contains_key(key)),
        }
    }

    /// Writes one key.
    pub fn insert(&self, key: &[u8], value: &[u8]) -> Result<(), Error> {
        match &self.0 {
            TreeInner::Sled(t) => {
                t.insert(key, value)?;
            }
            TreeInner::Memory(m) => {
                m.write().map_err(poisoned)?.insert(key.to_vec(), sled::IVec::from(value));
            }
        }
        Ok(())
    }

    /// Removes one key.
    pub fn remove(&self, key: &[u8]) -> Result<(), Error> {
        match &self.0 {
            TreeInner::Sled(t) => {
                t.remove(key)?;
            }
            TreeInner::Memory(m) => {
                m.write().map_err(poisoned)?.remove(key);
            }
        }
        Ok(())
    }

    /// Applies a batch atomically.
    pub fn apply(&self, batch: Batch) -> Result<(), Error> {
        match &self.0 {
            TreeInner::Sled(t) => {
                let mut b = sled::Batch::default();
                for (k, v) in batch.ops {
                    match v {
                        Some(v) => b.insert(k, v),
                        None => b.remove(k),
                    }
                }
                t.apply_batch(b)?;
            }
            TreeInner::Memory(m) => {
                let mut m = m.write().map_err(poisoned)?;
                for (k, v) in batch.ops {
                    match v {
                        Some(v) => {
                            m.insert(k, sled::IVec::from(v));
                        }
                        None => {
                            m.remove(&k);
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Iterates keys in `[from, to)` in order (`to = None`: to the end of the tree).
    pub fn range(&self, from: &[u8], to: Option<&[u8]>) -> RangeIter {
        let end = to.map_or(Bound::Unbounded, |t| Bound::Excluded(t.to_vec()));
        let start = Bound::Included(from.to_vec());
        match &self.0 {
            TreeInner::Sled(t) => RangeIter(RangeInner::Sled(Box::new(t.range::<Vec<u8>, _>((start, end))))),
            TreeInner::Memory(m) => {
                // Tests only: copy the range out so no lock is held while iterating.
                let rows: Vec<_> = match m.read() {
                    Ok(m) => m
                        .range::<Vec<u8>, _>((start, end))
                        .map(|(k, v)| Ok((k.clone(), Value(v.clone()))))
                        .collect(),
                    Err(_) => vec![Err(Error::Backend("in-memory tree lock poisoned".into()))],
                };
                RangeIter(RangeInner::Memory(rows.into_iter()))
            }
        }
    }

    /// Iterates every key starting with `prefix`, in order.
    pub fn scan_prefix(&self, prefix: &[u8]) -> RangeIter {
        match prefix_end(prefix) {
            Some(end) => self.range(prefix, Some(&end)),
            None => self.range(prefix, None),
        }
    }
}

/// The smallest key greater than every key starting with `prefix` (None: no such key).
pub fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// An ordered iterator over `(key, value)` rows.
pub struct RangeIter(RangeInner);

enum RangeInner {
    Sled(Box<sled::Iter>),
    Memory(std::vec::IntoIter<Result<(Vec<u8>, Value), Error>>),
}

impl Iterator for RangeIter {
    type Item = Result<(Vec<u8>, Value), Error>;
    fn next(&mut self) -> Option<Self::Item> {
        match &mut self.0 {
            RangeInner::Sled(it) => {
                it.next().map(|r| r.map(|(k, v)| (k.to_vec(), Value(v))).map_err(Error::from))
            }
            RangeInner::Memory(it) => it.next(),
        }
    }
}

impl DoubleEndedIterator for RangeIter {
    fn next_back(&mut self) -> Option<Self::Item> {
        match &mut self.0 {
            RangeInner::Sled(it) => {
                it.next_back().map(|r| r.map(|(k, v)| (k.to_vec(), Value(v))).map_err(Error::from))
            }
            RangeInner::Memory(it) => it.next_back(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exercise(db: &Db) {
        let t = db.tree(TreeName::Messages).unwrap();
        let mut b = Batch::default();
        for k in [b"a1".as_slice(), b"a2", b"b1", b"a3"] {
            b.insert(k.to_vec(), k.to_vec());
        }
        t.apply(b).unwrap();
        let keys: Vec<_> = t.scan_prefix(b"a").map(|r| r.unwrap().0).collect();
        assert_eq!(keys, vec![b"a1".to_vec(), b"a2".to_vec(), b"a3".to_vec()]);
        let last = t.scan_prefix(b"a").next_back().unwrap().unwrap().0;
        assert_eq!(last, b"a3".to_vec());
        let mid: Vec<_> = t.range(b"a2", Some(b"b1")).map(|r| r.unwrap().0).collect();
        assert_eq!(mid, vec![b"a2".to_vec(), b"a3".to_vec()]);
        t.remove(b"a2").unwrap();
        assert!(!t.contains_key(b"a2").unwrap());
        assert_eq!(&*t.get(b"b1").unwrap().unwrap(), b"b1");
    }

    #[test]
    fn memory_and_sled_behave_alike() {
        exercise(&Db::memory());
        let dir = tempfile::tempdir().unwrap();
        exercise(&Db::open(dir.path()).unwrap());
    }

    #[test]
    fn schema_version_is_checked_on_open() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = Db::open(dir.path()).unwrap();
            let meta = db.tree(TreeName::Meta).unwrap();
            meta.insert(SCHEMA_KEY, &99u32.to_be_bytes()).unwrap();
            db.flush().unwrap();
        }
        match Db::open(dir.path()) {
            Err(Error::Schema { found: 99 }) => {}
            other => panic!("expected schema error, got {:?}", other.err()),
        }
    }

    #[test]
    fn prefix_end_handles_ff() {
        assert_eq!(prefix_end(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(prefix_end(&[1, 0xff]), Some(vec![2]));
        assert_eq!(prefix_end(&[0xff, 0xff]), None);
    }
}
