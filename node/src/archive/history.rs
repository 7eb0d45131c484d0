//! A community's history as one DAG: the root is a flat UnixFS directory holding `index` (the
//! status-go index bytes, sealed in encrypted communities), `description` (the signed community
//! description that says whose messages the archives may hold, so a member needs no community
//! node to import them) and one entry per archive, named by archive id, linking the archive
//! file's root. One pin of the root keeps the whole history on
//! any IPFS node; announcements name the root. Old announcements name the index itself, and are
//! still understood ([`Announced::Index`]).

use crate::blocks::cid::{self, Cid};
use crate::blocks::directory::{self, Entry};
use crate::blocks::store::BlockStore;
use crate::blocks::Block;

use super::index::Index;
use super::state::ArchiveState;
use crate::community::CommunityId;

/// The directory entry holding the index.
pub const INDEX_ENTRY: &str = "index";

/// The directory entry holding the signed community description.
pub const DESCRIPTION_ENTRY: &str = "description";

/// Errors of building and reading history roots.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("history directory: {0}")]
    Directory(#[from] directory::Error),
    #[error("block store: {0}")]
    Blocks(#[from] crate::blocks::store::Error),
    #[error("archive state: {0}")]
    State(#[from] super::state::Error),
    #[error("archive {id}: {cid:?} is not a CID")]
    BadCid { id: String, cid: String },
    #[error("{name} ({cid}) is not stored here and no earlier root states its size")]
    Unsized { name: String, cid: Cid },
}

/// What an announced CID names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Announced {
    /// The root of a history directory, and the index it holds.
    Root { root: Cid, index: Cid },
    /// The index itself (announcements before history roots).
    Index(Cid),
}

impl Announced {
    /// The index the announcement names.
    pub fn index(&self) -> Cid {
        match self {
            Announced::Root { index, .. } | Announced::Index(index) => *index,
        }
    }

    /// The history root, when the announcement names one.
    pub fn root(&self) -> Option<Cid> {
        match self {
            Announced::Root { root, .. } => Some(*root),
            Announced::Index(_) => None,
        }
    }
}

/// Reads what `cid`, whose block is `bytes`, names: a directory is a history root (it must hold
/// an `index` entry); anything else is an index.
pub fn resolve(cid: Cid, bytes: &[u8]) -> Result<Announced, Error> {
    if cid.codec() == cid::DAG_PB && directory::is_directory(bytes) {
        let index = directory::lookup(bytes, INDEX_ENTRY)?.cid;
        return Ok(Announced::Root { root: cid, index });
    }
    Ok(Announced::Index(cid))
}

/// What `cid` names, read from `store`; `None` when its block is not stored here.
pub fn resolve_local(store: &BlockStore, cid: Cid) -> Result<Option<Announced>, Error> {
    match store.get(&cid)? {
        Some(bytes) => Ok(Some(resolve(cid, &bytes)?)),
        None => Ok(None),
    }
}

/// The entries of the history directory stored under `root` (empty when `root` is not a stored
/// directory): the sizes a merged root takes for archives this node does not hold.
pub fn entries_local(store: &BlockStore, root: Cid) -> Result<Vec<Entry>, Error> {
    match store.get(&root)? {
        Some(bytes) if root.codec() == cid::DAG_PB && directory::is_directory(&bytes) => {
            Ok(directory::read(&bytes)?)
        }
        _ => Ok(Vec::new()),
    }
}

/// What a history directory holds besides its archives: the index and, when the community has
/// one, its signed description.
#[derive(Clone, Copy, Debug)]
pub struct Heads {
    pub index: Cid,
    pub description: Option<Cid>,
}

/// The history directory of `heads` and the archives `index` lists. Each entry's size comes
/// from its root block in `store`, or, for an archive this node does not hold (another device's),
/// from `known` (that device's root).
pub fn build(store: &BlockStore, heads: Heads, index: &Index, known: &[Entry]) -> Result<Block, Error> {
    let entry = |name: &str, cid: Cid| -> Result<Entry, Error> {
        let tsize = match store.get(&cid)? {
            Some(bytes) => directory::cumulative_size(&Block::computed(cid, bytes))?,
            None => known
                .iter()
                .find(|k| k.name == name && k.cid == cid)
                .map(|k| k.tsize)
                .ok_or_else(|| Error::Unsized { name: name.to_string(), cid })?,
        };
        Ok(Entry { name: name.to_string(), cid, tsize })
    };
    let mut entries = vec![entry(INDEX_ENTRY, heads.index)?];
    if let Some(d) = heads.description {
        entries.push(entry(DESCRIPTION_ENTRY, d)?);
    }
    for (id, e) in &index.archives {
        let cid: Cid = e.cid.parse().map_err(|_| Error::BadCid { id: id.clone(), cid: e.cid.clone() })?;
        entries.push(entry(id, cid)?);
    }
    Ok(directory::build(entries)?)
}

/// Builds the history directory ([`build`]) and stores it; returns its CID (not pinned: see
/// [`pin_latest`]).
pub fn store(store: &BlockStore, heads: Heads, index: &Index, known: &[Entry]) -> Result<Cid, Error> {
    let block = build(store, heads, index, known)?;
    store.put(&block)?;
    Ok(*block.cid())
}

/// Pins `root` as the community's latest history and unpins the root it replaces, so a node
/// keeps one pin per community however many rounds it saw. Returns whether the DAG under `root`
/// is whole here. (A crash between the pin and the record leaves one extra pin on `root`, never
/// a root without one.)
pub fn pin_latest(
    store: &BlockStore,
    state: &ArchiveState,
    community: &CommunityId,
    root: Cid,
) -> Result<bool, Error> {
    let previous = state.root(community)?;
    if previous != Some(root) {
        store.pin(&root)?;
        state.set_root(community, &root)?;
        if let Some(old) = previous {
            store.unpin(&old)?;
        }
    }
    Ok(store.mark_complete_if_whole(&root)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::format::{Entry as IndexEntry, Metadata};
    use crate::archive::store_sink::put_file;

    fn archive(store: &BlockStore, from: u64, bytes: &[u8]) -> IndexEntry {
        let cid = put_file(store, bytes).unwrap();
        IndexEntry { metadata: Metadata { from, to: from + 10, topics: vec![] }, cid: cid.to_string() }
    }

    #[test]
    fn a_root_names_its_index_and_every_archive_with_its_size() {
        let store = BlockStore::memory(Default::default());
        let mut index = Index::default();
        let small = index.insert(archive(&store, 0, b"first archive"));
        // Past one chunk: a dag-pb file root, whose cumulative size counts its node too.
        let big_bytes = vec![7u8; 3 * 1024 * 1024 + 5];
        let big = index.insert(archive(&store, 10, &big_bytes));
        let index_cid = put_file(&store, &index.encode()).unwrap();
        let description = put_file(&store, b"signed description").unwrap();
        let heads = Heads { index: index_cid, description: Some(description) };
        let root = super::store(&store, heads, &index, &[]).unwrap();

        let bytes = store.get(&root).unwrap().unwrap();
        assert_eq!(resolve(root, &bytes).unwrap(), Announced::Root { root, index: index_cid });
        let listed = entries_local(&store, root).unwrap();
        assert!(listed.iter().any(|e| e.name == DESCRIPTION_ENTRY && e.cid == description));
        let entries = directory::read(&bytes).unwrap();
        assert_eq!(entries.len(), 4);
        let find = |n: &str| entries.iter().find(|e| e.name == n).unwrap().clone();
        assert_eq!(find(&small).tsize, 13);
        assert!(find(&big).tsize > big_bytes.len() as u64);
        assert_eq!(find(&big).cid.to_string(), index.archives[&big].cid);
        // The whole history is under the root.
        assert!(store.missing(&root).unwrap().is_empty());
    }

    #[test]
    fn an_old_announcement_names_the_index_itself() {
        let store = BlockStore::memory(Default::default());
        let index_cid = put_file(&store, &Index::default().encode()).unwrap();
        assert_eq!(resolve_local(&store, index_cid).unwrap(), Some(Announced::Index(index_cid)));
        assert_eq!(resolve_local(&store, cid::raw(b"not stored")).unwrap(), None);
    }

    #[test]
    fn a_directory_without_an_index_is_refused() {
        let dir = directory::build(vec![Entry { name: "x".into(), cid: cid::raw(b"x"), tsize: 1 }]).unwrap();
        assert!(matches!(
            resolve(*dir.cid(), dir.data()),
            Err(Error::Directory(directory::Error::Missing(n))) if n == INDEX_ENTRY
        ));
    }

    #[test]
    fn an_archive_held_elsewhere_takes_its_size_from_the_earlier_root_or_is_refused() {
        let store = BlockStore::memory(Default::default());
        let mut index = Index::default();
        let absent = cid::raw(b"another device's archive");
        let id = index.insert(IndexEntry {
            metadata: Metadata { from: 0, to: 10, topics: vec![] },
            cid: absent.to_string(),
        });
        let index_cid = put_file(&store, &index.encode()).unwrap();
        let heads = Heads { index: index_cid, description: None };
        assert!(matches!(build(&store, heads, &index, &[]), Err(Error::Unsized { .. })));
        let known = [Entry { name: id.clone(), cid: absent, tsize: 24 }];
        let root = build(&store, heads, &index, &known).unwrap();
        assert_eq!(directory::lookup(root.data(), &id).unwrap().tsize, 24);
    }

    #[test]
    fn pinning_the_latest_root_releases_the_previous_one() {
        let store = BlockStore::memory(Default::default());
        let state = ArchiveState::open(&crate::db::Db::memory()).unwrap();
        let c: CommunityId = crate::crypto::KeyPair::generate().public_hex().parse().unwrap();
        let first_index = put_file(&store, b"index one").unwrap();
        let heads = |index| Heads { index, description: None };
        let first = super::store(&store, heads(first_index), &Index::default(), &[]).unwrap();
        assert!(pin_latest(&store, &state, &c, first).unwrap());
        assert!(pin_latest(&store, &state, &c, first).unwrap());
        assert_eq!(store.pins().unwrap().get(&first), Some(&1), "the same root is pinned once");
        let second_index = put_file(&store, b"index two").unwrap();
        let second = super::store(&store, heads(second_index), &Index::default(), &[]).unwrap();
        pin_latest(&store, &state, &c, second).unwrap();
        let pins = store.pins().unwrap();
        assert_eq!((pins.get(&first), pins.get(&second)), (None, Some(&1)));
        assert_eq!(state.root(&c).unwrap(), Some(second));
    }
}
