//! Content addressing: CIDs of blocks.

pub mod cid;
