//! The libp2p node: one task owns the [`libp2p::Swarm`]; everything else talks to it through a
//! cloneable [`Client`] over a bounded command channel with oneshot replies, and hears about it
//! through [`Event`]s. No libp2p event type leaves this module.
//!
//! Transports: TCP (and QUIC with the `quic` feature), Noise, Yamux (wide windows between
//! archive-nodes, see [`muxer`]), and circuit relay v2.
//! Behaviours: connection limits, identify (`/ipfs/id/1.0.0`), ping, Kademlia (protocol
//! `/archive-node/kad/1.0.0` by default; a server once publicly reachable), gossipsub,
//! generic streams for Bitswap, and NAT traversal: AutoNAT v2 client and server, a relay
//! server (advertised only while publicly reachable), the relay client, DCUtR hole punching
//! and opt-in UPnP (see [`reachability`]).

mod behaviour;
mod command;
pub mod config;
mod connections;
mod direct_only;
mod event_loop;
pub mod inbound;
mod kad_store;
pub mod keys;
pub mod muxer;
pub mod pending;
pub mod reachability;
pub mod records;
pub mod state_codec;

pub use command::{Client, PeerInfo};
pub use config::{Config, KadMode, RelayConfig};
pub use connections::Link;
pub use event_loop::{start, Found, Started};
pub use libp2p::{Multiaddr, PeerId};

/// Heartbeats gossipsub keeps a message (also one not validated yet): long enough for a message
/// held for a newer community description ([`crate::node::validation`]'s hold) to be reported.
pub const GOSSIP_HISTORY_HEARTBEATS: usize = 10;

/// What the network tells the rest of the node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A first connection to the peer opened.
    PeerConnected(PeerId),
    /// The last connection to the peer closed.
    PeerDisconnected(PeerId),
    /// A first direct connection to a peer we were connected to through relays only (a hole
    /// punch worked, or it dialed us): Bitswap can reach it now.
    PeerDirect(PeerId),
    /// We listen on a new address (with `/p2p/<our id>`).
    ListeningOn(Multiaddr),
    /// The peer told us the protocols it speaks.
    PeerIdentified { peer: PeerId, protocols: Vec<String> },
    /// A peer put a record to us and it was admitted ([`records::admit`]): a valid IPNS record of
    /// a community name, newer than the one held.
    RecordStored { key: Vec<u8>, value: Vec<u8>, source: PeerId },
}

/// What peers ask of the node and wait on it for: on its own bounded queue (never a broadcast
/// that could lose it). When the queue is full the network answers at once (a gossip message is
/// ignored, a request refused) and counts it ([`Client::requests_dropped`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// A peer asks for our latest announcement and description of a community; answer with
    /// [`Client::respond_state`].
    State { peer: PeerId, community: Vec<u8>, id: u64 },
    /// A gossip message to validate (then report with [`Client::report`]).
    Gossip { topic: String, data: Vec<u8>, id: Vec<u8>, source: PeerId },
}

/// Requests queued for the node at most.
pub const REQUEST_QUEUE: usize = 1024;

/// Errors of the network layer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("network has shut down")]
    Shutdown,
    #[error("cannot listen on {addr}: {reason}")]
    Listen { addr: String, reason: String },
    #[error("cannot dial {addr}: {reason}")]
    Dial { addr: String, reason: String },
    #[error("network setup: {0}")]
    Setup(String),
    #[error("node key: {0}")]
    Key(String),
    #[error("DHT: {0}")]
    Dht(String),
    #[error("gossip: {0}")]
    Gossip(String),
}
