//! status-go's archive wire format: `WakuMessageArchive`, `ArchiveIndexEntry` and the archive id.
//!
//! Archives are written by [`ArchiveWriter`] straight from the messages' stored protobuf bytes,
//! with exactly the bytes prost would produce for the whole `WakuMessageArchive` (fields in
//! number order, version 0 omitted), so the same messages always give the same bytes and CID.

use archive_proto::pb::archive as pb;
use prost::encoding::{encode_key, encode_varint, WireType};
use prost::Message as _;

use super::reader::{self, Messages};
use crate::message::{self, Message, Topic};

/// Largest number of messages we decode from one archive (30 MB cap / smallest message).
pub const MAX_ARCHIVE_MESSAGES: usize = 2_000_000;

/// Errors of archive decoding.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("malformed archive: {0}")]
    Decode(String),
    #[error("malformed archive metadata: {0}")]
    Metadata(String),
    #[error("archive holds more than {MAX_ARCHIVE_MESSAGES} messages")]
    TooManyMessages,
    #[error("archive message {index}: {source}")]
    Message { index: usize, source: message::Error },
    /// The bytes could not be read (from the block store, say): not the archive's fault.
    #[error("reading the archive: {0}")]
    Read(#[source] std::io::Error),
}

/// `WakuMessageArchiveMetadata`: the window and topics of an archive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Metadata {
    /// Inclusive, unix seconds.
    pub from: u64,
    /// Exclusive, unix seconds.
    pub to: u64,
    pub topics: Vec<Topic>,
}

impl Metadata {
    fn to_pb(&self) -> pb::WakuMessageArchiveMetadata {
        pb::WakuMessageArchiveMetadata {
            version: 0,
            from: self.from,
            to: self.to,
            content_topic: self.topics.iter().map(|t| t.0.to_vec().into()).collect(),
        }
    }

    pub(super) fn from_pb(m: Option<pb::WakuMessageArchiveMetadata>) -> Result<Self, Error> {
        let m = m.ok_or_else(|| Error::Metadata("missing".into()))?;
        let topics = m
            .content_topic
            .iter()
            .map(|t| Topic::from_slice(t).map_err(|e| Error::Metadata(e.to_string())))
            .collect::<Result<_, _>>()?;
        if m.from > m.to {
            return Err(Error::Metadata(format!("from {} after to {}", m.from, m.to)));
        }
        Ok(Metadata { from: m.from, to: m.to, topics })
    }
}

/// `ArchiveIndexEntry`: an archive's metadata and root CID.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub metadata: Metadata,
    pub cid: String,
}

impl Entry {
    /// Protobuf encoding (version 0, omitted).
    pub fn encode(&self) -> Vec<u8> {
        self.to_pb().encode_to_vec()
    }

    pub(crate) fn to_pb(&self) -> pb::ArchiveIndexEntry {
        pb::ArchiveIndexEntry { version: 0, metadata: Some(self.metadata.to_pb()), cid: self.cid.clone() }
    }

    pub(crate) fn from_pb(e: pb::ArchiveIndexEntry) -> Result<Self, Error> {
        Ok(Entry { metadata: Metadata::from_pb(e.metadata)?, cid: e.cid })
    }

    /// Decodes a protobuf `ArchiveIndexEntry`.
    pub fn decode(bytes: &[u8]) -> Result<Self, Error> {
        let e = pb::ArchiveIndexEntry::decode(bytes).map_err(|e| Error::Decode(e.to_string()))?;
        Self::from_pb(e)
    }

    /// The archive id: `"0x"` + hex(keccak256(encoded entry)).
    pub fn id(&self) -> String {
        format!("0x{}", hex::encode(crate::crypto::keccak256(&[&self.encode()])))
    }
}

/// Streams one `WakuMessageArchive` into a buffer.
pub struct ArchiveWriter {
    buf: Vec<u8>,
    messages: usize,
}

impl ArchiveWriter {
    /// Starts an archive with its metadata.
    pub fn new(metadata: &Metadata) -> Self {
        let meta = metadata.to_pb();
        let mut buf = Vec::new();
        // Field 1 (version) is 0: proto3 omits it.
        encode_key(2, WireType::LengthDelimited, &mut buf);
        encode_varint(meta.encoded_len() as u64, &mut buf);
        meta.encode_raw(&mut buf);
        Self { buf, messages: 0 }
    }

    /// Appends one message given as its protobuf `WakuMessage` bytes.
    pub fn push_encoded(&mut self, encoded: &[u8]) {
        encode_key(3, WireType::LengthDelimited, &mut self.buf);
        encode_varint(encoded.len() as u64, &mut self.buf);
        self.buf.extend_from_slice(encoded);
        self.messages += 1;
    }

    /// Number of messages so far.
    pub fn messages(&self) -> usize {
        self.messages
    }

    /// The archive bytes.
    pub fn finish(self) -> Vec<u8> {
        self.buf
    }
}

/// A decoded archive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Archive {
    pub metadata: Metadata,
    pub messages: Vec<Message>,
}

impl Archive {
    /// Decodes `WakuMessageArchive` bytes; checks message shapes, not hashes or signatures.
    pub fn decode(bytes: &[u8]) -> Result<Self, Error> {
        let (metadata, messages) = Self::decode_each(bytes)?;
        Ok(Archive { metadata, messages: messages.into_iter().collect::<Result<_, _>>()? })
    }

    /// Decodes `WakuMessageArchive` bytes, each message on its own: a malformed message is an
    /// `Err` in its place, and the rest decode (the importer skips and counts it).
    pub fn decode_each(bytes: &[u8]) -> Result<(Metadata, Vec<Result<Message, Error>>), Error> {
        let (metadata, messages) = Self::decode_lazy(bytes)?;
        Ok((metadata, messages.collect()))
    }

    /// The metadata, and the messages decoded one at a time as they are read from `bytes`
    /// ([`super::reader`]). The archive's structure and its message count (at most
    /// [`MAX_ARCHIVE_MESSAGES`]) are checked first, without decoding a message; then each
    /// message is an `Err` in its place when malformed, and the rest still decode.
    pub fn decode_lazy(bytes: &[u8]) -> Result<(Metadata, Messages<&[u8]>), Error> {
        let scan = reader::scan(bytes)?;
        Ok((scan.metadata()?, Messages::new(bytes, scan.total)))
    }

    /// Encodes with prost (the reference the streaming writer must match).
    pub fn encode(&self) -> Vec<u8> {
        pb::WakuMessageArchive {
            version: 0,
            metadata: Some(self.metadata.to_pb()),
            messages: self.messages.iter().map(pb::WakuMessage::from).collect(),
        }
        .encode_to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn golden_message() -> Message {
        Message {
            sig: vec![0xaa],
            timestamp: 5,
            topic: Topic([1, 2, 3, 4]),
            payload: b"hi".to_vec(),
            padding: vec![],
            hash: [0xbb; 32],
            third_party_id: String::new(),
        }
    }

    fn golden_metadata() -> Metadata {
        Metadata { from: 1, to: 2, topics: vec![Topic([1, 2, 3, 4])] }
    }

    // Bytes written by hand from the protobuf rules: tag = field << 3 | wire type.
    fn metadata_hex() -> String {
        [
            "1001",     // field 2 (from), varint 1
            "1802",     // field 3 (to), varint 2
            "2204",     // field 4 (contentTopic), 4 bytes
            "01020304", //
        ]
        .concat()
    }

    fn message_hex() -> String {
        [
            "0a01aa",       // 1 sig: 1 byte
            "1005",         // 2 timestamp: 5
            "1a0401020304", // 3 topic: 4 bytes
            "22026869",     // 4 payload "hi"
            "3220",         // 6 hash: 32 bytes
            &"bb".repeat(32),
        ]
        .concat()
    }

    #[test]
    fn archive_golden_bytes() {
        let meta = metadata_hex();
        let msg = message_hex();
        let expected = format!("12{:02x}{meta}1a{:02x}{msg}", meta.len() / 2, msg.len() / 2);
        assert_eq!(
            expected,
            "120a100118022204010203041a310a01aa10051a0401020304220268693220".to_string() + &"bb".repeat(32)
        );

        let mut w = ArchiveWriter::new(&golden_metadata());
        w.push_encoded(&golden_message().encode());
        let streamed = w.finish();
        assert_eq!(hex::encode(&streamed), expected);
        let reference = Archive { metadata: golden_metadata(), messages: vec![golden_message()] };
        assert_eq!(reference.encode(), streamed);
        assert_eq!(Archive::decode(&streamed).unwrap(), reference);
    }

    #[test]
    fn entry_golden_bytes_and_id() {
        let entry = Entry { metadata: golden_metadata(), cid: "x".into() };
        let meta = metadata_hex();
        let expected = format!("12{:02x}{meta}1a0178", meta.len() / 2);
        assert_eq!(hex::encode(entry.encode()), expected);
        // keccak256 computed over the hand-written bytes, not over our encoder's output.
        let id = format!("0x{}", hex::encode(crate::crypto::keccak256(&[&hex::decode(&expected).unwrap()])));
        assert_eq!(entry.id(), id);
        assert_eq!(id, GOLDEN_ENTRY_ID);
        assert_eq!(Entry::decode(&entry.encode()).unwrap(), entry);
    }

    /// keccak256 of 120a10011802220401020304 1a0178, computed with an independent implementation
    /// (pycryptodome's `Crypto.Hash.keccak`, digest_bits=256).
    const GOLDEN_ENTRY_ID: &str = "0x434dd601435d3167410bb0ad157a1043d800961905fc417b32004d68959d1427";

    #[test]
    fn bad_archives_are_refused() {
        assert!(Archive::decode(&[0xff, 0xff]).is_err());
        // An archive without metadata.
        assert!(matches!(Archive::decode(&[]), Err(Error::Metadata(_))));
        // A message whose topic has 3 bytes.
        let a = pb::WakuMessageArchive {
            version: 0,
            metadata: Some(golden_metadata().to_pb()),
            messages: vec![pb::WakuMessage {
                topic: vec![1, 2, 3].into(),
                hash: vec![0; 32].into(),
                ..Default::default()
            }],
        };
        assert!(matches!(Archive::decode(&a.encode_to_vec()), Err(Error::Message { index: 0, .. })));
    }

    #[test]
    fn a_malformed_message_is_an_error_in_its_place_and_the_rest_decode() {
        let good = golden_message().encode();
        let mut w = ArchiveWriter::new(&golden_metadata());
        w.push_encoded(&good);
        w.push_encoded(&[0x0a, 0x05, 0x01]); // sig of 5 bytes, 1 given
        w.push_encoded(&good);
        let bytes = w.finish();
        let (meta, messages) = Archive::decode_lazy(&bytes).unwrap();
        assert_eq!(meta, golden_metadata());
        assert_eq!(messages.total(), 3);
        let got: Vec<_> = messages.collect();
        assert_eq!(got[0].as_ref().unwrap(), &golden_message());
        assert!(matches!(got[1], Err(Error::Message { index: 1, .. })));
        assert_eq!(got[2].as_ref().unwrap(), &golden_message());
        // A truncated archive is refused whole, before any message is decoded.
        assert!(matches!(Archive::decode_lazy(&bytes[..bytes.len() - 1]), Err(Error::Decode(_))));
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        fn message() -> impl Strategy<Value = Message> {
            (any::<u64>(), proptest::collection::vec(any::<u8>(), 0..64), any::<[u8; 4]>(), any::<[u8; 32]>())
                .prop_map(|(timestamp, payload, topic, hash)| Message {
                    sig: vec![1; 65],
                    timestamp,
                    topic: Topic(topic),
                    payload,
                    padding: vec![],
                    hash,
                    third_party_id: String::new(),
                })
        }

        proptest! {
            /// The lazy decoder reads what prost reads, wherever the metadata field sits.
            #[test]
            fn lazy_decoding_matches_prost(msgs in proptest::collection::vec(message(), 0..20), at in 0usize..21) {
                let metadata = Metadata { from: 1, to: 9, topics: vec![Topic([7; 4])] };
                let mut bytes = Vec::new();
                for (i, m) in msgs.iter().enumerate() {
                    if i == at.min(msgs.len()) {
                        pb::WakuMessageArchive { metadata: Some(metadata.to_pb()), ..Default::default() }.encode(&mut bytes).unwrap();
                    }
                    pb::WakuMessageArchive { messages: vec![pb::WakuMessage::from(m)], ..Default::default() }.encode(&mut bytes).unwrap();
                }
                if at >= msgs.len() {
                    pb::WakuMessageArchive { metadata: Some(metadata.to_pb()), ..Default::default() }.encode(&mut bytes).unwrap();
                }
                let reference = pb::WakuMessageArchive::decode(&bytes[..]).unwrap();
                let (meta, lazy) = Archive::decode_lazy(&bytes).unwrap();
                prop_assert_eq!(meta, Metadata::from_pb(reference.metadata).unwrap());
                let lazy: Vec<Message> = lazy.map(Result::unwrap).collect();
                let prost: Vec<Message> = reference.messages.into_iter().map(|m| Message::try_from(m).unwrap()).collect();
                prop_assert_eq!(&lazy, &prost);
                prop_assert_eq!(lazy, msgs);
            }
        }
    }
}
