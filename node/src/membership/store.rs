//! The membership a node holds, persisted: the latest accepted description of each community
//! (verified when read from disk, then served from memory), the requests to join a control
//! node keeps pending, and this node's own pending request.
//!
//! Layout (tree [`TreeName::Membership`]): `desc/ community` -> signed description envelope;
//! `pending/ community requester` -> signed request envelope; `own/ community` -> our request.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use crate::community::{CommunityId, MemberKey};
use crate::db::{self, Db, Tree, TreeName};

use super::description::{self, Signed};
use super::requests::RequestToJoin;

const DESCRIPTION: &[u8] = b"desc/";
const PENDING: &[u8] = b"pending/";
const OWN: &[u8] = b"own/";

/// Requests to join a control node keeps per community; more are refused until some are
/// answered (each is a signed envelope of at most 1 KiB).
pub const MAX_PENDING: usize = 1000;

/// Errors of the membership store.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Db(#[from] db::Error),
    #[error("stored description of {community} no longer verifies: {reason}")]
    Corrupt { community: String, reason: String },
    #[error("{0} requests to join are pending already; answer some first")]
    TooManyPending(usize),
}

/// Handle to the store; cheap to clone.
#[derive(Clone)]
pub struct MembershipStore {
    db: Db,
    tree: Tree,
    /// Descriptions verified once, by community.
    cache: Arc<RwLock<HashMap<CommunityId, Arc<Signed>>>>,
}

fn key(prefix: &[u8], community: &CommunityId, rest: &[u8]) -> Vec<u8> {
    let mut k = prefix.to_vec();
    k.extend_from_slice(community.as_bytes());
    k.extend_from_slice(rest);
    k
}

impl MembershipStore {
    /// Opens the store in `db`.
    pub fn open(db: &Db) -> Result<Self, Error> {
        Ok(Self { db: db.clone(), tree: db.tree(TreeName::Membership)?, cache: Default::default() })
    }

    /// The latest accepted description of a community.
    pub fn description(&self, community: &CommunityId) -> Result<Option<Arc<Signed>>, Error> {
        if let Some(d) = self.cache.read().unwrap_or_else(|p| p.into_inner()).get(community) {
            return Ok(Some(d.clone()));
        }
        let Some(bytes) = self.tree.get(&key(DESCRIPTION, community, &[]))? else { return Ok(None) };
        let signed = description::verify(community, &bytes)
            .map_err(|e| Error::Corrupt { community: community.to_string(), reason: e.to_string() })?;
        let signed = Arc::new(signed);
        self.cache.write().unwrap_or_else(|p| p.into_inner()).insert(*community, signed.clone());
        Ok(Some(signed))
    }

    /// Stores `signed` as the community's description (durably) when it is newer than the one
    /// held; returns whether it was.
    pub fn accept(&self, community: &CommunityId, signed: Signed) -> Result<bool, Error> {
        let mut cache = self.cache.write().unwrap_or_else(|p| p.into_inner());
        let held = match cache.get(community) {
            Some(d) => Some(d.clone()),
            None => {
                drop(cache);
                let held = self.description(community)?;
                cache = self.cache.write().unwrap_or_else(|p| p.into_inner());
                held
            }
        };
        if !description::is_newer(held.as_deref(), &signed) {
            return Ok(false);
        }
        self.tree.insert(&key(DESCRIPTION, community, &[]), &signed.bytes)?;
        self.db.flush()?;
        cache.insert(*community, Arc::new(signed));
        Ok(true)
    }

    /// Forgets everything held for a community (it was left).
    pub fn forget(&self, community: &CommunityId) -> Result<(), Error> {
        self.cache.write().unwrap_or_else(|p| p.into_inner()).remove(community);
        let mut batch = db::Batch::default();
        for prefix in [DESCRIPTION, PENDING, OWN] {
            for row in self.tree.scan_prefix(&key(prefix, community, &[])) {
                batch.remove(row?.0.to_vec());
            }
        }
        self.tree.apply(batch)?;
        self.db.flush()?;
        Ok(())
    }

    /// Requests to join waiting for the control node's answer, with their envelopes.
    pub fn pending(&self, community: &CommunityId) -> Result<Vec<(RequestToJoin, Vec<u8>)>, Error> {
        let mut out = Vec::new();
        for row in self.tree.scan_prefix(&key(PENDING, community, &[])) {
            let (_, v) = row?;
            // Verified before stored; one that no longer verifies is skipped, not served.
            if let Ok(r) = RequestToJoin::verify(community, &v) {
                out.push((r, v.to_vec()));
            }
        }
        Ok(out)
    }

    /// Keeps a request to join (the newest one per requester); returns whether it is new.
    pub fn add_pending(
        &self,
        community: &CommunityId,
        r: &RequestToJoin,
        envelope: &[u8],
    ) -> Result<bool, Error> {
        let k = key(PENDING, community, r.requester.as_bytes());
        if let Some(old) = self.tree.get(&k)? {
            if RequestToJoin::verify(community, &old).is_ok_and(|o| o.clock >= r.clock) {
                return Ok(false);
            }
        } else {
            let n = self.tree.scan_prefix(&key(PENDING, community, &[])).take(MAX_PENDING).count();
            if n >= MAX_PENDING {
                return Err(Error::TooManyPending(n));
            }
        }
        self.tree.insert(&k, envelope)?;
        self.db.flush()?;
        Ok(true)
    }

    /// Drops a pending request (answered); returns whether there was one.
    pub fn remove_pending(&self, community: &CommunityId, requester: &MemberKey) -> Result<bool, Error> {
        let k = key(PENDING, community, requester.as_bytes());
        let had = self.tree.contains_key(&k)?;
        self.tree.remove(&k)?;
        self.db.flush()?;
        Ok(had)
    }

    /// This node's own request to join a community, while it is not a member yet.
    pub fn own_request(&self, community: &CommunityId) -> Result<Option<Vec<u8>>, Error> {
        Ok(self.tree.get(&key(OWN, community, &[]))?.map(|v| v.to_vec()))
    }

    /// Records (or, with `None`, clears) this node's own request to join.
    pub fn set_own_request(&self, community: &CommunityId, envelope: Option<&[u8]>) -> Result<(), Error> {
        let k = key(OWN, community, &[]);
        match envelope {
            Some(e) => self.tree.insert(&k, e)?,
            None => self.tree.remove(&k)?,
        }
        self.db.flush()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::KeyPair;
    use crate::membership::description::{sign, Access, Description};

    #[test]
    fn keeps_the_newest_description_and_bounded_requests() {
        let db = Db::memory();
        let store = MembershipStore::open(&db).unwrap();
        let control = KeyPair::generate();
        let id: CommunityId = control.public_hex().parse().unwrap();
        let mut d = Description::new("c", Access::OnRequest, false);
        d.clock = 5;
        assert!(store.accept(&id, sign(&control, &d)).unwrap());
        d.clock = 4;
        assert!(!store.accept(&id, sign(&control, &d)).unwrap(), "older");
        assert_eq!(store.description(&id).unwrap().unwrap().description.clock, 5);
        // A fresh handle reads (and verifies) it from the database.
        let again = MembershipStore::open(&db).unwrap();
        assert_eq!(again.description(&id).unwrap().unwrap().description.clock, 5);

        let alice = KeyPair::generate();
        let r1 = RequestToJoin::sign(&alice, &id, 1, "alice");
        let req = RequestToJoin::verify(&id, &r1).unwrap();
        assert!(store.add_pending(&id, &req, &r1).unwrap());
        assert!(!store.add_pending(&id, &req, &r1).unwrap(), "a replay");
        assert_eq!(store.pending(&id).unwrap().len(), 1);
        assert!(store.remove_pending(&id, &req.requester).unwrap());
        assert!(store.pending(&id).unwrap().is_empty());
        store.forget(&id).unwrap();
        assert!(store.description(&id).unwrap().is_none());
    }
}
