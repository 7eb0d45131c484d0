//! The history the benchmarks share: 1,000,000 signed messages of 200-byte payloads, evenly
//! spread over 52 weeks, in one community with a fixed key. Generated once (signing a million
//! messages takes a while) into a sled store cached under `target/bench-data/`.
#![allow(dead_code)] // each bench uses part of this

use std::path::{Path, PathBuf};
use std::time::Duration;

use archive_node::community::CommunityId;
use archive_node::crypto::KeyPair;
use archive_node::db::Db;
use archive_node::message::{Message, Topic};
use archive_node::message_store::MessageStore;

pub const MESSAGES: u64 = 1_000_000;
pub const PAYLOAD: usize = 200;
pub const WEEK: u64 = 7 * 24 * 3600;
pub const START: u64 = 1_700_000_000;
pub const SPAN: u64 = 52 * WEEK;

/// `target/bench-data/<name>`.
pub fn bench_dir(name: &str) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target.join("bench-data").join(name)
}

/// The community's control key (fixed, so the cached store stays valid across runs).
pub fn community_key() -> KeyPair {
    KeyPair::from_secret_bytes(&[7u8; 32]).expect("valid key")
}

/// The directory holding the history's sled store (`<dir>/db`), generated when missing.
pub fn history_dir() -> (PathBuf, CommunityId) {
    let dir = bench_dir(&format!("build-{MESSAGES}"));
    let community: CommunityId = community_key().public_hex().parse().expect("valid id");
    let done = dir.join("complete");
    if !done.exists() {
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("bench dir");
        let db = Db::open(&dir.join("db")).expect("open db");
        generate(&MessageStore::open(&db).expect("store"), &community);
        drop(db);
        std::fs::write(&done, b"").expect("marker");
    }
    (dir, community)
}

/// Signs and stores the history, on every core.
fn generate(store: &MessageStore, community: &CommunityId) {
    eprintln!("generating {MESSAGES} signed messages (once; cached under target/bench-data)");
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get()) as u64;
    let batch = 10_000u64;
    for first in (0..MESSAGES).step_by(batch as usize) {
        let per = batch.div_ceil(threads);
        let verified: Vec<_> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..threads)
                .map(|t| {
                    s.spawn(move || {
                        let author = KeyPair::from_secret_bytes(&[t as u8 + 1; 32]).expect("key");
                        let lo = first + t * per;
                        let hi = (lo + per).min(first + batch).min(MESSAGES);
                        (lo..hi)
                            .map(|i| {
                                let ts = START + i * SPAN / MESSAGES;
                                let mut payload = vec![0u8; PAYLOAD];
                                payload[..8].copy_from_slice(&i.to_be_bytes());
                                Message::new_signed(
                                    &author,
                                    community,
                                    Topic::from_name("general"),
                                    ts,
                                    payload,
                                )
                                .verify(community)
                                .expect("valid")
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles.into_iter().flat_map(|h| h.join().expect("worker")).collect()
        });
        store.insert(community, &verified).expect("insert");
    }
    store.flush().expect("flush");
}

/// Median, min and max in seconds, as the JSON the reports read.
pub fn spread(v: &[Duration]) -> serde_json::Value {
    let mut s: Vec<f64> = v.iter().map(Duration::as_secs_f64).collect();
    s.sort_by(f64::total_cmp);
    serde_json::json!({"median": s[s.len() / 2], "min": s[0], "max": s[s.len() - 1]})
}

/// The median of `v`.
pub fn median(v: &[Duration]) -> Duration {
    let mut v = v.to_vec();
    v.sort();
    v[v.len() / 2]
}
