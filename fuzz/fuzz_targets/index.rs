//! ArchiveIndex bytes (a downloaded index) through the decoder.
#![no_main]
use archive_node::archive::Index;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(index) = Index::decode(data) {
        let _ = index.missing_from(&Default::default());
    }
});
