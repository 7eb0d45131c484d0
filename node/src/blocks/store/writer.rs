//! The store writer: one thread that stores the batches of every fetch session, merging the
//! batches waiting at that moment into one append and one `fsync` (group commit).
//!
//! A session hands its batch to the [`Writer`] handle (cheap to clone) and goes on receiving;
//! the answer comes back on a oneshot channel once the batch's blocks are synced and indexed.
//! While one group is being synced the next batches queue (at most [`QUEUE`], each held by the
//! session's receive budget), and the next group takes all of them: with several sessions the
//! disk syncs once per group, not once per session. Blocking work (file IO, fsync, sled) runs
//! on the writer's own thread, never on the async workers.

use std::any::Any;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use super::{BlockStore, Error};
use crate::blocks::Block;

/// Batches waiting for the writer. Each is a session's batch (at most a few MiB, held by the
/// receive budget), and a session has at most one waiting: a bound far above the sessions a
/// node runs, so a sender waits only when the disk is the bottleneck.
pub const QUEUE: usize = 64;
/// Block bytes a group gathers before it is committed (it may end one batch past it): the group
/// is appended and synced in one go.
pub const GROUP_BYTES: usize = 64 * 1024 * 1024;

/// What the writer stores: blocks, and what to release once they are stored (the session's
/// share of the receive budget).
struct Job {
    blocks: Vec<Block>,
    release: Box<dyn Any + Send>,
    done: oneshot::Sender<Result<(), Error>>,
}

/// Handle to the writer thread; cheap to clone. The thread ends when every handle is dropped.
#[derive(Clone)]
pub struct Writer {
    tx: mpsc::Sender<Job>,
    counts: Arc<Counts>,
}

/// The answer to one batch, once its blocks are synced and indexed.
pub type Written = oneshot::Receiver<Result<(), Error>>;

#[derive(Default)]
struct Counts {
    groups: AtomicU64,
    batches: AtomicU64,
}

/// Groups committed and batches stored since start (for tests and metrics).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Commits {
    pub groups: u64,
    pub batches: u64,
}

impl Writer {
    /// Starts the writer thread for `store`.
    pub fn start(store: BlockStore) -> Result<Self, Error> {
        let (writer, unstarted) = Self::unstarted(store);
        unstarted.start()?;
        Ok(writer)
    }

    /// A handle whose thread starts later: what is queued meanwhile waits (tests queue batches
    /// first to see them merged).
    fn unstarted(store: BlockStore) -> (Self, Unstarted) {
        let (tx, rx) = mpsc::channel(QUEUE);
        let counts = Arc::new(Counts::default());
        (Self { tx, counts: counts.clone() }, Unstarted { store, rx, counts })
    }

    /// Groups committed and batches stored since start.
    pub fn commits(&self) -> Commits {
        Commits {
            groups: self.counts.groups.load(Ordering::Relaxed),
            batches: self.counts.batches.load(Ordering::Relaxed),
        }
    }

    /// Queues `blocks` for storing; `release` is dropped once they are stored (or failed).
    /// Waits while [`QUEUE`] batches are queued. The answer arrives on the returned channel;
    /// a closed channel means the writer has stopped.
    pub async fn write(&self, blocks: Vec<Block>, release: impl Any + Send) -> Written {
        let (done, written) = oneshot::channel();
        // A send error means the thread has gone: the dropped `done` tells the caller.
        let _ = self.tx.send(Job { blocks, release: Box::new(release), done }).await;
        written
    }
}

/// The writer thread, not yet running.
struct Unstarted {
    store: BlockStore,
    rx: mpsc::Receiver<Job>,
    counts: Arc<Counts>,
}

impl Unstarted {
    fn start(self) -> Result<(), Error> {
        let Self { store, rx, counts } = self;
        std::thread::Builder::new().name("block-writer".into()).spawn(move || run(&store, rx, &counts))?;
        Ok(())
    }
}

fn run(store: &BlockStore, mut rx: mpsc::Receiver<Job>, counts: &Counts) {
    while let Some(first) = rx.blocking_recv() {
        let mut group = vec![first];
        let mut bytes = bytes_of(&group[0]);
        while bytes < GROUP_BYTES {
            match rx.try_recv() {
                Ok(job) => {
                    bytes += bytes_of(&job);
                    group.push(job);
                }
                Err(_) => break,
            }
        }
        counts.groups.fetch_add(1, Ordering::Relaxed);
        counts.batches.fetch_add(group.len() as u64, Ordering::Relaxed);
        commit(store, group);
    }
}

fn bytes_of(job: &Job) -> usize {
    job.blocks.iter().map(|b| b.data().len()).sum()
}

/// Stores a group with one append and one sync; when the group as a whole fails (the quota,
/// say), each batch is tried alone so that each gets its own answer.
fn commit(store: &BlockStore, group: Vec<Job>) {
    let result = if group.len() == 1 {
        store.put_many(&group[0].blocks)
    } else {
        // Clones of `Bytes`: the data is shared, not copied.
        let all: Vec<Block> = group.iter().flat_map(|j| j.blocks.iter().cloned()).collect();
        store.put_many(&all)
    };
    let answers: Vec<Result<(), Error>> = match result {
        Ok(_) => group.iter().map(|_| Ok(())).collect(),
        Err(e) if group.len() == 1 => vec![Err(e)],
        Err(_) => group.iter().map(|j| store.put_many(&j.blocks).map(|_| ())).collect(),
    };
    for (job, answer) in group.into_iter().zip(answers) {
        drop(job.release);
        let _ = job.done.send(answer);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blocks::store::Config;
    use crate::blocks::unixfs;

    fn block(i: u32, len: usize) -> Block {
        let data: Vec<u8> = std::iter::repeat_n(i.to_le_bytes(), len / 4).flatten().collect();
        Block::verify(unixfs::root_cid(&data), data).unwrap()
    }

    #[tokio::test]
    async fn batches_waiting_together_are_stored_with_one_sync_and_each_answered() {
        let dir = tempfile::tempdir().unwrap();
        let db = crate::db::Db::open(&dir.path().join("db")).unwrap();
        let store = BlockStore::open(&db, &dir.path().join("blocks"), Config::default()).unwrap();
        let (writer, unstarted) = Writer::unstarted(store.clone());
        // 32 sessions queue a batch each while the writer is busy (here: not yet started).
        let mut answers = Vec::new();
        for s in 0..32u32 {
            let blocks: Vec<Block> = (0..4).map(|i| block(s * 4 + i, 64 * 1024)).collect();
            answers.push((blocks.clone(), writer.write(blocks, ()).await));
        }
        unstarted.start().unwrap();
        for (blocks, written) in answers {
            written.await.unwrap().unwrap();
            for b in blocks {
                assert_eq!(store.get(b.cid()).unwrap().as_deref(), Some(b.data()));
            }
        }
        assert_eq!(writer.commits(), Commits { groups: 1, batches: 32 });
    }

    #[tokio::test]
    async fn a_group_ends_once_past_its_byte_bound() {
        let store = BlockStore::memory(Config::default());
        let (writer, unstarted) = Writer::unstarted(store.clone());
        // Three batches of 40 MiB: the second takes the group past 64 MiB, the third goes alone.
        // (CIDs of other bytes: the memory store does not check, and the test needs no hashing.)
        let mut answers = Vec::new();
        for s in 0..3u32 {
            let blocks: Vec<Block> = (0..40u32)
                .map(|i| {
                    Block::computed(unixfs::root_cid(&(s * 40 + i).to_le_bytes()), vec![0u8; 1024 * 1024])
                })
                .collect();
            answers.push(writer.write(blocks, ()).await);
        }
        unstarted.start().unwrap();
        for written in answers {
            written.await.unwrap().unwrap();
        }
        assert_eq!(writer.commits(), Commits { groups: 2, batches: 3 });
    }

    #[tokio::test]
    async fn what_a_batch_holds_is_released_once_it_is_stored() {
        let store = BlockStore::memory(Config::default());
        let writer = Writer::start(store.clone()).unwrap();
        let held = std::sync::Arc::new(());
        let written = writer.write(vec![block(1, 1024)], held.clone()).await;
        written.await.unwrap().unwrap();
        assert_eq!(std::sync::Arc::strong_count(&held), 1);
    }

    #[tokio::test]
    async fn a_batch_over_the_quota_fails_alone_and_the_others_are_stored() {
        let store = BlockStore::memory(Config { quota: Some(100 * 1024), ..Config::default() });
        let (writer, unstarted) = Writer::unstarted(store.clone());
        // Both wait together: one group, which fails as a whole; then each is tried alone.
        let big = writer.write(vec![block(1, 200 * 1024)], ()).await;
        let small = writer.write(vec![block(2, 1024)], ()).await;
        unstarted.start().unwrap();
        assert!(matches!(big.await.unwrap(), Err(Error::QuotaExceeded { .. })));
        small.await.unwrap().unwrap();
        assert!(store.has(block(2, 1024).cid()).unwrap());
        assert!(!store.has(block(1, 200 * 1024).cid()).unwrap());
        assert_eq!(writer.commits(), Commits { groups: 1, batches: 2 });
    }
}
