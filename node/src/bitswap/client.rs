//! Fetching a DAG: a session per fetch asks peers for the blocks it lacks with want-block, a
//! window of blocks in flight per peer, and stores what arrives in synced batches.
//!
//! - Blocks already in the store are never asked for, so a restarted fetch resumes.
//! - Every received block's CID is computed from its bytes (see `message`); a peer that sends a
//!   block we did not ask it for while it owes us blocks sent wrong bytes: it is dropped from the
//!   session, reported, and its wants go to other peers.
//! - DONT_HAVE or a timeout moves a want to another peer (and a timed-out want is cancelled at
//!   the first, so its late block does not come twice); a block no peer has fails the fetch.
//! - Blocks that arrive when we have them already are counted ([`Twice`]).
//! - Dropping the fetch future cancels its wants at every peer.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use libp2p::PeerId;
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};

use super::message::{Message, Want, WantType};
use super::outbox::Outboxes;
use crate::blocks::cid::{self, Cid};
use crate::blocks::store::{BlockStore, Writer, Written};
use crate::blocks::{dag_pb, unixfs, Block};

/// Blocks asked of one peer at a time.
const WINDOW_PER_PEER: usize = 24;
/// Received bytes stored per synced batch.
const FLUSH_BYTES: usize = 16 * 1024 * 1024;
/// A want unanswered this long goes to another peer.
pub const BLOCK_TIMEOUT: Duration = Duration::from_secs(30);
/// Times a want may time out at one peer when no other peer can be asked.
const MAX_TIMEOUTS: u32 = 3;
/// Events buffered per session (each may hold a block of up to 2 MiB).
const SESSION_QUEUE: usize = 16;
/// Received blocks not yet stored, across every session, in KiB: queued for a session,
/// pending in its batch, or being written. One session streams at full speed with a batch
/// written while the next fills (2 x [`FLUSH_BYTES`]); the rest lets blocks queue meanwhile.
/// Past it, the streams that bring more blocks wait: the peers' sends back up into TCP.
pub const RECEIVE_BUDGET_KIB: usize = 40 * 1024;

/// Errors of a fetch.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no peer to fetch from")]
    NoPeers,
    #[error("no peer has block {cid} (asked {asked})")]
    NotFound { cid: String, asked: usize },
    #[error("block store: {0}")]
    Store(String),
    #[error("block {cid}: {reason}")]
    BadBlock { cid: String, reason: String },
    #[error("bitswap has shut down")]
    Shutdown,
}

/// Progress of a fetch.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Progress {
    /// Blocks received from peers.
    pub blocks: u64,
    /// Bytes received from peers.
    pub bytes: u64,
    /// Blocks that were already local.
    pub local_blocks: u64,
    /// The file size under the root, once the root is known.
    pub total_bytes: Option<u64>,
    pub done: bool,
}

/// What a fetch did.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FetchStats {
    pub root: String,
    pub blocks_fetched: u64,
    pub bytes_fetched: u64,
    pub blocks_local: u64,
    /// Peers dropped for sending wrong blocks.
    pub bad_peers: Vec<String>,
}

/// Blocks that arrived when we had them already (from another peer, or a want moved too late).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Twice {
    pub blocks: u64,
    pub bytes: u64,
}

#[derive(Default)]
struct TwiceCounts {
    blocks: AtomicU64,
    bytes: AtomicU64,
}

impl TwiceCounts {
    fn add(&self, bytes: usize) {
        self.blocks.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(bytes as u64, Ordering::Relaxed);
    }
}

/// An event routed to a session.
#[derive(Debug)]
pub(super) enum SessionEvent {
    /// With its share of the receive budget, returned when the block is stored or dropped.
    Block(PeerId, Block, Option<OwnedSemaphorePermit>),
    DontHave(PeerId, Cid),
    /// A block the session did not want, from this peer.
    Unsolicited(PeerId),
    /// The peer disconnected or was banned: what it owes goes to other peers.
    Gone(PeerId),
}

struct Entry {
    tx: mpsc::Sender<SessionEvent>,
    wanted: HashSet<Cid>,
    /// Every CID the session asked of each peer (to tell a late block from a wrong one).
    asked: HashMap<PeerId, HashSet<Cid>>,
}

/// How long what a closed session asked of a peer is remembered: a block arriving that late
/// is the peer's late answer (a newer announcement restarted the sync, say), not a wrong one.
const CLOSED_WANTS_GRACE: Duration = Duration::from_secs(2 * BLOCK_TIMEOUT.as_secs());
/// Most (peer, CID) pairs of closed sessions remembered (a session asks at most a few
/// thousand); past this the oldest are forgotten.
const MAX_CLOSED_WANTS: usize = 65_536;

/// What closed sessions had asked of each peer, for [`CLOSED_WANTS_GRACE`].
#[derive(Default)]
struct ClosedWants {
    order: VecDeque<(Instant, PeerId, Cid)>,
    set: HashMap<(PeerId, Cid), usize>,
}

impl ClosedWants {
    fn add(&mut self, now: Instant, asked: HashMap<PeerId, HashSet<Cid>>) {
        for (peer, cids) in asked {
            for cid in cids {
                self.order.push_back((now, peer, cid));
                *self.set.entry((peer, cid)).or_default() += 1;
            }
        }
        self.prune(now);
    }

    fn prune(&mut self, now: Instant) {
        while let Some((at, peer, cid)) = self.order.front().copied() {
            if now.duration_since(at) < CLOSED_WANTS_GRACE && self.order.len() <= MAX_CLOSED_WANTS {
                break;
            }
            self.order.pop_front();
            if let Some(n) = self.set.get_mut(&(peer, cid)) {
                *n -= 1;
                if *n == 0 {
                    self.set.remove(&(peer, cid));
                }
            }
        }
    }

    fn contains(&self, peer: &PeerId, cid: &Cid) -> bool {
        self.set.contains_key(&(*peer, *cid))
    }
}

/// Routes incoming blocks and presences to the sessions waiting for them.
#[derive(Clone)]
pub(super) struct Registry {
    sessions: Arc<Mutex<HashMap<u64, Entry>>>,
    closed: Arc<Mutex<ClosedWants>>,
    next: Arc<AtomicU64>,
    /// [`RECEIVE_BUDGET_KIB`], in KiB permits.
    budget: Arc<Semaphore>,
    budget_kib: usize,
    twice: Arc<TwiceCounts>,
}

impl Default for Registry {
    fn default() -> Self {
        Self::with_budget(RECEIVE_BUDGET_KIB)
    }
}

impl Registry {
    fn with_budget(kib: usize) -> Self {
        Self {
            sessions: Default::default(),
            closed: Default::default(),
            next: Default::default(),
            budget: Arc::new(Semaphore::new(kib)),
            budget_kib: kib,
            twice: Arc::default(),
        }
    }

    /// Blocks received twice since start.
    pub fn twice(&self) -> Twice {
        Twice {
            blocks: self.twice.blocks.load(Ordering::Relaxed),
            bytes: self.twice.bytes.load(Ordering::Relaxed),
        }
    }

    /// KiB of the receive budget in use.
    pub fn budget_used_kib(&self) -> usize {
        self.budget_kib.saturating_sub(self.budget.available_permits())
    }

    /// Waits for `bytes` of the receive budget (a block larger than the whole budget takes
    /// all of it).
    async fn reserve(&self, bytes: usize) -> Option<OwnedSemaphorePermit> {
        let kib = bytes.div_ceil(1024).clamp(1, self.budget_kib) as u32;
        self.budget.clone().acquire_many_owned(kib).await.ok()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Entry>> {
        self.sessions.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn open(&self) -> (u64, mpsc::Receiver<SessionEvent>) {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(SESSION_QUEUE);
        self.lock().insert(id, Entry { tx, wanted: HashSet::new(), asked: HashMap::new() });
        (id, rx)
    }

    fn want(&self, id: u64, peer: PeerId, cid: Cid) {
        if let Some(e) = self.lock().get_mut(&id) {
            e.wanted.insert(cid);
            e.asked.entry(peer).or_default().insert(cid);
        }
    }

    fn unwant(&self, id: u64, cid: &Cid) {
        if let Some(e) = self.lock().get_mut(&id) {
            e.wanted.remove(cid);
        }
    }

    fn close(&self, id: u64) {
        if let Some(e) = self.lock().remove(&id) {
            self.closed.lock().unwrap_or_else(|p| p.into_inner()).add(Instant::now(), e.asked);
        }
    }

    /// Routes a block: to the sessions that want it; a block that no session ever asked this
    /// peer for goes to every session as unsolicited (a late answer to a moved or cancelled
    /// want, or to a want of a session closed since, is dropped).
    pub async fn on_block(&self, peer: PeerId, block: Block) {
        let closed_late = {
            let mut closed = self.closed.lock().unwrap_or_else(|p| p.into_inner());
            closed.prune(Instant::now());
            closed.contains(&peer, block.cid())
        };
        let (wanting, others, late): (Vec<_>, Vec<_>, bool) = {
            let s = self.lock();
            let mut wanting = Vec::new();
            let mut others = Vec::new();
            let mut late = false;
            for e in s.values() {
                if e.wanted.contains(block.cid()) {
                    wanting.push(e.tx.clone());
                } else {
                    others.push(e.tx.clone());
                }
                late |= e.asked.get(&peer).is_some_and(|a| a.contains(block.cid()));
            }
            (wanting, others, late || closed_late)
        };
        if wanting.is_empty() && late {
            tracing::debug!(cid = %block.cid(), %peer, "late block received twice");
            self.twice.add(block.data().len());
            return;
        }
        if wanting.is_empty() {
            for tx in others {
                let _ = tx.send(SessionEvent::Unsolicited(peer)).await;
            }
            return;
        }
        for tx in wanting {
            // Each wanting session holds its own copy until it is stored.
            let share = self.reserve(block.data().len()).await;
            let _ = tx.send(SessionEvent::Block(peer, block.clone(), share)).await;
        }
    }

    /// Tells the sessions of every peer we could not open a Bitswap stream to that it is gone
    /// (a peer without Bitswap, say the relay our node is connected to): their wants move on
    /// at once instead of at their timeout. Ends when the outboxes do.
    pub async fn forget_unreachable(self, mut unreachable: tokio::sync::mpsc::Receiver<PeerId>) {
        while let Some(peer) = unreachable.recv().await {
            self.on_peer_gone(peer).await;
        }
    }

    /// Tells every session the peer is gone.
    pub async fn on_peer_gone(&self, peer: PeerId) {
        let txs: Vec<_> = self.lock().values().map(|e| e.tx.clone()).collect();
        for tx in txs {
            let _ = tx.send(SessionEvent::Gone(peer)).await;
        }
    }

    /// Routes a DONT_HAVE.
    pub async fn on_dont_have(&self, peer: PeerId, cid: Cid) {
        let txs: Vec<_> =
            self.lock().values().filter(|e| e.wanted.contains(&cid)).map(|e| e.tx.clone()).collect();
        for tx in txs {
            let _ = tx.send(SessionEvent::DontHave(peer, cid)).await;
        }
    }
}

/// Cancels a session's wants when the fetch ends or is dropped.
struct Guard {
    registry: Registry,
    outboxes: Outboxes,
    id: u64,
    in_flight: HashMap<Cid, (PeerId, Instant)>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.registry.close(self.id);
        let mut by_peer: HashMap<PeerId, Vec<Want>> = HashMap::new();
        for (cid, (peer, _)) in self.in_flight.drain() {
            by_peer.entry(peer).or_default().push(cancel(cid));
        }
        if by_peer.is_empty() {
            return;
        }
        let outboxes = self.outboxes.clone();
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                for (peer, wants) in by_peer {
                    outboxes.send(peer, Message { wants, ..Default::default() }).await;
                }
            });
        }
    }
}

fn cancel(cid: Cid) -> Want {
    Want { cid, priority: 0, cancel: true, want_type: WantType::Block, send_dont_have: false }
}

/// How much of a DAG a fetch takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Every block under the root; the root is pinned and marked complete.
    Dag,
    /// Every block under the root, not pinned: the caller pins it (a history root, pinned in
    /// place of the previous one).
    Held,
    /// The root block alone (a history root, whose entries the caller then fetches one by
    /// one); nothing is pinned.
    Block,
}

/// Fetches the DAG under `root` (or its root block: `scope`) from `peers` into `store`; pins
/// the root of a whole DAG and marks it complete.
#[allow(clippy::too_many_arguments)]
pub(super) async fn fetch(
    registry: Registry,
    outboxes: Outboxes,
    store: BlockStore,
    writer: Writer,
    root: Cid,
    scope: Scope,
    peers: Vec<PeerId>,
    progress: watch::Sender<Progress>,
) -> Result<(FetchStats, Vec<PeerId>), Error> {
    if peers.is_empty() {
        return Err(Error::NoPeers);
    }
    // What is stored under the root stays, GC or not, until the fetch ends (then it is pinned).
    let _hold = store.hold(root);
    let (id, mut rx) = registry.open();
    let mut guard =
        Guard { registry: registry.clone(), outboxes: outboxes.clone(), id, in_flight: HashMap::new() };
    let mut s = Session::new(root, scope, peers.clone());

    // What is missing locally: everything under a root we lack, or the walk's missing list.
    let initial = blocking(store.clone(), move |st| {
        if scope == Scope::Block && st.has(&root)? {
            Ok((vec![], st.get(&root)?.map(|b| b.len() as u64), 1))
        } else if st.has(&root)? {
            let stat = st.stat(&root)?;
            Ok((st.missing(&root)?, stat.size, stat.blocks))
        } else {
            Ok((vec![root], None, 0))
        }
    })
    .await?;
    s.progress.total_bytes = initial.1;
    s.progress.local_blocks = initial.2;
    s.stats.blocks_local = initial.2;
    for c in initial.0 {
        s.enqueue(c);
    }

    let mut ticker = tokio::time::interval(Duration::from_millis(500));
    loop {
        s.assign(&registry, &outboxes, &mut guard).await?;
        if s.queue.is_empty() && guard.in_flight.is_empty() {
            s.flush(&writer).await?;
            s.wait_written().await?;
            if s.queue.is_empty() && guard.in_flight.is_empty() {
                break;
            }
            continue;
        }
        tokio::select! {
            ev = rx.recv() => match ev {
                Some(ev) => s.on_event(ev, &registry, &outboxes, &store, &mut guard).await?,
                None => return Err(Error::Shutdown),
            },
            _ = ticker.tick() => {
                for (peer, cids) in s.on_tick(&mut guard) {
                    outboxes.send(peer, Message { wants: cids.into_iter().map(cancel).collect(), ..Default::default() }).await;
                }
            }
        }
        // Store when a batch is big, or when nothing else is waiting.
        if s.pending_bytes >= FLUSH_BYTES || (rx.is_empty() && !s.pending.is_empty()) {
            s.flush(&writer).await?;
        }
        let _ = progress.send(s.progress.clone());
    }
    blocking(store, move |st| {
        if scope == Scope::Dag {
            st.pin(&root)?;
            st.mark_complete_if_whole(&root)?;
        }
        st.flush()
    })
    .await?;
    s.progress.done = true;
    let _ = progress.send(s.progress.clone());
    Ok((s.stats, s.bad))
}

async fn blocking<T: Send + 'static>(
    store: BlockStore,
    f: impl FnOnce(&BlockStore) -> Result<T, crate::blocks::store::Error> + Send + 'static,
) -> Result<T, Error> {
    tokio::task::spawn_blocking(move || f(&store))
        .await
        .map_err(|e| Error::Store(e.to_string()))?
        .map_err(|e| Error::Store(e.to_string()))
}

struct Session {
    /// Needed, not yet asked.
    queue: VecDeque<Cid>,
    /// Every CID queued, in flight or done (a DAG may repeat a block).
    known: HashSet<Cid>,
    /// Peers that could not give a CID.
    tried: HashMap<Cid, HashSet<PeerId>>,
    /// Timeouts per CID.
    timeouts: HashMap<Cid, u32>,
    peers: Vec<PeerId>,
    /// Peers that let a want time out: one want at a time until they deliver again.
    slow: HashSet<PeerId>,
    bad: Vec<PeerId>,
    /// Received, not yet stored.
    pending: Vec<Block>,
    pending_bytes: usize,
    /// The receive budget the pending blocks hold, returned once they are written.
    pending_budget: Vec<OwnedSemaphorePermit>,
    /// The batch being written (at most one, so memory stays at two batches).
    writing: Option<Written>,
    stats: FetchStats,
    progress: Progress,
    priority: i32,
    /// Whether a received node's links are fetched too ([`Scope::Dag`]).
    follow: bool,
}

impl Session {
    fn new(root: Cid, scope: Scope, peers: Vec<PeerId>) -> Self {
        Self {
            queue: VecDeque::new(),
            known: HashSet::new(),
            tried: HashMap::new(),
            timeouts: HashMap::new(),
            peers,
            slow: HashSet::new(),
            bad: Vec::new(),
            pending: Vec::new(),
            pending_bytes: 0,
            pending_budget: Vec::new(),
            writing: None,
            stats: FetchStats { root: root.to_string(), ..Default::default() },
            progress: Progress::default(),
            priority: i32::MAX,
            follow: scope != Scope::Block,
        }
    }

    fn enqueue(&mut self, c: Cid) {
        if self.known.insert(c) {
            self.queue.push_back(c);
        }
    }

    /// Sends want-blocks while peers have room in their window.
    async fn assign(
        &mut self,
        registry: &Registry,
        outboxes: &Outboxes,
        guard: &mut Guard,
    ) -> Result<(), Error> {
        let mut load: HashMap<PeerId, usize> = self.peers.iter().map(|p| (*p, 0)).collect();
        for (p, _) in guard.in_flight.values() {
            *load.entry(*p).or_default() += 1;
        }
        let mut batches: HashMap<PeerId, Vec<Want>> = HashMap::new();
        let mut deferred = VecDeque::new();
        while let Some(c) = self.queue.pop_front() {
            let tried = self.tried.get(&c);
            let eligible: Vec<PeerId> =
                self.peers.iter().copied().filter(|p| tried.is_none_or(|t| !t.contains(p))).collect();
            if self.peers.is_empty() {
                // Every peer disconnected, was banned or sent wrong bytes.
                return Err(Error::NoPeers);
            }
            if eligible.is_empty() {
                let asked = tried.map_or(0, HashSet::len);
                return Err(Error::NotFound { cid: c.to_string(), asked });
            }
            // The least loaded peer; ties broken at random, so no peer (the source, say) is
            // always the first choice.
            let Some(peer) = eligible
                .iter()
                .copied()
                .filter(|p| load[p] < if self.slow.contains(p) { 1 } else { WINDOW_PER_PEER })
                .min_by_key(|p| (load[p], rand::random::<u32>()))
            else {
                deferred.push_back(c);
                // Every eligible peer is busy; later CIDs would find the same.
                break;
            };
            *load.entry(peer).or_default() += 1;
            registry.want(guard.id, peer, c);
            guard.in_flight.insert(c, (peer, Instant::now()));
            self.priority = self.priority.saturating_sub(1).max(1);
            batches.entry(peer).or_default().push(Want {
                cid: c,
                priority: self.priority,
                cancel: false,
                want_type: WantType::Block,
                send_dont_have: true,
            });
        }
        while let Some(c) = deferred.pop_back() {
            self.queue.push_front(c);
        }
        for (peer, wants) in batches {
            outboxes.send(peer, Message { wants, ..Default::default() }).await;
        }
        Ok(())
    }

    async fn on_event(
        &mut self,
        ev: SessionEvent,
        registry: &Registry,
        outboxes: &Outboxes,
        store: &BlockStore,
        guard: &mut Guard,
    ) -> Result<(), Error> {
        match ev {
            SessionEvent::Block(peer, block, share) => {
                let c = *block.cid();
                if guard.in_flight.remove(&c).is_none() {
                    // Already received from another peer, or a late answer to a moved want.
                    registry.twice.add(block.data().len());
                    return Ok(());
                }
                registry.unwant(guard.id, &c);
                self.slow.remove(&peer);
                self.stats.blocks_fetched += 1;
                self.stats.bytes_fetched += block.data().len() as u64;
                self.progress.blocks += 1;
                self.progress.bytes += block.data().len() as u64;
                if c.codec() == cid::DAG_PB && self.follow {
                    // A file node's links, or a directory's entries (a community's history).
                    let links = unixfs::children(&c, block.data())
                        .map_err(|e| Error::BadBlock { cid: c.to_string(), reason: e.to_string() })?;
                    if self.progress.total_bytes.is_none() && self.known.len() == 1 {
                        // The root of a file says its size (a directory does not).
                        if let Ok(node) = dag_pb::decode_file_node(block.data()) {
                            self.progress.total_bytes = Some(
                                node.filesize
                                    .unwrap_or(node.data.len() as u64 + node.blocksizes.iter().sum::<u64>()),
                            );
                        }
                    }
                    // Children already stored (an earlier, interrupted fetch) are walked, not fetched.
                    let (missing, local) = blocking(store.clone(), move |st| {
                        let (mut missing, mut local) = (Vec::new(), 0u64);
                        for c in links {
                            if !st.has(&c)? {
                                missing.push(c);
                            } else if c.codec() == cid::DAG_PB {
                                missing.extend(st.missing(&c)?);
                                local += 1;
                            } else {
                                local += 1;
                            }
                        }
                        Ok((missing, local))
                    })
                    .await?;
                    self.stats.blocks_local += local;
                    self.progress.local_blocks += local;
                    for c in missing {
                        self.enqueue(c);
                    }
                } else if self.progress.total_bytes.is_none() && self.known.len() == 1 {
                    self.progress.total_bytes = Some(block.data().len() as u64);
                }
                tracing::trace!(%peer, cid = %c, "block received");
                self.pending_bytes += block.data().len();
                self.pending.push(block);
                self.pending_budget.extend(share);
            }
            SessionEvent::DontHave(peer, c) => {
                if guard.in_flight.get(&c).is_some_and(|(p, _)| *p == peer) {
                    guard.in_flight.remove(&c);
                    registry.unwant(guard.id, &c);
                    self.tried.entry(c).or_default().insert(peer);
                    self.queue.push_front(c);
                }
            }
            SessionEvent::Unsolicited(peer) => {
                // No session ever asked the peer for these bytes: if it owes us blocks, what it
                // sent instead is wrong.
                let owes = guard.in_flight.values().any(|(p, _)| *p == peer);
                if owes {
                    self.drop_peer(peer, registry, outboxes, guard).await;
                }
            }
            SessionEvent::Gone(peer) => {
                if self.peers.contains(&peer) {
                    tracing::debug!(%peer, "peer gone: its wants move to other peers");
                    self.peers.retain(|p| *p != peer);
                    self.requeue_owed(peer, registry, guard);
                }
            }
        }
        Ok(())
    }

    /// A peer sent wrong bytes: never ask it again in this session, move its wants.
    async fn drop_peer(&mut self, peer: PeerId, registry: &Registry, outboxes: &Outboxes, guard: &mut Guard) {
        tracing::warn!(%peer, "peer sent a block it was not asked for (wrong bytes?): dropped from the fetch");
        self.peers.retain(|p| *p != peer);
        self.bad.push(peer);
        self.stats.bad_peers.push(peer.to_string());
        let cancels = self.requeue_owed(peer, registry, guard).into_iter().map(cancel).collect();
        outboxes.send(peer, Message { wants: cancels, ..Default::default() }).await;
    }

    /// Puts back in the queue what `peer` owes; returns those CIDs.
    fn requeue_owed(&mut self, peer: PeerId, registry: &Registry, guard: &mut Guard) -> Vec<Cid> {
        let owed: Vec<Cid> =
            guard.in_flight.iter().filter(|(_, (p, _))| *p == peer).map(|(c, _)| *c).collect();
        for c in &owed {
            guard.in_flight.remove(c);
            registry.unwant(guard.id, c);
            self.queue.push_front(*c);
        }
        owed
    }

    /// Moves the wants that timed out; returns those to cancel, by peer (moved elsewhere: the
    /// first peer's late answer would come twice).
    fn on_tick(&mut self, guard: &mut Guard) -> HashMap<PeerId, Vec<Cid>> {
        let now = Instant::now();
        let mut cancels: HashMap<PeerId, Vec<Cid>> = HashMap::new();
        let expired: Vec<(Cid, PeerId)> = guard
            .in_flight
            .iter()
            .filter(|(_, (_, at))| now.duration_since(*at) > BLOCK_TIMEOUT)
            .map(|(c, (p, _))| (*c, *p))
            .collect();
        for (c, p) in expired {
            tracing::debug!(cid = %c, peer = %p, "want timed out");
            guard.in_flight.remove(&c);
            self.slow.insert(p);
            let n = self.timeouts.entry(c).or_default();
            *n += 1;
            let tried = self.tried.get(&c);
            let elsewhere = self.peers.iter().any(|q| *q != p && tried.is_none_or(|t| !t.contains(q)));
            // Another peer may have it: move the want and cancel it here. Else ask the same
            // peer again (a peer may lose an answer, e.g. on a reset stream, and never send it
            // again by itself); no cancel then, which could overtake the new want on another
            // stream.
            if elsewhere || *n >= MAX_TIMEOUTS {
                self.tried.entry(c).or_default().insert(p);
                cancels.entry(p).or_default().push(c);
            }
            self.queue.push_front(c);
        }
        cancels
    }

    /// Hands the received blocks to the store writer as one batch, after the previous batch
    /// is written: the network keeps flowing while the disk syncs, and the writer merges the
    /// batches of every session waiting at once into one sync.
    async fn flush(&mut self, writer: &Writer) -> Result<(), Error> {
        if self.pending.is_empty() {
            return Ok(());
        }
        self.wait_written().await?;
        let blocks = std::mem::take(&mut self.pending);
        let budget = std::mem::take(&mut self.pending_budget);
        self.pending_bytes = 0;
        self.writing = Some(writer.write(blocks, budget).await);
        Ok(())
    }

    /// Waits for the batch being written.
    async fn wait_written(&mut self) -> Result<(), Error> {
        match self.writing.take() {
            Some(w) => w.await.map_err(|_| Error::Shutdown)?.map_err(|e| Error::Store(e.to_string())),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(data: &[u8]) -> Block {
        let cid = crate::blocks::unixfs::root_cid(data);
        Block::computed(cid, data.to_vec())
    }

    #[tokio::test]
    async fn a_late_block_is_not_taken_for_a_wrong_one_by_another_session() {
        let registry = Registry::default();
        let peer = PeerId::random();
        let (a, mut a_rx) = registry.open();
        let (_b, mut b_rx) = registry.open();
        let (x, y) = (block(b"x"), block(b"y"));
        // Session a asked the peer for x, then got x elsewhere: the peer's copy comes late.
        registry.want(a, peer, *x.cid());
        registry.unwant(a, x.cid());
        registry.on_block(peer, x).await;
        assert!(a_rx.try_recv().is_err() && b_rx.try_recv().is_err(), "a late block is dropped quietly");
        // y was never asked of the peer by anyone: every session hears of it.
        registry.on_block(peer, y).await;
        assert!(matches!(a_rx.try_recv(), Ok(SessionEvent::Unsolicited(p)) if p == peer));
        assert!(matches!(b_rx.try_recv(), Ok(SessionEvent::Unsolicited(p)) if p == peer));
    }

    #[tokio::test]
    async fn a_block_for_a_closed_session_is_late_not_wrong() {
        let registry = Registry::default();
        let peer = PeerId::random();
        let (a, _a_rx) = registry.open();
        let (_b, mut b_rx) = registry.open();
        let z = block(b"z");
        // Session a asked the peer for z and closed (a newer announcement restarted the sync).
        registry.want(a, peer, *z.cid());
        registry.close(a);
        registry.on_block(peer, z).await;
        assert!(b_rx.try_recv().is_err(), "no other session blames the peer");
    }

    #[tokio::test]
    async fn received_blocks_wait_for_the_budget_until_earlier_ones_are_stored() {
        let registry = Registry::with_budget(2);
        let peer = PeerId::random();
        let (a, mut a_rx) = registry.open();
        let (x, y) = (block(&[1; 2000]), block(&[2; 2000]));
        registry.want(a, peer, *x.cid());
        registry.want(a, peer, *y.cid());
        registry.on_block(peer, x).await;
        let Ok(SessionEvent::Block(_, _, Some(share))) = a_rx.try_recv() else {
            panic!("x routed with its share")
        };
        assert_eq!(registry.budget.available_permits(), 0, "x holds the whole budget");
        let second = tokio::spawn({
            let registry = registry.clone();
            async move { registry.on_block(peer, y).await }
        });
        for _ in 0..10 {
            tokio::task::yield_now().await; // the router's task runs as far as it can
        }
        assert!(a_rx.try_recv().is_err(), "y waits while x is unstored");
        drop(share); // x stored
        second.await.unwrap();
        assert!(matches!(a_rx.try_recv(), Ok(SessionEvent::Block(_, _, Some(_)))), "then y comes");
    }

    #[tokio::test]
    async fn a_timed_out_want_that_moves_is_cancelled_at_the_first_peer_and_one_asked_again_is_not() {
        let (outboxes, _unreachable) = Outboxes::new(
            libp2p_stream::Behaviour::new().new_control(),
            tokio_util::sync::CancellationToken::new(),
        );
        let (a, b) = (PeerId::random(), PeerId::random());
        let c = *block(b"c").cid();
        let long_ago = Instant::now() - BLOCK_TIMEOUT - Duration::from_secs(1);
        let registry = Registry::default();

        // Two peers: the want moves from a to b, and a hears a cancel.
        let mut s = Session::new(c, Scope::Dag, vec![a, b]);
        let mut guard = Guard {
            registry: registry.clone(),
            outboxes: outboxes.clone(),
            id: 0,
            in_flight: HashMap::new(),
        };
        guard.in_flight.insert(c, (a, long_ago));
        let cancels = s.on_tick(&mut guard);
        assert_eq!(cancels, HashMap::from([(a, vec![c])]));
        assert!(s.tried[&c].contains(&a) && s.queue.contains(&c) && guard.in_flight.is_empty());

        // One peer: it is asked again, with no cancel that could overtake the new want.
        let mut s = Session::new(c, Scope::Dag, vec![a]);
        guard.in_flight.insert(c, (a, long_ago));
        assert!(s.on_tick(&mut guard).is_empty());
        assert!(s.queue.contains(&c) && !s.tried.contains_key(&c));
    }

    #[tokio::test]
    async fn a_block_that_comes_late_for_a_closed_session_counts_as_received_twice() {
        let registry = Registry::default();
        let peer = PeerId::random();
        let (a, _rx) = registry.open();
        let x = block(b"late");
        registry.want(a, peer, *x.cid());
        registry.close(a);
        registry.on_block(peer, x.clone()).await;
        assert_eq!(registry.twice(), Twice { blocks: 1, bytes: x.data().len() as u64 });
    }

    #[test]
    fn closed_wants_are_forgotten_after_the_grace_or_past_the_bound() {
        let mut c = ClosedWants::default();
        let (peer, t0) = (PeerId::random(), Instant::now());
        let cid = *block(b"w").cid();
        c.add(t0, [(peer, [cid].into())].into());
        assert!(c.contains(&peer, &cid));
        c.prune(t0 + CLOSED_WANTS_GRACE);
        assert!(!c.contains(&peer, &cid));
        let many: HashSet<Cid> =
            (0..MAX_CLOSED_WANTS + 10).map(|i| *block(&(i as u64).to_be_bytes()).cid()).collect();
        c.add(t0, [(peer, many)].into());
        assert!(c.order.len() <= MAX_CLOSED_WANTS && c.set.len() <= MAX_CLOSED_WANTS);
    }
}
