//! Archive build throughput: 1,000,000 messages of 200-byte payloads over 52 weekly windows, read
//! from a sled store, compared with `sha256sum` over the same output bytes.
//!
//! `cargo bench -p archive-node --bench build`. The store is generated once (signing a million
//! messages takes a while) and cached in `target/bench-data/`. Besides criterion's report, prints
//! one `RESULT {json}` line (median of 3 runs) that `scripts/bench.sh build` records.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use archive_node::archive::builder::{BuiltArchive, BuiltIndex, Sink, SinkError};
use archive_node::archive::{state::ArchiveState, Builder, Params};
use archive_node::blocks::unixfs;
use archive_node::community::CommunityId;
use archive_node::crypto::KeyPair;
use archive_node::db::Db;
use archive_node::message::{Message, Topic};
use archive_node::message_store::MessageStore;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

const MESSAGES: u64 = 1_000_000;
const PAYLOAD: usize = 200;
const WEEK: u64 = 7 * 24 * 3600;
const START: u64 = 1_700_000_000;
const SPAN: u64 = 52 * WEEK;

fn data_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target.join("bench-data").join(format!("build-{MESSAGES}"))
}

/// Opens the cached store, generating it first when missing.
fn store() -> (Db, CommunityId) {
    let dir = data_dir();
    // A fixed community key, so the cached store stays valid across runs.
    let community_key = KeyPair::from_secret_bytes(&[7u8; 32]).expect("valid key");
    let community: CommunityId = community_key.public_hex().parse().expect("valid id");
    let done = dir.join("complete");
    if !done.exists() {
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("bench dir");
        let db = Db::open(&dir.join("db")).expect("open db");
        let store = MessageStore::open(&db).expect("store");
        eprintln!("generating {MESSAGES} signed messages (once; cached in {})", dir.display());
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
                                        &community,
                                        Topic::from_name("general"),
                                        ts,
                                        payload,
                                    )
                                    .verify(&community)
                                    .expect("valid")
                                })
                                .collect::<Vec<_>>()
                        })
                    })
                    .collect();
                handles.into_iter().flat_map(|h| h.join().expect("worker")).collect()
            });
            store.insert(&community, &verified).expect("insert");
        }
        store.flush().expect("flush");
        std::fs::write(&done, b"").expect("marker");
    }
    (Db::open(&dir.join("db")).expect("open db"), community)
}

/// Keeps every output byte (to hash them afterwards), counting messages.
#[derive(Default)]
struct Keep {
    bytes: Vec<Vec<u8>>,
    messages: usize,
}

impl Sink for Keep {
    fn put(&mut self, bytes: &[u8]) -> Result<String, SinkError> {
        Ok(unixfs::root_cid(bytes).to_string())
    }
    fn archive(&mut self, a: &BuiltArchive) -> Result<(), SinkError> {
        self.messages += a.messages;
        self.bytes.push(a.bytes.clone());
        Ok(())
    }
    fn index(&mut self, i: &BuiltIndex) -> Result<(), SinkError> {
        self.bytes.push(i.bytes.clone());
        Ok(())
    }
}

/// Addresses output (hashing it into its UnixFS root CID, as storing would) without keeping it.
#[derive(Default)]
struct Count(usize);

impl Sink for Count {
    fn put(&mut self, bytes: &[u8]) -> Result<String, SinkError> {
        self.0 += bytes.len();
        Ok(unixfs::root_cid(bytes).to_string())
    }
}

fn params(community: CommunityId) -> Params {
    Params {
        community,
        from: Some(START),
        to: START + SPAN,
        partition_secs: WEEK,
        topics: vec![Topic::from_name("general")],
        key: None,
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn bench(c: &mut Criterion) {
    let (db, community) = store();
    let builder =
        Builder::new(MessageStore::open(&db).expect("store"), ArchiveState::open(&db).expect("state"));
    let p = params(community);

    // One run that keeps the output, for the sha256sum comparison.
    let mut keep = Keep::default();
    let outcome = builder.run(&p, &mut keep).expect("build");
    assert_eq!(keep.messages as u64, MESSAGES, "every message archived");
    let out_bytes: usize = keep.bytes.iter().map(Vec::len).sum();
    // The hardware limit: sha256 of the same bytes in-process (sha2 uses SHA-NI when present).
    let mut in_process = Vec::new();
    for _ in 0..3 {
        let t = Instant::now();
        for b in &keep.bytes {
            std::hint::black_box(archive_node::crypto::sha256(&[b]));
        }
        in_process.push(t.elapsed());
    }
    let sha_in_process = median(in_process);
    let out_file = data_dir().join("output.bin");
    {
        let mut f = std::fs::File::create(&out_file).expect("output file");
        for b in &keep.bytes {
            f.write_all(b).expect("write output");
        }
    }
    drop(keep);

    let mut group = c.benchmark_group("build");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(20))
        .throughput(Throughput::Bytes(out_bytes as u64));
    group.bench_function("1M messages, 52 weekly archives", |b| {
        b.iter(|| {
            let mut count = Count::default();
            builder.run(&p, &mut count).expect("build");
            count.0
        })
    });
    group.finish();

    // Side by side, alternating: our build and sha256sum of the same bytes (page-cached file).
    let mut builds = Vec::new();
    let mut sums = Vec::new();
    for _ in 0..3 {
        let t = Instant::now();
        builder.run(&p, &mut Count::default()).expect("build");
        builds.push(t.elapsed());
        let t = Instant::now();
        let st = std::process::Command::new("sha256sum").arg(&out_file).output().expect("run sha256sum");
        assert!(st.status.success());
        sums.push(t.elapsed());
    }
    let (build, sum) = (median(builds.clone()), median(sums.clone()));
    let secs = build.as_secs_f64();
    let result = serde_json::json!({
        "bench": "build",
        "messages": MESSAGES,
        "payload_bytes": PAYLOAD,
        "archives": outcome.archives.len(),
        "output_bytes": out_bytes,
        "build_s": {"median": secs, "min": builds.iter().min().map(Duration::as_secs_f64), "max": builds.iter().max().map(Duration::as_secs_f64)},
        "sha256sum_s": {"median": sum.as_secs_f64(), "min": sums.iter().min().map(Duration::as_secs_f64), "max": sums.iter().max().map(Duration::as_secs_f64)},
        "messages_per_s": MESSAGES as f64 / secs,
        "output_mb_per_s": out_bytes as f64 / secs / 1e6,
        "ratio_to_sha256sum": secs / sum.as_secs_f64(),
        "sha256_in_process_s": sha_in_process.as_secs_f64(),
        "ratio_to_sha256_in_process": secs / sha_in_process.as_secs_f64(),
        "target_ratio": 4.0,
    });
    println!("RESULT {result}");
    let _ = std::fs::remove_file(&out_file);
}

criterion_group!(benches, bench);
criterion_main!(benches);
