//! Commands to the network task, and the cloneable handle that sends them.

use libp2p::{Multiaddr, PeerId};
use tokio::sync::{broadcast, mpsc, oneshot, watch};

use super::{Error, Event};
use crate::blocks::cid::Cid;

/// Bound of the command channel: callers wait when the network task is this far behind.
pub(super) const COMMAND_QUEUE: usize = 256;

/// A request to the network task; each carries its reply channel.
#[derive(Debug)]
pub(super) enum Command {
    Dial { addr: Multiaddr, reply: oneshot::Sender<Result<PeerId, Error>> },
    DialPeer { peer: PeerId, reply: oneshot::Sender<Result<PeerId, Error>> },
    Ban { peer: PeerId, duration: std::time::Duration },
    Peers { reply: oneshot::Sender<Vec<PeerInfo>> },
    Provide { cid: Cid, reply: oneshot::Sender<Result<(), Error>> },
    FindProviders { cid: Cid, reply: oneshot::Sender<Result<Vec<PeerId>, Error>> },
    PutRecord { key: Vec<u8>, value: Vec<u8>, reply: oneshot::Sender<Result<(), Error>> },
    GetRecords { key: Vec<u8>, reply: oneshot::Sender<Result<Vec<super::Found>, Error>> },
    Subscribe { topic: String, subscribe: bool },
    Publish { topic: String, data: Vec<u8>, reply: oneshot::Sender<Result<(), Error>> },
    Report { id: Vec<u8>, source: PeerId, verdict: crate::gossip::Verdict },
    RequestState { peer: PeerId, community: Vec<u8>, reply: oneshot::Sender<Result<Vec<u8>, Error>> },
    RespondState { id: u64, state: Vec<u8> },
    PeerScore { peer: PeerId, reply: oneshot::Sender<Option<f64>> },
}

/// A connected peer.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct PeerInfo {
    pub peer_id: String,
    pub addrs: Vec<String>,
    /// `direct`, or `relayed` when every connection goes through a relay.
    pub link: super::connections::Link,
    /// Its gossipsub score (negative: it forwarded what our checks rejected).
    pub gossip_score: Option<f64>,
}

/// Handle to the network task; cheap to clone.
#[derive(Clone)]
pub struct Client {
    pub(super) tx: mpsc::Sender<Command>,
    pub(super) events: broadcast::Sender<Event>,
    pub(super) local: PeerId,
    /// What status queries read without waiting on the network task.
    pub(super) status: watch::Receiver<Status>,
    /// Requests answered at once because the node's queue was full.
    pub(super) requests_dropped: std::sync::Arc<std::sync::atomic::AtomicU64>,
    /// Publishes dropped while they waited for a subscribed peer.
    pub(super) publishes_dropped: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

/// The network's state that status queries read, kept current by the network task.
#[derive(Clone, Debug, Default)]
pub(super) struct Status {
    pub listen_addrs: Vec<Multiaddr>,
    pub banned: Vec<PeerId>,
    pub nat: super::reachability::NatStatus,
}

impl Client {
    async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Command) -> Result<T, Error> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(make(reply)).await.map_err(|_| Error::Shutdown)?;
        rx.await.map_err(|_| Error::Shutdown)
    }

    /// Our peer id.
    pub fn local_peer_id(&self) -> PeerId {
        self.local
    }

    /// Dials `addr` (with or without `/p2p/<id>`); returns the peer once connected.
    pub async fn dial(&self, addr: Multiaddr) -> Result<PeerId, Error> {
        self.ask(|reply| Command::Dial { addr, reply }).await?
    }

    /// Dials a peer by id, at the addresses the DHT or identify told us (no-op when connected).
    pub async fn dial_peer(&self, peer: PeerId) -> Result<PeerId, Error> {
        self.ask(|reply| Command::DialPeer { peer, reply }).await?
    }

    /// Closes every connection to `peer` and refuses its connections for `duration`.
    pub async fn ban(&self, peer: PeerId, duration: std::time::Duration) -> Result<(), Error> {
        self.tx.send(Command::Ban { peer, duration }).await.map_err(|_| Error::Shutdown)
    }

    /// The peers banned now.
    pub fn banned(&self) -> Vec<PeerId> {
        self.status.borrow().banned.clone()
    }

    /// The connected peers.
    pub async fn peers(&self) -> Result<Vec<PeerInfo>, Error> {
        self.ask(|reply| Command::Peers { reply }).await
    }

    /// Whether peers can dial us, our external and relayed addresses, hole punches.
    pub fn nat(&self) -> super::reachability::NatStatus {
        self.status.borrow().nat.clone()
    }

    /// Our listen addresses, each with `/p2p/<our id>`.
    pub async fn listen_addrs(&self) -> Result<Vec<Multiaddr>, Error> {
        Ok(self.status.borrow().listen_addrs.clone())
    }

    /// Announces on the DHT that we provide `cid`.
    pub async fn provide(&self, cid: Cid) -> Result<(), Error> {
        self.ask(|reply| Command::Provide { cid, reply }).await?
    }

    /// Peers the DHT knows to provide `cid`.
    pub async fn find_providers(&self, cid: Cid) -> Result<Vec<PeerId>, Error> {
        self.ask(|reply| Command::FindProviders { cid, reply }).await?
    }

    /// Stores a record on the DHT (here, and at the peers closest to its key).
    pub async fn put_record(&self, key: Vec<u8>, value: Vec<u8>) -> Result<(), Error> {
        self.ask(|reply| Command::PutRecord { key, value, reply }).await?
    }

    /// The records stored under `key`: ours, and those the peers closest to it answer with
    /// (each with the peer that gave it), unchecked: the caller validates.
    pub async fn get_records(&self, key: Vec<u8>) -> Result<Vec<super::Found>, Error> {
        self.ask(|reply| Command::GetRecords { key, reply }).await?
    }

    /// Joins (or leaves) a gossip topic.
    pub async fn subscribe_topic(&self, topic: String, subscribe: bool) -> Result<(), Error> {
        self.tx.send(Command::Subscribe { topic, subscribe }).await.map_err(|_| Error::Shutdown)
    }

    /// Publishes on a gossip topic; queued (bounded) until a peer subscribed to it is connected.
    pub async fn publish(&self, topic: String, data: Vec<u8>) -> Result<(), Error> {
        self.ask(|reply| Command::Publish { topic, data, reply }).await?
    }

    /// Reports our verdict on a gossip message: only accepted ones are forwarded.
    pub async fn report(
        &self,
        id: Vec<u8>,
        source: PeerId,
        verdict: crate::gossip::Verdict,
    ) -> Result<(), Error> {
        self.tx.send(Command::Report { id, source, verdict }).await.map_err(|_| Error::Shutdown)
    }

    /// Asks a peer for its latest announcement and description of a community (the encoded
    /// `CommunityState`).
    pub async fn request_state(&self, peer: PeerId, community: Vec<u8>) -> Result<Vec<u8>, Error> {
        self.ask(|reply| Command::RequestState { peer, community, reply }).await?
    }

    /// Answers a [`Request::State`](super::Request::State).
    pub async fn respond_state(&self, id: u64, state: Vec<u8>) -> Result<(), Error> {
        self.tx.send(Command::RespondState { id, state }).await.map_err(|_| Error::Shutdown)
    }

    /// A peer's gossipsub score (negative: it forwarded what we rejected).
    pub async fn peer_score(&self, peer: PeerId) -> Result<Option<f64>, Error> {
        self.ask(|reply| Command::PeerScore { peer, reply }).await
    }

    /// Gossip messages ignored and state requests refused because the node's queue was full.
    pub fn requests_dropped(&self) -> u64 {
        self.requests_dropped.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Publishes dropped while they waited for a subscribed peer (past 256 or 4 MiB per topic,
    /// oldest first; the archives still carry them).
    pub fn publishes_dropped(&self) -> u64 {
        self.publishes_dropped.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Subscribes to network events (a slow subscriber misses events rather than block the network).
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }
}
