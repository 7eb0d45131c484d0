//! Walks of the DAG under a root: what is missing, and what `stat` reports.

use std::collections::HashSet;

use super::{BlockStore, Error};
use crate::blocks::cid::{self, Cid};
use crate::blocks::{dag_pb, unixfs};

/// What `stat` reports of a root.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Stat {
    pub cid: String,
    /// File size when the DAG is a UnixFS file whose root is local.
    pub size: Option<u64>,
    /// Blocks of the DAG present locally.
    pub blocks: u64,
    /// Bytes of those blocks.
    pub block_bytes: u64,
    pub complete: bool,
    pub pins: u32,
}

impl BlockStore {
    /// Walks the DAG under `root` and returns the blocks that are not stored, in walk order.
    /// Children of a missing node are unknown, so only the node itself is listed.
    pub fn missing(&self, root: &Cid) -> Result<Vec<Cid>, Error> {
        let mut missing = Vec::new();
        self.walk(root, |cid, data| {
            if data.is_none() {
                missing.push(*cid);
            }
        })?;
        Ok(missing)
    }

    /// Walks the DAG; calls `visit(cid, Some(len))` for present blocks and `(cid, None)` for missing.
    pub(super) fn walk(&self, root: &Cid, mut visit: impl FnMut(&Cid, Option<u64>)) -> Result<(), Error> {
        let mut stack = vec![(*root, 0usize)];
        let mut seen = HashSet::new();
        while let Some((cid, depth)) = stack.pop() {
            if !seen.insert(cid) {
                continue;
            }
            if depth > unixfs::MAX_DEPTH {
                return Err(unixfs::Error::TooDeep.into());
            }
            if cid.codec() != cid::DAG_PB {
                // A raw leaf: presence is enough, no need to read it.
                let len = self.block_len(&cid)?;
                visit(&cid, len);
                continue;
            }
            match self.get(&cid)? {
                None => visit(&cid, None),
                Some(data) => {
                    visit(&cid, Some(data.len() as u64));
                    for child in unixfs::children(&cid, &data)?.into_iter().rev() {
                        stack.push((child, depth + 1));
                    }
                }
            }
        }
        Ok(())
    }

    /// Size, block count and flags of the DAG under `root`.
    pub fn stat(&self, root: &Cid) -> Result<Stat, Error> {
        let (pins, complete) = self.pin_state(root)?;
        let (mut blocks, mut block_bytes) = (0, 0);
        self.walk(root, |_, len| {
            if let Some(l) = len {
                blocks += 1;
                block_bytes += l;
            }
        })?;
        let size = match self.get(root)? {
            None => None,
            Some(d) if root.codec() == cid::RAW => Some(d.len() as u64),
            Some(d) => dag_pb::decode_file_node(&d).ok().map(|n| {
                n.filesize.unwrap_or_else(|| n.data.len() as u64 + n.blocksizes.iter().sum::<u64>())
            }),
        };
        Ok(Stat { cid: root.to_string(), size, blocks, block_bytes, complete, pins })
    }
}
