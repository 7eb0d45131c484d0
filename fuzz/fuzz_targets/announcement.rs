//! What a peer says about a community's latest history: SignedEnvelope + ArchiveIndexCidMessage
//! bytes (a gossiped announcement) and IPNS records (from the DHT or a state answer), both read
//! against a community whose key is valid, so signature checks run.
#![no_main]
use std::sync::OnceLock;

use archive_node::community::CommunityId;
use archive_node::crypto::KeyPair;
use archive_node::{announce, ipns};
use libfuzzer_sys::fuzz_target;

/// The community of `fuzz_seeds`' IPNS seed: the key of secret `[1; 32]`.
fn community() -> CommunityId {
    static ID: OnceLock<CommunityId> = OnceLock::new();
    *ID.get_or_init(|| {
        let key = KeyPair::from_secret_bytes(&[1u8; 32]).expect("a valid secret");
        key.public_hex().parse().expect("a community id")
    })
}

fuzz_target!(|data: &[u8]| {
    let _ = announce::verify(&CommunityId::from_bytes([2u8; 33]), data);
    let _ = ipns::validate(&community(), data, ipns::now_ns());
});
