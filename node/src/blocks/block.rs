//! A block whose bytes are known to match its CID.

use bytes::Bytes;

use super::cid::Cid;
use super::unixfs;

/// A block whose bytes hash to its CID: made by [`Block::verify`] (bytes from a peer or a file)
/// or by our own importer (which computed the CID from the bytes). The block store only takes
/// these, so no unverified byte can enter it.
///
/// The bytes are shared (`Bytes`): a block received from a peer is a slice of the message that
/// brought it, and cloning a block (for each session that wants it, for an answer) copies none.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Block {
    cid: Cid,
    data: Bytes,
}

impl Block {
    /// Checks `data` against `cid` (sha2-256, raw or dag-pb, size limit).
    pub fn verify(cid: Cid, data: impl Into<Bytes>) -> Result<Self, unixfs::Error> {
        let data = data.into();
        unixfs::verify_block(&cid, &data)?;
        Ok(Self { cid, data })
    }

    /// A block whose CID was just computed from `data` by this crate.
    pub(crate) fn computed(cid: Cid, data: impl Into<Bytes>) -> Self {
        Self { cid, data: data.into() }
    }

    /// The CID.
    pub fn cid(&self) -> &Cid {
        &self.cid
    }

    /// The bytes.
    pub fn data(&self) -> &[u8] {
        &self.data
    }

    /// The bytes, shared.
    pub fn bytes(&self) -> &Bytes {
        &self.data
    }

    /// Gives the bytes back.
    pub fn into_data(self) -> Bytes {
        self.data
    }
}
