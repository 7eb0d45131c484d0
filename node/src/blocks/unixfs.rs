//! UnixFS files as IPFS builds them with the `unixfs-v1-2025` profile: fixed-size chunks as raw
//! leaves, a balanced tree of dag-pb nodes, CIDv1 sha2-256.
//!
//! The [`Importer`] is streaming: it holds at most one chunk plus one pending link list per tree
//! level, and hands every finished block to a sink. Its batching mirrors Helia's balanced layout
//! exactly: leaves are grouped `max_links` at a time into nodes (a trailing group of one leaf
//! still makes a node), the resulting nodes are grouped again, and so on until one node is left;
//! a file of a single chunk is that raw leaf itself.
//!
//! The [`Exporter`] reads a file back from its root through a block source, hashing every block
//! against its CID and checking `filesize` and `blocksizes` against what arrives.

use std::io::Read;

use super::cid::{self, Cid};
use super::dag_pb::{self, Link};
use super::Block;

/// Default chunk size of the profile: 1 MiB.
pub const DEFAULT_CHUNK_SIZE: usize = 1024 * 1024;
/// Default links per node of the profile.
pub const DEFAULT_MAX_LINKS: usize = 1024;
/// Largest block we build, store or accept from a peer (Bitswap's limit).
pub const MAX_BLOCK_SIZE: usize = 2 * 1024 * 1024;
/// Deepest tree the exporter follows (a 1024-ary tree of depth 8 is beyond any disk).
pub const MAX_DEPTH: usize = 32;

/// Errors of importing and exporting UnixFS files.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("chunk size must be between 1 and {MAX_BLOCK_SIZE} bytes, got {0}")]
    ChunkSize(usize),
    #[error("links per node must be at least 2, got {0}")]
    MaxLinks(usize),
    #[error("reading input: {0}")]
    Io(#[from] std::io::Error),
    #[error("block sink: {0}")]
    Sink(String),
    #[error("block {0} is missing")]
    Missing(Cid),
    #[error("block {0} does not match its CID")]
    HashMismatch(Cid),
    #[error("block {cid}: {source}")]
    Node { cid: String, source: dag_pb::Error },
    #[error("directory {cid}: {reason}")]
    Directory { cid: String, reason: String },
    #[error("unsupported CID {0}: only raw and dag-pb blocks with sha2-256")]
    Unsupported(Cid),
    #[error("block {cid} is {size} bytes, over the {MAX_BLOCK_SIZE}-byte limit")]
    TooLarge { cid: Cid, size: usize },
    #[error("DAG deeper than {MAX_DEPTH} levels")]
    TooDeep,
    #[error("size mismatch under {cid}: expected {expected} bytes, got {got}")]
    SizeMismatch { cid: String, expected: u64, got: u64 },
    #[error("block source: {0}")]
    Source(String),
}

/// Layout parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    pub chunk_size: usize,
    pub max_links: usize,
}

impl Default for Layout {
    fn default() -> Self {
        Self { chunk_size: DEFAULT_CHUNK_SIZE, max_links: DEFAULT_MAX_LINKS }
    }
}

impl Layout {
    /// Checks the parameters.
    pub fn validate(&self) -> Result<(), Error> {
        if self.chunk_size == 0 || self.chunk_size > MAX_BLOCK_SIZE {
            return Err(Error::ChunkSize(self.chunk_size));
        }
        if self.max_links < 2 {
            return Err(Error::MaxLinks(self.max_links));
        }
        Ok(())
    }
}

/// A finished item of one tree level: its link and the file bytes under it.
#[derive(Clone, Debug)]
struct Item {
    link: Link,
    filesize: u64,
}

/// Where finished blocks go.
pub type BlockSink<'a> = dyn FnMut(Block) -> Result<(), Error> + 'a;

/// Result of an import.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Imported {
    pub root: Cid,
    pub size: u64,
    pub blocks: u64,
}

/// Streaming UnixFS importer.
pub struct Importer<'a> {
    layout: Layout,
    sink: &'a mut BlockSink<'a>,
    chunk: Vec<u8>,
    /// `levels[i]`: pending items of level i (leaves at 0), fewer than `max_links`.
    levels: Vec<Vec<Item>>,
    /// Items ever produced per level.
    produced: Vec<u64>,
    size: u64,
    blocks: u64,
}

impl<'a> Importer<'a> {
    /// An importer that hands blocks to `sink`.
    pub fn new(layout: Layout, sink: &'a mut BlockSink<'a>) -> Result<Self, Error> {
        layout.validate()?;
        Ok(Self {
            layout,
            sink,
            chunk: Vec::with_capacity(layout.chunk_size),
            levels: Vec::new(),
            produced: Vec::new(),
            size: 0,
            blocks: 0,
        })
    }

    /// Feeds file bytes.
    pub fn write(&mut self, mut bytes: &[u8]) -> Result<(), Error> {
        while !bytes.is_empty() {
            let take = (self.layout.chunk_size - self.chunk.len()).min(bytes.len());
            self.chunk.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
            if self.chunk.len() == self.layout.chunk_size {
                self.flush_chunk()?;
            }
        }
        Ok(())
    }

    /// Reads `reader` to the end.
    pub fn read_from(&mut self, reader: &mut impl Read) -> Result<(), Error> {
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            match reader.read(&mut buf) {
                Ok(0) => return Ok(()),
                Ok(n) => self.write(&buf[..n])?,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
    }

    fn emit(&mut self, cid: Cid, bytes: Vec<u8>) -> Result<(), Error> {
        self.blocks += 1;
        (self.sink)(Block::computed(cid, bytes))
    }

    fn flush_chunk(&mut self) -> Result<(), Error> {
        let data = std::mem::replace(&mut self.chunk, Vec::with_capacity(self.layout.chunk_size));
        let len = data.len() as u64;
        self.size += len;
        let cid = cid::raw(&data);
        self.emit(cid, data)?;
        self.push(0, Item { link: Link { cid, tsize: len }, filesize: len })
    }

    fn push(&mut self, level: usize, item: Item) -> Result<(), Error> {
        if self.levels.len() <= level {
            self.levels.resize_with(level + 1, Vec::new);
            self.produced.resize(level + 1, 0);
        }
        self.levels[level].push(item);
        self.produced[level] += 1;
        if self.levels[level].len() == self.layout.max_links {
            let batch = std::mem::take(&mut self.levels[level]);
            let node = self.reduce(batch)?;
            self.push(level + 1, node)?;
        }
        Ok(())
    }

    /// Builds the node over `items`.
    fn reduce(&mut self, items: Vec<Item>) -> Result<Item, Error> {
        let links: Vec<Link> = items.iter().map(|i| i.link.clone()).collect();
        let sizes: Vec<u64> = items.iter().map(|i| i.filesize).collect();
        let bytes = dag_pb::encode_file_node(&links, &sizes);
        let tsize = bytes.len() as u64 + links.iter().map(|l| l.tsize).sum::<u64>();
        let filesize = sizes.iter().sum();
        let cid = cid::dag_pb(&bytes);
        self.emit(cid, bytes)?;
        Ok(Item { link: Link { cid, tsize }, filesize })
    }

    /// Ends the file and returns its root.
    pub fn finish(mut self) -> Result<Imported, Error> {
        // The last (possibly empty) chunk: an empty file is one empty raw leaf.
        if !self.chunk.is_empty() || self.produced.first().copied().unwrap_or(0) == 0 {
            self.flush_chunk()?;
        }
        let mut level = 0;
        loop {
            if self.produced[level] == 1 {
                // Only one item ever at this level: it is the root.
                let root = self.levels[level]
                    .pop()
                    .expect("a lone item stays pending: only a full batch of max_links >= 2 moves up")
                    .link
                    .cid;
                return Ok(Imported { root, size: self.size, blocks: self.blocks });
            }
            let pending = std::mem::take(&mut self.levels[level]);
            if !pending.is_empty() {
                let node = self.reduce(pending)?;
                self.push(level + 1, node)?;
            }
            level += 1;
        }
    }
}

/// Imports `reader` with `layout`, handing blocks to `sink`.
pub fn import(
    reader: &mut impl Read,
    layout: Layout,
    sink: &mut dyn FnMut(Block) -> Result<(), Error>,
) -> Result<Imported, Error> {
    let mut imp = Importer::new(layout, sink)?;
    imp.read_from(reader)?;
    imp.finish()
}

/// The root CID of `bytes` under the default layout, without storing anything.
pub fn root_cid(bytes: &[u8]) -> Cid {
    let mut sink = |_: Block| Ok(());
    import(&mut &bytes[..], Layout::default(), &mut sink)
        .expect("in-memory import with the default layout")
        .root
}

/// Checks that `bytes` hash to `cid` (sha2-256; raw or dag-pb) and are within the size limit.
pub fn verify_block(cid: &Cid, bytes: &[u8]) -> Result<(), Error> {
    if bytes.len() > MAX_BLOCK_SIZE {
        return Err(Error::TooLarge { cid: *cid, size: bytes.len() });
    }
    let mh = cid.hash();
    if mh.code() != cid::SHA2_256 || !matches!(cid.codec(), cid::RAW | cid::DAG_PB) {
        return Err(Error::Unsupported(*cid));
    }
    if crate::crypto::sha256(&[bytes])[..] != mh.digest()[..] {
        return Err(Error::HashMismatch(*cid));
    }
    Ok(())
}

/// Children of a block that must also be present for its DAG to be whole (empty for raw): a
/// file node's links, or a flat directory's entries.
pub fn children(cid: &Cid, bytes: &[u8]) -> Result<Vec<Cid>, Error> {
    if cid.codec() != cid::DAG_PB {
        return Ok(Vec::new());
    }
    if super::directory::is_directory(bytes) {
        let entries = super::directory::read(bytes)
            .map_err(|e| Error::Directory { cid: cid.to_string(), reason: e.to_string() })?;
        return Ok(entries.into_iter().map(|e| e.cid).collect());
    }
    let node =
        dag_pb::decode_file_node(bytes).map_err(|source| Error::Node { cid: cid.to_string(), source })?;
    Ok(node.links.into_iter().map(|l| l.cid).collect())
}

/// Reads file bytes back from a DAG, depth first, verifying every block.
pub struct Exporter<F> {
    get: F,
    /// Stack of (cid, expected file bytes under it or None, depth), next on top.
    stack: Vec<(Cid, Option<u64>, usize)>,
    /// File bytes produced so far.
    produced: u64,
    /// Open nodes: (cid, their file bytes, `produced` when opened, depth).
    checks: Vec<(Cid, u64, u64, usize)>,
}

impl<F> Exporter<F>
where
    F: FnMut(&Cid) -> Result<Option<Vec<u8>>, String>,
{
    /// An exporter over a block source.
    pub fn new(root: Cid, get: F) -> Self {
        Self { get, stack: vec![(root, None, 0)], produced: 0, checks: Vec::new() }
    }

    /// The next piece of file bytes, or None at the end.
    pub fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, Error> {
        while let Some((cid, expected, depth)) = self.stack.pop() {
            self.settle_checks(depth)?;
            if depth > MAX_DEPTH {
                return Err(Error::TooDeep);
            }
            let bytes = (self.get)(&cid).map_err(Error::Source)?.ok_or(Error::Missing(cid))?;
            verify_block(&cid, &bytes)?;
            if cid.codec() == cid::RAW {
                self.check_leaf(&cid, expected, bytes.len() as u64)?;
                self.produced += bytes.len() as u64;
                return Ok(Some(bytes));
            }
            let node = dag_pb::decode_file_node(&bytes)
                .map_err(|source| Error::Node { cid: cid.to_string(), source })?;
            let total = node.data.len() as u64 + node.blocksizes.iter().sum::<u64>();
            if let Some(fs) = node.filesize {
                if fs != total {
                    return Err(Error::SizeMismatch { cid: cid.to_string(), expected: fs, got: total });
                }
            }
            if let Some(exp) = expected {
                if exp != total {
                    return Err(Error::SizeMismatch { cid: cid.to_string(), expected: exp, got: total });
                }
            }
            // Checked when the walk leaves this node's subtree.
            self.checks.push((cid, total, self.produced, depth));
            for (link, size) in node.links.iter().zip(node.blocksizes.iter()).rev() {
                self.stack.push((link.cid, Some(*size), depth + 1));
            }
            if !node.data.is_empty() {
                self.produced += node.data.len() as u64;
                return Ok(Some(node.data));
            }
        }
        self.settle_checks(0)?;
        Ok(None)
    }

    fn check_leaf(&self, cid: &Cid, expected: Option<u64>, got: u64) -> Result<(), Error> {
        match expected {
            Some(e) if e != got => Err(Error::SizeMismatch { cid: cid.to_string(), expected: e, got }),
            _ => Ok(()),
        }
    }

    /// Verifies every node whose subtree the walk has left (depth >= the next item's depth).
    fn settle_checks(&mut self, next_depth: usize) -> Result<(), Error> {
        while let Some(&(cid, total, start, depth)) = self.checks.last() {
            if depth < next_depth {
                break;
            }
            self.checks.pop();
            let got = self.produced - start;
            if got != total {
                return Err(Error::SizeMismatch { cid: cid.to_string(), expected: total, got });
            }
        }
        Ok(())
    }

    /// Reads the whole file into memory (tests and small files).
    pub fn read_all(mut self) -> Result<Vec<u8>, Error> {
        let mut out = Vec::new();
        while let Some(c) = self.next_chunk()? {
            out.extend_from_slice(&c);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn import_mem(bytes: &[u8], layout: Layout) -> (Imported, HashMap<Cid, Vec<u8>>) {
        let mut blocks = HashMap::new();
        let mut sink = |b: Block| {
            blocks.insert(*b.cid(), b.into_data().to_vec());
            Ok(())
        };
        let imp = import(&mut &bytes[..], layout, &mut sink).unwrap();
        (imp, blocks)
    }

    fn export(root: Cid, blocks: &HashMap<Cid, Vec<u8>>) -> Result<Vec<u8>, Error> {
        Exporter::new(root, |c: &Cid| Ok(blocks.get(c).cloned())).read_all()
    }

    /// The vectors' generator (see tests-functional/js/cid-vectors.mjs).
    fn xorshift(seed: u32, size: usize) -> Vec<u8> {
        let mut x = seed;
        (0..size)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect()
    }

    #[test]
    fn cids_equal_what_helia_computes() {
        let text =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/unixfs_vectors.json"))
                .expect("vectors file");
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        let vectors = v["vectors"].as_array().unwrap();
        assert!(vectors.len() >= 9);
        for vec in vectors {
            let size = vec["size"].as_u64().unwrap() as usize;
            let bytes = xorshift(vec["seed"].as_u64().unwrap() as u32, size);
            assert_eq!(
                hex::encode(crate::crypto::sha256(&[&bytes])),
                vec["content_sha256"].as_str().unwrap()
            );
            let layout = Layout {
                chunk_size: vec["chunk_size"].as_u64().unwrap() as usize,
                max_links: vec["max_links"].as_u64().unwrap() as usize,
            };
            let (imp, blocks) = import_mem(&bytes, layout);
            let name = vec["name"].as_str().unwrap();
            assert_eq!(imp.root.to_string(), vec["cid"].as_str().unwrap(), "vector {name}");
            assert_eq!(blocks.len() as u64, vec["blocks"].as_u64().unwrap(), "vector {name}");
            assert_eq!(imp.blocks, blocks.len() as u64, "vector {name}: no block emitted twice");
            assert_eq!(export(imp.root, &blocks).unwrap(), bytes, "vector {name}");
        }
    }

    /// A community history's root: Helia's addDirectory() plus one cp() per file.
    #[test]
    fn directories_equal_what_helia_builds() {
        use crate::blocks::directory;
        let text =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/unixfs_vectors.json"))
                .expect("vectors file");
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        let vectors = v["vectors"].as_array().unwrap();
        let dirs = v["directories"].as_array().unwrap();
        assert!(dirs.iter().any(|d| d["links"].as_array().unwrap().len() >= 4));
        for d in dirs {
            let mut entries = Vec::new();
            let links = d["links"].as_array().unwrap();
            for (link, of) in links.iter().zip(d["links_vectors"].as_array().unwrap()) {
                let vec = vectors.iter().find(|x| x["name"] == *of).unwrap();
                let bytes =
                    xorshift(vec["seed"].as_u64().unwrap() as u32, vec["size"].as_u64().unwrap() as usize);
                let (imp, blocks) = import_mem(&bytes, Layout::default());
                assert_eq!(imp.root.to_string(), link["cid"].as_str().unwrap());
                let root = Block::computed(imp.root, blocks[&imp.root].clone());
                let tsize = directory::cumulative_size(&root).unwrap();
                assert_eq!(tsize, link["tsize"].as_u64().unwrap(), "Tsize of {of}");
                entries.push(directory::Entry {
                    name: link["name"].as_str().unwrap().into(),
                    cid: imp.root,
                    tsize,
                });
            }
            // Given in reverse, built sorted.
            entries.reverse();
            let dir = directory::build(entries).unwrap();
            assert_eq!(dir.cid().to_string(), d["cid"].as_str().unwrap(), "directory {}", d["name"]);
            assert_eq!(directory::read(dir.data()).unwrap().len(), links.len());
        }
    }

    #[test]
    fn corrupted_and_truncated_dags_are_detected() {
        let bytes = xorshift(1, 5000);
        let layout = Layout { chunk_size: 256, max_links: 4 };
        let (imp, blocks) = import_mem(&bytes, layout);

        // A leaf with a flipped bit.
        let mut bad = blocks.clone();
        let leaf = *bad.keys().find(|c| c.codec() == cid::RAW).unwrap();
        bad.get_mut(&leaf).unwrap()[0] ^= 1;
        assert!(matches!(export(imp.root, &bad), Err(Error::HashMismatch(c)) if c == leaf));

        // A missing block.
        let mut missing = blocks.clone();
        missing.remove(&leaf);
        assert!(matches!(export(imp.root, &missing), Err(Error::Missing(c)) if c == leaf));

        // A node that lies about its blocksizes (re-hashed, so only the size check can catch it).
        let node_links = vec![Link { cid: leaf, tsize: 256 }];
        let liar = dag_pb::encode_file_node(&node_links, &[300]);
        let liar_cid = cid::dag_pb(&liar);
        let mut lying = blocks.clone();
        lying.insert(liar_cid, liar);
        assert!(matches!(export(liar_cid, &lying), Err(Error::SizeMismatch { .. })));
    }

    /// kubo (0.22 defaults) adds CIDv0 DAGs whose leaves are dag-pb nodes holding the bytes.
    #[test]
    fn reads_kubo_style_cidv0_dags_with_dag_pb_leaves() {
        use archive_proto::pb::unixfs as pb;
        use multihash_codetable::{Code, MultihashDigest};
        use prost::Message as _;

        let data = xorshift(42, 2500);
        let mut blocks = HashMap::new();
        let mut links = Vec::new();
        let mut sizes = Vec::new();
        for chunk in data.chunks(1000) {
            let unixfs = pb::Data {
                r#type: pb::data::DataType::File as i32,
                data: Some(chunk.to_vec().into()),
                filesize: Some(chunk.len() as u64),
                ..Default::default()
            };
            let leaf =
                pb::PbNode { links: vec![], data: Some(unixfs.encode_to_vec().into()) }.encode_to_vec();
            let cid = Cid::new_v0(Code::Sha2_256.digest(&leaf)).unwrap();
            links.push(Link { cid, tsize: leaf.len() as u64 });
            sizes.push(chunk.len() as u64);
            blocks.insert(cid, leaf);
        }
        let root_bytes = dag_pb::encode_file_node(&links, &sizes);
        let root = Cid::new_v0(Code::Sha2_256.digest(&root_bytes)).unwrap();
        blocks.insert(root, root_bytes);
        assert!(root.to_string().starts_with("Qm"));
        assert_eq!(export(root, &blocks).unwrap(), data);
    }

    #[test]
    fn bad_layouts_are_refused() {
        let mut sink = |_: Block| Ok(());
        assert!(matches!(
            import(&mut &b""[..], Layout { chunk_size: 0, max_links: 4 }, &mut sink),
            Err(Error::ChunkSize(0))
        ));
        assert!(matches!(
            import(&mut &b""[..], Layout { chunk_size: 10, max_links: 1 }, &mut sink),
            Err(Error::MaxLinks(1))
        ));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]
        #[test]
        fn export_returns_what_was_imported(size in 0usize..20_000, chunk in 1usize..700, links in 2usize..9, seed in 1u32..1000) {
            let bytes = xorshift(seed, size);
            let layout = Layout { chunk_size: chunk, max_links: links };
            let (imp, blocks) = import_mem(&bytes, layout);
            proptest::prop_assert_eq!(imp.size, size as u64);
            proptest::prop_assert_eq!(export(imp.root, &blocks).unwrap(), bytes.clone());
            // Feeding the bytes in odd pieces gives the same root.
            let mut sink = |_: Block| Ok(());
            let mut imp2 = Importer::new(layout, &mut sink).unwrap();
            for piece in bytes.chunks(37) {
                imp2.write(piece).unwrap();
            }
            proptest::prop_assert_eq!(imp2.finish().unwrap().root, imp.root);
        }
    }
}
