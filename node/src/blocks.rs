//! Content-addressed blocks: CIDs, dag-pb/UnixFS files in the IPFS `unixfs-v1-2025` layout.

pub mod block;
pub mod car;
pub mod cid;
pub mod dag_pb;
pub mod directory;
pub mod files;
pub mod store;
pub mod unixfs;
pub mod verify;

pub use block::Block;
