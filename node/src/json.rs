//! JSON views of domain types, shared by the CLI and the RPC API.
//!
//! Conventions: bytes are standard base64; hashes, topics and ids are `0x` hex; times are unix
//! seconds.

use base64::Engine as _;
use serde::Serialize;

use crate::archive::{Archive, Index};
use crate::message::Message;

/// Standard base64 encoding.
pub fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Decodes standard base64.
pub fn from_b64(s: &str) -> Result<Vec<u8>, base64::DecodeError> {
    base64::engine::general_purpose::STANDARD.decode(s)
}

/// A message.
#[derive(Serialize, Clone)]
pub struct MessageView {
    pub hash: String,
    pub topic: String,
    pub timestamp: u64,
    pub payload: String,
    pub sig: String,
    /// The member key that signed it (`0x` hex), where the caller knows it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
}

impl MessageView {
    /// The view with the message's author.
    pub fn with_author(m: &Message, author: impl std::fmt::Display) -> Self {
        Self { author: Some(author.to_string()), ..Self::from(m) }
    }
}

impl From<&Message> for MessageView {
    fn from(m: &Message) -> Self {
        Self {
            hash: format!("0x{}", hex::encode(m.hash)),
            topic: m.topic.to_string(),
            timestamp: m.timestamp,
            payload: b64(&m.payload),
            sig: b64(&m.sig),
            author: None,
        }
    }
}

/// An archive's metadata.
#[derive(Serialize)]
pub struct MetadataView {
    pub from: u64,
    pub to: u64,
    pub topics: Vec<String>,
}

impl From<&crate::archive::Metadata> for MetadataView {
    fn from(m: &crate::archive::Metadata) -> Self {
        Self { from: m.from, to: m.to, topics: m.topics.iter().map(|t| t.to_string()).collect() }
    }
}

/// A decoded archive.
#[derive(Serialize)]
pub struct ArchiveView {
    #[serde(rename = "type")]
    pub kind: &'static str,
    #[serde(flatten)]
    pub metadata: MetadataView,
    pub messages: Vec<MessageView>,
}

impl From<&Archive> for ArchiveView {
    fn from(a: &Archive) -> Self {
        Self {
            kind: "archive",
            metadata: (&a.metadata).into(),
            messages: a.messages.iter().map(Into::into).collect(),
        }
    }
}

/// One index entry.
#[derive(Serialize)]
pub struct EntryView {
    pub id: String,
    pub cid: String,
    #[serde(flatten)]
    pub metadata: MetadataView,
}

/// A decoded index.
#[derive(Serialize)]
pub struct IndexView {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub archives: Vec<EntryView>,
}

impl From<&Index> for IndexView {
    fn from(i: &Index) -> Self {
        Self {
            kind: "index",
            archives: i
                .archives
                .iter()
                .map(|(id, e)| EntryView {
                    id: id.clone(),
                    cid: e.cid.clone(),
                    metadata: (&e.metadata).into(),
                })
                .collect(),
        }
    }
}
