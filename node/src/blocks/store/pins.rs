//! Pins and holds: which roots GC keeps. A pin is persistent (a count per root, with the
//! root's "complete" flag, in the pin tree); a hold is a fetch in progress keeping what it
//! already stored, in memory only.

use std::collections::BTreeMap;

use super::{BlockStore, Error};
use crate::blocks::cid::Cid;

/// Keeps GC away from the blocks under a root while a fetch of it runs; released on drop.
pub struct Hold {
    store: BlockStore,
    root: Cid,
}

impl Drop for Hold {
    fn drop(&mut self) {
        let mut held = self.store.inner.held.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = held.get_mut(&self.root) {
            *n -= 1;
            if *n == 0 {
                held.remove(&self.root);
            }
        }
    }
}

impl BlockStore {
    pub(super) fn pin_state(&self, root: &Cid) -> Result<(u32, bool), Error> {
        Ok(match self.inner.pins.get(&root.to_bytes())? {
            Some(v) if v.len() == 5 => (u32::from_be_bytes(v[..4].try_into().expect("4 bytes")), v[4] == 1),
            _ => (0, false),
        })
    }

    pub(super) fn set_pin_state(&self, root: &Cid, count: u32, complete: bool) -> Result<(), Error> {
        if count == 0 && !complete {
            self.inner.pins.remove(&root.to_bytes())?;
        } else {
            let mut v = count.to_be_bytes().to_vec();
            v.push(u8::from(complete));
            self.inner.pins.insert(&root.to_bytes(), &v)?;
        }
        Ok(())
    }

    /// Adds a pin to a root (GC keeps every block reachable from a pinned root).
    pub fn pin(&self, root: &Cid) -> Result<u32, Error> {
        let (count, complete) = self.pin_state(root)?;
        self.set_pin_state(root, count.saturating_add(1), complete)?;
        Ok(count + 1)
    }

    /// Removes a pin; returns the pins left.
    pub fn unpin(&self, root: &Cid) -> Result<u32, Error> {
        let (count, complete) = self.pin_state(root)?;
        let left = count.saturating_sub(1);
        self.set_pin_state(root, left, complete)?;
        Ok(left)
    }

    /// Pinned roots and their pin counts.
    pub fn pins(&self) -> Result<BTreeMap<Cid, u32>, Error> {
        let mut out = BTreeMap::new();
        for row in self.inner.pins.range(&[], None) {
            let (k, v) = row?;
            if let (Ok(cid), true) = (Cid::try_from(&k[..]), v.len() == 5) {
                let n = u32::from_be_bytes(v[..4].try_into().expect("4 bytes"));
                if n > 0 {
                    out.insert(cid, n);
                }
            }
        }
        Ok(out)
    }

    /// Roots whose DAG is flagged complete.
    pub fn complete_roots(&self) -> Result<Vec<Cid>, Error> {
        let mut out = Vec::new();
        for row in self.inner.pins.range(&[], None) {
            let (k, v) = row?;
            if let (Ok(cid), true) = (Cid::try_from(&k[..]), v.len() == 5 && v[4] == 1) {
                out.push(cid);
            }
        }
        Ok(out)
    }

    /// True when the whole DAG under `root` was found locally (the flag, not a walk).
    pub fn is_complete(&self, root: &Cid) -> Result<bool, Error> {
        Ok(self.pin_state(root)?.1)
    }

    /// Checks the whole DAG and records "complete" when every block is present. Returns the flag.
    pub fn mark_complete_if_whole(&self, root: &Cid) -> Result<bool, Error> {
        let whole = self.missing(root)?.is_empty();
        let (count, _) = self.pin_state(root)?;
        self.set_pin_state(root, count, whole)?;
        Ok(whole)
    }

    pub(super) fn clear_unpinned_flags(&self) -> Result<(), Error> {
        for row in self.inner.pins.range(&[], None) {
            let (k, v) = row?;
            if v.len() == 5 && v[..4] == [0, 0, 0, 0] {
                self.inner.pins.remove(&k)?;
            }
        }
        Ok(())
    }

    /// Holds the blocks under `root` against GC until the returned guard drops (a fetch in
    /// progress: its root is pinned only once the DAG is whole).
    pub fn hold(&self, root: Cid) -> Hold {
        *self.inner.held.lock().unwrap_or_else(|p| p.into_inner()).entry(root).or_default() += 1;
        Hold { store: self.clone(), root }
    }

    /// Roots held by fetches in progress.
    pub fn held_roots(&self) -> Vec<Cid> {
        self.inner.held.lock().unwrap_or_else(|p| p.into_inner()).keys().copied().collect()
    }
}
