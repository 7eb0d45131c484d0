//! CAR v1 files: export of a DAG and verified import.
//!
//! Layout: `varint(len) | DAG-CBOR {roots: [CID], version: 1}`, then per block
//! `varint(len) | CID bytes | block bytes`. Export writes the root first and then the DAG depth
//! first, as Helia does. Import reads the file twice: first every block is hashed against its CID
//! (a CAR with one bad block is refused whole, before anything is stored), then stored.

use std::collections::HashSet;
use std::io::{BufReader, Read, Seek, SeekFrom, Write};

use serde::{Deserialize, Serialize};

use super::cid::Cid;
use super::store::{self, BlockStore};
use super::unixfs::{self, MAX_BLOCK_SIZE};
use super::Block;

/// Largest CAR header we read.
const MAX_HEADER_BYTES: u64 = 64 * 1024;
/// Largest section: a block plus its CID.
const MAX_SECTION_BYTES: u64 = MAX_BLOCK_SIZE as u64 + 256;
/// Largest number of roots in a header.
const MAX_ROOTS: usize = 1024;
/// Blocks stored per batch during import.
const IMPORT_BATCH: usize = 64;

/// Errors of CAR files.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("CAR IO: {0}")]
    Io(#[from] std::io::Error),
    #[error("malformed CAR: {0}")]
    Malformed(String),
    #[error("CAR version {0} is not supported (only 1)")]
    Version(u64),
    #[error("CAR block {index}: {source}")]
    Block { index: u64, source: Box<unixfs::Error> },
    #[error(transparent)]
    Store(#[from] store::Error),
    #[error("block {0} of the DAG is not in the store")]
    Missing(String),
}

#[derive(Serialize, Deserialize)]
struct Header {
    roots: Vec<Cid>,
    version: u64,
}

fn read_varint(r: &mut impl Read) -> Result<Option<u64>, Error> {
    match unsigned_varint::io::read_u64(r) {
        Ok(v) => Ok(Some(v)),
        Err(unsigned_varint::io::ReadError::Io(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            Ok(None)
        }
        Err(unsigned_varint::io::ReadError::Io(e)) => Err(e.into()),
        Err(e) => Err(Error::Malformed(e.to_string())),
    }
}

fn write_varint(w: &mut impl Write, v: u64) -> std::io::Result<()> {
    let mut buf = unsigned_varint::encode::u64_buffer();
    w.write_all(unsigned_varint::encode::u64(v, &mut buf))
}

/// Streams the sections of a CAR v1.
pub struct CarReader<R> {
    r: R,
    roots: Vec<Cid>,
    index: u64,
}

impl<R: Read> CarReader<R> {
    /// Reads and checks the header.
    pub fn new(mut r: R) -> Result<Self, Error> {
        let len = read_varint(&mut r)?.ok_or_else(|| Error::Malformed("empty file".into()))?;
        if len == 0 || len > MAX_HEADER_BYTES {
            return Err(Error::Malformed(format!("header of {len} bytes")));
        }
        let mut buf = vec![0u8; len as usize];
        r.read_exact(&mut buf)?;
        let header: Header =
            serde_ipld_dagcbor::from_slice(&buf).map_err(|e| Error::Malformed(format!("header: {e}")))?;
        if header.version != 1 {
            return Err(Error::Version(header.version));
        }
        if header.roots.is_empty() || header.roots.len() > MAX_ROOTS {
            return Err(Error::Malformed(format!("{} roots", header.roots.len())));
        }
        Ok(Self { r, roots: header.roots, index: 0 })
    }

    /// The roots named in the header.
    pub fn roots(&self) -> &[Cid] {
        &self.roots
    }

    /// The next block, verified against its CID.
    pub fn next_block(&mut self) -> Result<Option<Block>, Error> {
        let Some(len) = read_varint(&mut self.r)? else { return Ok(None) };
        if len == 0 || len > MAX_SECTION_BYTES {
            return Err(Error::Malformed(format!("section {} of {len} bytes", self.index)));
        }
        let mut section = vec![0u8; len as usize];
        self.r.read_exact(&mut section)?;
        let mut cursor = std::io::Cursor::new(&section);
        let cid = Cid::read_bytes(&mut cursor)
            .map_err(|e| Error::Malformed(format!("section {}: CID: {e}", self.index)))?;
        let data = section.split_off(cursor.position() as usize);
        let block =
            Block::verify(cid, data).map_err(|e| Error::Block { index: self.index, source: Box::new(e) })?;
        self.index += 1;
        Ok(Some(block))
    }
}

/// What an import or export did.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct CarStats {
    pub roots: Vec<String>,
    pub blocks: u64,
    pub bytes: u64,
}

/// Writes the DAG under `root` from `store` as a CAR v1; every block must be present.
pub fn export(store: &BlockStore, root: &Cid, out: &mut impl Write) -> Result<CarStats, Error> {
    let header = serde_ipld_dagcbor::to_vec(&Header { roots: vec![*root], version: 1 })
        .map_err(|e| Error::Malformed(e.to_string()))?;
    write_varint(out, header.len() as u64)?;
    out.write_all(&header)?;
    let mut stats = CarStats { roots: vec![root.to_string()], ..Default::default() };
    let mut stack = vec![*root];
    let mut seen = HashSet::new();
    while let Some(cid) = stack.pop() {
        if !seen.insert(cid) {
            continue;
        }
        let data = store.get(&cid)?.ok_or_else(|| Error::Missing(cid.to_string()))?;
        let cid_bytes = cid.to_bytes();
        write_varint(out, (cid_bytes.len() + data.len()) as u64)?;
        out.write_all(&cid_bytes)?;
        out.write_all(&data)?;
        stats.blocks += 1;
        stats.bytes += data.len() as u64;
        let children = unixfs::children(&cid, &data)
            .map_err(|e| Error::Block { index: stats.blocks, source: Box::new(e) })?;
        stack.extend(children.into_iter().rev());
    }
    out.flush()?;
    Ok(stats)
}

/// Imports a CAR v1: verifies every block first, then stores them, pins each root and marks it
/// complete when its whole DAG is present.
pub fn import<R: Read + Seek>(store: &BlockStore, mut file: R) -> Result<CarStats, Error> {
    // Pass 1: every block must match its CID.
    let mut stats = CarStats::default();
    {
        let mut reader = CarReader::new(BufReader::new(&mut file))?;
        stats.roots = reader.roots().iter().map(|c| c.to_string()).collect();
        while let Some(block) = reader.next_block()? {
            stats.blocks += 1;
            stats.bytes += block.data().len() as u64;
        }
    }
    // Pass 2: store.
    file.seek(SeekFrom::Start(0))?;
    let mut reader = CarReader::new(BufReader::new(&mut file))?;
    let roots = reader.roots().to_vec();
    let mut batch: Vec<Block> = Vec::with_capacity(IMPORT_BATCH);
    loop {
        let next = reader.next_block()?;
        let done = next.is_none();
        if let Some(b) = next {
            batch.push(b);
        }
        if batch.len() == IMPORT_BATCH || (done && !batch.is_empty()) {
            store.put_many(&batch)?;
            batch.clear();
        }
        if done {
            break;
        }
    }
    for root in &roots {
        store.pin(root)?;
        store.mark_complete_if_whole(root)?;
    }
    store.flush()?;
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blocks::unixfs::{import as add, Layout};
    use std::io::Cursor;

    fn filled(data: &[u8]) -> (BlockStore, Cid) {
        let store = BlockStore::memory(Default::default());
        let mut sink = |b: Block| store.put(&b).map(|_| ()).map_err(|e| unixfs::Error::Sink(e.to_string()));
        let root = add(&mut &data[..], Layout { chunk_size: 500, max_links: 3 }, &mut sink).unwrap().root;
        (store, root)
    }

    #[test]
    fn export_import_round_trip() {
        let data: Vec<u8> = (0..7_000u32).map(|i| (i % 253) as u8).collect();
        let (store, root) = filled(&data);
        let mut car = Vec::new();
        let out = export(&store, &root, &mut car).unwrap();
        let other = BlockStore::memory(Default::default());
        let got = import(&other, Cursor::new(&car)).unwrap();
        assert_eq!(got, out);
        assert!(other.is_complete(&root).unwrap());
        let back = unixfs::Exporter::new(root, |c: &Cid| other.get(c).map_err(|e| e.to_string()))
            .read_all()
            .unwrap();
        assert_eq!(back, data);
    }

    #[test]
    fn a_car_with_one_bad_block_is_refused_whole() {
        let data: Vec<u8> = (0..3_000u32).map(|i| (i % 253) as u8).collect();
        let (store, root) = filled(&data);
        let mut car = Vec::new();
        export(&store, &root, &mut car).unwrap();
        let last = car.len() - 1;
        car[last] ^= 0xff; // inside the last block's bytes
        let other = BlockStore::memory(Default::default());
        let err = import(&other, Cursor::new(&car)).unwrap_err();
        assert!(matches!(err, Error::Block { .. }), "{err}");
        assert_eq!(other.used_bytes(), 0, "nothing stored");
        assert!(other.pins().unwrap().is_empty());
    }

    #[test]
    fn helia_car_imports() {
        let car =
            std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/helia_1mib_plus_1.car")).unwrap();
        let store = BlockStore::memory(Default::default());
        let stats = import(&store, Cursor::new(&car)).unwrap();
        assert_eq!(
            stats.roots,
            vec!["bafybeigikmcd3gwrxv2abi6cf5iyjvoajaoshzmwzpydne2h5rmwavugkm".to_string()]
        );
        assert_eq!(stats.blocks, 3);
        let root: Cid = stats.roots[0].parse().unwrap();
        let data = unixfs::Exporter::new(root, |c: &Cid| store.get(c).map_err(|e| e.to_string()))
            .read_all()
            .unwrap();
        assert_eq!(data.len(), 1_048_577);
        assert_eq!(
            hex::encode(crate::crypto::sha256(&[&data])),
            "e50909b6f3dac8a9f6ea81c6ea1f3654da55ad2ba94774e34de7e1f29ff8b268"
        );
        // Our export of the same DAG is byte-identical to Helia's CAR.
        let mut ours = Vec::new();
        export(&store, &root, &mut ours).unwrap();
        assert_eq!(ours, car);
    }

    #[test]
    fn malformed_headers_are_refused() {
        for bad in [&b""[..], &[0x05, 1, 2][..], &[0xff, 0xff, 0xff, 0xff, 0x0f][..]] {
            assert!(CarReader::new(Cursor::new(bad)).is_err());
        }
        let header =
            serde_ipld_dagcbor::to_vec(&Header { roots: vec![crate::blocks::cid::raw(b"x")], version: 2 })
                .unwrap();
        let mut car = Vec::new();
        write_varint(&mut car, header.len() as u64).unwrap();
        car.extend(header);
        assert!(matches!(CarReader::new(Cursor::new(&car)), Err(Error::Version(2))));
    }
}
