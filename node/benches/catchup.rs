//! Member catch-up: a member joins a community whose control node serves 1,000,000 messages in
//! 52 weekly archives over loopback, downloads every archive, verifies and imports every
//! message. Compared, alternately in the same run, with raw sled batch inserts (batches of
//! 10,000) of the very records the import writes.
//!
//! `cargo bench -p archive-node --bench catchup` (what `scripts/bench.sh catchup` runs). The
//! control node's data dir (history plus built archives) is prepared once and cached under
//! `target/bench-data/`. Prints one `RESULT {json}` line (median of 3 runs). With
//! `CATCHUP_PREPARE_ONLY=1` it only prepares that data dir (for `scripts/bench.sh memory-small`).

use std::time::{Duration, Instant};

use archive_node::communities::{Invite, Record};
use archive_node::community::CommunityId;
use archive_node::data_dir::DataDir;
use archive_node::db::{Batch, Db, TreeName};
use archive_node::node::{Config, Event, Node};
use tokio_util::sync::CancellationToken;

mod common;
use common::{bench_dir, median, spread, MESSAGES, WEEK};

/// Runs per side; `CATCHUP_RUNS` overrides it (e.g. 1 under a profiler).
fn runs() -> usize {
    std::env::var("CATCHUP_RUNS").ok().and_then(|v| v.parse().ok()).unwrap_or(3)
}
const RAW_BATCH: usize = 10_000;

fn config() -> Config {
    let mut c = Config::default();
    c.archive.partition_secs = WEEK;
    c
}

/// What the control node's cached data dir holds.
#[derive(serde::Serialize, serde::Deserialize)]
struct Prepared {
    archives: usize,
    archive_bytes: u64,
}

/// The control node's data dir: the history, the community record and its built archives.
async fn prepare_control() -> (DataDir, CommunityId, Prepared) {
    let dir = bench_dir("catchup-control");
    let marker = dir.join("prepared.json");
    let (history, community) = common::history_dir();
    if let Some(p) = std::fs::read(&marker).ok().and_then(|b| serde_json::from_slice(&b).ok()) {
        return (DataDir::new(dir), community, p);
    }
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("control dir");
    // Only the messages: the history store also holds the build bench's archive state.
    copy_messages(&history.join("db"), &dir.join("db"));
    let data = DataDir::new(&dir);
    let cancel = CancellationToken::new();
    let node = Node::start(&data, config(), cancel.clone()).await.expect("control node");
    let key = common::community_key();
    let record = Record {
        id: key.public_hex(),
        name: "catch-up".into(),
        control_secret: Some(key.secret_hex()),
        archive_keys: vec![],
        joined_at: 0,
        archives_enabled: false, // the bench drives the one round itself
        archive_interval_secs: 3600,
        granted_at_clock: None,
    };
    node.adopt_community(record).await.expect("adopt");
    eprintln!("building the control node's archives (once; cached in {})", dir.display());
    let outcome = node.seeder().round(community).await.expect("round");
    let p = Prepared {
        archives: outcome.archives.len(),
        archive_bytes: outcome.archives.iter().map(|a| a.bytes as u64).sum(),
    };
    assert_eq!(outcome.messages as u64, MESSAGES, "every message archived");
    node.flush().expect("flush");
    cancel.cancel();
    drop(node);
    tokio::time::sleep(Duration::from_secs(1)).await; // let the node's tasks drop the store
    std::fs::write(&marker, serde_json::to_vec(&p).expect("json")).expect("marker");
    (data, community, p)
}

/// Copies the message records of one store into another, as they are.
fn copy_messages(from: &std::path::Path, to: &std::path::Path) {
    let (src, dst) = (Db::open(from).expect("open history"), Db::open(to).expect("open control db"));
    let (src, dst_tree) =
        (src.tree(TreeName::Messages).expect("tree"), dst.tree(TreeName::Messages).expect("tree"));
    let mut batch = Batch::default();
    for r in src.range(&[], None) {
        let (k, v) = r.expect("read record");
        batch.insert(k, v.to_vec());
        if batch.len() == RAW_BATCH {
            dst_tree.apply(std::mem::take(&mut batch)).expect("apply");
        }
    }
    dst_tree.apply(batch).expect("apply");
    dst.flush().expect("flush");
}

/// Phases of one catch-up, from `join` to the last import.
struct CatchUp {
    total: Duration,
    download: Duration,
    import: Duration,
}

async fn catch_up(control: &Node, invite: &Invite, scratch: &std::path::Path) -> CatchUp {
    let dir = tempfile::tempdir_in(scratch).expect("member dir");
    let cancel = CancellationToken::new();
    let member = Node::start(&DataDir::new(dir.path()), config(), cancel.clone()).await.expect("member");
    let mut events = member.subscribe();
    let addr = control.network().listen_addrs().await.expect("addrs")[0].clone();
    member.network().dial(addr).await.expect("dial");
    let t0 = Instant::now();
    member.join_community(invite.clone()).await.expect("join");
    let (mut imported, mut downloaded_at, mut import_time) = (0u64, t0, Duration::ZERO);
    let mut import_started = t0;
    loop {
        match tokio::time::timeout(Duration::from_secs(600), events.recv()).await {
            Ok(Ok(Event::ArchiveDownloaded { .. })) => downloaded_at = Instant::now(),
            Ok(Ok(Event::ImportStarted { .. })) => import_started = Instant::now(),
            Ok(Ok(Event::Imported { outcome, .. })) => {
                import_time += import_started.elapsed();
                imported += outcome.imported as u64;
                assert_eq!(outcome.rejected, 0, "no message of the history is rejected");
            }
            Ok(Ok(Event::DownloadingFinished { .. })) => break,
            Ok(Ok(_)) => {}
            Ok(Err(e)) => panic!("member events: {e}"),
            Err(_) => panic!("catch-up did not finish in 10 minutes"),
        }
    }
    let total = t0.elapsed();
    assert_eq!(imported, MESSAGES, "the member imported the whole history");
    cancel.cancel();
    CatchUp { total, download: downloaded_at - t0, import: import_time }
}

/// Raw sled batch inserts of `records` into a fresh store, flushed at the end.
fn raw_insert(records: &[(Vec<u8>, Vec<u8>)], scratch: &std::path::Path) -> Duration {
    let dir = tempfile::tempdir_in(scratch).expect("raw dir");
    let db = Db::open(&dir.path().join("db")).expect("open");
    let tree = db.tree(TreeName::Messages).expect("tree");
    let t = Instant::now();
    for chunk in records.chunks(RAW_BATCH) {
        let mut batch = Batch::default();
        for (k, v) in chunk {
            batch.insert(k.clone(), v.clone());
        }
        tree.apply(batch).expect("apply");
    }
    db.flush().expect("flush");
    t.elapsed()
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    rt.block_on(async {
        let (data, community, prepared) = prepare_control().await;
        if std::env::var_os("CATCHUP_PREPARE_ONLY").is_some() {
            // `scripts/bench.sh memory-small` serves this data dir from a real daemon.
            eprintln!("prepared {} ({} archives)", data.root().display(), prepared.archives);
            return;
        }
        let scratch = bench_dir("catchup-scratch");
        std::fs::create_dir_all(&scratch).expect("scratch dir");
        let cancel = CancellationToken::new();
        let control = Node::start(&data, config(), cancel.clone()).await.expect("control node");
        let invite = Invite::decode(&control.communities().invite(&community).expect("invite").encode())
            .expect("decode invite");
        let records: Vec<(Vec<u8>, Vec<u8>)> = control
            .db()
            .tree(TreeName::Messages)
            .expect("tree")
            .range(&[], None)
            .map(|r| r.map(|(k, v)| (k, v.to_vec())).expect("read record"))
            .collect();
        assert_eq!(records.len() as u64, MESSAGES);
        let record_bytes: usize = records.iter().map(|(k, v)| k.len() + v.len()).sum();

        let (mut raws, mut results) = (Vec::new(), Vec::new());
        for i in 0..runs() {
            let raw = raw_insert(&records, &scratch);
            let run = catch_up(&control, &invite, &scratch).await;
            eprintln!(
                "run {}: catch-up {:.2} s (download done at {:.2} s, importing {:.2} s), raw sled {:.2} s",
                i + 1,
                run.total.as_secs_f64(),
                run.download.as_secs_f64(),
                run.import.as_secs_f64(),
                raw.as_secs_f64()
            );
            raws.push(raw);
            results.push(run);
        }
        cancel.cancel();
        let totals: Vec<Duration> = results.iter().map(|r| r.total).collect();
        let imports: Vec<Duration> = results.iter().map(|r| r.import).collect();
        let downloads: Vec<Duration> = results.iter().map(|r| r.download).collect();
        let (total, raw) = (median(&totals).as_secs_f64(), median(&raws).as_secs_f64());
        let msgs = MESSAGES as f64;
        let result = serde_json::json!({
            "bench": "catchup",
            "messages": MESSAGES,
            "archives": prepared.archives,
            "archive_bytes": prepared.archive_bytes,
            "record_bytes": record_bytes,
            "catchup_s": spread(&totals),
            "download_done_s": spread(&downloads),
            "import_busy_s": spread(&imports),
            "raw_sled_s": spread(&raws),
            "messages_per_s": msgs / total,
            "mb_per_s": prepared.archive_bytes as f64 / total / 1e6,
            "raw_sled_records_per_s": msgs / raw,
            "ratio_to_raw_sled": raw / total,
            "target_ratio": 0.5,
            "target_catchup_s": 30.0,
        });
        println!("RESULT {result}");
    });
    let _ = std::fs::remove_dir_all(bench_dir("catchup-scratch"));
}
