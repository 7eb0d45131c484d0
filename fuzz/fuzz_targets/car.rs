//! A CAR v1 file imported into an in-memory block store (every block verified, all or nothing).
#![no_main]
use archive_node::blocks::car;
use archive_node::blocks::store::{BlockStore, Config};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let store = BlockStore::memory(Config { quota: Some(64 << 20), ..Config::default() });
    let _ = car::import(&store, std::io::Cursor::new(data));
});
