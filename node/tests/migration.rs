//! A data dir written by the build before schema 2 (`tests/data/schema1/`, made with
//! `archive-node store import` of six messages, three of them over 5 KB) opens, migrates, and
//! reads back every message exactly, once: a second open finds nothing to move. And a
//! migration killed with SIGKILL at several points loses nothing.

use std::path::Path;

use archive_node::community::CommunityId;
use archive_node::crypto::KeyPair;
use archive_node::db::{self, Batch, Db, TreeName};
use archive_node::message::{Message, Topic};
use archive_node::message_store::{MessageStore, Query, INLINE_MAX};

const COMMUNITY: &str = "0x0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798";

/// The six messages the fixture was made from: JSON lines with `author_key` 0x11.., topic
/// "history", these timestamps and payloads, imported into a fresh data dir.
fn fixture_messages(c: &CommunityId) -> Vec<Message> {
    let author = KeyPair::from_secret_hex(&"11".repeat(32)).unwrap();
    (0..6u64)
        .map(|i| {
            let size = if i % 2 == 0 { 300 } else { 5000 + i as usize };
            let payload = (0..size).map(|j| ((i as usize * 7 + j) % 251) as u8).collect();
            Message::new_signed(&author, c, Topic::from_name("history"), 1_700_000_000 + i, payload)
        })
        .collect()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

#[test]
fn a_schema_1_data_dir_migrates_and_keeps_every_message() {
    let c: CommunityId = COMMUNITY.parse().unwrap();
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/schema1"), dir.path());
    let path = dir.path().join("db");
    let want = fixture_messages(&c);

    {
        let db = Db::open(&path).unwrap();
        assert_eq!(db.schema_version().unwrap(), 1, "the fixture is a schema 1 database");
        let rows = db.tree(TreeName::Messages).unwrap();
        let inline = rows.range(&[], None).filter(|r| r.as_ref().unwrap().1.len() > INLINE_MAX).count();
        assert_eq!(inline, 3, "schema 1 kept the large encodings inline");
        let store = MessageStore::open(&db).unwrap();
        assert_eq!(db.schema_version().unwrap(), db::SCHEMA_VERSION);
        assert_eq!(store.query(&c, &Query::default()).unwrap().messages, want);
        let rows = db.tree(TreeName::Messages).unwrap();
        let large = rows.range(&[], None).filter(|r| r.as_ref().unwrap().1.len() > INLINE_MAX).count();
        assert_eq!(large, 0, "no large value is left in sled");
        store.flush().unwrap();
    }
    // Reopened, nothing migrates again and everything reads back.
    let db = Db::open(&path).unwrap();
    let store = MessageStore::open(&db).unwrap();
    assert_eq!(store.query(&c, &Query::default()).unwrap().messages, want);
}

/// Writes a schema 1 database by hand, in the layout that version wrote (key `community |
/// timestamp | hash`, value `topic | weight | author | encoding`, every encoding inline).
fn write_schema1(path: &Path, c: &CommunityId, n: u64, len: usize) -> Vec<Message> {
    let author = KeyPair::generate();
    let db = Db::open(path).unwrap();
    let tree = db.tree(TreeName::Messages).unwrap();
    let mut msgs = Vec::new();
    let mut batch = Batch::default();
    for i in 0..n {
        let payload = (0..len).map(|j| (j as u64 * 13 + i) as u8).collect();
        let m = Message::new_signed(&author, c, Topic::from_name("t"), 1_000 + i, payload);
        let mut k = c.as_bytes().to_vec();
        k.extend_from_slice(&m.timestamp.to_be_bytes());
        k.extend_from_slice(&m.hash);
        let mut v = m.topic.0.to_vec();
        v.extend_from_slice(&(m.weight() as u32).to_be_bytes());
        v.extend_from_slice(&author.public());
        v.extend_from_slice(&m.encode());
        batch.insert(k, v);
        msgs.push(m);
    }
    tree.apply(batch).unwrap();
    db.set_schema_version(1).unwrap();
    msgs
}

/// Bytes of the pack files in `dir` (0 before it exists).
fn pack_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map_or(0, |entries| entries.filter_map(|e| e.ok()?.metadata().ok()).map(|m| m.len()).sum())
}

#[test]
fn a_migration_killed_midway_loses_nothing() {
    let c: CommunityId = COMMUNITY.parse().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let want = write_schema1(&dir.path().join("db"), &c, 400, 100 * 1024);
    let empty = dir.path().join("empty.jsonl");
    std::fs::write(&empty, b"").unwrap();
    // `store import` of nothing opens the message store, which migrates in synced batches of
    // 16 MiB. Each run is killed once it has appended 20 MiB more to the message packs (past
    // one batch, inside the next), or when it ends.
    let packs = dir.path().join("db").join("messages");
    let mut cut_midway = 0;
    for more in [20u64 << 20, 20 << 20] {
        let start = pack_bytes(&packs);
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_archive-node"))
            .args(["store", "import", "--data-dir"])
            .arg(dir.path())
            .args(["--community", COMMUNITY])
            .arg(&empty)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        while pack_bytes(&packs) < start + more && child.try_wait().unwrap().is_none() {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        child.kill().ok(); // SIGKILL
        child.wait().unwrap();
        let db = Db::open(&dir.path().join("db")).unwrap();
        let rows = db.tree(TreeName::Messages).unwrap();
        let packed = rows.range(&[], None).filter(|r| r.as_ref().unwrap().1.len() < INLINE_MAX).count();
        if db.schema_version().unwrap() == 1 && packed > 0 && packed < want.len() {
            cut_midway += 1;
        }
    }
    assert!(cut_midway > 0, "at least one kill landed in the middle of the migration");
    let db = Db::open(&dir.path().join("db")).unwrap();
    let store = MessageStore::open(&db).unwrap();
    assert_eq!(db.schema_version().unwrap(), db::SCHEMA_VERSION);
    let mut got = Vec::new();
    let mut q = Query::default();
    loop {
        let page = store.query(&c, &q).unwrap();
        got.extend(page.messages);
        match page.cursor {
            Some(cursor) => q.cursor = Some(cursor),
            None => break,
        }
    }
    assert_eq!(got.len(), want.len());
    assert!(got == want, "every message reads back exactly after the kills");
    let rows = db.tree(TreeName::Messages).unwrap();
    assert_eq!(rows.range(&[], None).filter(|r| r.as_ref().unwrap().1.len() > INLINE_MAX).count(), 0);
}
