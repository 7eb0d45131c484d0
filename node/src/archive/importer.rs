//! Importing a downloaded archive: open (decrypt), decode, verify every message, store in
//! batches. Idempotent: a message already stored counts as a duplicate, so an import repeated
//! after a crash changes nothing.

use std::num::NonZeroU64;
use std::time::{Duration, Instant};

use super::format::{Archive, Error as FormatError, Metadata};
use super::reader;
use crate::blocks::cid::Cid;
use crate::blocks::files;
use crate::blocks::files::Range;
use crate::blocks::store::BlockStore;
use crate::community::{CommunityId, MemberKey};
use crate::membership::{rule, Description};
use crate::message::{self, Message, VerifiedMessage};
use crate::message_store::{InsertOutcome, MessageStore};
use crate::seal::{self, KeyRing};

/// Messages stored per atomic batch.
pub const BATCH: usize = 2_000;
/// The largest archive file an import reads (a sealed one, into memory). Builders cap an archive at 30 MB
/// of payloads and signatures ([`super::partition::CHUNK_CAP_BYTES`]); each message's hash,
/// topic, timestamp and framing come on top (under 2x for the smallest messages), and sealing
/// adds a few bytes. A bigger file is skipped as undecodable rather than allocated.
pub const MAX_ARCHIVE_FILE_BYTES: usize = 4 * super::partition::CHUNK_CAP_BYTES;
/// A batch also closes once its messages' payloads reach this many bytes, so that a batch of
/// large messages holds a few MiB, not the whole archive.
pub const BATCH_BYTES: usize = 4 * 1024 * 1024;

/// The importer gives freed heap pages back ([`crate::malloc::trim`]) once its stored batches
/// held this many payload bytes: after every batch of large messages, after a few of small ones.
const TRIM_EVERY_BYTES: usize = BATCH_BYTES;

/// Threads that verify signatures during an import: every core.
pub fn threads() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
}

/// The longest a paced import sleeps before it looks whether it should stop.
const PACE_SLICE: Duration = Duration::from_millis(100);

/// How an import runs.
#[derive(Clone, Copy, Debug)]
pub struct Options<'a> {
    /// Threads that verify signatures.
    pub threads: usize,
    /// At most this many messages per second (for slow devices); `None` runs at storage speed.
    pub rate: Option<NonZeroU64>,
    /// Stops the import between batches when cancelled (a shutdown).
    pub stop: Option<&'a tokio_util::sync::CancellationToken>,
}

impl Default for Options<'_> {
    fn default() -> Self {
        Self { threads: threads(), rate: None, stop: None }
    }
}

/// How long to wait before storing more, so that `done` messages take at least
/// `done / rate` seconds since the start.
pub fn pace(done: u64, rate: NonZeroU64, elapsed: Duration) -> Duration {
    Duration::from_secs_f64(done as f64 / rate.get() as f64).saturating_sub(elapsed)
}

/// What an import did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Imported {
    pub imported: usize,
    pub duplicates: usize,
    /// Messages whose hash or signature did not verify (a control node cannot fabricate them),
    /// outside the archive's window, or whose author may not write at their time.
    pub rejected: usize,
}

/// Errors of an import.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Seal(#[from] seal::Error),
    /// The archive does not decode: its builder made it so.
    #[error(transparent)]
    Format(super::format::Error),
    /// Its bytes could not be read from the block store.
    #[error("reading the archive: {0}")]
    Read(#[source] std::io::Error),
    #[error(transparent)]
    Files(files::Error),
    #[error(transparent)]
    Store(#[from] crate::message_store::Error),
    #[error("import stopped (shutting down); it resumes at the next start")]
    Stopped,
}

impl From<FormatError> for Error {
    fn from(e: FormatError) -> Self {
        match e {
            // Past the size cap: as undecodable as a malformed file.
            FormatError::Read(e)
                if matches!(files::Error::from_io(&e), Some(files::Error::TooLarge { .. })) =>
            {
                Error::Format(FormatError::Decode(e.to_string()))
            }
            FormatError::Read(e) => Error::Read(e),
            other => Error::Format(other),
        }
    }
}

impl From<files::Error> for Error {
    fn from(e: files::Error) -> Self {
        match e {
            files::Error::TooLarge { max } => Error::Format(FormatError::Decode(format!("over {max} bytes"))),
            other => Error::Files(other),
        }
    }
}

/// One batch, verified: what to store, and how many messages were refused.
struct Verified {
    messages: Vec<VerifiedMessage>,
    /// Where each message's encoding lies in the archive file, when it is a stored plain one.
    at: Vec<Range>,
    rejected: usize,
}

/// Imports the archive file under `root` in `blocks` (blocking), read from the store a block
/// at a time: a plain archive is never in memory whole. A sealed one is read whole (at most
/// [`MAX_ARCHIVE_FILE_BYTES`]) to be opened, then imported as [`import`] does.
pub fn import_file(
    store: &MessageStore,
    community: &CommunityId,
    blocks: &BlockStore,
    root: Cid,
    keys: &KeyRing,
    options: Options,
    members: Option<&Description>,
) -> Result<Imported, Error> {
    let open = || files::reader(blocks, root, MAX_ARCHIVE_FILE_BYTES);
    let scan = reader::scan(open())?;
    if scan.sealed {
        let raw = files::cat_vec(blocks, root, MAX_ARCHIVE_FILE_BYTES)?;
        return import(store, community, raw, keys, options, members);
    }
    let metadata = scan.metadata()?;
    let messages =
        reader::Messages::new(open(), scan.total).spanned().map(|r| r.map(|(m, at)| (m, Some(at))));
    run(store, community, &metadata, messages, Some(root), options, members)
}

/// Rows moved onto an archive per write.
const POINT_BATCH: usize = 1024;

/// Points the rows of messages already stored (the control node's own) at the archive file
/// under `root` that was built from them, so that their large encodings leave the pack files
/// (blocking; [`MessageStore::compact`] then reclaims them). A sealed archive holds no plain
/// encoding: nothing moves. Returns how many rows moved.
pub fn point_rows_at(
    store: &MessageStore,
    community: &CommunityId,
    blocks: &BlockStore,
    root: Cid,
) -> Result<u64, Error> {
    let open = || files::reader(blocks, root, MAX_ARCHIVE_FILE_BYTES);
    let scan = reader::scan(open())?;
    if scan.sealed {
        return Ok(0);
    }
    let mut moved = 0;
    let mut found = Vec::with_capacity(POINT_BATCH);
    for next in reader::Messages::new(open(), scan.total).spanned() {
        match next {
            Ok((m, at)) => found.push((m.timestamp, m.hash, at)),
            // A message of our own archive that does not decode keeps its row as it is.
            Err(FormatError::Message { .. }) => {}
            Err(e) => return Err(e.into()),
        }
        if found.len() == POINT_BATCH {
            moved += store.point_at_archive(community, &root, &found)?;
            found.clear();
        }
    }
    Ok(moved + store.point_at_archive(community, &root, &found)?)
}

/// Imports one archive's bytes, sealed or plain (blocking).
pub fn import(
    store: &MessageStore,
    community: &CommunityId,
    bytes: Vec<u8>,
    keys: &KeyRing,
    options: Options,
    members: Option<&Description>,
) -> Result<Imported, Error> {
    let plain = seal::open_owned(bytes, keys)?;
    let (metadata, messages) = Archive::decode_lazy(&plain)?;
    run(store, community, &metadata, messages.map(|r| r.map(|m| (m, None))), None, options, members)
}

/// Verifies and stores `messages` of an archive with `metadata`.
///
/// Two stages overlap: while one batch is written to the store, the next one's signatures
/// are verified on `options.threads` threads. In memory: one batch in each stage.
///
/// With `members`, a message whose recovered author may not write at its time under that
/// description is rejected like a forged one. With `root` (the plain archive file in the block
/// store the messages come from, each with where it lies), large messages are not copied.
fn run(
    store: &MessageStore,
    community: &CommunityId,
    metadata: &Metadata,
    mut messages: impl Iterator<Item = Result<(Message, Option<Range>), FormatError>> + Send,
    root: Option<Cid>,
    options: Options,
    members: Option<&Description>,
) -> Result<Imported, Error> {
    // A paced import stores small batches, so that it never stalls for long.
    let batch_len = options.rate.map_or(BATCH, |r| (r.get() as usize).clamp(1, BATCH));
    let (from, to) = (metadata.from, metadata.to);
    let mut out = Imported::default();
    let started = Instant::now();
    let mut untrimmed = 0usize;
    let admitted = |m: &VerifiedMessage| {
        members.is_none_or(|d| rule::may_store(d, &MemberKey::from_bytes(*m.author()), m.message().timestamp))
    };
    std::thread::scope(|s| {
        let (tx, verified) = std::sync::mpsc::sync_channel::<Result<Verified, Error>>(1);
        s.spawn(move || {
            loop {
                let (mut inside, mut refused, mut bytes) = (Vec::new(), 0usize, 0usize);
                let mut ats = Vec::new();
                while inside.len() + refused < batch_len && bytes < BATCH_BYTES {
                    match messages.next() {
                        None => break,
                        Some(Ok((m, at))) if m.timestamp >= from && m.timestamp < to => {
                            bytes += m.payload.len();
                            inside.push(m);
                            ats.push(at);
                        }
                        // Malformed (skipped and counted; the rest are imported), or outside
                        // the archive's window: not what the index promised.
                        Some(Ok(_) | Err(FormatError::Message { .. })) => refused += 1,
                        // The bytes could not be read, or (read twice) changed: the import
                        // stops; what was stored stays, and a retry counts it as duplicates.
                        Some(Err(e)) => {
                            let _ = tx.send(Err(e.into()));
                            return;
                        }
                    }
                }
                if inside.is_empty() && refused == 0 {
                    return;
                }
                let mut v = Verified {
                    messages: Vec::with_capacity(inside.len()),
                    at: Vec::new(),
                    rejected: refused,
                };
                for (r, at) in message::verify_all(inside, community, options.threads).into_iter().zip(ats) {
                    match r {
                        Ok(m) if admitted(&m) => {
                            v.messages.push(m);
                            v.at.extend(at);
                        }
                        _ => v.rejected += 1,
                    }
                }
                if tx.send(Ok(v)).is_err() {
                    return; // the store side failed
                }
            }
        });
        for batch in verified {
            let batch = batch?;
            out.rejected += batch.rejected;
            let InsertOutcome { inserted, duplicates } = match root {
                Some(root) if batch.at.len() == batch.messages.len() => {
                    store.insert_archived(community, &batch.messages, &root, &batch.at)?
                }
                _ => store.insert(community, &batch.messages)?,
            };
            untrimmed += batch.messages.iter().map(|m| m.message().payload.len()).sum::<usize>();
            drop(batch);
            // Its messages went through memory on several threads: give the freed pages back,
            // once every few MiB (trimming takes every heap's lock: after each batch of small
            // messages it cost more than it returned).
            if untrimmed >= TRIM_EVERY_BYTES {
                crate::malloc::trim();
                untrimmed = 0;
            }
            out.imported += inserted;
            out.duplicates += duplicates;
            if let Some(rate) = options.rate {
                let done = (out.imported + out.duplicates + out.rejected) as u64;
                // Slept in short slices: a shutdown stops a paced import within a slice.
                let mut wait = pace(done, rate, started.elapsed());
                while !wait.is_zero() {
                    if options.stop.is_some_and(|s| s.is_cancelled()) {
                        return Err(Error::Stopped);
                    }
                    let slice = wait.min(PACE_SLICE);
                    std::thread::sleep(slice);
                    wait -= slice;
                }
            }
        }
        Ok::<_, Error>(())
    })?;
    store.flush()?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::format::{ArchiveWriter, Metadata};
    use crate::crypto::KeyPair;
    use crate::db::Db;
    use crate::message::{Message, Topic};

    #[test]
    fn verified_messages_are_imported_once_and_fabrications_rejected() {
        let c: CommunityId = KeyPair::generate().public_hex().parse().unwrap();
        let author = KeyPair::generate();
        let good = Message::new_signed(&author, &c, Topic::from_name("t"), 10, b"real".to_vec());
        let mut fabricated = Message::new_signed(&author, &c, Topic::from_name("t"), 11, b"real".to_vec());
        fabricated.payload = b"words never said".to_vec();
        let outside = Message::new_signed(&author, &c, Topic::from_name("t"), 500, b"late".to_vec());
        let mut w = ArchiveWriter::new(&Metadata { from: 0, to: 100, topics: vec![Topic::from_name("t")] });
        for m in [&good, &fabricated, &outside] {
            w.push_encoded(&m.encode());
        }
        let bytes = w.finish();
        let store = MessageStore::open(&Db::memory()).unwrap();
        let first = import(
            &store,
            &c,
            bytes.clone(),
            &KeyRing::default(),
            Options { threads: 2, rate: None, stop: None },
            None,
        )
        .unwrap();
        assert_eq!(first, Imported { imported: 1, duplicates: 0, rejected: 2 });
        let again = import(
            &store,
            &c,
            bytes.clone(),
            &KeyRing::default(),
            Options { threads: 2, rate: None, stop: None },
            None,
        )
        .unwrap();
        assert_eq!(again, Imported { imported: 0, duplicates: 1, rejected: 2 }, "idempotent");
        assert_eq!(store.count(&c).unwrap(), 1);
    }

    #[test]
    fn pace_waits_until_the_rate_allows_more() {
        let rate = NonZeroU64::new(10).unwrap();
        assert_eq!(pace(10, rate, Duration::from_millis(400)), Duration::from_millis(600));
        assert_eq!(pace(10, rate, Duration::from_secs(2)), Duration::ZERO);
        assert_eq!(pace(0, rate, Duration::ZERO), Duration::ZERO);
    }

    #[test]
    fn a_paced_import_stores_everything_no_faster_than_its_rate() {
        let c: CommunityId = KeyPair::generate().public_hex().parse().unwrap();
        let author = KeyPair::generate();
        let mut w = ArchiveWriter::new(&Metadata { from: 100, to: 200, topics: vec![] });
        for i in 0..30u64 {
            w.push_encoded(
                &Message::new_signed(&author, &c, Topic::from_name("t"), 100 + i, vec![i as u8]).encode(),
            );
        }
        let bytes = w.finish();
        let store = MessageStore::open(&Db::memory()).unwrap();
        let options = Options { threads: 1, rate: NonZeroU64::new(100), stop: None };
        let started = Instant::now();
        let got = import(&store, &c, bytes.clone(), &KeyRing::default(), options, None).unwrap();
        assert!(started.elapsed() >= Duration::from_millis(300), "30 messages at 100/s take 0.3 s at least");
        assert_eq!(got, Imported { imported: 30, duplicates: 0, rejected: 0 });
        assert_eq!(store.count(&c).unwrap(), 30);
    }

    #[test]
    fn a_malformed_message_is_skipped_and_counted_and_the_rest_imported() {
        use archive_proto::pb::archive as pb;
        use prost::Message as _;
        let c: CommunityId = KeyPair::generate().public_hex().parse().unwrap();
        let author = KeyPair::generate();
        let good: Vec<Message> = (0..3u64)
            .map(|i| Message::new_signed(&author, &c, Topic::from_name("t"), 10 + i, vec![i as u8]))
            .collect();
        let mut broken = pb::WakuMessage::from(&good[0]);
        broken.topic = vec![1, 2, 3].into(); // a topic must be 4 bytes
        let mut w = ArchiveWriter::new(&Metadata { from: 0, to: 100, topics: vec![] });
        w.push_encoded(&good[0].encode());
        w.push_encoded(&broken.encode_to_vec());
        for m in &good[1..] {
            w.push_encoded(&m.encode());
        }
        let store = MessageStore::open(&Db::memory()).unwrap();
        let got = import(&store, &c, w.finish(), &KeyRing::default(), Options::default(), None).unwrap();
        assert_eq!(got, Imported { imported: 3, duplicates: 0, rejected: 1 });
    }

    #[test]
    fn a_stopped_paced_import_returns_within_a_slice() {
        let c: CommunityId = KeyPair::generate().public_hex().parse().unwrap();
        let author = KeyPair::generate();
        let mut w = ArchiveWriter::new(&Metadata { from: 0, to: 1000, topics: vec![] });
        for i in 0..20u64 {
            w.push_encoded(
                &Message::new_signed(&author, &c, Topic::from_name("t"), i, vec![i as u8]).encode(),
            );
        }
        let bytes = w.finish();
        let store = MessageStore::open(&Db::memory()).unwrap();
        let stop = tokio_util::sync::CancellationToken::new();
        // One message a second: 20 s unless stopped.
        let options = Options { threads: 1, rate: NonZeroU64::new(1), stop: Some(&stop) };
        let started = Instant::now();
        std::thread::scope(|s| {
            s.spawn(|| {
                std::thread::sleep(Duration::from_millis(300));
                stop.cancel();
            });
            let r = import(&store, &c, bytes.clone(), &KeyRing::default(), options, None);
            assert!(matches!(r, Err(Error::Stopped)), "{r:?}");
        });
        assert!(started.elapsed() < Duration::from_secs(2), "stopped within a slice, not after 20 s");
    }

    #[test]
    fn an_archive_file_is_imported_from_the_block_store_plain_or_sealed() {
        use crate::blocks::unixfs::Layout;
        let c: CommunityId = KeyPair::generate().public_hex().parse().unwrap();
        let author = KeyPair::generate();
        let mut w = ArchiveWriter::new(&Metadata { from: 0, to: 1000, topics: vec![] });
        for i in 0..50u64 {
            let m = Message::new_signed(&author, &c, Topic::from_name("t"), i, vec![i as u8; 900]);
            w.push_encoded(&m.encode());
        }
        let plain = w.finish();
        let key = crate::crypto::ArchiveKey::generate();
        let layout = Layout { chunk_size: 4096, max_links: 4 };
        let blocks = BlockStore::memory(Default::default());
        let plain_root = files::add(&blocks, &mut &plain[..], layout).unwrap().root;
        let sealed_root = files::add(&blocks, &mut &seal::seal(&key, &plain)[..], layout).unwrap().root;
        let opts = Options { threads: 2, rate: None, stop: None };

        let store = MessageStore::open(&Db::memory()).unwrap();
        let got = import_file(&store, &c, &blocks, plain_root, &KeyRing::default(), opts, None).unwrap();
        assert_eq!(got, Imported { imported: 50, duplicates: 0, rejected: 0 });

        let store = MessageStore::open(&Db::memory()).unwrap();
        let no_key = import_file(&store, &c, &blocks, sealed_root, &KeyRing::default(), opts, None);
        assert!(matches!(no_key, Err(Error::Seal(seal::Error::NoKey { .. }))), "{no_key:?}");
        let got = import_file(&store, &c, &blocks, sealed_root, &KeyRing::single(key), opts, None).unwrap();
        assert_eq!(got.imported, 50);

        // A block missing from the store is the store's failure, not a malformed archive.
        let partial = BlockStore::memory(Default::default());
        let missing = import_file(&store, &c, &partial, plain_root, &KeyRing::default(), opts, None);
        assert!(matches!(missing, Err(Error::Read(_))), "{missing:?}");
    }

    /// Bytes in a data dir's message pack files.
    fn pack_bytes(db_dir: &std::path::Path) -> u64 {
        let dir = db_dir.join(crate::message_store::PACKS_DIR);
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().metadata().unwrap().len()).sum()
    }

    #[test]
    fn large_messages_stay_in_their_archive_imported_or_our_own() {
        let c: CommunityId = KeyPair::generate().public_hex().parse().unwrap();
        let author = KeyPair::generate();
        let msgs: Vec<Message> = (0..20u64)
            .map(|i| Message::new_signed(&author, &c, Topic::from_name("t"), i, vec![i as u8; 3000]))
            .collect();
        let mut w = ArchiveWriter::new(&Metadata { from: 0, to: 1000, topics: vec![] });
        for m in &msgs {
            w.push_encoded(&m.encode());
        }
        let plain = w.finish();
        let layout = crate::blocks::unixfs::Layout { chunk_size: 4096, max_links: 4 };
        let blocks = BlockStore::memory(Default::default());
        let root = files::add(&blocks, &mut &plain[..], layout).unwrap().root;
        let sealed = seal::seal(&crate::crypto::ArchiveKey::generate(), &plain);
        let sealed_root = files::add(&blocks, &mut &sealed[..], layout).unwrap().root;
        let opts = Options { threads: 2, rate: None, stop: None };
        let all = |s: &MessageStore| s.query(&c, &Default::default()).unwrap().messages;

        // A member importing it copies none of them.
        let member = tempfile::tempdir().unwrap();
        let store =
            MessageStore::open(&Db::open(member.path()).unwrap()).unwrap().with_archives(blocks.clone());
        let got = import_file(&store, &c, &blocks, root, &KeyRing::default(), opts, None).unwrap();
        assert_eq!(got.imported, 20);
        assert_eq!(pack_bytes(member.path()), 0);
        assert_eq!(all(&store), msgs);

        // The control node that stored them first moves its rows onto the archive.
        let control = tempfile::tempdir().unwrap();
        let store =
            MessageStore::open(&Db::open(control.path()).unwrap()).unwrap().with_archives(blocks.clone());
        let verified: Vec<_> = msgs.iter().map(|m| m.clone().verify(&c).unwrap()).collect();
        store.insert(&c, &verified).unwrap();
        assert_eq!(point_rows_at(&store, &c, &blocks, sealed_root).unwrap(), 0, "a sealed one holds none");
        assert_eq!(point_rows_at(&store, &c, &blocks, root).unwrap(), 20);
        assert_eq!(all(&store), msgs);
    }

    #[test]
    fn a_sealed_archive_needs_its_key() {
        let c: CommunityId = KeyPair::generate().public_hex().parse().unwrap();
        let m = Message::new_signed(&KeyPair::generate(), &c, Topic::from_name("t"), 1, b"x".to_vec());
        let mut w = ArchiveWriter::new(&Metadata { from: 0, to: 10, topics: vec![] });
        w.push_encoded(&m.encode());
        let key = crate::crypto::ArchiveKey::generate();
        let sealed = seal::seal(&key, &w.finish());
        let store = MessageStore::open(&Db::memory()).unwrap();
        assert!(matches!(
            import(
                &store,
                &c,
                sealed.clone(),
                &KeyRing::default(),
                Options { threads: 2, rate: None, stop: None },
                None
            ),
            Err(Error::Seal(_))
        ));
        assert_eq!(
            import(
                &store,
                &c,
                sealed.clone(),
                &KeyRing::single(key),
                Options { threads: 2, rate: None, stop: None },
                None
            )
            .unwrap()
            .imported,
            1
        );
    }
}
