//! Bitswap 1.2.0 (`/ipfs/bitswap/1.2.0`; 1.1.0 and 1.0.0 accepted inbound): serving blocks from
//! the block store and fetching DAGs from peers, over libp2p streams opened and accepted outside
//! the swarm task.
//!
//! Every inbound stream is read message by message (each at most 4 MiB) by its own task, bounded
//! in number overall and per peer; a peer may send each message on a new stream (Helia does).
//! Wantlists go to the [`server`], blocks and presences to the fetch sessions of the [`client`].
//! Answers and wants go out through one writer per peer on a stream we open.

pub mod bandwidth;
pub mod client;
pub mod codec;
pub mod message;
mod outbox;
mod server;

pub use server::Served;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use libp2p::{PeerId, StreamProtocol};
use tokio::sync::{broadcast, mpsc, watch, OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

pub use client::{FetchStats, Progress, Scope, Twice};
use message::Presence;

use crate::blocks::cid::Cid;
use crate::blocks::store::{self, BlockStore};

/// The protocol we open streams with.
pub const PROTOCOL_1_2: StreamProtocol = StreamProtocol::new("/ipfs/bitswap/1.2.0");
/// Every protocol we accept.
pub const PROTOCOLS: [StreamProtocol; 3] =
    [PROTOCOL_1_2, StreamProtocol::new("/ipfs/bitswap/1.1.0"), StreamProtocol::new("/ipfs/bitswap/1.0.0")];
/// Inbound streams read at once, over all peers.
const MAX_INBOUND_STREAMS: usize = 1024;
/// Inbound streams read at once from one peer.
const MAX_INBOUND_STREAMS_PER_PEER: usize = 32;
/// A stream that delivers no message for this long is closed: an idle stream holds a permit
/// others need (peers that want to talk again open a new one).
const STREAM_IDLE_TIMEOUT: Duration = Duration::from_secs(20);
/// A message whose bytes stop arriving (or leaving) for this long is given up: a peer slower
/// than 256 KiB per 10 s is no peer to exchange blocks with.
pub(crate) const STREAM_STALL_TIMEOUT: Duration = Duration::from_secs(10);
/// When every permit is taken, the stream idle longest, if idle at least this long, is closed
/// for the newcomer: streams that keep permits without talking (an attack) go first.
const EVICT_IDLE_AFTER: Duration = Duration::from_millis(500);
/// How long a newcomer waits for the permit an eviction frees.
const ADMIT_WAIT: Duration = Duration::from_secs(2);

/// An inbound stream being read.
struct Slot {
    peer: PeerId,
    last_message: Instant,
    close: CancellationToken,
}

/// What the inbound side holds now.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Usage {
    /// Inbound stream permits held.
    pub inbound_streams: usize,
    /// Idle streams closed for newcomers since start.
    pub streams_evicted: u64,
    /// Streams refused since start (the peer had too many, or none could be evicted).
    pub streams_refused: u64,
    /// KiB of answers queued for peers.
    pub outbound_kib: u64,
    /// Peers whose answers were dropped because they did not read them.
    pub peers_dropped_not_reading: u64,
    /// KiB of received blocks not yet stored (at most [`client::RECEIVE_BUDGET_KIB`]).
    pub received_unstored_kib: u64,
}

/// What Bitswap reports to the node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// The peer sent bytes that were not what it was asked for, or a malformed message.
    PeerMisbehaved { peer: PeerId, reason: String },
}

/// Handle to Bitswap; cheap to clone.
#[derive(Clone)]
pub struct Bitswap {
    store: BlockStore,
    /// Stores what every fetch session receives, with group commit.
    writer: store::Writer,
    outboxes: outbox::Outboxes,
    server: server::Server,
    registry: client::Registry,
    events: broadcast::Sender<Event>,
    inbound: Arc<Semaphore>,
    per_peer: Arc<Mutex<HashMap<PeerId, usize>>>,
    slots: Arc<Mutex<HashMap<u64, Slot>>>,
    next_slot: Arc<AtomicU64>,
    evicted: Arc<AtomicU64>,
    refused: Arc<AtomicU64>,
    /// Limits on block data each way, and what moved.
    bandwidth: bandwidth::Bandwidth,
}

impl Bitswap {
    /// Starts reading the Bitswap streams peers open (`incoming`) and opening ours with
    /// `control`; stops when `cancel` fires. Fails when the store writer's thread cannot start.
    pub fn start(
        control: libp2p_stream::Control,
        incoming: mpsc::Receiver<(PeerId, libp2p::Stream)>,
        store: BlockStore,
        bandwidth: bandwidth::Bandwidth,
        cancel: CancellationToken,
    ) -> Result<Self, store::Error> {
        let (outboxes, unreachable) = outbox::Outboxes::new(control.clone(), cancel.clone());
        let (events, _) = broadcast::channel(256);
        let bs = Self {
            server: server::Server::new(store.clone(), outboxes.clone(), bandwidth.clone()),
            bandwidth,
            writer: store::Writer::start(store.clone())?,
            store,
            outboxes,
            registry: client::Registry::default(),
            events,
            inbound: Arc::new(Semaphore::new(MAX_INBOUND_STREAMS)),
            per_peer: Arc::default(),
            slots: Arc::default(),
            next_slot: Arc::default(),
            evicted: Arc::default(),
            refused: Arc::default(),
        };
        tokio::spawn(bs.clone().accept_loop(incoming, cancel));
        tokio::spawn(bs.registry.clone().forget_unreachable(unreachable));
        Ok(bs)
    }

    /// Limits on block data each way, and what moved.
    pub fn bandwidth(&self) -> &bandwidth::Bandwidth {
        &self.bandwidth
    }

    /// Blocks and block bytes this node has served to peers since start.
    pub fn served(&self) -> Served {
        self.server.served()
    }

    /// Blocks received when we had them already, since start.
    pub fn received_twice(&self) -> Twice {
        self.registry.twice()
    }

    /// The budgets in use.
    pub fn usage(&self) -> Usage {
        let (outbound_kib, peers_dropped_not_reading) = self.outboxes.usage();
        Usage {
            inbound_streams: MAX_INBOUND_STREAMS - self.inbound.available_permits(),
            streams_evicted: self.evicted.load(Ordering::Relaxed),
            streams_refused: self.refused.load(Ordering::Relaxed),
            outbound_kib,
            peers_dropped_not_reading,
            received_unstored_kib: self.registry.budget_used_kib() as u64,
        }
    }

    /// Subscribes to Bitswap events.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    /// Forgets a disconnected peer.
    pub fn peer_disconnected(&self, peer: &PeerId) {
        self.outboxes.remove(peer);
        self.server.remove(peer);
        let (registry, peer) = (self.registry.clone(), *peer);
        tokio::spawn(async move { registry.on_peer_gone(peer).await });
    }

    /// Fetches the DAG under `root` (or its root block alone: `scope`) from `peers`, reporting
    /// progress; pins a whole DAG when complete.
    pub async fn fetch(
        &self,
        root: Cid,
        scope: Scope,
        peers: Vec<PeerId>,
        progress: watch::Sender<Progress>,
    ) -> Result<FetchStats, client::Error> {
        let (stats, bad) = client::fetch(
            self.registry.clone(),
            self.outboxes.clone(),
            self.store.clone(),
            self.writer.clone(),
            root,
            scope,
            peers,
            progress,
        )
        .await?;
        for peer in bad {
            let _ = self.events.send(Event::PeerMisbehaved { peer, reason: "sent wrong block bytes".into() });
        }
        Ok(stats)
    }

    async fn accept_loop(
        self,
        mut incoming: mpsc::Receiver<(PeerId, libp2p::Stream)>,
        cancel: CancellationToken,
    ) {
        loop {
            let (peer, stream) = tokio::select! {
                s = incoming.recv() => match s { Some(s) => s, None => break },
                _ = cancel.cancelled() => break,
            };
            if !self.count_peer_stream(peer) {
                self.refused.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(%peer, "too many bitswap streams from one peer: one refused");
                continue;
            }
            match self.inbound.clone().try_acquire_owned() {
                Ok(permit) => {
                    tokio::spawn(self.clone().read_stream(peer, stream, permit, cancel.clone()));
                }
                Err(_) => {
                    // Every permit is held: close the stream idle longest, and wait briefly
                    // for the permit it frees.
                    let bs = self.clone();
                    let evicted = self.evict_idlest();
                    let cancel = cancel.clone();
                    tokio::spawn(async move {
                        let permit = match evicted {
                            true => tokio::time::timeout(ADMIT_WAIT, bs.inbound.clone().acquire_owned())
                                .await
                                .ok()
                                .and_then(Result::ok),
                            false => None,
                        };
                        match permit {
                            Some(permit) => bs.read_stream(peer, stream, permit, cancel).await,
                            None => {
                                bs.refused.fetch_add(1, Ordering::Relaxed);
                                tracing::debug!(%peer, "every bitswap stream is busy: one refused");
                                bs.release(&peer);
                            }
                        }
                    });
                }
            }
        }
    }

    /// Counts one more stream of `peer`; false when it has its maximum.
    fn count_peer_stream(&self, peer: PeerId) -> bool {
        let mut per_peer = self.per_peer.lock().unwrap_or_else(|p| p.into_inner());
        let n = per_peer.entry(peer).or_default();
        if *n >= MAX_INBOUND_STREAMS_PER_PEER {
            return false;
        }
        *n += 1;
        true
    }

    /// Closes the stream idle longest, when one has been idle [`EVICT_IDLE_AFTER`]; returns
    /// whether one was.
    fn evict_idlest(&self) -> bool {
        let slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        let idlest = slots
            .values()
            .filter(|s| !s.close.is_cancelled() && s.last_message.elapsed() >= EVICT_IDLE_AFTER)
            .min_by_key(|s| s.last_message);
        match idlest {
            Some(s) => {
                tracing::debug!(peer = %s.peer, "closing an idle bitswap stream for a newcomer");
                s.close.cancel();
                self.evicted.fetch_add(1, Ordering::Relaxed);
                true
            }
            None => false,
        }
    }

    fn release(&self, peer: &PeerId) {
        let mut per_peer = self.per_peer.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = per_peer.get_mut(peer) {
            *n -= 1;
            if *n == 0 {
                per_peer.remove(peer);
            }
        }
    }

    async fn read_stream(
        self,
        peer: PeerId,
        mut stream: libp2p::Stream,
        _permit: OwnedSemaphorePermit,
        cancel: CancellationToken,
    ) {
        let id = self.next_slot.fetch_add(1, Ordering::Relaxed);
        let close = cancel.child_token();
        self.slots
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, Slot { peer, last_message: Instant::now(), close: close.clone() });
        loop {
            let msg = tokio::select! {
                m = codec::read_timed(&mut stream, STREAM_IDLE_TIMEOUT, STREAM_STALL_TIMEOUT) => m,
                _ = close.cancelled() => break,
            };
            if let Some(s) = self.slots.lock().unwrap_or_else(|p| p.into_inner()).get_mut(&id) {
                s.last_message = Instant::now();
            }
            match msg {
                Ok(Some(m)) => self.dispatch(peer, m).await,
                Ok(None) => break,
                Err(e) => {
                    tracing::debug!(%peer, error = %e, "bad bitswap stream");
                    if matches!(e, codec::Error::Message(_) | codec::Error::TooLarge(_)) {
                        let _ = self.events.send(Event::PeerMisbehaved { peer, reason: e.to_string() });
                    }
                    break;
                }
            }
        }
        self.slots.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
        self.release(&peer);
    }

    async fn dispatch(&self, peer: PeerId, m: message::Message) {
        if !m.wants.is_empty() || m.full {
            let dropped = self.server.on_wants(peer, m.wants, m.full);
            if dropped > 0 {
                let reason = format!("wantlist over {} entries ({dropped} more)", server::MAX_WANTS_PER_PEER);
                let _ = self.events.send(Event::PeerMisbehaved { peer, reason });
            }
        }
        // Blocks wait for the download limit before the stream is read further.
        self.bandwidth.download(peer, m.blocks.iter().map(|b| b.data().len()).sum()).await;
        for b in m.blocks {
            self.registry.on_block(peer, b).await;
        }
        for (cid, p) in m.presences {
            if p == Presence::DontHave {
                self.registry.on_dont_have(peer, cid).await;
            }
        }
    }
}
