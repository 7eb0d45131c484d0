//! The Bitswap message as our own types, converted at the codec edge.
//!
//! Blocks arrive as `(prefix, data)` (1.1.0+) or bare data (1.0.0); their CID is *computed* from
//! the prefix and the hash of the data, so a received [`Block`] always matches its CID. A peer
//! that sends wrong bytes for a CID we asked for simply sends a block we did not ask for.

use archive_proto::pb::bitswap as pb;
use multihash_codetable::{Code, MultihashDigest};
use prost::Message as _;

use crate::blocks::cid::{self, Cid};
use crate::blocks::unixfs::MAX_BLOCK_SIZE;
use crate::blocks::Block;

/// Most wantlist entries we take from one message.
pub const MAX_ENTRIES: usize = 8192;
/// Most blocks or presences we take from one message.
pub const MAX_BLOCKS: usize = 1024;

/// Errors of decoding a message.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    #[error("malformed bitswap message: {0}")]
    Decode(String),
    #[error("bitswap message has {0} entries, over the limit")]
    TooMany(usize),
}

/// What a wantlist entry asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WantType {
    Block,
    Have,
}

/// One wantlist entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Want {
    pub cid: Cid,
    pub priority: i32,
    pub cancel: bool,
    pub want_type: WantType,
    pub send_dont_have: bool,
}

/// A block presence.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Presence {
    Have,
    DontHave,
}

/// A Bitswap message.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Message {
    pub wants: Vec<Want>,
    /// The wantlist replaces the previous one.
    pub full: bool,
    pub blocks: Vec<Block>,
    pub presences: Vec<(Cid, Presence)>,
    /// Blocks whose hash function we do not support (dropped, counted).
    pub unsupported_blocks: usize,
}

impl Message {
    /// True when the message carries nothing.
    pub fn is_empty(&self) -> bool {
        self.wants.is_empty() && self.blocks.is_empty() && self.presences.is_empty()
    }

    /// About how many bytes the message takes (its block data, and ~40 bytes a want or presence).
    pub fn byte_len(&self) -> usize {
        self.block_bytes() + 40 * (self.wants.len() + self.presences.len())
    }

    fn block_bytes(&self) -> usize {
        self.blocks.iter().map(|b| b.data().len()).sum()
    }

    /// Protobuf encoding (1.2.0: blocks as prefix + data).
    pub fn encode(&self) -> Vec<u8> {
        let wantlist = (!self.wants.is_empty() || self.full).then(|| pb::message::Wantlist {
            entries: self
                .wants
                .iter()
                .map(|w| pb::message::wantlist::Entry {
                    block: w.cid.to_bytes().into(),
                    priority: w.priority,
                    cancel: w.cancel,
                    want_type: match w.want_type {
                        WantType::Block => pb::message::wantlist::WantType::Block as i32,
                        WantType::Have => pb::message::wantlist::WantType::Have as i32,
                    },
                    send_dont_have: w.send_dont_have,
                })
                .collect(),
            full: self.full,
        });
        pb::Message {
            wantlist,
            blocks: Vec::new(),
            payload: self
                .blocks
                .iter()
                .map(|b| pb::message::Block { prefix: prefix(b.cid()).into(), data: b.bytes().clone() })
                .collect(),
            block_presences: self
                .presences
                .iter()
                .map(|(c, p)| pb::message::BlockPresence {
                    cid: c.to_bytes().into(),
                    r#type: match p {
                        Presence::Have => pb::message::BlockPresenceType::Have as i32,
                        Presence::DontHave => pb::message::BlockPresenceType::DontHave as i32,
                    },
                })
                .collect(),
            pending_bytes: 0,
        }
        .encode_to_vec()
    }

    /// Decodes a message (already bounded in size by the framing).
    ///
    /// The blocks are slices of `bytes`, not copies, when they make most of it; otherwise they
    /// are copied, so that a small block never keeps a large message alive.
    pub fn decode(bytes: impl Into<bytes::Bytes>) -> Result<Self, Error> {
        let bytes = bytes.into();
        let len = bytes.len();
        let m = pb::Message::decode(bytes).map_err(|e| Error::Decode(e.to_string()))?;
        let entries = m.wantlist.as_ref().map_or(0, |w| w.entries.len());
        if entries > MAX_ENTRIES {
            return Err(Error::TooMany(entries));
        }
        if m.payload.len() + m.blocks.len() > MAX_BLOCKS || m.block_presences.len() > MAX_ENTRIES {
            return Err(Error::TooMany(m.payload.len() + m.blocks.len() + m.block_presences.len()));
        }
        let mut out = Message { full: m.wantlist.as_ref().is_some_and(|w| w.full), ..Default::default() };
        for e in m.wantlist.map(|w| w.entries).unwrap_or_default() {
            let cid = Cid::try_from(&e.block[..]).map_err(|e| Error::Decode(format!("want CID: {e}")))?;
            let want_type = if e.want_type == pb::message::wantlist::WantType::Have as i32 {
                WantType::Have
            } else {
                WantType::Block
            };
            out.wants.push(Want {
                cid,
                priority: e.priority,
                cancel: e.cancel,
                want_type,
                send_dont_have: e.send_dont_have,
            });
        }
        for data in m.blocks {
            // Bitswap 1.0.0: CIDv0 (dag-pb, sha2-256) of the data.
            if data.len() > MAX_BLOCK_SIZE {
                return Err(Error::Decode(format!("block of {} bytes", data.len())));
            }
            let c = Cid::new_v0(Code::Sha2_256.digest(&data)).map_err(|e| Error::Decode(e.to_string()))?;
            out.blocks.push(Block::computed(c, data));
        }
        for b in m.payload {
            if b.data.len() > MAX_BLOCK_SIZE {
                return Err(Error::Decode(format!("block of {} bytes", b.data.len())));
            }
            match cid_of(&b.prefix, &b.data)? {
                Some(c) => out.blocks.push(Block::computed(c, b.data)),
                None => out.unsupported_blocks += 1,
            }
        }
        for p in m.block_presences {
            let c = Cid::try_from(&p.cid[..]).map_err(|e| Error::Decode(format!("presence CID: {e}")))?;
            let presence = if p.r#type == pb::message::BlockPresenceType::DontHave as i32 {
                Presence::DontHave
            } else {
                Presence::Have
            };
            out.presences.push((c, presence));
        }
        if out.block_bytes() < len / 2 {
            for b in &mut out.blocks {
                *b = Block::computed(*b.cid(), bytes::Bytes::copy_from_slice(b.data()));
            }
        }
        Ok(out)
    }
}

/// A CID prefix: version, codec, multihash code, digest length (varints).
fn prefix(c: &Cid) -> Vec<u8> {
    let mut out = Vec::with_capacity(8);
    for v in [u64::from(c.version()), c.codec(), c.hash().code(), u64::from(c.hash().size())] {
        let mut buf = unsigned_varint::encode::u64_buffer();
        out.extend_from_slice(unsigned_varint::encode::u64(v, &mut buf));
    }
    out
}

/// The CID of `data` under `prefix`; None for a hash function we do not support.
fn cid_of(prefix: &[u8], data: &[u8]) -> Result<Option<Cid>, Error> {
    let mut rest = prefix;
    let mut next = || -> Result<u64, Error> {
        let (v, r) = unsigned_varint::decode::u64(rest).map_err(|e| Error::Decode(format!("prefix: {e}")))?;
        rest = r;
        Ok(v)
    };
    let (version, codec, code, len) = (next()?, next()?, next()?, next()?);
    if code != cid::SHA2_256 || len != 32 {
        return Ok(None);
    }
    let mh = Code::Sha2_256.digest(data);
    let c = match version {
        0 if codec == cid::DAG_PB => Cid::new_v0(mh).map_err(|e| Error::Decode(e.to_string()))?,
        1 => Cid::new_v1(codec, mh),
        v => return Err(Error::Decode(format!("CID version {v} with codec {codec:#x}"))),
    };
    Ok(Some(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_are_slices_of_the_message_unless_they_are_a_small_part_of_it() {
        let within = |b: &Block, buf: &bytes::Bytes| {
            let (p, start) = (b.data().as_ptr() as usize, buf.as_ptr() as usize);
            p >= start && p < start + buf.len()
        };
        let big = Block::verify(cid::raw(&[3; 100_000]), vec![3; 100_000]).unwrap();
        let buf = bytes::Bytes::from(Message { blocks: vec![big], ..Default::default() }.encode());
        let m = Message::decode(buf.clone()).unwrap();
        assert!(within(&m.blocks[0], &buf), "a block that is most of the message is not copied");

        let small = Block::verify(cid::raw(b"tiny"), b"tiny".to_vec()).unwrap();
        let wants = (0..2000u32)
            .map(|i| Want {
                cid: cid::raw(&i.to_be_bytes()),
                priority: 1,
                cancel: false,
                want_type: WantType::Block,
                send_dont_have: false,
            })
            .collect();
        let buf = bytes::Bytes::from(Message { wants, blocks: vec![small], ..Default::default() }.encode());
        let m = Message::decode(buf.clone()).unwrap();
        assert_eq!(m.blocks[0].data(), b"tiny");
        assert!(!within(&m.blocks[0], &buf), "a small block does not keep the whole message alive");
    }

    #[test]
    fn round_trip() {
        let b = Block::verify(cid::raw(b"leaf"), b"leaf".to_vec()).unwrap();
        let m = Message {
            wants: vec![Want {
                cid: cid::raw(b"x"),
                priority: 5,
                cancel: false,
                want_type: WantType::Have,
                send_dont_have: true,
            }],
            full: false,
            blocks: vec![b],
            presences: vec![(cid::raw(b"y"), Presence::DontHave)],
            unsupported_blocks: 0,
        };
        assert_eq!(Message::decode(m.encode()).unwrap(), m);
    }

    #[test]
    fn a_block_with_wrong_bytes_gets_the_cid_of_its_bytes() {
        let wanted = cid::raw(b"the real bytes");
        let lie = pb::Message {
            payload: vec![pb::message::Block {
                prefix: prefix(&wanted).into(),
                data: b"other bytes".to_vec().into(),
            }],
            ..Default::default()
        };
        let m = Message::decode(lie.encode_to_vec()).unwrap();
        assert_eq!(m.blocks.len(), 1);
        assert_ne!(m.blocks[0].cid(), &wanted);
        assert_eq!(m.blocks[0].cid(), &cid::raw(b"other bytes"));
    }

    #[test]
    fn limits_and_garbage() {
        assert!(Message::decode(vec![0xff, 0xff]).is_err());
        let many = pb::Message {
            wantlist: Some(pb::message::Wantlist {
                entries: vec![
                    pb::message::wantlist::Entry {
                        block: cid::raw(b"x").to_bytes().into(),
                        ..Default::default()
                    };
                    MAX_ENTRIES + 1
                ],
                full: false,
            }),
            ..Default::default()
        };
        assert!(matches!(Message::decode(many.encode_to_vec()), Err(Error::TooMany(_))));
        let big = pb::Message { blocks: vec![vec![0u8; MAX_BLOCK_SIZE + 1].into()], ..Default::default() };
        assert!(Message::decode(big.encode_to_vec()).is_err());
    }
}
