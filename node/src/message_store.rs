//! The message store: verified messages of every community, ordered by time.
//!
//! Layout (tree [`TreeName::Messages`]): key `community (33) | timestamp_be (8) | hash (32)`, value
//! `topic (4) | weight_be (4) | author (33) | protobuf WakuMessage`. The key is a function of the
//! message, so deduplication is a key lookup and a repeated insert (e.g. after a crash) is
//! idempotent. The value header lets the archive builder filter by topic and author and cap chunk
//! sizes without decoding. Rows written before authors were stored (`topic | weight | protobuf`)
//! are told apart by their ninth byte: a protobuf field tag there, a key prefix (2 or 3) in a
//! row with its author; their author is recovered from the signature when asked for.
//!
//! An encoding longer than [`INLINE_MAX`] does not stay in sled: it is appended to the pack
//! files in `<data>/db/messages/` (key: the message hash; synced before the row is written) and the
//! row's value is `header | 0x00 | location (16)`. A protobuf field tag is never 0, so the byte
//! after the header tells a packed row from an inline one. The reason is sled 0.34: it writes a
//! value over about a quarter of its segment as a blob file and charges it a few bytes in its
//! page cache, so large values were never evicted and the node's memory grew with its history
//! (1365 MiB peak catching up a 1 GiB history). Small rows keep sled's pages small and its cache
//! bound honest. An in-memory database keeps every encoding inline.
//!
//! A large message imported from a plain archive is not copied at all: the archive file is in
//! the block store, pinned, and already holds its exact encoding, so the row's value is
//! `header | 0x01 | offset (8) | len (4) | archive root CID`, and the encoding is read from the
//! archive's blocks ([`files::read_range`]). The control node's own messages go to the pack
//! files first; once an archive holding them is stored, [`MessageStore::point_at_archive`]
//! moves their rows onto it and [`MessageStore::compact`] reclaims the pack files. So each
//! message byte is stored about once (the 1 GiB history took 2.0x its size on disk before).
//! Field 0 does not exist, so 0x01 (field 0, 64-bit) is never a protobuf tag either. Archived
//! rows rely on archives staying pinned: a node never unpins an archive (only retired indexes).
//!
//! Schema 1 databases kept every encoding inline: [`MessageStore::open`] moves the large ones
//! into the pack files in batches (each synced before its rows change) and records schema 2
//! last, so a crash at any point leaves every row readable and the next open goes on.
//!
//! Tree [`TreeName::MessageBytes`] counts each community's stored bytes, for its quota.

use crate::community::{CommunityId, MemberKey};
use crate::crypto::PUBLIC_KEY_LEN;
use std::sync::Arc;

use crate::blocks::cid::Cid;
use crate::blocks::files::{self, Range};
use crate::blocks::store::BlockStore;
use crate::db::{self, Batch, Db, Tree, TreeName, Value};
use crate::message::{self, Message, Topic, VerifiedMessage};
use crate::packs::{self, Location, Packs, LOCATION_LEN};

const KEY_LEN: usize = PUBLIC_KEY_LEN + 8 + 32;
/// Header of a row written before authors were stored.
const OLD_HEADER_LEN: usize = 4 + 4;
const HEADER_LEN: usize = OLD_HEADER_LEN + PUBLIC_KEY_LEN;
/// Largest page a query returns, whatever limit the caller asks for.
pub const MAX_QUERY_LIMIT: usize = 10_000;
/// A page stops after the message that takes it past this many encoded bytes (a page of
/// 10,000 large messages would be gigabytes in memory, then again as JSON).
pub const MAX_QUERY_BYTES: usize = 16 * 1024 * 1024;
/// Longest encoding kept in a sled row; longer ones go to the pack files. Most chat messages
/// are shorter and stay in one lookup; 1 KiB rows keep sled's pages far from its blob size.
pub const INLINE_MAX: usize = 1024;
/// Marks a packed row: the byte after the header.
const PACKED: u8 = 0;
/// Marks a row whose encoding lies in a stored archive file.
const ARCHIVED: u8 = 1;
/// `ARCHIVED | offset | len` before the archive's CID.
const ARCHIVED_HEAD: usize = 1 + 8 + 4;
/// A pack segment whose live records are under this share of its file is rewritten.
const COMPACT_BELOW_LIVE: f64 = 0.5;
/// The segment being appended to is closed for compaction when at least this long and mostly
/// dead (the control node's whole recent history can sit in it).
const ROLL_AT_BYTES: u64 = 16 * 1024 * 1024;
/// Bytes of encodings a compaction copies per synced batch.
const COMPACT_BATCH_BYTES: u64 = 16 * 1024 * 1024;
/// Size at which a message pack file is closed.
const SEGMENT_BYTES: u64 = 256 * 1024 * 1024;
/// A migration moves this many encodings (or [`MIGRATE_BATCH_BYTES`]) per synced batch.
const MIGRATE_BATCH: usize = 256;
const MIGRATE_BATCH_BYTES: usize = 16 * 1024 * 1024;
/// Where the pack files live, inside the database directory.
pub const PACKS_DIR: &str = "messages";

/// Errors of the message store.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Db(#[from] db::Error),
    #[error("corrupt message record: {0}")]
    Corrupt(String),
    #[error("invalid cursor")]
    Cursor,
    #[error(transparent)]
    Message(#[from] message::Error),
    #[error("community {community} is over its message store quota ({used} of {quota} bytes)")]
    Quota { community: String, used: u64, quota: u64 },
    #[error(transparent)]
    Packs(#[from] packs::Error),
    #[error("reading a message from its archive: {0}")]
    Archive(#[from] Box<files::Error>),
    #[error("a row points into archive {0}, and this store has no block store")]
    NoArchives(String),
}

/// A stored message as the archive builder reads it: header fields plus the encoded bytes.
#[derive(Clone, Debug)]
pub struct StoredMessage {
    pub timestamp: u64,
    pub hash: [u8; 32],
    pub topic: Topic,
    /// `len(payload) + len(sig)`.
    pub weight: u32,
    /// The author, when the row stores it.
    author: Option<MemberKey>,
    value: Value,
    /// The encoding, read from the pack files or the archive for a row that does not hold it.
    packed: Option<Vec<u8>>,
}

impl StoredMessage {
    /// The protobuf `WakuMessage` bytes, exactly as they go into an archive.
    pub fn encoded(&self) -> &[u8] {
        match &self.packed {
            Some(bytes) => bytes,
            None => &self.value[if self.author.is_some() { HEADER_LEN } else { OLD_HEADER_LEN }..],
        }
    }

    /// The author (recovered from the signature for rows written before authors were stored).
    pub fn author(&self) -> Result<MemberKey, Error> {
        match self.author {
            Some(a) => Ok(a),
            None => {
                let m = self.decode()?;
                let digest = message::signing_digest(&m.topic, m.timestamp, &m.payload);
                let raw = crate::crypto::recover(&digest, &m.sig).map_err(message::Error::from)?;
                Ok(MemberKey::from_bytes(raw))
            }
        }
    }

    /// Decodes the full message.
    pub fn decode(&self) -> Result<Message, Error> {
        Ok(Message::decode(self.encoded())?)
    }
}

/// What an insert did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct InsertOutcome {
    pub inserted: usize,
    pub duplicates: usize,
}

/// A query over one community's messages.
#[derive(Clone, Debug, Default)]
pub struct Query {
    /// Only these topics (empty: every topic).
    pub topics: Vec<Topic>,
    /// Inclusive lower bound, unix seconds.
    pub from: Option<u64>,
    /// Exclusive upper bound, unix seconds.
    pub to: Option<u64>,
    /// Page size (capped at [`MAX_QUERY_LIMIT`] messages and about [`MAX_QUERY_BYTES`]; 0 or
    /// None: the cap).
    pub limit: Option<usize>,
    /// Continue after this cursor (from a previous page).
    pub cursor: Option<String>,
}

/// One page of a query.
#[derive(Clone, Debug, Default)]
pub struct Page {
    pub messages: Vec<Message>,
    /// The author of each message, in the same order.
    pub authors: Vec<MemberKey>,
    /// Present when more messages may follow.
    pub cursor: Option<String>,
}

/// Handle to the message store; cheap to clone.
#[derive(Clone)]
pub struct MessageStore {
    db: Db,
    tree: Tree,
    /// Community id -> stored bytes (u64 big-endian).
    bytes: Tree,
    /// Most bytes a community may store (None: no limit).
    quota: Option<u64>,
    /// Serialises the read-modify-write of the byte counters.
    counting: Arc<std::sync::Mutex<()>>,
    /// Large encodings: the pack files (None: an in-memory database, everything inline), and
    /// the block store with the archives (None: every large encoding goes to the packs).
    places: Places,
    /// Serialises the rewrites of existing rows ([`Self::point_at_archive`], [`Self::compact`]).
    moving: Arc<std::sync::Mutex<()>>,
}

/// What [`MessageStore::compact`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Compacted {
    pub segments: u64,
    /// File bytes given back.
    pub reclaimed_bytes: u64,
}

/// What a migration to schema 2 did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Migration {
    /// Encodings moved into the pack files.
    pub moved: u64,
    /// Rows left as they were: unreadable ones, and old rows whose author cannot be recovered
    /// (still readable inline).
    pub skipped: u64,
    /// True when every row was visited and the schema recorded.
    pub finished: bool,
}

fn key(community: &CommunityId, timestamp: u64, hash: &[u8; 32]) -> [u8; KEY_LEN] {
    let mut k = [0u8; KEY_LEN];
    k[..PUBLIC_KEY_LEN].copy_from_slice(community.as_bytes());
    k[PUBLIC_KEY_LEN..PUBLIC_KEY_LEN + 8].copy_from_slice(&timestamp.to_be_bytes());
    k[PUBLIC_KEY_LEN + 8..].copy_from_slice(hash);
    k
}

fn time_key(community: &CommunityId, timestamp: u64) -> Vec<u8> {
    let mut k = community.as_bytes().to_vec();
    k.extend_from_slice(&timestamp.to_be_bytes());
    k
}

fn key_timestamp(k: &[u8]) -> Result<u64, Error> {
    if k.len() != KEY_LEN {
        return Err(Error::Corrupt(format!("key of {} bytes", k.len())));
    }
    Ok(u64::from_be_bytes(k[PUBLIC_KEY_LEN..PUBLIC_KEY_LEN + 8].try_into().expect("8 bytes")))
}

/// A row's value: `header | encoding`, or `header | PACKED | location`.
fn row_value(topic: &Topic, weight: u32, author: &[u8], body: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(HEADER_LEN + body.len());
    v.extend_from_slice(&topic.0);
    v.extend_from_slice(&weight.to_be_bytes());
    v.extend_from_slice(author);
    v.extend_from_slice(body);
    v
}

/// The row `v`'s header with a new body.
fn row_value_from(v: &[u8], body: &[u8]) -> Vec<u8> {
    let mut out = v[..HEADER_LEN].to_vec();
    out.extend_from_slice(body);
    out
}

fn packed_body(loc: Location) -> [u8; 1 + LOCATION_LEN] {
    let mut b = [PACKED; 1 + LOCATION_LEN];
    b[1..].copy_from_slice(&loc.encode());
    b
}

fn archived_body(root: &Cid, at: Range) -> Vec<u8> {
    let mut b = Vec::with_capacity(ARCHIVED_HEAD + 40);
    b.push(ARCHIVED);
    b.extend_from_slice(&at.offset.to_be_bytes());
    b.extend_from_slice(&at.len.to_be_bytes());
    b.extend_from_slice(&root.to_bytes());
    b
}

/// Where a row's encoding is when the row does not hold it.
enum Outside {
    Packs(Location),
    Archive(Cid, Range),
}

/// The row's [`Outside`], for a row with its author then a [`PACKED`] or [`ARCHIVED`] marker.
fn outside(v: &[u8]) -> Result<Option<Outside>, Error> {
    if !matches!(v.get(OLD_HEADER_LEN), Some(2 | 3)) {
        return Ok(None);
    }
    let corrupt = || Error::Corrupt(format!("row of {} bytes", v.len()));
    match v.get(HEADER_LEN) {
        Some(&PACKED) => {
            Ok(Some(Outside::Packs(Location::decode(&v[HEADER_LEN + 1..]).ok_or_else(corrupt)?)))
        }
        Some(&ARCHIVED) => {
            let body = v.get(HEADER_LEN + ARCHIVED_HEAD..).ok_or_else(corrupt)?;
            let at = &v[HEADER_LEN + 1..];
            let offset = u64::from_be_bytes(at[..8].try_into().expect("8 bytes"));
            let len = u32::from_be_bytes(at[8..12].try_into().expect("4 bytes"));
            let root = Cid::try_from(body).map_err(|_| corrupt())?;
            Ok(Some(Outside::Archive(root, Range { offset, len })))
        }
        _ => Ok(None),
    }
}

/// True for a row that does not hold its encoding.
fn is_packed(v: &[u8]) -> bool {
    matches!(v.get(OLD_HEADER_LEN), Some(2 | 3)) && matches!(v.get(HEADER_LEN), Some(&PACKED | &ARCHIVED))
}

/// Where encodings outside the rows are read from.
#[derive(Clone, Default)]
struct Places {
    packs: Option<Arc<Packs>>,
    archives: Option<BlockStore>,
}

impl Places {
    fn read(&self, at: Outside) -> Result<Vec<u8>, Error> {
        match at {
            Outside::Packs(loc) => {
                let packs = self
                    .packs
                    .as_ref()
                    .ok_or_else(|| Error::Corrupt("a packed row, and no pack files".into()))?;
                Ok(packs.read(loc)?)
            }
            Outside::Archive(root, at) => {
                let blocks = self.archives.as_ref().ok_or_else(|| Error::NoArchives(root.to_string()))?;
                Ok(files::read_range(blocks, root, at.offset, at.len as usize).map_err(Box::new)?)
            }
        }
    }
}

fn parse_row(places: &Places, k: &[u8], v: Value) -> Result<StoredMessage, Error> {
    let ts = key_timestamp(k)?;
    if v.len() < OLD_HEADER_LEN {
        return Err(Error::Corrupt(format!("value of {} bytes", v.len())));
    }
    let hash: [u8; 32] = k[PUBLIC_KEY_LEN + 8..].try_into().expect("32 bytes");
    let topic = Topic(v[..4].try_into().expect("4 bytes"));
    let weight = u32::from_be_bytes(v[4..8].try_into().expect("4 bytes"));
    // A compressed key starts with 2 or 3; a protobuf field tag never does.
    let author = match v.get(OLD_HEADER_LEN) {
        Some(2 | 3) if v.len() >= HEADER_LEN => {
            Some(MemberKey::from_bytes(v[OLD_HEADER_LEN..HEADER_LEN].try_into().expect("33 bytes")))
        }
        _ => None,
    };
    let packed = match outside(&v)? {
        Some(at) => Some(places.read(at)?),
        None => None,
    };
    Ok(StoredMessage { timestamp: ts, hash, topic, weight, author, value: v, packed })
}

impl MessageStore {
    /// Opens the store in `db`, its pack files in it, and migrates a schema 1 database.
    pub fn open(db: &Db) -> Result<Self, Error> {
        let store = Self::open_unmigrated(db)?;
        if db.schema_version()? < db::SCHEMA_VERSION {
            let m = store.migrate(None)?;
            tracing::info!(moved = m.moved, skipped = m.skipped, "message store migrated to schema 2");
        }
        Ok(store)
    }

    fn open_unmigrated(db: &Db) -> Result<Self, Error> {
        let packs = match db.side_dir(PACKS_DIR) {
            Some(dir) => Some(Arc::new(Packs::open(dir, SEGMENT_BYTES)?)),
            None => None,
        };
        Ok(Self {
            db: db.clone(),
            tree: db.tree(TreeName::Messages)?,
            bytes: db.tree(TreeName::MessageBytes)?,
            quota: None,
            counting: Default::default(),
            places: Places { packs, archives: None },
            moving: Default::default(),
        })
    }

    /// Moves inline encodings over [`INLINE_MAX`] into the pack files, a synced batch at a time,
    /// then records schema 2. `stop_after` batches (tests) stops early, as a crash would.
    fn migrate(&self, stop_after: Option<usize>) -> Result<Migration, Error> {
        let mut out = Migration::default();
        let Some(packs) = &self.places.packs else {
            self.db.set_schema_version(db::SCHEMA_VERSION)?;
            return Ok(Migration { finished: true, ..out });
        };
        let mut pending: Vec<(Vec<u8>, StoredMessage, MemberKey)> = Vec::new();
        let mut pending_bytes = 0usize;
        let mut batches = 0usize;
        let mut rows = self.tree.range(&[], None);
        loop {
            let row = rows.next().transpose()?;
            // A packed row (a migration resumed) is not read back from the packs.
            if let Some((k, v)) = row.as_ref().filter(|(_, v)| !is_packed(v)) {
                match parse_row(&self.places, k, v.clone()) {
                    Ok(sm) if sm.packed.is_none() && sm.encoded().len() > INLINE_MAX => match sm.author() {
                        Ok(author) => {
                            pending_bytes += sm.encoded().len();
                            pending.push((k.to_vec(), sm, author));
                        }
                        Err(_) => out.skipped += 1,
                    },
                    Ok(_) => {}
                    Err(_) => out.skipped += 1,
                }
            }
            let full = pending.len() >= MIGRATE_BATCH || pending_bytes >= MIGRATE_BATCH_BYTES;
            if !pending.is_empty() && (full || row.is_none()) {
                if stop_after == Some(batches) {
                    return Ok(out);
                }
                let records: Vec<(&[u8], &[u8])> =
                    pending.iter().map(|(_, sm, _)| (&sm.hash[..], sm.encoded())).collect();
                let locs = packs.append(&records)?;
                let mut batch = Batch::default();
                for ((k, sm, author), loc) in pending.iter().zip(locs) {
                    batch.insert(
                        k.clone(),
                        row_value(&sm.topic, sm.weight, author.as_bytes(), &packed_body(loc)),
                    );
                }
                self.tree.apply(batch)?;
                // Durable batch by batch: a migration killed again and again still progresses.
                self.db.flush()?;
                out.moved += pending.len() as u64;
                batches += 1;
                pending.clear();
                pending_bytes = 0;
            }
            if row.is_none() {
                break;
            }
        }
        self.db.set_schema_version(db::SCHEMA_VERSION)?;
        out.finished = true;
        Ok(out)
    }

    /// The same store, keeping the large messages of plain archives in `blocks`, where the
    /// archives are (see the module's docs).
    pub fn with_archives(mut self, blocks: BlockStore) -> Self {
        self.places.archives = Some(blocks);
        self
    }

    /// Parses a row. A pack segment compacted away between reading the row and reading its
    /// encoding is not an error: the row, read again, points at the new place.
    fn read_row(&self, k: &[u8], v: Value) -> Result<StoredMessage, Error> {
        match parse_row(&self.places, k, v) {
            Err(Error::Packs(packs::Error::Io(e))) if e.kind() == std::io::ErrorKind::NotFound => {
                let v = self.tree.get(k)?.ok_or_else(|| Error::Corrupt("a row vanished".into()))?;
                parse_row(&self.places, k, v)
            }
            other => other,
        }
    }

    /// The same store with a per-community quota of `bytes` (None: no limit).
    pub fn with_quota(mut self, bytes: Option<u64>) -> Self {
        self.quota = bytes;
        self
    }

    /// Bytes stored for a community (keys and values), as counted at each insert.
    pub fn used_bytes(&self, community: &CommunityId) -> Result<u64, Error> {
        Ok(self
            .bytes
            .get(community.as_bytes())?
            .and_then(|v| <[u8; 8]>::try_from(&v[..]).ok())
            .map_or(0, u64::from_be_bytes))
    }

    /// Inserts verified messages of one community in one atomic batch, skipping those already
    /// stored (and repeats inside the batch). Refuses the whole batch when it would take the
    /// community over its quota.
    ///
    /// Encodings over [`INLINE_MAX`] are appended to the pack files with one sync for the batch
    /// before the rows are written (a crash leaves unreferenced pack bytes, never a dangling row).
    /// The quota counts every message at its full size, wherever it is kept.
    pub fn insert(&self, community: &CommunityId, msgs: &[VerifiedMessage]) -> Result<InsertOutcome, Error> {
        self.insert_rows(community, msgs, None)
    }

    /// Inserts verified messages decoded from the plain archive file under `root`, stored and
    /// pinned in the block store given to [`Self::with_archives`]; `at[i]` is where message
    /// `i`'s encoding lies in it. The large ones are not copied: their rows point there. As
    /// [`Self::insert`] otherwise (without a block store, exactly as it).
    pub fn insert_archived(
        &self,
        community: &CommunityId,
        msgs: &[VerifiedMessage],
        root: &Cid,
        at: &[Range],
    ) -> Result<InsertOutcome, Error> {
        if at.len() != msgs.len() {
            return Err(Error::Corrupt(format!("{} messages and {} ranges", msgs.len(), at.len())));
        }
        self.insert_rows(community, msgs, Some((root, at)))
    }

    fn insert_rows(
        &self,
        community: &CommunityId,
        msgs: &[VerifiedMessage],
        archive: Option<(&Cid, &[Range])>,
    ) -> Result<InsertOutcome, Error> {
        let mut batch = Batch::default();
        // (key, message, encoding) of the messages whose encodings go to the packs.
        let mut large: Vec<([u8; KEY_LEN], &VerifiedMessage, Vec<u8>)> = Vec::new();
        let mut seen = std::collections::HashSet::with_capacity(msgs.len());
        let mut out = InsertOutcome::default();
        let mut added = 0u64;
        let archive = archive.filter(|_| self.places.archives.is_some());
        for (i, vm) in msgs.iter().enumerate() {
            let m = vm.message();
            let k = key(community, m.timestamp, &m.hash);
            if !seen.insert(k) || self.tree.contains_key(&k)? {
                out.duplicates += 1;
                continue;
            }
            out.inserted += 1;
            let (weight, author) = (m.weight() as u32, vm.author());
            match archive.map(|(root, at)| (root, at[i])) {
                Some((root, at)) if at.len as usize > INLINE_MAX => {
                    added += (KEY_LEN + HEADER_LEN) as u64 + u64::from(at.len);
                    batch.insert(k.to_vec(), row_value(&m.topic, weight, author, &archived_body(root, at)));
                }
                _ => {
                    let enc = m.encode();
                    added += (KEY_LEN + HEADER_LEN + enc.len()) as u64;
                    if enc.len() > INLINE_MAX && self.places.packs.is_some() {
                        large.push((k, vm, enc));
                    } else {
                        batch.insert(k.to_vec(), row_value(&m.topic, weight, author, &enc));
                    }
                }
            }
        }
        if out.inserted == 0 {
            return Ok(out);
        }
        let _counting = self.counting.lock().unwrap_or_else(|p| p.into_inner());
        let used = self.used_bytes(community)?;
        if let Some(quota) = self.quota {
            if used.saturating_add(added) > quota {
                return Err(Error::Quota { community: community.to_string(), used, quota });
            }
        }
        if let (Some(packs), false) = (&self.places.packs, large.is_empty()) {
            let records: Vec<(&[u8], &[u8])> =
                large.iter().map(|(_, vm, enc)| (&vm.message().hash[..], enc.as_slice())).collect();
            for ((k, vm, _), loc) in large.iter().zip(packs.append(&records)?) {
                let m = vm.message();
                batch.insert(
                    k.to_vec(),
                    row_value(&m.topic, m.weight() as u32, vm.author(), &packed_body(loc)),
                );
            }
        }
        self.tree.apply(batch)?;
        // Counted after the messages: a crash between the two undercounts one batch, which
        // only makes the quota lenient, never refuses what fits.
        self.bytes.insert(community.as_bytes(), &(used + added).to_be_bytes())?;
        Ok(out)
    }

    /// Moves rows whose encodings are in the pack files onto the plain archive file under
    /// `root` (stored and pinned in the block store given to [`Self::with_archives`]): `found`
    /// lists `(timestamp, hash, range)` of the messages the archive holds. A row moves only
    /// when the archive's bytes are exactly its encoding. Returns how many moved; the pack bytes
    /// they leave are reclaimed by [`Self::compact`].
    pub fn point_at_archive(
        &self,
        community: &CommunityId,
        root: &Cid,
        found: &[(u64, [u8; 32], Range)],
    ) -> Result<u64, Error> {
        let Some(blocks) = &self.places.archives else { return Ok(0) };
        let _moving = self.moving.lock().unwrap_or_else(|p| p.into_inner());
        let mut batch = Batch::default();
        let mut moved = 0;
        for (timestamp, hash, at) in found {
            let k = key(community, *timestamp, hash);
            let Some(v) = self.tree.get(&k)? else { continue };
            let Some(Outside::Packs(loc)) = outside(&v)? else { continue };
            if loc.len != at.len || (at.len as usize) <= INLINE_MAX {
                continue;
            }
            let ours = self.places.read(Outside::Packs(loc))?;
            let theirs = files::read_range(blocks, *root, at.offset, at.len as usize).map_err(Box::new)?;
            if ours != theirs {
                continue;
            }
            batch.insert(k.to_vec(), row_value_from(&v, &archived_body(root, *at)));
            moved += 1;
        }
        self.tree.apply(batch)?;
        Ok(moved)
    }

    /// Rewrites the pack segments mostly holding encodings no row points at (any more), the
    /// live ones copied forward (synced, rows repointed and flushed before a file goes).
    /// Blocking; it reads every row.
    pub fn compact(&self) -> Result<Compacted, Error> {
        let Some(packs) = &self.places.packs else { return Ok(Compacted::default()) };
        let _moving = self.moving.lock().unwrap_or_else(|p| p.into_inner());
        let live = self.packed_bytes_by_segment()?;
        let active = packs.active_id()?;
        let active_len = packs.segment_len(active)?;
        let active_live = live.get(&active).copied().unwrap_or(0);
        if active_len >= ROLL_AT_BYTES && (active_live as f64) < COMPACT_BELOW_LIVE * active_len as f64 {
            packs.roll()?;
        }
        let segments = packs.compactable(&live, COMPACT_BELOW_LIVE)?;
        let mut out = Compacted::default();
        if segments.is_empty() {
            return Ok(out);
        }
        let mut records: std::collections::HashMap<u32, Vec<(Vec<u8>, Location)>> = Default::default();
        for row in self.tree.range(&[], None) {
            let (k, v) = row?;
            if let Ok(Some(Outside::Packs(loc))) = outside(&v) {
                if segments.iter().any(|(s, _)| *s == loc.segment) {
                    records.entry(loc.segment).or_default().push((k.to_vec(), loc));
                }
            }
        }
        for (segment, file_len) in segments {
            let records = records.remove(&segment).unwrap_or_default();
            for group in packs::batches(&records, COMPACT_BATCH_BYTES) {
                let mut batch = Batch::default();
                for ((k, _), loc) in group.iter().zip(packs.copy(group)?) {
                    if let Some(v) = self.tree.get(k)? {
                        batch.insert(k.clone(), row_value_from(&v, &packed_body(loc)));
                    }
                }
                self.tree.apply(batch)?;
            }
            // The rows must be durable before the old bytes disappear.
            self.db.flush()?;
            packs.remove_segment(segment)?;
            let kept: u64 = records.iter().map(|(_, l)| u64::from(l.len)).sum();
            out.segments += 1;
            out.reclaimed_bytes += file_len.saturating_sub(kept);
        }
        Ok(out)
    }

    /// Bytes of encodings rows point at, by pack segment.
    fn packed_bytes_by_segment(&self) -> Result<std::collections::HashMap<u32, u64>, Error> {
        let mut live = std::collections::HashMap::new();
        for row in self.tree.range(&[], None) {
            let (_, v) = row?;
            if let Ok(Some(Outside::Packs(loc))) = outside(&v) {
                *live.entry(loc.segment).or_default() += u64::from(loc.len);
            }
        }
        Ok(live)
    }

    /// True when the message with this hash and timestamp is stored.
    pub fn contains(&self, community: &CommunityId, timestamp: u64, hash: &[u8; 32]) -> Result<bool, Error> {
        Ok(self.tree.contains_key(&key(community, timestamp, hash))?)
    }

    /// Streams the community's messages with `from <= timestamp < to`, ordered by (timestamp, hash).
    pub fn scan(
        &self,
        community: &CommunityId,
        from: u64,
        to: u64,
    ) -> impl Iterator<Item = Result<StoredMessage, Error>> + use<> {
        let start = time_key(community, from);
        let end = time_key(community, to);
        let it = if from < to { Some(self.tree.range(&start, Some(&end))) } else { None };
        let store = self.clone();
        it.into_iter().flatten().map(move |r| {
            let (k, v) = r?;
            store.read_row(&k, v)
        })
    }

    /// One page of messages matching `q`, oldest first.
    pub fn query(&self, community: &CommunityId, q: &Query) -> Result<Page, Error> {
        let limit = match q.limit {
            Some(l) if l > 0 => l.min(MAX_QUERY_LIMIT),
            _ => MAX_QUERY_LIMIT,
        };
        let mut start = time_key(community, q.from.unwrap_or(0));
        if let Some(c) = &q.cursor {
            let raw = hex::decode(c).map_err(|_| Error::Cursor)?;
            if raw.len() != 40 {
                return Err(Error::Cursor);
            }
            // Strictly after the cursor's key: append a zero byte.
            let mut after = community.as_bytes().to_vec();
            after.extend_from_slice(&raw);
            after.push(0);
            if after > start {
                start = after;
            }
        }
        let end = match q.to {
            Some(t) => time_key(community, t),
            None => db::prefix_end(community.as_bytes()).expect("community key is not all 0xff"),
        };
        let mut page = Page::default();
        if start >= end {
            return Ok(page);
        }
        let mut last_key = None;
        let mut bytes = 0usize;
        for row in self.tree.range(&start, Some(&end)) {
            let (k, v) = row?;
            let sm = self.read_row(&k, v)?;
            if !q.topics.is_empty() && !q.topics.contains(&sm.topic) {
                continue;
            }
            if page.messages.len() == limit || bytes >= MAX_QUERY_BYTES {
                page.cursor = last_key.map(|k: Vec<u8>| hex::encode(&k[PUBLIC_KEY_LEN..]));
                break;
            }
            bytes += sm.encoded().len();
            page.authors.push(sm.author()?);
            page.messages.push(sm.decode()?);
            last_key = Some(k);
        }
        Ok(page)
    }

    /// Number of messages stored for the community.
    pub fn count(&self, community: &CommunityId) -> Result<u64, Error> {
        let mut n = 0;
        for row in self.tree.scan_prefix(community.as_bytes()) {
            row?;
            n += 1;
        }
        Ok(n)
    }

    /// Number of messages stored for the community with a timestamp in `[from, to)`.
    pub fn count_range(&self, community: &CommunityId, from: u64, to: u64) -> Result<u64, Error> {
        if from >= to {
            return Ok(0);
        }
        let mut n = 0;
        for row in self.tree.range(&time_key(community, from), Some(&time_key(community, to))) {
            row?;
            n += 1;
        }
        Ok(n)
    }

    /// Oldest and newest timestamp stored for the community.
    pub fn time_bounds(&self, community: &CommunityId) -> Result<Option<(u64, u64)>, Error> {
        let mut it = self.tree.scan_prefix(community.as_bytes());
        let first = match it.next() {
            None => return Ok(None),
            Some(r) => r?,
        };
        let last = match it.next_back() {
            None => first.clone(),
            Some(r) => r?,
        };
        Ok(Some((key_timestamp(&first.0)?, key_timestamp(&last.0)?)))
    }

    /// Makes every insert so far durable. Blocking.
    pub fn flush(&self) -> Result<(), Error> {
        Ok(self.db.flush()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::KeyPair;
    use crate::db::Db;

    fn setup() -> (MessageStore, CommunityId, KeyPair) {
        let store = MessageStore::open(&Db::memory()).unwrap();
        let c: CommunityId = KeyPair::generate().public_hex().parse().unwrap();
        (store, c, KeyPair::generate())
    }

    fn msg(c: &CommunityId, a: &KeyPair, topic: &str, ts: u64, p: &str) -> VerifiedMessage {
        Message::new_signed(a, c, Topic::from_name(topic), ts, p.as_bytes().to_vec()).verify(c).unwrap()
    }

    #[test]
    fn insert_dedups_within_and_across_batches() {
        let (s, c, a) = setup();
        let m1 = msg(&c, &a, "t", 10, "one");
        let m2 = msg(&c, &a, "t", 11, "two");
        let out = s.insert(&c, &[m1.clone(), m1.clone(), m2]).unwrap();
        assert_eq!(out, InsertOutcome { inserted: 2, duplicates: 1 });
        let out = s.insert(&c, &[m1]).unwrap();
        assert_eq!(out, InsertOutcome { inserted: 0, duplicates: 1 });
        assert_eq!(s.count(&c).unwrap(), 2);
    }

    #[test]
    fn query_by_time_topic_and_cursor() {
        let (s, c, a) = setup();
        let other: CommunityId = KeyPair::generate().public_hex().parse().unwrap();
        let mut all = Vec::new();
        for ts in 0..20u64 {
            let topic = if ts % 2 == 0 { "even" } else { "odd" };
            all.push(msg(&c, &a, topic, 100 + ts, &format!("m{ts}")));
        }
        s.insert(&c, &all).unwrap();
        s.insert(&other, &[msg(&other, &a, "even", 105, "elsewhere")]).unwrap();

        let q = Query { from: Some(104), to: Some(110), ..Default::default() };
        let page = s.query(&c, &q).unwrap();
        let ts: Vec<_> = page.messages.iter().map(|m| m.timestamp).collect();
        assert_eq!(ts, vec![104, 105, 106, 107, 108, 109]);
        assert!(page.cursor.is_none());

        let q = Query { topics: vec![Topic::from_name("odd")], ..Default::default() };
        let page = s.query(&c, &q).unwrap();
        assert_eq!(page.messages.len(), 10);
        assert!(page.messages.iter().all(|m| m.timestamp % 2 == 1));

        // Pages of 7 walk every message exactly once.
        let mut seen = Vec::new();
        let mut q = Query { limit: Some(7), ..Default::default() };
        loop {
            let page = s.query(&c, &q).unwrap();
            seen.extend(page.messages.iter().map(|m| m.timestamp));
            match page.cursor {
                Some(cur) => q.cursor = Some(cur),
                None => break,
            }
        }
        assert_eq!(seen, (100..120).collect::<Vec<_>>());
        assert_eq!(s.time_bounds(&c).unwrap(), Some((100, 119)));
        assert_eq!(s.count(&other).unwrap(), 1);
        assert!(matches!(
            s.query(&c, &Query { cursor: Some("zz".into()), ..Default::default() }),
            Err(Error::Cursor)
        ));
    }

    #[test]
    fn scan_is_ordered_and_bounded() {
        let (s, c, a) = setup();
        let msgs: Vec<_> = [5u64, 3, 9, 3, 7]
            .iter()
            .enumerate()
            .map(|(i, ts)| msg(&c, &a, "t", *ts, &format!("{i}")))
            .collect();
        s.insert(&c, &msgs).unwrap();
        let got: Vec<_> = s.scan(&c, 3, 9).map(|r| r.unwrap()).collect();
        let keys: Vec<_> = got.iter().map(|m| (m.timestamp, m.hash)).collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted);
        assert_eq!(got.len(), 4);
        assert_eq!(got[0].decode().unwrap().timestamp, 3);
        assert_eq!(s.scan(&c, 9, 3).count(), 0);
    }

    #[test]
    fn rows_name_their_author_old_rows_too() {
        let (s, c, a) = setup();
        let m = msg(&c, &a, "t", 10, "new row");
        s.insert(&c, std::slice::from_ref(&m)).unwrap();
        let old = Message::new_signed(&a, &c, Topic::from_name("t"), 11, b"old row".to_vec());
        let mut v = Vec::new();
        v.extend_from_slice(&old.topic.0);
        v.extend_from_slice(&(old.weight() as u32).to_be_bytes());
        v.extend_from_slice(&old.encode());
        s.tree.insert(&key(&c, 11, &old.hash), &v).unwrap();
        let rows: Vec<_> = s.scan(&c, 0, 100).map(|r| r.unwrap()).collect();
        assert_eq!(rows.len(), 2);
        for r in &rows {
            assert_eq!(r.author().unwrap(), MemberKey::from_bytes(a.public()));
        }
        assert_eq!(rows[1].decode().unwrap(), old, "an old row still decodes");
        assert_eq!(rows[0].decode().unwrap(), m.into_message());
    }

    #[test]
    fn a_community_over_its_quota_stores_nothing_more() {
        let (s, c, a) = setup();
        let s = s.with_quota(Some(400));
        s.insert(&c, &[msg(&c, &a, "t", 1, "small")]).unwrap();
        let used = s.used_bytes(&c).unwrap();
        assert!(used > 0 && used < 400);
        let big = msg(&c, &a, "t", 2, &"x".repeat(400));
        assert!(matches!(s.insert(&c, &[big]), Err(Error::Quota { .. })));
        assert_eq!(s.count(&c).unwrap(), 1, "nothing of the refused batch is stored");
        let other: CommunityId = KeyPair::generate().public_hex().parse().unwrap();
        assert!(s.insert(&other, &[msg(&other, &a, "t", 1, "small")]).is_ok(), "per community");
    }

    #[test]
    fn reopen_keeps_everything() {
        let dir = tempfile::tempdir().unwrap();
        let c: CommunityId = KeyPair::generate().public_hex().parse().unwrap();
        let a = KeyPair::generate();
        let m = msg(&c, &a, "t", 42, "durable");
        {
            let s = MessageStore::open(&Db::open(dir.path()).unwrap()).unwrap();
            s.insert(&c, std::slice::from_ref(&m)).unwrap();
            s.flush().unwrap();
        }
        let s = MessageStore::open(&Db::open(dir.path()).unwrap()).unwrap();
        let page = s.query(&c, &Query::default()).unwrap();
        assert_eq!(page.messages, vec![m.into_message()]);
    }

    fn large(c: &CommunityId, a: &KeyPair, ts: u64, len: usize) -> VerifiedMessage {
        let payload: Vec<u8> = (0..len).map(|i| (i as u64 * 31 + ts) as u8).collect();
        Message::new_signed(a, c, Topic::from_name("t"), ts, payload).verify(c).unwrap()
    }

    /// Every row's value length, in key order.
    fn row_lens(db: &Db) -> Vec<usize> {
        db.tree(TreeName::Messages).unwrap().range(&[], None).map(|r| r.unwrap().1.len()).collect()
    }

    fn all(s: &MessageStore, c: &CommunityId) -> Vec<Message> {
        s.query(c, &Query::default()).unwrap().messages
    }

    #[test]
    fn large_encodings_live_in_the_packs_and_read_back_after_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let c: CommunityId = KeyPair::generate().public_hex().parse().unwrap();
        let a = KeyPair::generate();
        let msgs =
            vec![msg(&c, &a, "t", 1, "small"), large(&c, &a, 2, 300 * 1024), large(&c, &a, 3, INLINE_MAX)];
        let want: Vec<Message> = msgs.iter().map(|m| m.clone().into_message()).collect();
        {
            let db = Db::open(&dir.path().join("db")).unwrap();
            let s = MessageStore::open(&db).unwrap();
            assert_eq!(s.insert(&c, &msgs).unwrap().inserted, 3);
            assert_eq!(s.insert(&c, &msgs).unwrap().duplicates, 3, "a packed message is a duplicate too");
            assert_eq!(all(&s, &c), want);
            let lens = row_lens(&db);
            assert_eq!(lens[1], HEADER_LEN + 1 + LOCATION_LEN, "the 300 KiB message is a location in sled");
            assert!(lens[0] < INLINE_MAX && lens[2] < 2 * INLINE_MAX, "short ones stay inline: {lens:?}");
            let used = s.used_bytes(&c).unwrap();
            assert!(used > 300 * 1024, "the quota counts packed bytes: {used}");
            s.flush().unwrap();
        }
        let s = MessageStore::open(&Db::open(&dir.path().join("db")).unwrap()).unwrap();
        assert_eq!(all(&s, &c), want);
        let scanned: Vec<Vec<u8>> = s.scan(&c, 0, 10).map(|m| m.unwrap().encoded().to_vec()).collect();
        assert_eq!(
            scanned,
            want.iter().map(|m| m.encode()).collect::<Vec<_>>(),
            "the builder reads the same bytes"
        );
    }

    /// A schema 1 database (every encoding inline) with `n` large messages and one small one.
    fn schema1(path: &std::path::Path, c: &CommunityId, a: &KeyPair, n: u64) -> Vec<Message> {
        let db = Db::open(path).unwrap();
        let inline =
            MessageStore { places: Places::default(), ..MessageStore::open_unmigrated(&db).unwrap() };
        let mut msgs: Vec<VerifiedMessage> =
            (0..n).map(|i| large(c, a, 100 + i, 2000 + i as usize)).collect();
        msgs.push(msg(c, a, "t", 1, "small"));
        inline.insert(c, &msgs).unwrap();
        db.set_schema_version(1).unwrap();
        assert!(row_lens(&db).iter().filter(|l| **l > 2000).count() as u64 == n);
        let mut want: Vec<Message> = msgs.into_iter().map(|m| m.into_message()).collect();
        want.sort_by_key(|m| (m.timestamp, m.hash));
        want
    }

    #[test]
    fn a_schema_1_database_migrates_on_open_and_a_crash_midway_loses_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let c: CommunityId = KeyPair::generate().public_hex().parse().unwrap();
        let a = KeyPair::generate();
        let n = 2 * MIGRATE_BATCH as u64 + 10;
        let want = schema1(&path, &c, &a, n);
        {
            // Stopped after one synced batch, as kill -9 would leave it.
            let db = Db::open(&path).unwrap();
            let s = MessageStore::open_unmigrated(&db).unwrap();
            let m = s.migrate(Some(1)).unwrap();
            assert_eq!(m, Migration { moved: MIGRATE_BATCH as u64, skipped: 0, finished: false });
            assert_eq!(db.schema_version().unwrap(), 1);
            assert_eq!(all(&s, &c), want, "half-migrated rows all read back");
        }
        let db = Db::open(&path).unwrap();
        let s = MessageStore::open(&db).unwrap();
        assert_eq!(db.schema_version().unwrap(), db::SCHEMA_VERSION);
        assert_eq!(all(&s, &c), want);
        let packed = row_lens(&db).iter().filter(|l| **l == HEADER_LEN + 1 + LOCATION_LEN).count() as u64;
        assert_eq!(packed, n, "every large encoding left sled");
    }

    /// A plain archive of `msgs` stored in `blocks` in small blocks; its root and where each
    /// message lies in it.
    fn archive_of(blocks: &BlockStore, msgs: &[VerifiedMessage]) -> (Cid, Vec<Range>) {
        use crate::archive::{format::ArchiveWriter, reader, Metadata};
        let mut w = ArchiveWriter::new(&Metadata { from: 0, to: 1000, topics: vec![Topic::from_name("t")] });
        for m in msgs {
            w.push_encoded(&m.message().encode());
        }
        let bytes = w.finish();
        let layout = crate::blocks::unixfs::Layout { chunk_size: 1000, max_links: 4 };
        let root = files::add(blocks, &mut &bytes[..], layout).unwrap().root;
        let at = reader::Messages::new(&bytes[..], msgs.len()).spanned().map(|r| r.unwrap().1).collect();
        (root, at)
    }

    fn pack_bytes(dir: &std::path::Path) -> u64 {
        std::fs::read_dir(dir.join(PACKS_DIR)).unwrap().map(|e| e.unwrap().metadata().unwrap().len()).sum()
    }

    #[test]
    fn large_messages_of_an_archive_are_read_from_it_not_copied() {
        let dir = tempfile::tempdir().unwrap();
        let c: CommunityId = KeyPair::generate().public_hex().parse().unwrap();
        let a = KeyPair::generate();
        let msgs = vec![msg(&c, &a, "t", 1, "small"), large(&c, &a, 2, 5000), large(&c, &a, 3, 2500)];
        let want: Vec<Message> = msgs.iter().map(|m| m.clone().into_message()).collect();
        let blocks = BlockStore::memory(Default::default());
        let (root, at) = archive_of(&blocks, &msgs);
        {
            let db = Db::open(dir.path()).unwrap();
            let s = MessageStore::open(&db).unwrap().with_archives(blocks.clone());
            assert!(s.insert_archived(&c, &msgs, &root, &at[..2]).is_err(), "a range for each message");
            assert_eq!(s.insert_archived(&c, &msgs, &root, &at).unwrap().inserted, 3);
            assert_eq!(all(&s, &c), want);
            let lens = row_lens(&db);
            let archived = HEADER_LEN + ARCHIVED_HEAD + root.to_bytes().len();
            assert_eq!(&lens[1..], &[archived, archived], "the large ones point into the archive");
            assert_eq!(pack_bytes(dir.path()), 0, "nothing was copied");
            s.flush().unwrap();
        }
        let db = Db::open(dir.path()).unwrap();
        let s = MessageStore::open(&db).unwrap().with_archives(blocks);
        assert_eq!(all(&s, &c), want, "after a reopen too");
        let scanned: Vec<Vec<u8>> = s.scan(&c, 0, 10).map(|m| m.unwrap().encoded().to_vec()).collect();
        assert_eq!(scanned, want.iter().map(|m| m.encode()).collect::<Vec<_>>());
        let alone = MessageStore::open(&db).unwrap();
        assert!(matches!(alone.query(&c, &Query::default()), Err(Error::NoArchives(_))));
    }

    #[test]
    fn rows_moved_onto_their_archive_leave_pack_files_to_compact() {
        let dir = tempfile::tempdir().unwrap();
        let c: CommunityId = KeyPair::generate().public_hex().parse().unwrap();
        let a = KeyPair::generate();
        let msgs: Vec<_> = (0..40u64).map(|i| large(&c, &a, 10 + i, 3000 + i as usize)).collect();
        let want: Vec<Message> = msgs.iter().map(|m| m.clone().into_message()).collect();
        let blocks = BlockStore::memory(Default::default());
        let db = Db::open(dir.path()).unwrap();
        let s = MessageStore::open(&db).unwrap().with_archives(blocks.clone());
        s.insert(&c, &msgs).unwrap();
        let copies = pack_bytes(dir.path());
        assert!(copies > 40 * 3000, "the encodings are in the packs: {copies}");
        let (root, at) = archive_of(&blocks, &msgs[..30]);
        let found: Vec<_> =
            msgs.iter().zip(&at).map(|(m, at)| (m.message().timestamp, m.message().hash, *at)).collect();
        // A range that is not the row's bytes moves nothing.
        let wrong = vec![(found[0].0, found[0].1, at[1])];
        assert_eq!(s.point_at_archive(&c, &root, &wrong).unwrap(), 0);
        assert_eq!(s.point_at_archive(&c, &root, &found).unwrap(), 30);
        assert_eq!(s.point_at_archive(&c, &root, &found).unwrap(), 0, "moved once");
        assert_eq!(all(&s, &c), want);
        // The active segment is small here: closed explicitly, as a long one would be.
        s.places.packs.as_ref().unwrap().roll().unwrap();
        let done = s.compact().unwrap();
        assert_eq!(done.segments, 1, "{done:?}");
        let left = pack_bytes(dir.path());
        assert!(left < copies / 2, "the 30 moved copies are gone: {left} of {copies}");
        assert_eq!(all(&s, &c), want, "the 10 others were copied forward");
        drop((s, db));
        let s = MessageStore::open(&Db::open(dir.path()).unwrap()).unwrap().with_archives(blocks);
        assert_eq!(all(&s, &c), want, "after a reopen too");
    }

    #[test]
    fn a_page_stops_at_its_byte_cap() {
        let (s, c, a) = setup();
        let msgs: Vec<_> = (0..5u64).map(|ts| large(&c, &a, ts, MAX_QUERY_BYTES / 3)).collect();
        s.insert(&c, &msgs).unwrap();
        let first = s.query(&c, &Query::default()).unwrap();
        assert_eq!(first.messages.len(), 3, "the third message takes the page past the cap");
        let q = Query { cursor: first.cursor, ..Default::default() };
        let rest = s.query(&c, &q).unwrap();
        assert_eq!(rest.messages.len(), 2);
        assert!(rest.cursor.is_none());
    }
}
