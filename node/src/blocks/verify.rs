//! Verifying the block store: every DAG flagged complete must be whole, and every block in it
//! must hash to its CID (like `ipfs repo verify`). Finds what a crash or a bad disk left behind.

use std::collections::HashSet;

use super::cid::Cid;
use super::store::{BlockStore, Error};
use super::unixfs;

/// Problems listed at most (the count goes on).
const MAX_PROBLEMS: usize = 1000;

/// What [`verify`] found.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// DAGs flagged complete, all walked.
    pub roots: u64,
    /// Blocks read and hashed.
    pub blocks: u64,
    pub bytes: u64,
    /// How many problems were found (only the first [`MAX_PROBLEMS`] are listed).
    pub problem_count: u64,
    pub problems: Vec<Problem>,
}

/// A block missing under a root flagged complete, or bytes that do not hash to their CID.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Problem {
    pub root: String,
    pub cid: String,
    pub problem: String,
}

impl Report {
    fn problem(&mut self, root: &Cid, cid: &Cid, problem: String) {
        self.problem_count += 1;
        if self.problems.len() < MAX_PROBLEMS {
            self.problems.push(Problem { root: root.to_string(), cid: cid.to_string(), problem });
        }
    }
}

/// Walks every DAG flagged complete, reading and hashing each of its blocks once.
pub fn verify(store: &BlockStore) -> Result<Report, Error> {
    let mut report = Report::default();
    let mut checked = HashSet::new();
    for root in store.complete_roots()? {
        report.roots += 1;
        let mut stack = vec![(root, 0usize)];
        while let Some((cid, depth)) = stack.pop() {
            if !checked.insert(cid) {
                continue;
            }
            if depth > unixfs::MAX_DEPTH {
                report.problem(&root, &cid, format!("deeper than {} levels", unixfs::MAX_DEPTH));
                continue;
            }
            let Some(data) = store.get(&cid)? else {
                report.problem(&root, &cid, "missing under a root flagged complete".into());
                continue;
            };
            report.blocks += 1;
            report.bytes += data.len() as u64;
            if let Err(e) = unixfs::verify_block(&cid, &data) {
                report.problem(&root, &cid, e.to_string());
                continue;
            }
            match unixfs::children(&cid, &data) {
                Ok(children) => stack.extend(children.into_iter().map(|c| (c, depth + 1))),
                Err(e) => report.problem(&root, &cid, e.to_string()),
            }
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blocks::files;
    use crate::blocks::store::Config;
    use crate::blocks::unixfs::Layout;

    #[test]
    fn a_whole_store_verifies_and_a_flipped_byte_on_disk_is_found() {
        let dir = tempfile::tempdir().unwrap();
        let db = crate::db::Db::open(&dir.path().join("db")).unwrap();
        let store = BlockStore::open(&db, &dir.path().join("blocks"), Config::default()).unwrap();
        let data: Vec<u8> = (0..100_000u32).flat_map(|i| i.to_le_bytes()).collect();
        let layout = Layout { chunk_size: 16 * 1024, max_links: 4 };
        let root = files::add(&store, &mut &data[..], layout).unwrap().root;
        assert!(store.mark_complete_if_whole(&root).unwrap());
        store.flush().unwrap();
        let r = verify(&store).unwrap();
        assert_eq!((r.roots, r.problem_count), (1, 0));
        assert!(r.blocks > 25 && r.bytes >= data.len() as u64);

        // A bad disk flips one byte in the middle of the pack files.
        let packs: Vec<_> = std::fs::read_dir(dir.path().join("blocks"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| std::fs::metadata(p).unwrap().len() > 0)
            .collect();
        let mut bytes = std::fs::read(&packs[0]).unwrap();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0xff;
        std::fs::write(&packs[0], bytes).unwrap();
        let r = verify(&store).unwrap();
        assert_eq!(r.problem_count, 1, "{r:?}");
        assert!(r.problems[0].problem.contains("does not match its CID"), "{r:?}");
    }
}
