//! Bitswap 1.2.0 (`/ipfs/bitswap/1.2.0`; 1.1.0 and 1.0.0 accepted inbound): serving blocks from
//! the block store and fetching DAGs from peers, over libp2p streams opened and accepted outside
//! the swarm task.
//!
//! Every inbound stream is read message by message (each at most 4 MiB) by its own task, bounded
//! in number overall and per peer; a peer may send each message on a new stream (Helia does).
//! Wantlists go to the [`server`], blocks and presences to the fetch sessions of the [`client`].
//! Answers and wants go out through one writer per peer on a stream we open.

pub mod client;
pub mod codec;
pub mod message;
mod outbox;
mod server;

pub use server::Served;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use libp2p::{PeerId, StreamProtocol};
use tokio::sync::{broadcast, mpsc, watch, OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

pub use client::{FetchStats, Progress};
use message::Presence;

use crate::blocks::cid::Cid;
use crate::blocks::store::BlockStore;

/// The protocol we open streams with.
pub const PROTOCOL_1_2: StreamProtocol = StreamProtocol::new("/ipfs/bitswap/1.2.0");
/// Every protocol we accept.
pub const PROTOCOLS: [StreamProtocol; 3] =
    [PROTOCOL_1_2, StreamProtocol::new("/ipfs/bitswap/1.1.0"), StreamProtocol::new("/ipfs/bitswap/1.0.0")];
/// Inbound streams read at once, over all peers.
const MAX_INBOUND_STREAMS: usize = 1024;
/// Inbound streams read at once from one peer.
const MAX_INBOUND_STREAMS_PER_PEER: usize = 32;

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
    outboxes: outbox::Outboxes,
    server: server::Server,
    registry: client::Registry,
    events: broadcast::Sender<Event>,
    inbound: Arc<Semaphore>,
    per_peer: Arc<Mutex<HashMap<PeerId, usize>>>,
}

impl Bitswap {
    /// Starts reading the Bitswap streams peers open (`incoming`) and opening ours with
    /// `control`; stops when `cancel` fires.
    pub fn start(
        control: libp2p_stream::Control,
        incoming: mpsc::Receiver<(PeerId, libp2p::Stream)>,
        store: BlockStore,
        cancel: CancellationToken,
    ) -> Self {
        let outboxes = outbox::Outboxes::new(control.clone(), cancel.clone());
        let (events, _) = broadcast::channel(256);
        let bs = Self {
            server: server::Server::new(store.clone(), outboxes.clone()),
            store,
            outboxes,
            registry: client::Registry::default(),
            events,
            inbound: Arc::new(Semaphore::new(MAX_INBOUND_STREAMS)),
            per_peer: Arc::default(),
        };
        tokio::spawn(bs.clone().accept_loop(incoming, cancel));
        bs
    }

    /// Subscribes to Bitswap events.
    /// Blocks and block bytes this node has served to peers since start.
    pub fn served(&self) -> Served {
        self.server.served()
    }

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

    /// Fetches the DAG under `root` from `peers`, reporting progress; pins it when complete.
    pub async fn fetch(
        &self,
        root: Cid,
        peers: Vec<PeerId>,
        progress: watch::Sender<Progress>,
    ) -> Result<FetchStats, client::Error> {
        let (stats, bad) = client::fetch(
            self.registry.clone(),
            self.outboxes.clone(),
            self.store.clone(),
            root,
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
            let Some(permit) = self.admit(peer) else {
                tracing::debug!(%peer, "too many bitswap streams: one refused");
                continue;
            };
            tokio::spawn(self.clone().read_stream(peer, stream, permit, cancel.clone()));
        }
    }

    fn admit(&self, peer: PeerId) -> Option<OwnedSemaphorePermit> {
        let mut per_peer = self.per_peer.lock().unwrap_or_else(|p| p.into_inner());
        let n = per_peer.entry(peer).or_default();
        if *n >= MAX_INBOUND_STREAMS_PER_PEER {
            return None;
        }
        let permit = self.inbound.clone().try_acquire_owned().ok()?;
        *n += 1;
        Some(permit)
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
        loop {
            let msg = tokio::select! {
                m = codec::read(&mut stream) => m,
                _ = cancel.cancelled() => break,
            };
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
