//! `archive-node store import`: load messages from a JSON-lines file into the message store.

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;
use serde::Deserialize;

use super::DataDirArg;
use crate::community::CommunityId;
use crate::crypto::KeyPair;
use crate::json::from_b64;
use crate::message::{Message, Topic, VerifiedMessage};
use crate::message_store::{InsertOutcome, MessageStore};

/// Longest accepted input line: a 30 MB payload in base64 plus the other fields.
const MAX_LINE_BYTES: u64 = 48 * 1024 * 1024;
/// Messages written to the store per atomic batch.
const BATCH: usize = 10_000;

#[derive(Subcommand, Debug)]
pub enum StoreCommand {
    /// Import messages from a JSON-lines file (one message a line).
    ///
    /// A line is either a message to sign,
    /// {"topic": "<name or 0x + 8 hex>", "timestamp": <unix s>, "payload": "<base64>", "author_key": "<hex secret>"},
    /// or an already signed one, {"topic", "timestamp", "payload", "sig", "hash"} with sig and hash in base64.
    /// Every message is hashed and its signature checked; bad lines are reported and skipped.
    Import {
        #[command(flatten)]
        data_dir: DataDirArg,
        /// Community id (0x + 66 hex digits).
        #[arg(long)]
        community: CommunityId,
        /// The JSON-lines file ("-" for standard input).
        file: PathBuf,
    },
}

pub fn run(cmd: StoreCommand) -> anyhow::Result<()> {
    match cmd {
        StoreCommand::Import { data_dir, community, file } => import(&data_dir, &community, &file),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    topic: String,
    timestamp: u64,
    payload: String,
    author_key: Option<String>,
    sig: Option<String>,
    hash: Option<String>,
}

fn parse_line(community: &CommunityId, text: &str) -> anyhow::Result<VerifiedMessage> {
    let line: Line = serde_json::from_str(text).context("invalid JSON")?;
    let topic: Topic = line.topic.parse().expect("infallible");
    let payload = from_b64(&line.payload).context("payload is not base64")?;
    let msg = match (line.author_key, line.sig, line.hash) {
        (Some(key), None, None) => {
            let author = KeyPair::from_secret_hex(&key).context("author_key")?;
            Message::new_signed(&author, community, topic, line.timestamp, payload)
        }
        (None, Some(sig), Some(hash)) => {
            let sig = from_b64(&sig).context("sig is not base64")?;
            let hash = from_b64(&hash).context("hash is not base64")?;
            let hash: [u8; 32] =
                hash.as_slice().try_into().map_err(|_| anyhow::anyhow!("hash must be 32 bytes"))?;
            Message {
                sig,
                timestamp: line.timestamp,
                topic,
                payload,
                padding: vec![],
                hash,
                third_party_id: String::new(),
            }
        }
        _ => anyhow::bail!("give either author_key, or both sig and hash"),
    };
    Ok(msg.verify(community)?)
}

fn import(data_dir: &DataDirArg, community: &CommunityId, file: &PathBuf) -> anyhow::Result<()> {
    let input: Box<dyn Read> = if file.as_os_str() == "-" {
        Box::new(std::io::stdin())
    } else {
        Box::new(std::fs::File::open(file).with_context(|| format!("cannot open {}", file.display()))?)
    };
    let (_dir, db) = data_dir.open()?;
    let store = MessageStore::open(&db)?;
    let mut reader = BufReader::new(input);
    let mut total = InsertOutcome::default();
    let mut rejected = 0usize;
    let mut batch = Vec::with_capacity(BATCH);
    let mut buf = Vec::new();
    let mut line_no = 0usize;
    loop {
        buf.clear();
        let n = (&mut reader).take(MAX_LINE_BYTES + 1).read_until(b'\n', &mut buf)?;
        if n == 0 {
            break;
        }
        line_no += 1;
        if buf.len() as u64 > MAX_LINE_BYTES {
            anyhow::bail!("line {line_no}: longer than {MAX_LINE_BYTES} bytes");
        }
        let text = String::from_utf8_lossy(&buf);
        let text = text.trim();
        if text.is_empty() {
            continue;
        }
        match parse_line(community, text) {
            Ok(m) => batch.push(m),
            Err(e) => {
                rejected += 1;
                eprintln!("line {line_no}: rejected: {}", super::one_line(&e));
            }
        }
        if batch.len() == BATCH {
            add(&mut total, store.insert(community, &batch)?);
            batch.clear();
        }
    }
    add(&mut total, store.insert(community, &batch)?);
    store.flush()?;
    super::out(format!("imported {}, duplicates {}, rejected {rejected}", total.inserted, total.duplicates))?;
    Ok(())
}

fn add(total: &mut InsertOutcome, o: InsertOutcome) {
    total.inserted += o.inserted;
    total.duplicates += o.duplicates;
}
