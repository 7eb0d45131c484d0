//! Block store throughput: `add` of a 1 GiB file (chunk, hash, append, fsync, index) and `cat`
//! back out (read, verify every block), next to `sha256sum` of the same file in the same run.
//!
//! `cargo bench -p archive-node --bench blocks`. Criterion times a 64 MiB add/cat for regressions;
//! the 1 GiB figures (median of 3, alternating with sha256sum) are printed as one `RESULT {json}`
//! line that `scripts/bench.sh blocks` records.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use archive_node::blocks::store::{BlockStore, Config};
use archive_node::blocks::{files, unixfs::Layout};
use archive_node::db::Db;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use sha2::Digest;

const GIB: u64 = 1024 * 1024 * 1024;
const SMALL: u64 = 64 * 1024 * 1024;

fn bench_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target.join("bench-data").join("blocks")
}

/// A file of `size` pseudo-random bytes (xorshift64), generated once.
fn input(size: u64) -> PathBuf {
    let path = bench_dir().join(format!("input-{size}.bin"));
    if std::fs::metadata(&path).map(|m| m.len()).ok() == Some(size) {
        return path;
    }
    std::fs::create_dir_all(bench_dir()).expect("bench dir");
    let mut f = std::io::BufWriter::new(std::fs::File::create(&path).expect("input file"));
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut buf = vec![0u8; 1 << 20];
    for _ in 0..size / buf.len() as u64 {
        for word in buf.chunks_exact_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            word.copy_from_slice(&x.to_le_bytes());
        }
        f.write_all(&buf).expect("write input");
    }
    f.flush().expect("flush input");
    path
}

/// Adds `path` into a fresh store; returns the store (for cat) and the elapsed time.
fn add(path: &Path, run: &str) -> (tempdir::Dir, BlockStore, archive_node::blocks::cid::Cid, Duration) {
    let dir = tempdir::Dir::new(bench_dir().join(run));
    let db = Db::open(&dir.0.join("db")).expect("db");
    let store = BlockStore::open(&db, &dir.0.join("blocks"), Config::default()).expect("store");
    let mut file = std::fs::File::open(path).expect("open input");
    let t = Instant::now();
    let imported = files::add(&store, &mut file, Layout::default()).expect("add");
    (dir, store, imported.root, t.elapsed())
}

fn cat(store: &BlockStore, root: archive_node::blocks::cid::Cid) -> Duration {
    let t = Instant::now();
    files::cat(store, root, &mut std::io::sink()).expect("cat");
    t.elapsed()
}

fn sha256sum(path: &Path) -> Duration {
    let t = Instant::now();
    let out = std::process::Command::new("sha256sum").arg(path).output().expect("sha256sum");
    assert!(out.status.success());
    t.elapsed()
}

/// A directory removed on drop.
mod tempdir {
    pub struct Dir(pub std::path::PathBuf);
    impl Dir {
        pub fn new(p: std::path::PathBuf) -> Self {
            let _ = std::fs::remove_dir_all(&p);
            std::fs::create_dir_all(&p).expect("run dir");
            Dir(p)
        }
    }
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

fn stats(v: &[Duration]) -> serde_json::Value {
    let mut s: Vec<f64> = v.iter().map(Duration::as_secs_f64).collect();
    s.sort_by(f64::total_cmp);
    serde_json::json!({"median": s[s.len() / 2], "min": s[0], "max": s[s.len() - 1]})
}

fn median(v: &[Duration]) -> f64 {
    let mut s: Vec<f64> = v.iter().map(Duration::as_secs_f64).collect();
    s.sort_by(f64::total_cmp);
    s[s.len() / 2]
}

fn bench(c: &mut Criterion) {
    let small = input(SMALL);
    let mut group = c.benchmark_group("blocks");
    group.sample_size(10).throughput(Throughput::Bytes(SMALL));
    group.bench_function("add 64 MiB", |b| b.iter(|| add(&small, "criterion-add").3));
    let (_keep, store, root, _) = add(&small, "criterion-cat");
    group.bench_function("cat 64 MiB", |b| b.iter(|| cat(&store, root)));
    group.finish();

    let big = input(GIB);
    let (mut adds, mut cats, mut sums, mut in_process) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for i in 0..3 {
        sums.push(sha256sum(&big));
        let (_dir, store, root, took) = add(&big, &format!("run-{i}"));
        adds.push(took);
        cats.push(cat(&store, root));
        // sha256 of the same bytes in-process (sha2 with SHA-NI where the CPU has it).
        let t = Instant::now();
        let mut h = sha2::Sha256::new();
        std::io::copy(&mut std::fs::File::open(&big).expect("open"), &mut h).expect("hash");
        std::hint::black_box(h.finalize());
        in_process.push(t.elapsed());
    }
    let mb = GIB as f64 / 1e6;
    let (a, ct, s, ip) = (median(&adds), median(&cats), median(&sums), median(&in_process));
    let result = serde_json::json!({
        "bench": "blocks",
        "file_bytes": GIB,
        "add_s": stats(&adds), "cat_s": stats(&cats), "sha256sum_s": stats(&sums), "sha256_in_process_s": stats(&in_process),
        "add_mb_per_s": mb / a, "cat_mb_per_s": mb / ct, "sha256sum_mb_per_s": mb / s, "sha256_in_process_mb_per_s": mb / ip,
        "add_speed_vs_sha256sum": s / a, "cat_speed_vs_sha256sum": s / ct,
        "add_speed_vs_sha256_in_process": ip / a, "cat_speed_vs_sha256_in_process": ip / ct,
        "target": {"add_speed_vs_sha256sum": 0.5, "cat_speed_vs_sha256sum": 0.7},
    });
    println!("RESULT {result}");
}

criterion_group!(benches, bench);
criterion_main!(benches);
