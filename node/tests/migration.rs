//! A data dir written by the build before schema 2 (`tests/data/schema1/`, made with
//! `archive-node store import` of six messages, three of them over 5 KB) opens, migrates, and
//! reads back every message exactly, once: a second open finds nothing to move.

use std::path::Path;

use archive_node::community::CommunityId;
use archive_node::crypto::KeyPair;
use archive_node::db::{self, Db, TreeName};
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
