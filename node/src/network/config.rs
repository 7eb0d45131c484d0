//! Settings of the network layer.

use std::time::Duration;

use libp2p::Multiaddr;
use serde::{Deserialize, Serialize};

/// Kademlia protocol of a private archive-node network (`/ipfs/kad/1.0.0` joins the IPFS DHT).
pub const DEFAULT_KAD_PROTOCOL: &str = "/archive-node/kad/1.0.0";

/// Network settings (the `[network]` section of the config file).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Addresses to listen on.
    pub listen: Vec<Multiaddr>,
    /// Peers to dial at start (full multiaddrs with `/p2p/<id>`). Empty by default: no public
    /// bootstrap peers.
    pub bootstrap: Vec<Multiaddr>,
    /// Kademlia protocol id.
    pub kad_protocol: String,
    /// Close a connection after this long without use, in seconds.
    pub idle_timeout_secs: u64,
    /// Most established connections in total.
    pub max_connections: u32,
    /// Most established connections per peer.
    pub max_connections_per_peer: u32,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: vec!["/ip4/127.0.0.1/tcp/0".parse().expect("valid multiaddr")],
            bootstrap: Vec::new(),
            kad_protocol: DEFAULT_KAD_PROTOCOL.to_string(),
            idle_timeout_secs: 300,
            max_connections: 512,
            max_connections_per_peer: 4,
        }
    }
}

impl Config {
    /// The idle timeout as a duration.
    pub fn idle_timeout(&self) -> Duration {
        Duration::from_secs(self.idle_timeout_secs)
    }
}
