//! A [`Sink`] that stores archives and indexes as pinned UnixFS DAGs in the block store.

use crate::blocks::cid::Cid;
use crate::blocks::store::BlockStore;
use crate::blocks::unixfs::{self, Layout};
use crate::blocks::Block;

use super::builder::{Sink, SinkError};

/// Stores each output as a UnixFS file (default layout), pinned and marked complete; unpins a
/// retired index.
pub struct StoreSink {
    store: BlockStore,
}

impl StoreSink {
    /// A sink into `store`.
    pub fn new(store: BlockStore) -> Self {
        Self { store }
    }
}

/// Imports `bytes` into `store` as one UnixFS file, all blocks in one synced batch.
pub fn put_file(store: &BlockStore, bytes: &[u8]) -> Result<Cid, SinkError> {
    let mut blocks: Vec<Block> = Vec::new();
    let mut collect = |b: Block| {
        blocks.push(b);
        Ok(())
    };
    let root = unixfs::import(&mut &bytes[..], Layout::default(), &mut collect)?.root;
    store.put_many(&blocks)?;
    Ok(root)
}

impl Sink for StoreSink {
    fn put(&mut self, bytes: &[u8]) -> Result<String, SinkError> {
        let root = put_file(&self.store, bytes)?;
        self.store.pin(&root)?;
        self.store.mark_complete_if_whole(&root)?;
        Ok(root.to_string())
    }

    fn retire_index(&mut self, old_cid: &str) -> Result<(), SinkError> {
        let cid: Cid = old_cid.parse()?;
        self.store.unpin(&cid)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::{state::ArchiveState, Builder, Index, Params};
    use crate::community::CommunityId;
    use crate::crypto::KeyPair;
    use crate::db::Db;
    use crate::message::{Message, Topic};
    use crate::message_store::MessageStore;

    #[test]
    fn archives_are_stored_pinned_and_the_old_index_unpinned() {
        let db = Db::memory();
        let messages = MessageStore::open(&db).unwrap();
        let blocks = BlockStore::memory(Default::default());
        let builder = Builder::new(messages.clone(), ArchiveState::open(&db).unwrap());
        let c: CommunityId = KeyPair::generate().public_hex().parse().unwrap();
        let author = KeyPair::generate();
        let send = |ts: u64| {
            let m = Message::new_signed(&author, &c, Topic::from_name("t"), ts, vec![1; 10]);
            messages.insert(&c, &[m.verify(&c).unwrap()]).unwrap();
        };
        let run = |to: u64| {
            let p = Params {
                community: c,
                from: None,
                to,
                partition_secs: 100,
                topics: vec![],
                key: None,
                members: None,
            };
            builder.run(&p, &mut StoreSink::new(blocks.clone())).unwrap()
        };
        send(10);
        let first = run(100);
        send(150);
        let second = run(200);

        let first_index: Cid = first.index_cid.unwrap().parse().unwrap();
        let second_index: Cid = second.index_cid.unwrap().parse().unwrap();
        let pins = blocks.pins().unwrap();
        assert!(!pins.contains_key(&first_index), "old index unpinned");
        assert_eq!(pins.get(&second_index), Some(&1));
        for a in first.archives.iter().chain(&second.archives) {
            let cid: Cid = a.cid.parse().unwrap();
            assert!(blocks.is_complete(&cid).unwrap());
            assert_eq!(cid, unixfs::root_cid(&blocks.get(&cid).unwrap().unwrap()));
        }
        let index = Index::decode(&blocks.get(&second_index).unwrap().unwrap()).unwrap();
        assert_eq!(index.archives.len(), 2);
    }
}
