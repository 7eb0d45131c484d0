//! dag-pb nodes with UnixFS data: canonical encoding (Links before Data) and bounded decoding.
//!
//! Byte layout matches `@ipld/dag-pb` and `ipfs-unixfs` as Helia uses them: each link is
//! `Hash, Name (""), Tsize`; UnixFS `Data` is `Type, [Data], filesize, blocksizes...` with
//! unpacked blocksizes.

use archive_proto::pb::unixfs as pb;
use prost::encoding::{encode_key, encode_varint, WireType};
use prost::Message as _;

use super::cid::Cid;

/// Largest number of links we accept in one node (a 2 MiB block of the smallest links).
pub const MAX_LINKS: usize = 50_000;

/// Errors of decoding a dag-pb node.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    #[error("malformed dag-pb node: {0}")]
    Node(String),
    #[error("malformed UnixFS data: {0}")]
    UnixFs(String),
    #[error("dag-pb node has {0} links, more than {MAX_LINKS}")]
    TooManyLinks(usize),
    #[error("unsupported UnixFS type {0} (only files)")]
    NotAFile(i32),
}

/// A link to a child block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Link {
    pub cid: Cid,
    /// Cumulative size of the child's DAG (its blocks' bytes).
    pub tsize: u64,
}

/// A decoded UnixFS file node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileNode {
    pub links: Vec<Link>,
    /// File bytes held in the node itself (kubo's dag-pb leaves), before the children's.
    pub data: Vec<u8>,
    pub filesize: Option<u64>,
    pub blocksizes: Vec<u64>,
}

/// Encodes a UnixFS file node with no inline data (an internal node of a raw-leaf DAG).
pub fn encode_file_node(links: &[Link], blocksizes: &[u64]) -> Vec<u8> {
    let filesize: u64 = blocksizes.iter().sum();
    // UnixFS Data: Type = File (2), filesize, blocksizes (unpacked).
    let mut data = Vec::with_capacity(4 + 11 * (blocksizes.len() + 1));
    encode_key(1, WireType::Varint, &mut data);
    encode_varint(pb::data::DataType::File as u64, &mut data);
    encode_key(3, WireType::Varint, &mut data);
    encode_varint(filesize, &mut data);
    for b in blocksizes {
        encode_key(4, WireType::Varint, &mut data);
        encode_varint(*b, &mut data);
    }

    // Name "" is present (Helia and kubo write it).
    encode_node(links.iter().map(|l| (&l.cid, "", l.tsize)), links.len(), &data)
}

/// Encodes a dag-pb node canonically: each link `Hash, Name, Tsize` in the order given, then
/// `Data`. (`count`: the number of links, for the allocation.)
pub(crate) fn encode_node<'a>(
    links: impl Iterator<Item = (&'a Cid, &'a str, u64)>,
    count: usize,
    data: &[u8],
) -> Vec<u8> {
    let mut out = Vec::with_capacity(count * 48 + data.len() + 8);
    let mut link_buf = Vec::with_capacity(64);
    for (cid, name, tsize) in links {
        link_buf.clear();
        let hash = cid.to_bytes();
        encode_key(1, WireType::LengthDelimited, &mut link_buf);
        encode_varint(hash.len() as u64, &mut link_buf);
        link_buf.extend_from_slice(&hash);
        encode_key(2, WireType::LengthDelimited, &mut link_buf);
        encode_varint(name.len() as u64, &mut link_buf);
        link_buf.extend_from_slice(name.as_bytes());
        encode_key(3, WireType::Varint, &mut link_buf);
        encode_varint(tsize, &mut link_buf);

        encode_key(2, WireType::LengthDelimited, &mut out);
        encode_varint(link_buf.len() as u64, &mut out);
        out.extend_from_slice(&link_buf);
    }
    encode_key(1, WireType::LengthDelimited, &mut out);
    encode_varint(data.len() as u64, &mut out);
    out.extend_from_slice(data);
    out
}

/// Decodes a dag-pb node holding a UnixFS file (or raw) entry.
pub fn decode_file_node(bytes: &[u8]) -> Result<FileNode, Error> {
    let node = pb::PbNode::decode(bytes).map_err(|e| Error::Node(e.to_string()))?;
    if node.links.len() > MAX_LINKS {
        return Err(Error::TooManyLinks(node.links.len()));
    }
    let links = node
        .links
        .iter()
        .map(|l| {
            let hash = l.hash.as_ref().ok_or_else(|| Error::Node("link without hash".into()))?;
            let cid = Cid::try_from(&hash[..]).map_err(|e| Error::Node(format!("link hash: {e}")))?;
            Ok(Link { cid, tsize: l.tsize.unwrap_or(0) })
        })
        .collect::<Result<Vec<_>, Error>>()?;
    let raw = node.data.as_ref().ok_or_else(|| Error::UnixFs("node without data".into()))?;
    let d = pb::Data::decode(&raw[..]).map_err(|e| Error::UnixFs(e.to_string()))?;
    let file = pb::data::DataType::File as i32;
    let raw_type = pb::data::DataType::Raw as i32;
    if d.r#type != file && d.r#type != raw_type {
        return Err(Error::NotAFile(d.r#type));
    }
    if !d.blocksizes.is_empty() && d.blocksizes.len() != links.len() {
        return Err(Error::UnixFs(format!("{} blocksizes for {} links", d.blocksizes.len(), links.len())));
    }
    if d.blocksizes.is_empty() && !links.is_empty() {
        return Err(Error::UnixFs("links without blocksizes".into()));
    }
    Ok(FileNode {
        links,
        data: d.data.map(|b| b.to_vec()).unwrap_or_default(),
        filesize: d.filesize,
        blocksizes: d.blocksizes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blocks::cid;

    #[test]
    fn encode_decode_round_trip_and_canonical_order() {
        let links = vec![Link { cid: cid::raw(b"a"), tsize: 1 }, Link { cid: cid::raw(b"bc"), tsize: 2 }];
        let bytes = encode_file_node(&links, &[1, 2]);
        // Links (field 2, tag 0x12) come first, Data (field 1, tag 0x0a) last.
        assert_eq!(bytes[0], 0x12);
        let n = decode_file_node(&bytes).unwrap();
        assert_eq!(n.links, links);
        assert_eq!(n.filesize, Some(3));
        assert_eq!(n.blocksizes, vec![1, 2]);
        // prost decodes fields in any order, and encodes the same content identically on decode.
        let pbn = pb::PbNode::decode(&bytes[..]).unwrap();
        assert_eq!(pbn.links.len(), 2);
    }

    #[test]
    fn malformed_nodes_are_refused() {
        assert!(decode_file_node(&[0xff]).is_err());
        // A node without data.
        let n = pb::PbNode { links: vec![], data: None };
        assert!(matches!(decode_file_node(&n.encode_to_vec()), Err(Error::UnixFs(_))));
        // A directory.
        let d = pb::Data { r#type: 1, ..Default::default() };
        let n = pb::PbNode { links: vec![], data: Some(d.encode_to_vec().into()) };
        assert_eq!(decode_file_node(&n.encode_to_vec()), Err(Error::NotAFile(1)));
        // Blocksizes that do not match the links.
        let links = vec![Link { cid: cid::raw(b"a"), tsize: 1 }];
        let bytes = encode_file_node(&links, &[1, 2]);
        assert!(matches!(decode_file_node(&bytes), Err(Error::UnixFs(_))));
    }
}
