//! Compiles `proto/*.proto` with protox (pure Rust, no `protoc` binary) and prost-build.

use std::{env, fs, path::PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "proto/archive.proto",
        "proto/bitswap.proto",
        "proto/ipns.proto",
        "proto/membership.proto",
        "proto/unixfs.proto",
    ];
    for file in files {
        // Neither protox nor prost-build print rerun-if-changed themselves.
        println!("cargo:rerun-if-changed={file}");
    }
    let descriptors = protox::compile(files, ["proto"])?;
    let out = PathBuf::from(env::var("OUT_DIR")?);
    let mut config = prost_build::Config::new();
    // Deterministic map encoding: BTreeMap iterates in key order.
    config.btree_map(["."]);
    config.bytes(["."]);
    config.compile_fds(descriptors)?;
    // Keep the descriptor set next to the code for tools that want it.
    fs::write(out.join("descriptors.marker"), b"")?;
    Ok(())
}
