//! A community message (status-go's `WakuMessage`) and the rules that make it valid.
//!
//! - `topic` of a named content topic is `keccak256(name)[:4]`;
//! - `hash` = sha256(community key || topic || timestamp_be || payload);
//! - `sig` = recoverable secp256k1 signature by the author over keccak256(topic || timestamp_be || payload).
//!
//! A [`VerifiedMessage`] can only be made by [`Message::verify`], so every store write has passed
//! these checks.

use std::fmt;
use std::str::FromStr;

use archive_proto::pb::archive as pb;
use prost::Message as _;

use crate::community::CommunityId;
use crate::crypto::{self, KeyPair, SIGNATURE_LEN};

/// Largest summed `len(payload) + len(sig)` of one archive (status-go's cap). Defined here, not
/// in `archive`, so that messages depend on nothing that archives them.
pub const ARCHIVE_CHUNK_CAP_BYTES: usize = 30_000_000;

/// Largest payload a message may carry: what fits in an archive chunk with its signature.
pub const MAX_PAYLOAD_LEN: usize = ARCHIVE_CHUNK_CAP_BYTES - SIGNATURE_LEN;

/// Largest payload sent by gossip (larger history reaches members in archives).
pub const MAX_GOSSIP_PAYLOAD: usize = 512 * 1024;

/// Why a message is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    #[error("topic must be 4 bytes, got {0}")]
    TopicLength(usize),
    #[error("hash must be 32 bytes, got {0}")]
    HashLength(usize),
    #[error("hash does not match the message content")]
    HashMismatch,
    #[error("bad signature: {0}")]
    Signature(#[from] crypto::Error),
    #[error("payload of {0} bytes is over the {MAX_PAYLOAD_LEN}-byte limit")]
    PayloadTooLarge(usize),
    #[error("malformed message encoding: {0}")]
    Decode(String),
}

/// A 4-byte content topic.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Topic(pub [u8; 4]);

impl Topic {
    /// The topic of a named content topic: keccak256(name)[:4].
    pub fn from_name(name: &str) -> Self {
        let h = crypto::keccak256(&[name.as_bytes()]);
        Topic([h[0], h[1], h[2], h[3]])
    }

    /// Wraps 4 raw bytes.
    pub fn from_slice(raw: &[u8]) -> Result<Self, Error> {
        raw.try_into().map(Topic).map_err(|_| Error::TopicLength(raw.len()))
    }
}

impl FromStr for Topic {
    type Err = std::convert::Infallible;
    /// `0x` + 8 hex digits is a raw topic; anything else is a name.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(h) = s.strip_prefix("0x") {
            if let Ok(raw) = hex::decode(h) {
                if let Ok(t) = Topic::from_slice(&raw) {
                    return Ok(t);
                }
            }
        }
        Ok(Topic::from_name(s))
    }
}

impl fmt::Display for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{}", hex::encode(self.0))
    }
}

impl fmt::Debug for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Topic({self})")
    }
}

/// A message as it travels: every field may still be wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub sig: Vec<u8>,
    /// Unix seconds.
    pub timestamp: u64,
    pub topic: Topic,
    pub payload: Vec<u8>,
    pub padding: Vec<u8>,
    pub hash: [u8; 32],
    pub third_party_id: String,
}

/// The digest an author signs: keccak256(topic || timestamp_be || payload).
pub fn signing_digest(topic: &Topic, timestamp: u64, payload: &[u8]) -> [u8; 32] {
    crypto::keccak256(&[&topic.0, &timestamp.to_be_bytes(), payload])
}

/// The message hash: sha256(community key || topic || timestamp_be || payload).
pub fn message_hash(community: &CommunityId, topic: &Topic, timestamp: u64, payload: &[u8]) -> [u8; 32] {
    crypto::sha256(&[community.as_bytes(), &topic.0, &timestamp.to_be_bytes(), payload])
}

impl Message {
    /// Builds, hashes and signs a new message.
    pub fn new_signed(
        author: &KeyPair,
        community: &CommunityId,
        topic: Topic,
        timestamp: u64,
        payload: Vec<u8>,
    ) -> Self {
        let sig = author.sign_prehash(&signing_digest(&topic, timestamp, &payload)).to_vec();
        let hash = message_hash(community, &topic, timestamp, &payload);
        Message { sig, timestamp, topic, payload, padding: Vec::new(), hash, third_party_id: String::new() }
    }

    /// Checks size, hash and signature; returns the message with its author's public key.
    pub fn verify(self, community: &CommunityId) -> Result<VerifiedMessage, Error> {
        if self.payload.len() > MAX_PAYLOAD_LEN {
            return Err(Error::PayloadTooLarge(self.payload.len()));
        }
        if message_hash(community, &self.topic, self.timestamp, &self.payload) != self.hash {
            return Err(Error::HashMismatch);
        }
        let author = crypto::recover(&signing_digest(&self.topic, self.timestamp, &self.payload), &self.sig)?;
        Ok(VerifiedMessage { msg: self, author })
    }

    /// `len(payload) + len(sig)`: what counts against an archive chunk's byte cap.
    pub fn weight(&self) -> usize {
        self.payload.len() + self.sig.len()
    }

    /// Protobuf encoding (status-go's `WakuMessage`).
    pub fn encode(&self) -> Vec<u8> {
        pb::WakuMessage::from(self).encode_to_vec()
    }

    /// Decodes a protobuf `WakuMessage`; checks only the shape, not hash or signature.
    pub fn decode(bytes: &[u8]) -> Result<Self, Error> {
        let m = pb::WakuMessage::decode(bytes).map_err(|e| Error::Decode(e.to_string()))?;
        Message::try_from(m)
    }
}

impl From<&Message> for pb::WakuMessage {
    fn from(m: &Message) -> Self {
        pb::WakuMessage {
            sig: m.sig.clone().into(),
            timestamp: m.timestamp,
            topic: m.topic.0.to_vec().into(),
            payload: m.payload.clone().into(),
            padding: m.padding.clone().into(),
            hash: m.hash.to_vec().into(),
            third_party_id: m.third_party_id.clone(),
        }
    }
}

impl TryFrom<pb::WakuMessage> for Message {
    type Error = Error;
    fn try_from(m: pb::WakuMessage) -> Result<Self, Error> {
        let hash: [u8; 32] = m.hash[..].try_into().map_err(|_| Error::HashLength(m.hash.len()))?;
        Ok(Message {
            sig: m.sig.to_vec(),
            timestamp: m.timestamp,
            topic: Topic::from_slice(&m.topic)?,
            payload: m.payload.to_vec(),
            padding: m.padding.to_vec(),
            hash,
            third_party_id: m.third_party_id,
        })
    }
}

/// Below this many messages, [`verify_all`] stays on the calling thread.
const PARALLEL_MIN: usize = 256;

/// [`Message::verify`] of every message, spread over `threads` threads (signature recovery
/// is the cost of importing archives); results keep the input order.
pub fn verify_all(
    msgs: Vec<Message>,
    community: &CommunityId,
    threads: usize,
) -> Vec<Result<VerifiedMessage, Error>> {
    let threads = threads.clamp(1, msgs.len().div_ceil(PARALLEL_MIN).max(1));
    if threads == 1 {
        return msgs.into_iter().map(|m| m.verify(community)).collect();
    }
    let per = msgs.len().div_ceil(threads);
    let mut parts = Vec::with_capacity(threads);
    let mut rest = msgs;
    while rest.len() > per {
        let tail = rest.split_off(per);
        parts.push(rest);
        rest = tail;
    }
    parts.push(rest);
    std::thread::scope(|s| {
        let handles: Vec<_> = parts
            .into_iter()
            .map(|part| s.spawn(move || part.into_iter().map(|m| m.verify(community)).collect::<Vec<_>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)))
            .collect()
    })
}

/// A message whose hash and signature were checked for a given community.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedMessage {
    msg: Message,
    author: [u8; crypto::PUBLIC_KEY_LEN],
}

impl VerifiedMessage {
    /// The checked message.
    pub fn message(&self) -> &Message {
        &self.msg
    }

    /// The author's compressed public key, recovered from the signature.
    pub fn author(&self) -> &[u8; crypto::PUBLIC_KEY_LEN] {
        &self.author
    }

    /// Gives the message back.
    pub fn into_message(self) -> Message {
        self.msg
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn community() -> CommunityId {
        KeyPair::generate().public_hex().parse().unwrap()
    }

    #[test]
    fn a_signed_message_verifies_and_names_its_author() {
        let author = KeyPair::generate();
        let c = community();
        let m = Message::new_signed(&author, &c, Topic::from_name("general"), 1_700_000_000, b"hi".to_vec());
        let v = m.clone().verify(&c).unwrap();
        assert_eq!(v.author(), &author.public());
        assert_eq!(Message::decode(&m.encode()).unwrap(), m);
    }

    #[test]
    fn verify_all_keeps_order_and_refuses_what_verify_refuses() {
        let (author, c) = (KeyPair::generate(), community());
        let msgs: Vec<Message> = (0..1000u64)
            .map(|i| {
                let mut m =
                    Message::new_signed(&author, &c, Topic::from_name("t"), i, i.to_be_bytes().to_vec());
                if i % 7 == 3 {
                    m.payload.push(0); // breaks the hash
                }
                m
            })
            .collect();
        let one: Vec<_> = msgs.iter().cloned().map(|m| m.verify(&c)).collect();
        for threads in [1, 2, 3, 64] {
            assert_eq!(verify_all(msgs.clone(), &c, threads), one, "{threads} threads");
        }
        assert_eq!(one.iter().filter(|r| r.is_err()).count(), 143);
        assert!(verify_all(Vec::new(), &c, 4).is_empty());
    }

    #[test]
    fn tampering_is_refused() {
        let author = KeyPair::generate();
        let c = community();
        let m = Message::new_signed(&author, &c, Topic::from_name("general"), 1_700_000_000, b"hi".to_vec());
        let mut bad = m.clone();
        bad.payload = b"ho".to_vec();
        assert_eq!(bad.verify(&c), Err(Error::HashMismatch));
        // Another community: the hash binds the message to its community.
        assert_eq!(m.clone().verify(&community()), Err(Error::HashMismatch));
        // Payload and hash changed together, signature left: signature no longer recovers the author.
        let mut forged = m.clone();
        forged.payload = b"ho".to_vec();
        forged.hash = message_hash(&c, &forged.topic, forged.timestamp, &forged.payload);
        let v = forged.verify(&c);
        assert!(v.is_err() || v.unwrap().author() != &author.public());
        let mut short = m;
        short.sig.truncate(10);
        assert!(matches!(short.verify(&c), Err(Error::Signature(_))));
    }

    #[test]
    fn topic_names_and_hex() {
        assert_eq!("0x01020304".parse::<Topic>().unwrap(), Topic([1, 2, 3, 4]));
        let named: Topic = "general".parse().unwrap();
        assert_eq!(named, Topic::from_name("general"));
        assert_eq!(&named.0, &crypto::keccak256(&[b"general"])[..4]);
    }
}
