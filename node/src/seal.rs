//! Sealed bytes of encrypted communities (archives, indexes, live messages, key links):
//! `EncryptedBlob { key_id, sealed }`, and the key ring that opens them.

use std::collections::HashMap;

use archive_proto::pb::archive as pb;
use prost::Message as _;

use crate::crypto::{self, ArchiveKey, KEY_ID_LEN};

/// Errors of opening a blob.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    #[error("sealed with archive key {key_id}, which this node does not have (wrong key?)")]
    NoKey { key_id: String },
    #[error("wrong key: archive key {key_id} does not open this data")]
    WrongKey { key_id: String },
    #[error("malformed sealed data: {0}")]
    Malformed(String),
}

/// Seals `plain` with `key` into `EncryptedBlob` bytes.
pub fn seal(key: &ArchiveKey, plain: &[u8]) -> Vec<u8> {
    pb::EncryptedBlob { key_id: key.id().to_vec().into(), sealed: key.seal(plain).into() }.encode_to_vec()
}

/// The archive keys a node holds, by key id: old archives still open after a key rotation.
#[derive(Clone, Debug, Default)]
pub struct KeyRing {
    keys: HashMap<[u8; KEY_ID_LEN], ArchiveKey>,
}

impl KeyRing {
    /// Adds a key.
    pub fn add(&mut self, key: ArchiveKey) {
        self.keys.insert(key.id(), key);
    }

    /// The key of `id`, when the ring holds it.
    pub fn get(&self, id: &[u8; KEY_ID_LEN]) -> Option<&ArchiveKey> {
        self.keys.get(id)
    }

    /// Every key of the ring.
    pub fn keys(&self) -> impl Iterator<Item = &ArchiveKey> {
        self.keys.values()
    }

    /// How many keys the ring holds.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// True when the ring holds no key.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// A ring with one key.
    pub fn single(key: ArchiveKey) -> Self {
        let mut r = Self::default();
        r.add(key);
        r
    }
}

impl FromIterator<ArchiveKey> for KeyRing {
    fn from_iter<I: IntoIterator<Item = ArchiveKey>>(keys: I) -> Self {
        let mut r = Self::default();
        for k in keys {
            r.add(k);
        }
        r
    }
}

/// Returns the plain bytes: decrypted when `bytes` is an `EncryptedBlob`, as they are otherwise.
///
/// A blob is recognised by its field 101 (`sealed`), which a plain archive or index never has.
pub fn open(bytes: &[u8], keys: &KeyRing) -> Result<Vec<u8>, Error> {
    match pb::EncryptedBlob::decode(bytes) {
        Ok(b) if !b.sealed.is_empty() => open_blob(b, keys),
        _ => Ok(bytes.to_vec()),
    }
}

/// [`open`] of owned bytes: plain bytes come back as they are, without a copy (archives are
/// up to 30 MB).
pub fn open_owned(bytes: Vec<u8>, keys: &KeyRing) -> Result<Vec<u8>, Error> {
    match pb::EncryptedBlob::decode(&bytes[..]) {
        Ok(b) if !b.sealed.is_empty() => {
            drop(bytes);
            open_blob(b, keys)
        }
        _ => Ok(bytes),
    }
}

fn open_blob(blob: pb::EncryptedBlob, keys: &KeyRing) -> Result<Vec<u8>, Error> {
    let key_id: [u8; KEY_ID_LEN] = blob.key_id[..]
        .try_into()
        .map_err(|_| Error::Malformed(format!("key id of {} bytes", blob.key_id.len())))?;
    let key = keys.keys.get(&key_id).ok_or_else(|| Error::NoKey { key_id: hex::encode(key_id) })?;
    key.open(&blob.sealed).map_err(|e| match e {
        crypto::Error::Decrypt => Error::WrongKey { key_id: hex::encode(key_id) },
        other => Error::Malformed(other.to_string()),
    })
}

/// True when `bytes` is a sealed blob.
pub fn is_sealed(bytes: &[u8]) -> bool {
    matches!(pb::EncryptedBlob::decode(bytes), Ok(b) if !b.sealed.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_and_wrong_keys() {
        let key = ArchiveKey::generate();
        let sealed = seal(&key, b"archive bytes");
        assert!(is_sealed(&sealed));
        assert_eq!(open(&sealed, &KeyRing::single(key.clone())).unwrap(), b"archive bytes");
        assert!(matches!(open(&sealed, &KeyRing::default()), Err(Error::NoKey { .. })));
        assert!(matches!(open(&sealed, &KeyRing::single(ArchiveKey::generate())), Err(Error::NoKey { .. })));

        // Same key id, tampered ciphertext: authentication fails.
        let mut blob = pb::EncryptedBlob::decode(&sealed[..]).unwrap();
        let mut s = blob.sealed.to_vec();
        s[0] ^= 1;
        blob.sealed = s.into();
        let err = open(&blob.encode_to_vec(), &KeyRing::single(key)).unwrap_err();
        assert!(matches!(err, Error::WrongKey { .. }));
        assert!(err.to_string().contains("wrong key"));
    }

    #[test]
    fn plain_bytes_pass_through() {
        let plain = crate::archive::index::Index::default().encode();
        assert!(!is_sealed(&plain));
        assert_eq!(open(&plain, &KeyRing::default()).unwrap(), plain);
    }
}
