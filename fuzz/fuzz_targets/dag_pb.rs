//! A dag-pb/UnixFS node, as a peer could send it as a block.
#![no_main]
use archive_node::blocks::dag_pb;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = dag_pb::decode_file_node(data);
});
