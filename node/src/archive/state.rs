//! Per-community archive state, persisted: `last_archive_end` and the cumulative index entries.

use crate::community::CommunityId;
use crate::db::{self, Batch, Db, Tree, TreeName};

use super::format::Entry;
use super::index::Index;

const END: &[u8] = b"end/";
const ENTRY: &[u8] = b"entry/";
const INDEX_CID: &[u8] = b"index_cid/";
const CLOCK: &[u8] = b"clock/";
const DOWNLOADED: &[u8] = b"downloaded/";
const ANNOUNCEMENT: &[u8] = b"announcement/";
const ROOT: &[u8] = b"root/";
const IPNS: &[u8] = b"ipns/";

/// Errors of the archive state.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Db(#[from] db::Error),
    #[error("corrupt archive state: {0}")]
    Corrupt(String),
}

/// Handle to the persisted archive state; cheap to clone.
#[derive(Clone)]
pub struct ArchiveState {
    db: Db,
    tree: Tree,
}

fn key(prefix: &[u8], community: &CommunityId, rest: &[u8]) -> Vec<u8> {
    let mut k = prefix.to_vec();
    k.extend_from_slice(community.as_bytes());
    k.extend_from_slice(rest);
    k
}

impl ArchiveState {
    /// Opens the state in `db`.
    pub fn open(db: &Db) -> Result<Self, Error> {
        Ok(Self { db: db.clone(), tree: db.tree(TreeName::Archives)? })
    }

    /// The `to` of the last archive run, if any.
    pub fn last_archive_end(&self, community: &CommunityId) -> Result<Option<u64>, Error> {
        match self.tree.get(&key(END, community, &[]))? {
            None => Ok(None),
            Some(v) => <[u8; 8]>::try_from(&v[..])
                .map(|b| Some(u64::from_be_bytes(b)))
                .map_err(|_| Error::Corrupt("last_archive_end".into())),
        }
    }

    /// The cumulative index of every archive built so far.
    pub fn index(&self, community: &CommunityId) -> Result<Index, Error> {
        let mut idx = Index::default();
        for row in self.tree.scan_prefix(&key(ENTRY, community, &[])) {
            let (_, v) = row?;
            let e = Entry::decode(&v).map_err(|e| Error::Corrupt(e.to_string()))?;
            idx.insert(e);
        }
        Ok(idx)
    }

    /// The largest announcement clock issued or observed for the community.
    pub fn clock(&self, community: &CommunityId) -> Result<crate::clock::Clock, Error> {
        match self.tree.get(&key(CLOCK, community, &[]))? {
            None => Ok(crate::clock::Clock::default()),
            Some(v) => <[u8; 8]>::try_from(&v[..])
                .map(|b| crate::clock::Clock { last: u64::from_be_bytes(b) })
                .map_err(|_| Error::Corrupt("clock".into())),
        }
    }

    /// Records a clock issued or observed (never moving the stored one backwards), durably.
    pub fn set_clock(&self, community: &CommunityId, clock: crate::clock::Clock) -> Result<(), Error> {
        let mut c = self.clock(community)?;
        c.observe(clock.last);
        self.tree.insert(&key(CLOCK, community, &[]), &c.last.to_be_bytes())?;
        self.db.flush()?;
        Ok(())
    }

    /// The latest accepted announcement (the signed envelope bytes).
    pub fn announcement(&self, community: &CommunityId) -> Result<Option<Vec<u8>>, Error> {
        Ok(self.tree.get(&key(ANNOUNCEMENT, community, &[]))?.map(|v| v.to_vec()))
    }

    /// The accepted announcement, verified again: stored bytes are not trusted blindly, and a
    /// row that no longer verifies reads as none.
    pub fn accepted(&self, community: &CommunityId) -> Result<Option<crate::announce::Signed>, Error> {
        Ok(self.announcement(community)?.and_then(|b| crate::announce::verify(community, &b).ok()))
    }

    /// Records an accepted (or issued) announcement and the clock, atomically, then flushes.
    pub fn accept_announcement(
        &self,
        community: &CommunityId,
        envelope: &[u8],
        clock: crate::clock::Clock,
    ) -> Result<(), Error> {
        let mut b = Batch::default();
        b.insert(key(ANNOUNCEMENT, community, &[]), envelope.to_vec());
        b.insert(key(CLOCK, community, &[]), clock.last.to_be_bytes().to_vec());
        self.tree.apply(b)?;
        self.db.flush()?;
        Ok(())
    }

    /// Archives a member downloaded, by id, with whether they were imported.
    pub fn downloaded(
        &self,
        community: &CommunityId,
    ) -> Result<std::collections::BTreeMap<String, bool>, Error> {
        let prefix = key(DOWNLOADED, community, &[]);
        let mut out = std::collections::BTreeMap::new();
        for row in self.tree.scan_prefix(&prefix) {
            let (k, v) = row?;
            let id = String::from_utf8(k[prefix.len()..].to_vec())
                .map_err(|_| Error::Corrupt("archive id".into()))?;
            out.insert(id, v.first() == Some(&1));
        }
        Ok(out)
    }

    /// Records an archive as downloaded (`imported` false) or imported, durably.
    pub fn mark_downloaded(
        &self,
        community: &CommunityId,
        archive_id: &str,
        imported: bool,
    ) -> Result<(), Error> {
        self.tree.insert(&key(DOWNLOADED, community, archive_id.as_bytes()), &[u8::from(imported)])?;
        self.db.flush()?;
        Ok(())
    }

    /// The CID of the current index, if a run made one.
    pub fn index_cid(&self, community: &CommunityId) -> Result<Option<String>, Error> {
        match self.tree.get(&key(INDEX_CID, community, &[]))? {
            None => Ok(None),
            Some(v) => {
                String::from_utf8(v.to_vec()).map(Some).map_err(|_| Error::Corrupt("index cid".into()))
            }
        }
    }

    /// The history root this node pinned last for the community ([`super::history::pin_latest`]).
    pub fn root(&self, community: &CommunityId) -> Result<Option<crate::blocks::cid::Cid>, Error> {
        match self.tree.get(&key(ROOT, community, &[]))? {
            None => Ok(None),
            Some(v) => std::str::from_utf8(&v)
                .ok()
                .and_then(|s| s.parse().ok())
                .map(Some)
                .ok_or_else(|| Error::Corrupt("history root".into())),
        }
    }

    /// Records the history root pinned last, durably.
    pub fn set_root(&self, community: &CommunityId, root: &crate::blocks::cid::Cid) -> Result<(), Error> {
        self.tree.insert(&key(ROOT, community, &[]), root.to_string().as_bytes())?;
        self.db.flush()?;
        Ok(())
    }

    /// The latest IPNS record of the community's name this node accepted (or made), as bytes:
    /// read again through [`crate::ipns::validate`].
    pub fn ipns_record(&self, community: &CommunityId) -> Result<Option<Vec<u8>>, Error> {
        Ok(self.tree.get(&key(IPNS, community, &[]))?.map(|v| v.to_vec()))
    }

    /// Records the latest IPNS record, durably.
    pub fn set_ipns_record(&self, community: &CommunityId, record: &[u8]) -> Result<(), Error> {
        self.tree.insert(&key(IPNS, community, &[]), record)?;
        self.db.flush()?;
        Ok(())
    }

    /// Records a finished run in one atomic batch: new entries, the new index CID (when the run
    /// made one) and the new `last_archive_end` (which never moves backwards), then flushes.
    pub fn commit_round(
        &self,
        community: &CommunityId,
        entries: &[(String, Entry)],
        index_cid: Option<&str>,
        end: u64,
    ) -> Result<(), Error> {
        let end = self.last_archive_end(community)?.map_or(end, |old| old.max(end));
        let mut b = Batch::default();
        for (id, e) in entries {
            b.insert(key(ENTRY, community, id.as_bytes()), e.encode());
        }
        if let Some(cid) = index_cid {
            b.insert(key(INDEX_CID, community, &[]), cid.as_bytes().to_vec());
        }
        b.insert(key(END, community, &[]), end.to_be_bytes().to_vec());
        self.tree.apply(b)?;
        self.db.flush()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::format::Metadata;
    use crate::crypto::KeyPair;

    #[test]
    fn end_only_moves_forward_and_entries_accumulate() {
        let s = ArchiveState::open(&Db::memory()).unwrap();
        let c: CommunityId = KeyPair::generate().public_hex().parse().unwrap();
        assert_eq!(s.last_archive_end(&c).unwrap(), None);
        let e = Entry { metadata: Metadata { from: 0, to: 10, topics: vec![] }, cid: "c".into() };
        s.commit_round(&c, &[(e.id(), e.clone())], Some("idx"), 100).unwrap();
        s.commit_round(&c, &[], None, 50).unwrap();
        assert_eq!(s.index_cid(&c).unwrap().as_deref(), Some("idx"));
        assert_eq!(s.last_archive_end(&c).unwrap(), Some(100));
        assert_eq!(s.index(&c).unwrap().archives.len(), 1);
    }
}
