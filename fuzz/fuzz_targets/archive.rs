//! WakuMessageArchive bytes (a downloaded archive) through the decoder and the importer's checks.
#![no_main]
use archive_node::archive::Archive;
use archive_node::community::CommunityId;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(a) = Archive::decode(data) {
        let community = CommunityId::from_bytes([2u8; 33]);
        for m in a.messages {
            let _ = m.verify(&community);
        }
    }
});
