//! What leaves the store: deleting one block, garbage collection of what no pin or hold
//! reaches, and compaction of mostly-dead pack segments.

use std::collections::{HashMap, HashSet};

use super::{BlockStore, Bytes, Error};
use crate::blocks::cid::Cid;
use crate::db::Batch;
use crate::packs::{self, Location, Packs};

/// Compaction rewrites a segment whose live share is below this fraction.
pub const COMPACT_BELOW_LIVE: f64 = 0.5;
/// Bytes of blocks a compaction copies per synced batch.
const COMPACT_BATCH_BYTES: u64 = 16 * 1024 * 1024;

/// What garbage collection did.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct GcReport {
    pub removed_blocks: u64,
    pub removed_bytes: u64,
    pub compacted_segments: u64,
    pub reclaimed_file_bytes: u64,
}

impl BlockStore {
    /// Deletes one block. Refuses a block that a pinned DAG needs (unpin first), and clears the
    /// "complete" flag of unpinned roots, which may have needed it: "complete" never lies.
    pub fn delete(&self, cid: &Cid) -> Result<bool, Error> {
        let _gc = self.inner.gc_lock.write().map_err(|_| Error::Poisoned)?;
        let Some(len) = self.block_len(cid)? else { return Ok(false) };
        for root in self.pins()?.keys() {
            let mut needed = false;
            self.walk(root, |c, _| needed |= c == cid)?;
            if needed {
                return Err(Error::Pinned { cid: cid.to_string(), root: root.to_string() });
            }
        }
        self.clear_unpinned_flags()?;
        self.remove_many(&[(*cid, len)])?;
        Ok(true)
    }

    /// Drops every block not reachable from a pinned root or a root held by a fetch in
    /// progress, then compacts mostly-dead segments.
    pub fn gc(&self) -> Result<GcReport, Error> {
        let _gc = self.inner.gc_lock.write().map_err(|_| Error::Poisoned)?;
        let mut live = HashSet::new();
        let held = self.held_roots();
        for root in self.pins()?.keys().chain(held.iter()) {
            self.walk(root, |cid, len| {
                if len.is_some() {
                    live.insert(*cid);
                }
            })?;
        }
        // Unpinned roots may lose blocks: their "complete" flags go.
        self.clear_unpinned_flags()?;
        let mut dead = Vec::new();
        match &self.inner.bytes {
            Bytes::Memory(m) => {
                for (cid, b) in m.read().map_err(|_| Error::Poisoned)?.iter() {
                    if !live.contains(cid) {
                        dead.push((*cid, b.len() as u64));
                    }
                }
            }
            Bytes::Packs(_) => {
                for row in self.inner.index.range(&[], None) {
                    let (k, v) = row?;
                    let cid = Cid::try_from(&k[..]).map_err(|_| Error::CorruptIndex(hex::encode(&k)))?;
                    if !live.contains(&cid) {
                        let loc = Location::decode(&v).ok_or(Error::CorruptIndex(cid.to_string()))?;
                        dead.push((cid, u64::from(loc.len)));
                    }
                }
            }
        }
        let mut report = GcReport {
            removed_blocks: dead.len() as u64,
            removed_bytes: dead.iter().map(|(_, l)| *l).sum(),
            ..Default::default()
        };
        self.remove_many(&dead)?;
        if let Bytes::Packs(p) = &self.inner.bytes {
            self.compact(p, &mut report)?;
        }
        self.inner.db.flush()?;
        Ok(report)
    }

    /// Rewrites segments whose live share is low: copies their live blocks into the active
    /// segment (synced), repoints the index, then deletes the old file.
    fn compact(&self, p: &Packs, report: &mut GcReport) -> Result<(), Error> {
        let mut live_bytes: HashMap<u32, u64> = HashMap::new();
        for row in self.inner.index.range(&[], None) {
            let (k, v) = row?;
            let loc = Location::decode(&v).ok_or_else(|| Error::CorruptIndex(hex::encode(&k)))?;
            *live_bytes.entry(loc.segment).or_default() += u64::from(loc.len);
        }
        let segments = p.compactable(&live_bytes, COMPACT_BELOW_LIVE)?;
        if segments.is_empty() {
            return Ok(());
        }
        let mut live: HashMap<u32, Vec<(Vec<u8>, Location)>> = HashMap::new();
        for row in self.inner.index.range(&[], None) {
            let (k, v) = row?;
            let loc = Location::decode(&v).ok_or_else(|| Error::CorruptIndex(hex::encode(&k)))?;
            if segments.iter().any(|(s, _)| *s == loc.segment) {
                live.entry(loc.segment).or_default().push((k.to_vec(), loc));
            }
        }
        for (seg, file_len) in segments {
            let records = live.remove(&seg).unwrap_or_default();
            // Copied in bounded batches so memory stays small.
            for group in packs::batches(&records, COMPACT_BATCH_BYTES) {
                let mut batch = Batch::default();
                for ((key, _), loc) in group.iter().zip(p.copy(group)?) {
                    batch.insert(key.clone(), loc.encode().to_vec());
                }
                self.inner.index.apply(batch)?;
            }
            // The index must be durable before the old bytes disappear.
            self.inner.db.flush()?;
            p.remove_segment(seg)?;
            let kept: u64 = records.iter().map(|(_, l)| u64::from(l.len)).sum();
            report.compacted_segments += 1;
            report.reclaimed_file_bytes += file_len.saturating_sub(kept);
        }
        Ok(())
    }
}
