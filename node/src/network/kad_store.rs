//! Kademlia's record store, with our own provider records kept apart from those stored for
//! other peers: libp2p's `MemoryStore` counts both against one bound of keys, so once remote
//! peers filled it, our own `provide` failed (silently, for the reprovide loop).

use std::borrow::Cow;

use libp2p::kad::store::{self, MemoryStore, MemoryStoreConfig, RecordStore};
use libp2p::kad::{ProviderRecord, Record, RecordKey};
use libp2p::PeerId;

/// Keys other peers may have us store providers (or records) for: their share of memory.
pub const MAX_REMOTE_KEYS: usize = 1024;
/// Keys we provide ourselves: every complete pinned root (an archive, an index) of every
/// community this node serves.
pub const MAX_OWN_PROVIDED_KEYS: usize = 1 << 16;

/// The split store.
pub struct SplitStore {
    local: PeerId,
    /// Records and provider records of other peers.
    remote: MemoryStore,
    /// Provider records whose provider is this node.
    own: MemoryStore,
}

impl SplitStore {
    pub fn new(local: PeerId) -> Self {
        let remote = MemoryStoreConfig {
            max_records: MAX_REMOTE_KEYS,
            max_provided_keys: MAX_REMOTE_KEYS,
            ..Default::default()
        };
        let own = MemoryStoreConfig { max_provided_keys: MAX_OWN_PROVIDED_KEYS, ..Default::default() };
        Self {
            local,
            remote: MemoryStore::with_config(local, remote),
            own: MemoryStore::with_config(local, own),
        }
    }
}

impl RecordStore for SplitStore {
    type RecordsIter<'a> = <MemoryStore as RecordStore>::RecordsIter<'a>;
    type ProvidedIter<'a> = <MemoryStore as RecordStore>::ProvidedIter<'a>;

    fn get(&self, k: &RecordKey) -> Option<Cow<'_, Record>> {
        self.remote.get(k)
    }

    fn put(&mut self, r: Record) -> store::Result<()> {
        self.remote.put(r)
    }

    fn remove(&mut self, k: &RecordKey) {
        self.remote.remove(k)
    }

    fn records(&self) -> Self::RecordsIter<'_> {
        self.remote.records()
    }

    fn add_provider(&mut self, record: ProviderRecord) -> store::Result<()> {
        if record.provider == self.local {
            self.own.add_provider(record)
        } else {
            self.remote.add_provider(record)
        }
    }

    fn providers(&self, key: &RecordKey) -> Vec<ProviderRecord> {
        let mut all = self.own.providers(key);
        all.extend(self.remote.providers(key));
        all
    }

    fn provided(&self) -> Self::ProvidedIter<'_> {
        self.own.provided()
    }

    fn remove_provider(&mut self, k: &RecordKey, p: &PeerId) {
        if *p == self.local {
            self.own.remove_provider(k, p)
        } else {
            self.remote.remove_provider(k, p)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(key: u32, provider: PeerId) -> ProviderRecord {
        ProviderRecord::new(RecordKey::new(&key.to_be_bytes()), provider, vec![])
    }

    #[test]
    fn remote_peers_filling_their_share_do_not_stop_our_own_provide() {
        let local = PeerId::random();
        let mut s = SplitStore::new(local);
        for k in 0..MAX_REMOTE_KEYS as u32 {
            s.add_provider(record(k, PeerId::random())).unwrap();
        }
        assert!(s.add_provider(record(u32::MAX, PeerId::random())).is_err(), "their share is bounded");
        for k in 0..2000u32 {
            s.add_provider(record(1_000_000 + k, local)).expect("our own provide still works");
        }
        assert_eq!(s.provided().count(), 2000);
        let both = s.providers(&RecordKey::new(&5u32.to_be_bytes()));
        assert_eq!(both.len(), 1);
        s.add_provider(record(5, local)).unwrap();
        assert_eq!(s.providers(&RecordKey::new(&5u32.to_be_bytes())).len(), 2, "ours and theirs");
        s.remove_provider(&RecordKey::new(&5u32.to_be_bytes()), &local);
        assert_eq!(s.providers(&RecordKey::new(&5u32.to_be_bytes())).len(), 1);
    }
}
