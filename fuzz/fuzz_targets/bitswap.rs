//! A Bitswap stream: varint-framed messages, read until the end or the first error.
#![no_main]
use archive_node::bitswap::codec;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut stream = futures::io::Cursor::new(data);
    futures::executor::block_on(async {
        while let Ok(Some(_)) = codec::read(&mut stream).await {}
    });
});
