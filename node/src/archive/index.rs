//! The cumulative archive index: archive id -> entry, and its merge rule.

use std::collections::BTreeMap;

use archive_proto::pb::archive as pb;
use prost::Message as _;

use super::format::{self, Entry};

/// Largest number of entries we accept in an index (52 weekly archives a year for centuries).
pub const MAX_INDEX_ENTRIES: usize = 100_000;

/// Errors of index decoding.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("malformed index: {0}")]
    Decode(String),
    #[error("index holds more than {MAX_INDEX_ENTRIES} archives")]
    TooLarge,
    #[error("index entry {id}: {source}")]
    Entry { id: String, source: format::Error },
    #[error("index entry {id} does not match its content (id should be {expected})")]
    IdMismatch { id: String, expected: String },
}

/// `ArchiveIndex`: every archive of a community so far, keyed by archive id.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Index {
    pub archives: BTreeMap<String, Entry>,
}

impl Index {
    /// Adds an entry under its id.
    pub fn insert(&mut self, entry: Entry) -> String {
        let id = entry.id();
        self.archives.insert(id.clone(), entry);
        id
    }

    /// Union by archive id: what a second device does before it announces.
    pub fn merge(&mut self, other: &Index) {
        for (id, e) in &other.archives {
            self.archives.entry(id.clone()).or_insert_with(|| e.clone());
        }
    }

    /// Ids of the archives in `self` that `have` lacks, newest window first.
    pub fn missing_from<'a>(
        &'a self,
        have: &'a std::collections::BTreeSet<String>,
    ) -> Vec<(&'a String, &'a Entry)> {
        let mut v: Vec<_> = self.archives.iter().filter(|(id, _)| !have.contains(*id)).collect();
        v.sort_by(|a, b| {
            (b.1.metadata.to, b.1.metadata.from, b.0).cmp(&(a.1.metadata.to, a.1.metadata.from, a.0))
        });
        v
    }

    /// Protobuf encoding; map entries in key order, so it is deterministic.
    pub fn encode(&self) -> Vec<u8> {
        pb::ArchiveIndex { archives: self.archives.iter().map(|(k, e)| (k.clone(), e.to_pb())).collect() }
            .encode_to_vec()
    }

    /// Decodes an index and checks that every key is the id of its entry.
    pub fn decode(bytes: &[u8]) -> Result<Self, Error> {
        let idx = pb::ArchiveIndex::decode(bytes).map_err(|e| Error::Decode(e.to_string()))?;
        if idx.archives.len() > MAX_INDEX_ENTRIES {
            return Err(Error::TooLarge);
        }
        let mut archives = BTreeMap::new();
        for (id, e) in idx.archives {
            let entry = Entry::from_pb(e).map_err(|source| Error::Entry { id: id.clone(), source })?;
            let expected = entry.id();
            if expected != id {
                return Err(Error::IdMismatch { id, expected });
            }
            archives.insert(id, entry);
        }
        Ok(Index { archives })
    }
}

/// Why a stored index cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("index {root} is not stored whole: {source}")]
    Blocks { root: String, source: crate::blocks::files::Error },
    #[error("index {root}: {source}")]
    Seal { root: String, source: crate::seal::Error },
    #[error("index {root}: {source}")]
    Format { root: String, source: Error },
}

/// Reads the index stored under `root`: its blocks (verified), opened with `ring`, decoded.
pub fn read(
    blocks: &crate::blocks::store::BlockStore,
    root: crate::blocks::cid::Cid,
    ring: &crate::seal::KeyRing,
) -> Result<Index, ReadError> {
    let mut raw = Vec::new();
    crate::blocks::files::cat(blocks, root, &mut raw)
        .map_err(|source| ReadError::Blocks { root: root.to_string(), source })?;
    let plain =
        crate::seal::open(&raw, ring).map_err(|source| ReadError::Seal { root: root.to_string(), source })?;
    Index::decode(&plain).map_err(|source| ReadError::Format { root: root.to_string(), source })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::format::Metadata;
    use crate::message::Topic;
    use proptest::prelude::*;

    fn entry(from: u64, cid: &str) -> Entry {
        Entry { metadata: Metadata { from, to: from + 10, topics: vec![Topic([0; 4])] }, cid: cid.into() }
    }

    #[test]
    fn round_trip_and_id_check() {
        let mut idx = Index::default();
        idx.insert(entry(0, "a"));
        idx.insert(entry(10, "b"));
        assert_eq!(Index::decode(&idx.encode()).unwrap(), idx);

        let forged = pb::ArchiveIndex {
            archives: [("0xdead".to_string(), entry(0, "a").to_pb())].into_iter().collect(),
        };
        assert!(matches!(Index::decode(&forged.encode_to_vec()), Err(Error::IdMismatch { .. })));
    }

    #[test]
    fn missing_is_newest_first() {
        let mut idx = Index::default();
        let old = idx.insert(entry(0, "a"));
        idx.insert(entry(10, "b"));
        let newest = idx.insert(entry(20, "c"));
        let have = [old].into_iter().collect();
        let missing: Vec<_> = idx.missing_from(&have).into_iter().map(|(id, _)| id.clone()).collect();
        assert_eq!(missing.len(), 2);
        assert_eq!(missing[0], newest);
    }

    proptest! {
        #[test]
        fn merge_is_a_union(a in proptest::collection::btree_set(0u64..50, 0..20), b in proptest::collection::btree_set(0u64..50, 0..20)) {
            let mk = |s: &std::collections::BTreeSet<u64>| {
                let mut i = Index::default();
                for f in s { i.insert(entry(*f * 10, "c")); }
                i
            };
            let (ia, ib) = (mk(&a), mk(&b));
            let mut ab = ia.clone();
            ab.merge(&ib);
            let mut ba = ib.clone();
            ba.merge(&ia);
            prop_assert_eq!(&ab, &ba);
            prop_assert_eq!(ab.archives.len(), a.union(&b).count());
            // Merging is idempotent.
            let mut again = ab.clone();
            again.merge(&ia);
            prop_assert_eq!(again, ab);
        }
    }
}
