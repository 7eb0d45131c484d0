//! EncryptedBlob bytes (a sealed archive or index) opened with a known key.
#![no_main]
use archive_node::archive::seal::{self, KeyRing};
use archive_node::crypto::ArchiveKey;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let ring = KeyRing::single(ArchiveKey::from_bytes(&[9u8; 32]).expect("32 bytes"));
    let _ = seal::open(data, &ring);
});
