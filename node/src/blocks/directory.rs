//! Flat UnixFS directories (one dag-pb block), byte for byte as Helia builds them with
//! `addDirectory()` and one `cp(entry, dir, name)` per entry: links sorted by name, each
//! `Hash, Name, Tsize` with `Tsize` the cumulative size of the entry's DAG, and UnixFS `Data`
//! `{Type: Directory}` with no mode or mtime. CIDv1, sha2-256.
//!
//! Helia (like kubo) turns a directory into a HAMT shard once its links' names and CIDs pass
//! [`SHARD_THRESHOLD_BYTES`]; we build flat directories only and refuse bigger ones, so every
//! directory we make has the CID Helia computes for the same entries.

use archive_proto::pb::unixfs as pb;
use prost::Message as _;

use super::cid::{self, Cid};
use super::dag_pb;
use super::Block;

/// Past this many bytes of link names and CIDs, Helia and kubo shard a directory (their
/// `shardSplitThresholdBytes`, 256 KiB). About 2,000 archives with 64-character ids.
pub const SHARD_THRESHOLD_BYTES: usize = 262_144;

/// UnixFS `Data` of a directory without mode or mtime: `Type = Directory`.
const DIRECTORY_DATA: [u8; 2] = [0x08, 0x01];

/// Errors of building and reading directories.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    #[error("directory entry name {0:?} is empty or holds a '/' or a NUL")]
    BadName(String),
    #[error("directory entry {0:?} appears twice")]
    Duplicate(String),
    #[error("directory links take {0} bytes of names and CIDs, past the {SHARD_THRESHOLD_BYTES}-byte shard threshold")]
    TooLarge(usize),
    #[error("malformed directory node: {0}")]
    Node(String),
    #[error("not a flat UnixFS directory (UnixFS type {0})")]
    NotADirectory(i32),
    #[error("directory has no entry {0:?}")]
    Missing(String),
}

/// One entry: a name and the root of its DAG.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub name: String,
    pub cid: Cid,
    /// Cumulative size of the entry's DAG ([`cumulative_size`]).
    pub tsize: u64,
}

/// The directory block holding `entries` (in any order).
pub fn build(mut entries: Vec<Entry>) -> Result<Block, Error> {
    let mut links_bytes = 0usize;
    for e in &entries {
        if e.name.is_empty() || e.name.contains(['/', '\0']) {
            return Err(Error::BadName(e.name.clone()));
        }
        links_bytes += e.name.len() + e.cid.encoded_len();
    }
    if links_bytes > SHARD_THRESHOLD_BYTES {
        return Err(Error::TooLarge(links_bytes));
    }
    // dag-pb orders links by their names' bytes.
    entries.sort_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
    if let Some(w) = entries.windows(2).find(|w| w[0].name == w[1].name) {
        return Err(Error::Duplicate(w[0].name.clone()));
    }
    let bytes = dag_pb::encode_node(
        entries.iter().map(|e| (&e.cid, e.name.as_str(), e.tsize)),
        entries.len(),
        &DIRECTORY_DATA,
    );
    Ok(Block::computed(cid::dag_pb(&bytes), bytes))
}

/// Whether `bytes` (a dag-pb block) is a UnixFS directory.
pub fn is_directory(bytes: &[u8]) -> bool {
    pb::PbNode::decode(bytes)
        .ok()
        .and_then(|n| n.data)
        .and_then(|d| pb::Data::decode(&d[..]).ok())
        .is_some_and(|d| d.r#type == pb::data::DataType::Directory as i32)
}

/// The entries of a flat directory block, in link order (bounded like every dag-pb node).
pub fn read(bytes: &[u8]) -> Result<Vec<Entry>, Error> {
    let node = pb::PbNode::decode(bytes).map_err(|e| Error::Node(e.to_string()))?;
    if node.links.len() > dag_pb::MAX_LINKS {
        return Err(Error::Node(format!("{} links, more than {}", node.links.len(), dag_pb::MAX_LINKS)));
    }
    let data = node.data.as_ref().ok_or_else(|| Error::Node("node without data".into()))?;
    let data = pb::Data::decode(&data[..]).map_err(|e| Error::Node(e.to_string()))?;
    if data.r#type != pb::data::DataType::Directory as i32 {
        return Err(Error::NotADirectory(data.r#type));
    }
    node.links
        .into_iter()
        .map(|l| {
            let hash = l.hash.ok_or_else(|| Error::Node("link without hash".into()))?;
            let cid = Cid::try_from(&hash[..]).map_err(|e| Error::Node(format!("link hash: {e}")))?;
            let name = l.name.ok_or_else(|| Error::Node("link without name".into()))?;
            Ok(Entry { name, cid, tsize: l.tsize.unwrap_or(0) })
        })
        .collect()
}

/// The entry named `name`.
pub fn lookup(bytes: &[u8], name: &str) -> Result<Entry, Error> {
    read(bytes)?.into_iter().find(|e| e.name == name).ok_or_else(|| Error::Missing(name.to_string()))
}

/// The cumulative size of the DAG under a root block, as a parent's link states it: a raw
/// block's length, or a dag-pb node's length plus its links' `Tsize`s.
pub fn cumulative_size(root: &Block) -> Result<u64, Error> {
    if root.cid().codec() != cid::DAG_PB {
        return Ok(root.data().len() as u64);
    }
    let node = pb::PbNode::decode(root.data()).map_err(|e| Error::Node(e.to_string()))?;
    Ok(root.data().len() as u64 + node.links.iter().map(|l| l.tsize.unwrap_or(0)).sum::<u64>())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, data: &[u8]) -> Entry {
        Entry { name: name.into(), cid: cid::raw(data), tsize: data.len() as u64 }
    }

    #[test]
    fn entries_come_back_sorted_by_name_whatever_the_order_given() {
        let dir = build(vec![entry("b", b"2"), entry("index", b"i"), entry("a", b"1")]).unwrap();
        let names: Vec<String> = read(dir.data()).unwrap().into_iter().map(|e| e.name).collect();
        assert_eq!(names, ["a", "b", "index"]);
        let again = build(vec![entry("index", b"i"), entry("a", b"1"), entry("b", b"2")]).unwrap();
        assert_eq!(dir, again);
        assert!(is_directory(dir.data()));
        assert_eq!(lookup(dir.data(), "index").unwrap(), entry("index", b"i"));
        assert_eq!(lookup(dir.data(), "c"), Err(Error::Missing("c".into())));
    }

    #[test]
    fn an_empty_directory_is_the_well_known_one() {
        // `ipfs object new unixfs-dir` as CIDv1.
        let dir = build(vec![]).unwrap();
        assert_eq!(dir.cid().to_string(), "bafybeiczsscdsbs7ffqz55asqdf3smv6klcw3gofszvwlyarci47bgf354");
    }

    #[test]
    fn bad_names_duplicates_and_sharding_sizes_are_refused() {
        for bad in ["", "a/b", "nul\0"] {
            assert_eq!(build(vec![entry(bad, b"x")]), Err(Error::BadName(bad.into())));
        }
        assert_eq!(build(vec![entry("a", b"1"), entry("a", b"2")]), Err(Error::Duplicate("a".into())));
        let many: Vec<Entry> = (0..4000u32).map(|i| entry(&format!("{i:064}"), &i.to_be_bytes())).collect();
        assert!(matches!(build(many), Err(Error::TooLarge(_))));
    }

    #[test]
    fn a_file_node_is_not_a_directory() {
        let file = dag_pb::encode_file_node(&[dag_pb::Link { cid: cid::raw(b"a"), tsize: 1 }], &[1]);
        assert!(!is_directory(&file));
        assert_eq!(read(&file), Err(Error::NotADirectory(2)));
        assert!(read(&[0xff]).is_err());
    }

    #[test]
    fn the_cumulative_size_adds_the_links_to_the_node() {
        let leaf = Block::computed(cid::raw(b"abc"), &b"abc"[..]);
        assert_eq!(cumulative_size(&leaf).unwrap(), 3);
        let bytes = dag_pb::encode_file_node(&[dag_pb::Link { cid: cid::raw(b"abc"), tsize: 3 }], &[3]);
        let node = Block::computed(cid::dag_pb(&bytes), bytes.clone());
        assert_eq!(cumulative_size(&node).unwrap(), bytes.len() as u64 + 3);
    }
}
