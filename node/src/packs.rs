//! Append-only pack files: the bytes of blocks and of large messages, outside the database.
//!
//! A directory holds segments `NNNNNNNN.pack`, each a sequence of records
//! `magic (1) | key_len (1) | data_len (4, LE) | key | data`. A writer appends records and
//! `fsync`s them before it returns their [`Location`]s, so an index entry written afterwards
//! never points at bytes that were not synced; a crash can only leave unindexed bytes. The key
//! (a CID, a message hash) is written for recovery and inspection; readers go by location.
//!
//! Opening starts a fresh segment (unless the last one is empty): a crashed process may have
//! left a torn tail in the last one. The store is synchronous (file IO): async callers use `spawn_blocking`.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

const MAGIC: u8 = 0xb1;
const RECORD_HEADER: usize = 1 + 1 + 4;
/// Bytes a pack file's writer gathers before a write: records of blocks (1 MiB) and of large
/// messages bypass it; small ones are coalesced. Each open pack store holds one.
const WRITE_BUFFER: usize = 1024 * 1024;

/// Bytes of an encoded [`Location`].
pub const LOCATION_LEN: usize = 16;

/// Errors of the pack files.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("pack file IO: {0}")]
    Io(#[from] std::io::Error),
    #[error("pack lock poisoned")]
    Poisoned,
    #[error("record key of {0} bytes (at most 255)")]
    KeyTooLong(usize),
    #[error("record data of {0} bytes (at most 4 GiB)")]
    DataTooLong(usize),
    #[error("{len} bytes at {offset} are outside a record of {record} bytes")]
    OutOfRecord { offset: u64, len: usize, record: u32 },
}

/// Where a record's data lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Location {
    pub segment: u32,
    /// Offset of the data (past the record header and key).
    pub offset: u64,
    pub len: u32,
}

impl Location {
    pub fn encode(&self) -> [u8; LOCATION_LEN] {
        let mut b = [0u8; LOCATION_LEN];
        b[..4].copy_from_slice(&self.segment.to_be_bytes());
        b[4..12].copy_from_slice(&self.offset.to_be_bytes());
        b[12..].copy_from_slice(&self.len.to_be_bytes());
        b
    }

    pub fn decode(b: &[u8]) -> Option<Self> {
        if b.len() != LOCATION_LEN {
            return None;
        }
        Some(Self {
            segment: u32::from_be_bytes(b[..4].try_into().ok()?),
            offset: u64::from_be_bytes(b[4..12].try_into().ok()?),
            len: u32::from_be_bytes(b[12..].try_into().ok()?),
        })
    }
}

/// `records` in consecutive groups of at most `max_bytes` of data (or one record over it),
/// so that copying a group holds a bounded amount in memory.
pub fn batches(
    records: &[(Vec<u8>, Location)],
    max_bytes: u64,
) -> impl Iterator<Item = &[(Vec<u8>, Location)]> {
    let mut rest = records;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let (mut n, mut bytes) = (0, 0u64);
        while n < rest.len() && (n == 0 || bytes + u64::from(rest[n].1.len) <= max_bytes) {
            bytes += u64::from(rest[n].1.len);
            n += 1;
        }
        let (group, tail) = rest.split_at(n);
        rest = tail;
        Some(group)
    })
}

/// The pack files of one directory.
pub struct Packs {
    dir: PathBuf,
    segment_bytes: u64,
    /// The segment being appended to.
    active: Mutex<Active>,
    /// Read handles per segment.
    readers: RwLock<HashMap<u32, Arc<File>>>,
}

struct Active {
    id: u32,
    file: BufWriter<File>,
    /// The same file, to sync after the lock is released: writers append under the lock and
    /// sync outside it, so readers of the active segment's id and other writers never wait
    /// for the disk. (An `fsync` covers every byte written to the file before it.)
    sync: Arc<File>,
    len: u64,
}

fn segment_path(dir: &Path, id: u32) -> PathBuf {
    dir.join(format!("{id:08}.pack"))
}

impl Packs {
    /// Opens (or creates) the directory; segments close at `segment_bytes`.
    pub fn open(dir: PathBuf, segment_bytes: u64) -> Result<Self, Error> {
        std::fs::create_dir_all(&dir)?;
        let last = Self::list(&dir)?.into_iter().max();
        // An empty last segment has no tail to tear: append to it rather than add another file.
        let id = match last {
            Some(l) if std::fs::metadata(segment_path(&dir, l))?.len() == 0 => l,
            Some(l) => l + 1,
            None => 0,
        };
        let active = Self::create_segment(&dir, id)?;
        Ok(Self { dir, segment_bytes, active: Mutex::new(active), readers: RwLock::new(HashMap::new()) })
    }

    fn create_segment(dir: &Path, id: u32) -> Result<Active, Error> {
        let file = OpenOptions::new().create(true).append(true).open(segment_path(dir, id))?;
        let len = file.metadata()?.len();
        let sync = Arc::new(file.try_clone()?);
        Ok(Active { id, file: BufWriter::with_capacity(WRITE_BUFFER, file), sync, len })
    }

    /// Appends records `(key, data)` and syncs them; returns their locations.
    pub fn append(&self, records: &[(&[u8], &[u8])]) -> Result<Vec<Location>, Error> {
        let mut active = self.active.lock().map_err(|_| Error::Poisoned)?;
        let mut to_sync = Vec::with_capacity(1);
        let mut locs = Vec::with_capacity(records.len());
        for (key, data) in records {
            let key_len = u8::try_from(key.len()).map_err(|_| Error::KeyTooLong(key.len()))?;
            let data_len = u32::try_from(data.len()).map_err(|_| Error::DataTooLong(data.len()))?;
            let record = (RECORD_HEADER + key.len() + data.len()) as u64;
            if active.len > 0 && active.len + record > self.segment_bytes {
                active.file.flush()?;
                to_sync.push(active.sync.clone());
                let next = active.id + 1;
                *active = Self::create_segment(&self.dir, next)?;
            }
            let mut header = [0u8; RECORD_HEADER];
            header[0] = MAGIC;
            header[1] = key_len;
            header[2..].copy_from_slice(&data_len.to_le_bytes());
            active.file.write_all(&header)?;
            active.file.write_all(key)?;
            active.file.write_all(data)?;
            let offset = active.len + (RECORD_HEADER + key.len()) as u64;
            locs.push(Location { segment: active.id, offset, len: data_len });
            active.len += record;
        }
        active.file.flush()?;
        to_sync.push(active.sync.clone());
        drop(active);
        for file in to_sync {
            file.sync_data()?;
        }
        Ok(locs)
    }

    fn reader(&self, segment: u32) -> Result<Arc<File>, Error> {
        if let Some(f) = self.readers.read().map_err(|_| Error::Poisoned)?.get(&segment) {
            return Ok(f.clone());
        }
        let f = Arc::new(File::open(segment_path(&self.dir, segment))?);
        self.readers.write().map_err(|_| Error::Poisoned)?.insert(segment, f.clone());
        Ok(f)
    }

    /// Reads a record's data.
    pub fn read(&self, loc: Location) -> Result<Vec<u8>, Error> {
        let mut buf = vec![0u8; loc.len as usize];
        self.reader(loc.segment)?.read_exact_at(&mut buf, loc.offset)?;
        Ok(buf)
    }

    /// Reads `len` bytes at `offset` inside a record's data (a part of a block).
    pub fn read_part(&self, loc: Location, offset: u64, len: usize) -> Result<Vec<u8>, Error> {
        if offset.saturating_add(len as u64) > u64::from(loc.len) {
            return Err(Error::OutOfRecord { offset, len, record: loc.len });
        }
        let mut buf = vec![0u8; len];
        self.reader(loc.segment)?.read_exact_at(&mut buf, loc.offset + offset)?;
        Ok(buf)
    }

    /// Closes the active segment, unless it is empty, and starts the next one: the closed one
    /// may then be compacted.
    pub fn roll(&self) -> Result<(), Error> {
        let mut active = self.active.lock().map_err(|_| Error::Poisoned)?;
        if active.len == 0 {
            return Ok(());
        }
        active.file.flush()?;
        let closed = active.sync.clone();
        let next = active.id + 1;
        *active = Self::create_segment(&self.dir, next)?;
        drop(active);
        closed.sync_data()?;
        Ok(())
    }

    /// The closed segments worth rewriting: those whose live records (`live`: bytes of data by
    /// segment) are under `min_live` of the file. With their file sizes, oldest first.
    pub fn compactable(&self, live: &HashMap<u32, u64>, min_live: f64) -> Result<Vec<(u32, u64)>, Error> {
        let active = self.active_id()?;
        let mut out = Vec::new();
        for seg in self.segments()? {
            let file_len = self.segment_len(seg)?;
            let live_bytes = live.get(&seg).copied().unwrap_or(0);
            if seg != active && (file_len == 0 || (live_bytes as f64) < min_live * file_len as f64) {
                out.push((seg, file_len));
            }
        }
        Ok(out)
    }

    /// Copies records (`(key, location)`) into the active segment, synced; returns their new
    /// locations in order. A compaction repoints its index to them, makes that durable, and
    /// only then removes the old segment.
    pub fn copy(&self, records: &[(Vec<u8>, Location)]) -> Result<Vec<Location>, Error> {
        let datas: Vec<Vec<u8>> = records.iter().map(|(_, l)| self.read(*l)).collect::<Result<_, _>>()?;
        let refs: Vec<(&[u8], &[u8])> =
            records.iter().zip(&datas).map(|((k, _), d)| (k.as_slice(), d.as_slice())).collect();
        self.append(&refs)
    }

    /// The segment being appended to.
    pub fn active_id(&self) -> Result<u32, Error> {
        Ok(self.active.lock().map_err(|_| Error::Poisoned)?.id)
    }

    /// Bytes of a segment file.
    pub fn segment_len(&self, id: u32) -> Result<u64, Error> {
        Ok(std::fs::metadata(segment_path(&self.dir, id))?.len())
    }

    /// Every segment, oldest first.
    pub fn segments(&self) -> Result<Vec<u32>, Error> {
        let mut ids = Self::list(&self.dir)?;
        ids.sort();
        Ok(ids)
    }

    fn list(dir: &Path) -> Result<Vec<u32>, Error> {
        let mut ids = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            let name = entry?.file_name();
            if let Some(id) = name.to_string_lossy().strip_suffix(".pack").and_then(|n| n.parse().ok()) {
                ids.push(id);
            }
        }
        Ok(ids)
    }

    /// Deletes a segment file (its records must no longer be indexed).
    pub fn remove_segment(&self, id: u32) -> Result<(), Error> {
        self.readers.write().map_err(|_| Error::Poisoned)?.remove(&id);
        std::fs::remove_file(segment_path(&self.dir, id))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_read_back_across_segments_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let datas: Vec<Vec<u8>> = (0..20u8).map(|i| vec![i; 100 + i as usize * 37]).collect();
        let locs = {
            let p = Packs::open(dir.path().to_path_buf(), 1000).unwrap();
            let recs: Vec<(&[u8], &[u8])> = datas.iter().map(|d| (&d[..1], d.as_slice())).collect();
            let locs = p.append(&recs).unwrap();
            assert!(p.segments().unwrap().len() > 2, "small segments roll over");
            locs
        };
        let p = Packs::open(dir.path().to_path_buf(), 1000).unwrap();
        for (d, l) in datas.iter().zip(&locs) {
            assert_eq!(&p.read(*l).unwrap(), d);
            assert_eq!(Location::decode(&l.encode()), Some(*l));
        }
        let fresh = p.active_id().unwrap();
        assert!(fresh > locs.last().unwrap().segment, "a reopen starts a fresh segment");
        drop(p);
        let p = Packs::open(dir.path().to_path_buf(), 1000).unwrap();
        assert_eq!(p.active_id().unwrap(), fresh, "an empty last segment is reused");
    }

    #[test]
    fn parts_copies_and_the_segments_worth_compacting() {
        let dir = tempfile::tempdir().unwrap();
        let p = Packs::open(dir.path().to_path_buf(), 1 << 20).unwrap();
        let data: Vec<u8> = (0..1000u32).map(|i| i as u8).collect();
        let loc = p.append(&[(b"k", &data)]).unwrap()[0];
        assert_eq!(p.read_part(loc, 990, 10).unwrap(), &data[990..]);
        assert!(matches!(p.read_part(loc, 995, 10), Err(Error::OutOfRecord { .. })));
        assert!(p.compactable(&HashMap::new(), 0.5).unwrap().is_empty(), "the active segment stays");
        p.roll().unwrap();
        let first = loc.segment;
        let live = HashMap::from([(first, 1000u64)]);
        assert!(p.compactable(&live, 0.5).unwrap().is_empty(), "all live: kept");
        let dead = p.compactable(&HashMap::new(), 0.5).unwrap();
        assert_eq!(dead, vec![(first, p.segment_len(first).unwrap())]);
        let moved = p.copy(&[(b"k".to_vec(), loc)]).unwrap();
        assert_ne!(moved[0].segment, first);
        p.remove_segment(first).unwrap();
        assert_eq!(p.read(moved[0]).unwrap(), data);
    }

    #[test]
    fn a_key_over_255_bytes_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = Packs::open(dir.path().to_path_buf(), 1000).unwrap();
        assert!(matches!(p.append(&[(&[0u8; 256], b"x")]), Err(Error::KeyTooLong(256))));
    }
}
