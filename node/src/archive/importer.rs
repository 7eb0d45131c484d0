//! Importing a downloaded archive: open (decrypt), decode, verify every message, store in
//! batches. Idempotent: a message already stored counts as a duplicate, so an import repeated
//! after a crash changes nothing.

use super::format::Archive;
use super::seal::{self, KeyRing};
use crate::community::CommunityId;
use crate::message_store::{InsertOutcome, MessageStore};

/// Messages stored per atomic batch.
pub const BATCH: usize = 10_000;

/// What an import did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Imported {
    pub imported: usize,
    pub duplicates: usize,
    /// Messages whose hash or signature did not verify (a control node cannot fabricate them).
    pub rejected: usize,
}

/// Errors of an import.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Seal(#[from] seal::Error),
    #[error(transparent)]
    Format(#[from] super::format::Error),
    #[error(transparent)]
    Store(#[from] crate::message_store::Error),
}

/// Imports one archive's stored bytes (blocking).
pub fn import(
    store: &MessageStore,
    community: &CommunityId,
    bytes: &[u8],
    keys: &KeyRing,
) -> Result<Imported, Error> {
    let plain = seal::open(bytes, keys)?;
    let archive = Archive::decode(&plain)?;
    let mut out = Imported::default();
    let mut batch = Vec::with_capacity(BATCH.min(archive.messages.len()));
    let flush = |batch: &mut Vec<_>, out: &mut Imported| -> Result<(), Error> {
        let InsertOutcome { inserted, duplicates } = store.insert(community, batch)?;
        out.imported += inserted;
        out.duplicates += duplicates;
        batch.clear();
        Ok(())
    };
    for m in archive.messages {
        // Outside the archive's window: not what the index promised.
        if m.timestamp < archive.metadata.from || m.timestamp >= archive.metadata.to {
            out.rejected += 1;
            continue;
        }
        match m.verify(community) {
            Ok(v) => batch.push(v),
            Err(_) => out.rejected += 1,
        }
        if batch.len() == BATCH {
            flush(&mut batch, &mut out)?;
        }
    }
    flush(&mut batch, &mut out)?;
    store.flush()?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::format::{ArchiveWriter, Metadata};
    use crate::crypto::KeyPair;
    use crate::db::Db;
    use crate::message::{Message, Topic};

    #[test]
    fn verified_messages_are_imported_once_and_fabrications_rejected() {
        let c: CommunityId = KeyPair::generate().public_hex().parse().unwrap();
        let author = KeyPair::generate();
        let good = Message::new_signed(&author, &c, Topic::from_name("t"), 10, b"real".to_vec());
        let mut fabricated = Message::new_signed(&author, &c, Topic::from_name("t"), 11, b"real".to_vec());
        fabricated.payload = b"words never said".to_vec();
        let outside = Message::new_signed(&author, &c, Topic::from_name("t"), 500, b"late".to_vec());
        let mut w = ArchiveWriter::new(&Metadata { from: 0, to: 100, topics: vec![Topic::from_name("t")] });
        for m in [&good, &fabricated, &outside] {
            w.push_encoded(&m.encode());
        }
        let bytes = w.finish();
        let store = MessageStore::open(&Db::memory()).unwrap();
        let first = import(&store, &c, &bytes, &KeyRing::default()).unwrap();
        assert_eq!(first, Imported { imported: 1, duplicates: 0, rejected: 2 });
        let again = import(&store, &c, &bytes, &KeyRing::default()).unwrap();
        assert_eq!(again, Imported { imported: 0, duplicates: 1, rejected: 2 }, "idempotent");
        assert_eq!(store.count(&c).unwrap(), 1);
    }

    #[test]
    fn a_sealed_archive_needs_its_key() {
        let c: CommunityId = KeyPair::generate().public_hex().parse().unwrap();
        let m = Message::new_signed(&KeyPair::generate(), &c, Topic::from_name("t"), 1, b"x".to_vec());
        let mut w = ArchiveWriter::new(&Metadata { from: 0, to: 10, topics: vec![] });
        w.push_encoded(&m.encode());
        let key = crate::crypto::ArchiveKey::generate();
        let sealed = seal::seal(&key, &w.finish());
        let store = MessageStore::open(&Db::memory()).unwrap();
        assert!(matches!(import(&store, &c, &sealed, &KeyRing::default()), Err(Error::Seal(_))));
        assert_eq!(import(&store, &c, &sealed, &KeyRing::single(key)).unwrap().imported, 1);
    }
}
