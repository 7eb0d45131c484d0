//! Content-addressed blocks: CIDs, dag-pb/UnixFS files in the IPFS `unixfs-v1-2025` layout.

pub mod cid;
pub mod dag_pb;
pub mod store;
pub mod unixfs;
