//! A block whose bytes are known to match its CID.

use super::cid::Cid;
use super::unixfs;

/// A block whose bytes hash to its CID: made by [`Block::verify`] (bytes from a peer or a file)
/// or by our own importer (which computed the CID from the bytes). The block store only takes
/// these, so no unverified byte can enter it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Block {
    cid: Cid,
    data: Vec<u8>,
}

impl Block {
    /// Checks `data` against `cid` (sha2-256, raw or dag-pb, size limit).
    pub fn verify(cid: Cid, data: Vec<u8>) -> Result<Self, unixfs::Error> {
        unixfs::verify_block(&cid, &data)?;
        Ok(Self { cid, data })
    }

    /// A block whose CID was just computed from `data` by this crate.
    pub(crate) fn computed(cid: Cid, data: Vec<u8>) -> Self {
        Self { cid, data }
    }

    /// The CID.
    pub fn cid(&self) -> &Cid {
        &self.cid
    }

    /// The bytes.
    pub fn data(&self) -> &[u8] {
        &self.data
    }

    /// Gives the bytes back.
    pub fn into_data(self) -> Vec<u8> {
        self.data
    }
}
