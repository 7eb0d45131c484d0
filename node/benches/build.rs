//! Archive build throughput: 1,000,000 messages of 200-byte payloads over 52 weekly windows, read
//! from a sled store, compared with `sha256sum` over the same output bytes.
//!
//! `cargo bench -p archive-node --bench build`. The store is generated once (signing a million
//! messages takes a while) and cached in `target/bench-data/`. Besides criterion's report, prints
//! one `RESULT {json}` line (median of 3 runs) that `scripts/bench.sh build` records.

use std::io::Write;
use std::time::{Duration, Instant};

use archive_node::archive::builder::{BuiltArchive, BuiltIndex, Sink, SinkError};
use archive_node::archive::{state::ArchiveState, Builder, Params};
use archive_node::blocks::unixfs;
use archive_node::community::CommunityId;
use archive_node::db::Db;
use archive_node::message::Topic;
use archive_node::message_store::MessageStore;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

mod common;
use common::{median, spread, MESSAGES, PAYLOAD, SPAN, START, WEEK};

/// Opens the cached history store.
fn store() -> (Db, CommunityId) {
    let (dir, community) = common::history_dir();
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
        members: None,
    }
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
    let sha_in_process = median(&in_process);
    let out_file = common::history_dir().0.join("output.bin");
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
    let (build, sum) = (median(&builds), median(&sums));
    let secs = build.as_secs_f64();
    let result = serde_json::json!({
        "bench": "build",
        "messages": MESSAGES,
        "payload_bytes": PAYLOAD,
        "archives": outcome.archives.len(),
        "output_bytes": out_bytes,
        "build_s": spread(&builds),
        "sha256sum_s": spread(&sums),
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
