//! Whole files in and out of the block store: `add` (import, store, pin) and `cat` (verified read).

use std::io::{Read, Write};

use super::cid::Cid;
use super::store::{self, BlockStore};
use super::unixfs::{self, Imported, Layout};
use super::Block;

/// Blocks written per synced batch while adding (64 MiB of 1 MiB chunks).
pub const ADD_BATCH: usize = 64;

/// Errors of adding or reading a file.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    UnixFs(#[from] Box<unixfs::Error>),
    #[error(transparent)]
    Store(#[from] store::Error),
    #[error("writing output: {0}")]
    Output(#[source] std::io::Error),
    #[error("file is over {max} bytes")]
    TooLarge { max: usize },
    #[error("{len} bytes at {offset} are past the end of file {root}")]
    PastEnd { root: String, offset: u64, len: usize },
}

impl From<unixfs::Error> for Error {
    fn from(e: unixfs::Error) -> Self {
        Error::UnixFs(Box::new(e))
    }
}

/// Imports `reader` into `store` in synced batches, pins the root and marks it complete.
pub fn add(store: &BlockStore, reader: &mut impl Read, layout: Layout) -> Result<Imported, Error> {
    let mut pending: Vec<Block> = Vec::with_capacity(ADD_BATCH);
    let mut failed = None;
    let mut sink = |b: Block| {
        pending.push(b);
        if pending.len() == ADD_BATCH {
            if let Err(e) = store.put_many(&pending) {
                let msg = e.to_string();
                failed = Some(e);
                return Err(unixfs::Error::Sink(msg));
            }
            pending.clear();
        }
        Ok(())
    };
    let imported = match unixfs::import(reader, layout, &mut sink) {
        Ok(i) => i,
        // Report the store's own error (e.g. quota exceeded), not its string.
        Err(e) => return Err(failed.map_or_else(|| e.into(), Error::Store)),
    };
    store.put_many(&pending)?;
    store.pin(&imported.root)?;
    store.mark_complete_if_whole(&imported.root)?;
    store.flush()?;
    Ok(imported)
}

/// Streams the file under `root` into `out`, verifying every block; returns the bytes written.
pub fn cat(store: &BlockStore, root: Cid, out: &mut impl Write) -> Result<u64, Error> {
    let mut exporter = unixfs::Exporter::new(root, |c: &Cid| store.get(c).map_err(|e| e.to_string()));
    let mut n = 0;
    while let Some(chunk) = exporter.next_chunk()? {
        out.write_all(&chunk).map_err(Error::Output)?;
        n += chunk.len() as u64;
    }
    out.flush().map_err(Error::Output)?;
    Ok(n)
}

/// Reads the file under `root` into memory, verifying every block, refusing one over `max`
/// bytes (checked as the blocks come, whatever size the root declares).
///
/// The buffer grows as a vector does, on purpose: sized up front to a 30 MB archive, it stays
/// under glibc's largest mmap threshold (32 MiB), so after the first such buffer is freed the
/// next ones come from the threads' heaps, which keep them: measured, the member's peak RSS
/// catching up 1 GiB went from 234 MiB to 469 MiB. Grown by doubling, it ends mmapped and goes
/// back to the system when freed.
pub fn cat_vec(store: &BlockStore, root: Cid, max: usize) -> Result<Vec<u8>, Error> {
    let mut out = Vec::new();
    let mut exporter = unixfs::Exporter::new(root, |c: &Cid| store.get(c).map_err(|e| e.to_string()));
    while let Some(chunk) = exporter.next_chunk()? {
        if out.len() + chunk.len() > max {
            return Err(Error::TooLarge { max });
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// A byte range of a file: where a message's encoding lies in an archive, say.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Range {
    pub offset: u64,
    pub len: u32,
}

/// Reads `len` bytes at `offset` of the file under `root`, reading only the blocks that hold
/// them: the walk descends by the nodes' block sizes and reads only the asked-for part of a raw
/// leaf. Blocks are not re-hashed (they were verified when stored): the message store reads its
/// large messages this way from the archives it imported them from.
pub fn read_range(store: &BlockStore, root: Cid, offset: u64, len: usize) -> Result<Vec<u8>, Error> {
    let past_end = || Error::PastEnd { root: root.to_string(), offset, len };
    let end = offset.checked_add(len as u64).ok_or_else(past_end)?;
    let mut out = Vec::with_capacity(len);
    // (block, file offset of its first byte, its file bytes when its parent says, depth); the
    // next in file order on top.
    let mut stack = vec![(root, 0u64, None::<u64>, 0usize)];
    while let Some((cid, start, size, depth)) = stack.pop() {
        if depth > unixfs::MAX_DEPTH {
            return Err(unixfs::Error::TooDeep.into());
        }
        let from = offset.max(start) - start;
        if cid.codec() == super::cid::RAW {
            let bytes = match size {
                Some(size) => {
                    let n = (end.min(start + size) - start).saturating_sub(from) as usize;
                    store.get_part(&cid, from, n)?
                }
                // The root itself: the whole file is this block.
                None => match store.get(&cid)? {
                    Some(b) if end > b.len() as u64 => return Err(past_end()),
                    b => b.map(|b| b[from as usize..end as usize].to_vec()),
                },
            };
            let bytes = bytes.ok_or(unixfs::Error::Missing(cid))?;
            out.extend_from_slice(&bytes[..bytes.len().min(len - out.len())]);
            continue;
        }
        let block = store.get(&cid)?.ok_or(unixfs::Error::Missing(cid))?;
        let node = super::dag_pb::decode_file_node(&block)
            .map_err(|source| unixfs::Error::Node { cid: cid.to_string(), source })?;
        let data_end = start + node.data.len() as u64;
        if depth == 0 && end > data_end + node.blocksizes.iter().sum::<u64>() {
            return Err(past_end());
        }
        if from < node.data.len() as u64 {
            let to = (end.min(data_end) - start) as usize;
            out.extend_from_slice(&node.data[from as usize..to]);
        }
        let mut children = Vec::new();
        let mut child_start = data_end;
        for (link, child_size) in node.links.iter().zip(&node.blocksizes) {
            let child_end = child_start.saturating_add(*child_size);
            if child_start >= end {
                break;
            }
            if child_end > offset {
                children.push((link.cid, child_start, Some(*child_size), depth + 1));
            }
            child_start = child_end;
        }
        stack.extend(children.into_iter().rev());
    }
    if out.len() != len {
        return Err(past_end());
    }
    Ok(out)
}

/// The file under `root` as a stream ([`std::io::BufRead`]), a block at a time, verifying every
/// block, failing past `max` bytes (checked as the blocks come, whatever size the root
/// declares). A failure is an [`std::io::Error`] holding this module's [`Error`].
pub fn reader(store: &BlockStore, root: Cid, max: usize) -> Reader<'_> {
    let get: BlockSource<'_> = Box::new(move |c: &Cid| store.get(c).map_err(|e| e.to_string()));
    Reader { exporter: unixfs::Exporter::new(root, get), chunk: Vec::new(), pos: 0, read: 0, max }
}

type BlockSource<'a> = Box<dyn FnMut(&Cid) -> Result<Option<Vec<u8>>, String> + Send + 'a>;

/// See [`reader`].
pub struct Reader<'a> {
    exporter: unixfs::Exporter<BlockSource<'a>>,
    /// The current block's file bytes, consumed up to `pos`.
    chunk: Vec<u8>,
    pos: usize,
    /// File bytes produced so far.
    read: usize,
    max: usize,
}

impl Error {
    /// This module's error inside an [`std::io::Error`] made by [`Reader`], if it is one.
    pub fn from_io(e: &std::io::Error) -> Option<&Error> {
        e.get_ref().and_then(|inner| inner.downcast_ref::<Error>())
    }
}

impl std::io::BufRead for Reader<'_> {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        while self.pos == self.chunk.len() {
            match self.exporter.next_chunk().map_err(|e| std::io::Error::other(Error::from(e)))? {
                None => return Ok(&[]),
                Some(chunk) => {
                    self.read += chunk.len();
                    if self.read > self.max {
                        return Err(std::io::Error::other(Error::TooLarge { max: self.max }));
                    }
                    (self.chunk, self.pos) = (chunk, 0);
                }
            }
        }
        Ok(&self.chunk[self.pos..])
    }

    fn consume(&mut self, n: usize) {
        self.pos = (self.pos + n).min(self.chunk.len());
    }
}

impl Read for Reader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        use std::io::BufRead;
        let available = self.fill_buf()?;
        let n = available.len().min(buf.len());
        buf[..n].copy_from_slice(&available[..n]);
        self.consume(n);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_then_cat_and_quota_error_is_the_stores() {
        let store = BlockStore::memory(Default::default());
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 241) as u8).collect();
        let layout = Layout { chunk_size: 1000, max_links: 8 };
        let imp = add(&store, &mut &data[..], layout).unwrap();
        assert!(store.is_complete(&imp.root).unwrap());
        let mut out = Vec::new();
        assert_eq!(cat(&store, imp.root, &mut out).unwrap(), data.len() as u64);
        assert_eq!(out, data);

        let small = BlockStore::memory(store::Config { quota: Some(50_000), ..Default::default() });
        let err = add(&small, &mut &data[..], layout).unwrap_err();
        assert!(matches!(err, Error::Store(store::Error::QuotaExceeded { .. })), "{err}");
        assert!(small.pins().unwrap().is_empty());
    }

    #[test]
    fn reader_streams_whole_files_and_fails_past_its_cap() {
        let store = BlockStore::memory(Default::default());
        let data: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        let imp = add(&store, &mut &data[..], Layout { chunk_size: 1000, max_links: 4 }).unwrap();
        let mut out = Vec::new();
        reader(&store, imp.root, data.len()).read_to_end(&mut out).unwrap();
        assert_eq!(out, data);
        let e = reader(&store, imp.root, data.len() - 1).read_to_end(&mut Vec::new()).unwrap_err();
        assert!(matches!(Error::from_io(&e), Some(Error::TooLarge { .. })), "{e}");
        let missing = BlockStore::memory(Default::default());
        let e = reader(&missing, imp.root, data.len()).read_to_end(&mut Vec::new()).unwrap_err();
        assert!(matches!(Error::from_io(&e), Some(Error::UnixFs(_))), "{e}");
    }

    proptest::proptest! {
        #[test]
        fn read_range_reads_what_cat_reads(
            size in 1usize..6_000,
            chunk in 1usize..700,
            links in 2usize..6,
            at in 0usize..6_000,
            len in 0usize..3_000,
        ) {
            let store = BlockStore::memory(Default::default());
            let data: Vec<u8> = (0..size as u32).map(|i| (i.wrapping_mul(2654435761) >> 24) as u8).collect();
            let root = add(&store, &mut &data[..], Layout { chunk_size: chunk, max_links: links }).unwrap().root;
            let got = read_range(&store, root, at as u64, len);
            match data.get(at..at + len) {
                Some(want) => proptest::prop_assert_eq!(got.unwrap(), want),
                None => {
                    let past_end = matches!(got, Err(Error::PastEnd { .. }));
                    proptest::prop_assert!(past_end, "{:?}", got);
                }
            }
        }
    }

    #[test]
    fn read_range_reads_a_one_block_file_and_reports_a_missing_block() {
        // One raw block as the whole file (size unknown to the walk), then a DAG missing a leaf.
        let store = BlockStore::memory(Default::default());
        let data: Vec<u8> = (0..5_000u32).map(|i| (i % 253) as u8).collect();
        let single = add(&store, &mut &data[..], Layout { chunk_size: 10_000, max_links: 4 }).unwrap().root;
        assert_eq!(read_range(&store, single, 4_990, 10).unwrap(), &data[4_990..]);
        let root = add(&store, &mut &data[..], Layout { chunk_size: 100, max_links: 4 }).unwrap().root;
        let partial = BlockStore::memory(Default::default());
        partial.put(&Block::verify(root, store.get(&root).unwrap().unwrap()).unwrap()).unwrap();
        let e = read_range(&partial, root, 0, 10).unwrap_err();
        assert!(matches!(e, Error::UnixFs(ref u) if matches!(**u, unixfs::Error::Missing(_))), "{e}");
    }

    #[test]
    fn cat_vec_reads_whole_files_and_refuses_one_over_its_cap() {
        let store = BlockStore::memory(Default::default());
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 239) as u8).collect();
        let imp = add(&store, &mut &data[..], Layout { chunk_size: 1000, max_links: 8 }).unwrap();
        assert_eq!(cat_vec(&store, imp.root, data.len()).unwrap(), data);
        assert!(matches!(cat_vec(&store, imp.root, data.len() - 1), Err(Error::TooLarge { .. })));
    }
}
