//! Serving blocks: a bounded ledger of wants per peer, worked off by one task per peer that reads
//! blocks from the store (bounded concurrency overall) and answers in messages of a few MiB.

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use libp2p::PeerId;
use tokio::sync::Semaphore;

use super::message::{Message, Presence, Want, WantType};
use super::outbox::Outboxes;
use crate::blocks::store::BlockStore;
use crate::blocks::Block;

/// Most open wants we keep per peer; more are dropped (the peer asks again).
pub const MAX_WANTS_PER_PEER: usize = 8192;
/// An answer is sent once it holds this many block bytes (one 1 MiB leaf): answers go out on
/// several streams at once (see `outbox.rs`), so smaller answers keep more of them busy.
const RESPONSE_BYTES: usize = 1024 * 1024;
/// Block bytes an answer may hold: the 4 MiB message limit less room for framing and presences
/// (peers drop the whole stream on an oversized message, and Helia never asks twice).
const RESPONSE_LIMIT: usize = super::codec::MAX_MESSAGE_BYTES - 64 * 1024;
/// Block reads in flight over all peers.
const CONCURRENT_READS: usize = 16;

#[derive(Default)]
struct Ledger {
    queue: VecDeque<Want>,
    /// CIDs still wanted (a cancel removes them; queued entries not in here are skipped).
    wanted: HashSet<Cid>,
    working: bool,
}

impl Ledger {
    /// Drops the queued entries that were cancelled or are queued twice (want, cancel, want
    /// again), so the queue stays within the wanted set's bound.
    fn compact(&mut self) {
        let mut seen = HashSet::new();
        let wanted = &self.wanted;
        self.queue.retain(|w| wanted.contains(&w.cid) && seen.insert(w.cid));
    }
}

use crate::blocks::cid::Cid;

/// What the server has sent since start.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Served {
    pub blocks: u64,
    pub bytes: u64,
}

#[derive(Default)]
struct Counters {
    blocks: AtomicU64,
    bytes: AtomicU64,
}

/// The serving side.
#[derive(Clone)]
pub(super) struct Server {
    store: BlockStore,
    outboxes: Outboxes,
    ledgers: Arc<Mutex<std::collections::HashMap<PeerId, Arc<Mutex<Ledger>>>>>,
    reads: Arc<Semaphore>,
    served: Arc<Counters>,
    /// The upload limit blocks wait for.
    bandwidth: super::bandwidth::Bandwidth,
}

impl Server {
    pub fn new(store: BlockStore, outboxes: Outboxes, bandwidth: super::bandwidth::Bandwidth) -> Self {
        Self {
            store,
            outboxes,
            bandwidth,
            ledgers: Arc::default(),
            reads: Arc::new(Semaphore::new(CONCURRENT_READS)),
            served: Arc::default(),
        }
    }

    /// Blocks and block bytes sent to peers since start.
    pub fn served(&self) -> Served {
        Served {
            blocks: self.served.blocks.load(Ordering::Relaxed),
            bytes: self.served.bytes.load(Ordering::Relaxed),
        }
    }

    /// Takes the wantlist part of a message; returns how many wants were over the per-peer
    /// limit and dropped (an honest peer never gets there).
    pub fn on_wants(&self, peer: PeerId, wants: Vec<Want>, full: bool) -> usize {
        let ledger = {
            let mut all = self.ledgers.lock().unwrap_or_else(|p| p.into_inner());
            all.entry(peer).or_default().clone()
        };
        let (start, dropped) = {
            let mut l = ledger.lock().unwrap_or_else(|p| p.into_inner());
            if full {
                l.wanted.clear();
                l.queue.clear();
            }
            let mut dropped = 0;
            for w in wants {
                if w.cancel {
                    l.wanted.remove(&w.cid);
                } else if !l.wanted.contains(&w.cid) {
                    if l.wanted.len() >= MAX_WANTS_PER_PEER {
                        dropped += 1;
                        continue;
                    }
                    if l.queue.len() >= 2 * MAX_WANTS_PER_PEER {
                        l.compact();
                    }
                    l.wanted.insert(w.cid);
                    l.queue.push_back(w);
                }
            }
            let start = !l.working && !l.queue.is_empty();
            l.working |= start;
            (start, dropped)
        };
        if start {
            tokio::spawn(self.clone().work(peer, ledger));
        }
        dropped
    }

    /// Forgets a disconnected peer's wants.
    pub fn remove(&self, peer: &PeerId) {
        if let Some(l) = self.ledgers.lock().unwrap_or_else(|p| p.into_inner()).remove(peer) {
            let mut l = l.lock().unwrap_or_else(|p| p.into_inner());
            l.queue.clear();
            l.wanted.clear();
        }
    }

    async fn work(self, peer: PeerId, ledger: Arc<Mutex<Ledger>>) {
        let mut response = Message::default();
        let mut bytes = 0;
        loop {
            let next = {
                let mut l = ledger.lock().unwrap_or_else(|p| p.into_inner());
                let mut next = None;
                while let Some(w) = l.queue.pop_front() {
                    if l.wanted.remove(&w.cid) {
                        next = Some(w);
                        break;
                    }
                }
                if next.is_none() && response.is_empty() {
                    l.working = false;
                    return;
                }
                next
            };
            let Some(want) = next else {
                // Queue drained: send what we have, then look again.
                if !self.outboxes.send(peer, std::mem::take(&mut response)).await {
                    return self.give_up(peer, &ledger);
                }
                bytes = 0;
                continue;
            };
            // A want-have is answered from the index: the block is not read.
            let block = match self.read(want.cid, want.want_type).await {
                Ok(b) => b,
                Err(e) => {
                    tracing::warn!(cid = %want.cid, error = %e, "block store read failed");
                    None
                }
            };
            if let (Some(data), WantType::Block) = (&block, want.want_type) {
                if bytes + data.len() > RESPONSE_LIMIT {
                    if !self.outboxes.send(peer, std::mem::take(&mut response)).await {
                        return self.give_up(peer, &ledger);
                    }
                    bytes = 0;
                }
            }
            match (block, want.want_type) {
                (Some(data), WantType::Block) => {
                    self.bandwidth.upload(peer, data.len()).await;
                    bytes += data.len();
                    self.served.blocks.fetch_add(1, Ordering::Relaxed);
                    self.served.bytes.fetch_add(data.len() as u64, Ordering::Relaxed);
                    // Bytes from our own store, verified when they were stored.
                    response.blocks.push(Block::computed(want.cid, data));
                }
                (Some(_), WantType::Have) => response.presences.push((want.cid, Presence::Have)),
                (None, _) if want.send_dont_have => response.presences.push((want.cid, Presence::DontHave)),
                (None, _) => {}
            }
            if bytes >= RESPONSE_BYTES || response.presences.len() >= 1024 {
                if !self.outboxes.send(peer, std::mem::take(&mut response)).await {
                    return self.give_up(peer, &ledger);
                }
                bytes = 0;
            }
        }
    }

    /// The peer does not read its answers: its wants are dropped (it may ask again).
    fn give_up(&self, peer: PeerId, ledger: &Mutex<Ledger>) {
        let mut l = ledger.lock().unwrap_or_else(|p| p.into_inner());
        l.queue.clear();
        l.wanted.clear();
        l.working = false;
        tracing::debug!(%peer, "wants of a peer that does not read dropped");
    }

    /// The block's bytes for a want-block; for a want-have, an empty stand-in when the index
    /// has the block.
    async fn read(&self, cid: Cid, want: WantType) -> Result<Option<Vec<u8>>, String> {
        let _permit = self.reads.acquire().await.map_err(|_| "shutting down".to_string())?;
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || match want {
            WantType::Block => store.get(&cid).map_err(|e| e.to_string()),
            WantType::Have => store.has(&cid).map(|h| h.then(Vec::new)).map_err(|e| e.to_string()),
        })
        .await
        .map_err(|e| e.to_string())?
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use multihash_codetable::{Code, MultihashDigest};

    fn want(data: &[u8]) -> Want {
        Want {
            cid: Cid::new_v1(crate::blocks::cid::RAW, Code::Sha2_256.digest(data)),
            priority: 1,
            cancel: false,
            want_type: WantType::Block,
            send_dont_have: false,
        }
    }

    #[test]
    fn compacting_keeps_each_still_wanted_cid_once() {
        let (a, b) = (want(b"a"), want(b"b"));
        let mut l = Ledger::default();
        // Want a, want b, cancel b, cancel a, want a again.
        l.queue.extend([a.clone(), b.clone(), a.clone()]);
        l.wanted.insert(a.cid);
        l.compact();
        assert_eq!(l.queue.iter().map(|w| w.cid).collect::<Vec<_>>(), vec![a.cid]);
    }
}
