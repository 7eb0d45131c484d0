//! CIDs: CIDv1, sha2-256, with the codecs archive-node uses.

pub use ::cid::Cid;
use multihash_codetable::{Code, MultihashDigest};

/// Multicodec of a raw block (a UnixFS leaf).
pub const RAW: u64 = 0x55;
/// Multicodec of a dag-pb node.
pub const DAG_PB: u64 = 0x70;
/// Multicodec of sha2-256.
pub const SHA2_256: u64 = 0x12;

/// CIDv1 of `bytes` as a raw block (sha2-256).
pub fn raw(bytes: &[u8]) -> Cid {
    Cid::new_v1(RAW, Code::Sha2_256.digest(bytes))
}

/// CIDv1 of `bytes` as a dag-pb block (sha2-256).
pub fn dag_pb(bytes: &[u8]) -> Cid {
    Cid::new_v1(DAG_PB, Code::Sha2_256.digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_cid_of_empty_bytes_is_the_ipfs_constant() {
        // `ipfs add --cid-version 1 --raw-leaves` of an empty file.
        assert_eq!(raw(b"").to_string(), "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku");
    }
}
