//! `archive-node archive build|inspect`.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use clap::Subcommand;
use serde_json::json;

use super::DataDirArg;
use crate::archive::builder::{self, BuiltArchive, BuiltIndex, SinkError};
use crate::archive::seal::{self, KeyRing};
use crate::archive::{partition, state::ArchiveState, Archive, Builder, Index, Params, StoreSink};
use crate::community::CommunityId;
use crate::crypto::ArchiveKey;
use crate::data_dir::write_atomic;
use crate::json::{ArchiveView, IndexView};
use crate::message::Topic;
use crate::message_store::MessageStore;

/// Largest file `archive inspect` reads: a sealed 30 MB archive with room to spare.
const MAX_INSPECT_BYTES: u64 = 64 * 1024 * 1024;

#[derive(Subcommand, Debug)]
pub enum ArchiveCommand {
    /// Build history archives of a community's stored messages.
    ///
    /// Stores each archive and the new cumulative index in the block store as pinned UnixFS DAGs
    /// (the previous index is unpinned) and, with --out, also writes DIR/<archive-id>.bin per
    /// archive and DIR/index.bin. Prints a JSON line per archive and a summary line. The next run
    /// starts where this one ended, so running again without new messages creates nothing.
    Build {
        #[command(flatten)]
        data_dir: DataDirArg,
        /// Community id (0x + 66 hex digits).
        #[arg(long)]
        community: CommunityId,
        /// Start, unix seconds [default: end of the last run, else the oldest message].
        #[arg(long)]
        from: Option<u64>,
        /// End (exclusive), unix seconds [default: now].
        #[arg(long)]
        to: Option<u64>,
        /// Window length in seconds.
        #[arg(long, default_value_t = partition::DEFAULT_PARTITION_SECS)]
        partition: u64,
        /// Archive only these topics (name or 0x + 8 hex; repeatable) [default: every topic].
        #[arg(long = "topic")]
        topics: Vec<String>,
        /// Seal archives and index with this 32-byte archive key (64 hex digits).
        #[arg(long, value_name = "HEX")]
        key: Option<String>,
        /// Also write the archive and index files into this directory.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Run one seeding round of a community now on the running daemon (its control node).
    CreateNow {
        #[command(flatten)]
        data_dir: DataDirArg,
        community_id: String,
    },
    /// Decode an archive or index file and print it as JSON.
    Inspect {
        /// The file (an archive or an index, sealed or not).
        file: PathBuf,
        /// Archive key to open a sealed file (64 hex digits).
        #[arg(long, value_name = "HEX")]
        key: Option<String>,
    },
}

pub fn run(cmd: ArchiveCommand) -> anyhow::Result<()> {
    match cmd {
        ArchiveCommand::Build { data_dir, community, from, to, partition, topics, key, out } => {
            if partition == 0 {
                anyhow::bail!("--partition must be at least 1 second");
            }
            let key = key.map(|k| ArchiveKey::from_hex(&k)).transpose()?;
            let to = match to {
                Some(t) => t,
                None => SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs(),
            };
            let topics = topics.iter().map(|t| t.parse::<Topic>().expect("infallible")).collect();
            if let Some(out) = &out {
                std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
            }
            let (db, blocks) = data_dir.open_blocks()?;
            let messages = MessageStore::open(&db)?.with_archives(blocks.clone());
            let builder = Builder::new(messages, ArchiveState::open(&db)?);
            let params =
                Params { community, from, to, partition_secs: partition, topics, key, members: None };
            let mut sink = CliSink { store: StoreSink::new(blocks), dir: out.as_deref(), index_path: None };
            let outcome = builder.run(&params, &mut sink)?;
            super::out(json!({"summary": {
                "from": outcome.from, "to": outcome.to, "archives": outcome.archives.len(),
                "messages": outcome.messages, "dropped_oversize": outcome.dropped_oversize,
                "index": sink.index_path.map(|p| p.display().to_string()), "index_cid": outcome.index_cid,
            }}))?;
            Ok(())
        }
        ArchiveCommand::CreateNow { data_dir, community_id } => {
            let v = super::client::with_daemon(&data_dir, async |e| {
                Ok(e.call("archive_createNow", json!({"communityId": community_id})).await?)
            })?;
            Ok(super::out(v)?)
        }
        ArchiveCommand::Inspect { file, key } => {
            let mut keys = KeyRing::default();
            if let Some(k) = key {
                keys.add(ArchiveKey::from_hex(&k)?);
            }
            let meta = std::fs::metadata(&file).with_context(|| format!("cannot read {}", file.display()))?;
            if meta.len() > MAX_INSPECT_BYTES {
                anyhow::bail!("{} is {} bytes, more than an archive can be", file.display(), meta.len());
            }
            let bytes = std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
            let plain = seal::open(&bytes, &keys)?;
            super::out(inspect(&plain)?)?;
            Ok(())
        }
    }
}

/// Decodes archive or index bytes into JSON.
fn inspect(plain: &[u8]) -> anyhow::Result<String> {
    match Archive::decode(plain) {
        Ok(a) => Ok(serde_json::to_string(&ArchiveView::from(&a))?),
        Err(archive_err) => match Index::decode(plain) {
            Ok(i) => Ok(serde_json::to_string(&IndexView::from(&i))?),
            Err(index_err) => anyhow::bail!("neither an archive ({archive_err}) nor an index ({index_err})"),
        },
    }
}

/// Stores into the block store, writes files when asked, and prints a line per archive.
struct CliSink<'a> {
    store: StoreSink,
    dir: Option<&'a Path>,
    index_path: Option<PathBuf>,
}

impl builder::Sink for CliSink<'_> {
    fn put(&mut self, bytes: &[u8]) -> Result<String, SinkError> {
        self.store.put(bytes)
    }

    fn retire_index(&mut self, old_cid: &str) -> Result<(), SinkError> {
        self.store.retire_index(old_cid)
    }

    fn archive(&mut self, a: &BuiltArchive) -> Result<(), SinkError> {
        if let Some(dir) = self.dir {
            write_atomic(&dir.join(format!("{}.bin", a.id)), &a.bytes)?;
        }
        let line = json!({
            "id": a.id, "from": a.entry.metadata.from, "to": a.entry.metadata.to,
            "messages": a.messages, "bytes": a.bytes.len(), "cid": a.entry.cid,
        });
        super::out(line)?;
        Ok(())
    }

    fn index(&mut self, i: &BuiltIndex) -> Result<(), SinkError> {
        if let Some(dir) = self.dir {
            let path = dir.join("index.bin");
            write_atomic(&path, &i.bytes)?;
            self.index_path = Some(path);
        }
        Ok(())
    }
}
