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
    /// Addresses to listen on. A daemon's config defaults to [`public_listen`]; the in-process
    /// default (tests, tools) is an ephemeral loopback port.
    #[serde(default = "public_listen")]
    pub listen: Vec<Multiaddr>,
    /// Addresses peers can dial us at, known without asking (a server's public address, a port
    /// forwarded by hand): confirmed at start, so the node is publicly reachable at once. An
    /// AutoNAT client can only ask peers it dialed, which a bootstrap node has none of. Empty by
    /// default: AutoNAT decides.
    pub external: Vec<Multiaddr>,
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
    /// Kademlia's mode: `auto` serves the DHT only once an external address is confirmed (or
    /// when every listen address is loopback, where whoever reaches us can dial us).
    pub kad_mode: KadMode,
    /// Test our addresses with AutoNAT v2 (through peers that serve it), and serve such tests.
    pub autonat: bool,
    /// Ask the home router for a port mapping (UPnP IGD). Off by default.
    pub upnp: bool,
    /// Circuit relay v2 (the `[network.relay]` section).
    pub relay: RelayConfig,
    /// Most bytes of blocks served per second, 0 for no limit (settable at run time).
    pub max_upload_rate: u64,
    /// Most bytes of blocks taken in per second, 0 for no limit (settable at run time).
    pub max_download_rate: u64,
}

/// Kademlia's mode.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KadMode {
    /// Server once publicly reachable (an external address confirmed), or on loopback only.
    #[default]
    Auto,
    /// Always answer DHT queries.
    Server,
    /// Never answer DHT queries.
    Client,
}

/// Circuit relay v2: serving relayed connections when publicly reachable, and using relays
/// when not.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RelayConfig {
    /// Relay for others once an external address is confirmed (the protocol is advertised
    /// only then).
    pub server: bool,
    /// Reserve slots on relays when not publicly reachable, and listen through them.
    pub client: bool,
    /// Relays reserved on at most at once, as a client.
    pub max_relays: usize,
    /// Reservations held for others at most, as a server.
    pub max_reservations: usize,
    /// Reservations one peer holds at most.
    pub max_reservations_per_peer: usize,
    /// How long a reservation lasts, seconds.
    pub reservation_secs: u64,
    /// Relayed connections through us at most.
    pub max_circuits: usize,
    /// Relayed connections to or from one peer at most.
    pub max_circuits_per_peer: usize,
    /// Longest a relayed connection lasts, seconds.
    pub max_circuit_secs: u64,
    /// Most bytes a relayed connection carries (each way), before it is closed: enough for
    /// gossip, announcements and the hole punch, not for history.
    pub max_circuit_bytes: u64,
}

impl Default for RelayConfig {
    fn default() -> Self {
        Self {
            server: true,
            client: true,
            max_relays: 2,
            max_reservations: 128,
            max_reservations_per_peer: 4,
            reservation_secs: 3600,
            max_circuits: 64,
            max_circuits_per_peer: 4,
            max_circuit_secs: 600,
            max_circuit_bytes: 4 << 20,
        }
    }
}

impl RelayConfig {
    /// The relay server's settings.
    pub fn server_config(&self) -> libp2p::relay::Config {
        libp2p::relay::Config {
            max_reservations: self.max_reservations,
            max_reservations_per_peer: self.max_reservations_per_peer,
            reservation_duration: Duration::from_secs(self.reservation_secs),
            max_circuits: self.max_circuits,
            max_circuits_per_peer: self.max_circuits_per_peer,
            max_circuit_duration: Duration::from_secs(self.max_circuit_secs),
            max_circuit_bytes: self.max_circuit_bytes,
            ..Default::default()
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: vec!["/ip4/127.0.0.1/tcp/0".parse().expect("valid multiaddr")],
            external: Vec::new(),
            bootstrap: Vec::new(),
            kad_protocol: DEFAULT_KAD_PROTOCOL.to_string(),
            idle_timeout_secs: 300,
            max_connections: 512,
            max_connections_per_peer: 4,
            kad_mode: KadMode::Auto,
            autonat: true,
            upnp: false,
            relay: RelayConfig::default(),
            max_upload_rate: 0,
            max_download_rate: 0,
        }
    }
}

/// Where a daemon listens when neither the config nor `--listen` says: every interface, the
/// IPFS port.
pub fn public_listen() -> Vec<Multiaddr> {
    let mut out = vec!["/ip4/0.0.0.0/tcp/4001".parse().expect("valid multiaddr")];
    if cfg!(feature = "quic") {
        out.push("/ip4/0.0.0.0/udp/4001/quic-v1".parse().expect("valid multiaddr"));
    }
    out
}

impl Config {
    /// The idle timeout as a duration.
    pub fn idle_timeout(&self) -> Duration {
        Duration::from_secs(self.idle_timeout_secs)
    }
}
