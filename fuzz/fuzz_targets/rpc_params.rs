//! The JSON-RPC params of every method: the first byte picks the method, the rest is the raw
//! params JSON, checked by the code the method runs before it touches the node.
#![no_main]
use archive_node::rpc::params::{check, METHODS};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((pick, raw)) = data.split_first() else { return };
    let Ok(raw) = std::str::from_utf8(raw) else { return };
    let _ = check(METHODS[*pick as usize % METHODS.len()], raw);
});
