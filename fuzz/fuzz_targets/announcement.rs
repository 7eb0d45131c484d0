//! SignedEnvelope + ArchiveIndexCidMessage bytes (a gossiped announcement).
#![no_main]
use archive_node::announce;
use archive_node::community::CommunityId;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = announce::verify(&CommunityId::from_bytes([2u8; 33]), data);
});
