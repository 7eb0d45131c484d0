//! Whether peers can dial us: what AutoNAT confirmed or refuted about our addresses, and the
//! relayed addresses our reservations give us. It decides Kademlia's mode (`auto`), whether
//! we relay for others and whether we reserve slots on relays. Pure state; the event loop
//! feeds it swarm events and applies what it says.

use std::collections::BTreeSet;

use libp2p::multiaddr::Protocol;
use libp2p::Multiaddr;

use super::KadMode;

/// What we know about being dialable.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Reachability {
    /// An address of ours was dialed back (or we listen on loopback only).
    Public,
    /// Every address tested so far failed the dial-back: behind a NAT or a firewall.
    Private,
    /// Nothing tested yet.
    #[default]
    Unknown,
}

/// Where UPnP port mapping stands (`[network] upnp = true`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Upnp {
    /// Not enabled in the config.
    #[default]
    Off,
    /// Looking for an Internet gateway device on the LAN.
    Searching,
    /// No gateway answered, or the one that did gave no external address (miniupnpd, for one,
    /// refuses to name a private or reserved one).
    NoGateway,
    /// A gateway answered, but its own external address is not a public one (a second NAT in
    /// front of it, or a test network): a mapping on it would not make us reachable.
    GatewayNotPublic,
    /// A port is mapped on the gateway; its external address is among the confirmed ones.
    Mapped,
    /// The gateway stopped renewing our mapping.
    Expired,
}

/// What status queries show of NAT traversal.
#[derive(Clone, Debug, Default)]
pub struct NatStatus {
    pub reachability: Reachability,
    /// Confirmed external addresses peers dial directly.
    pub external: Vec<Multiaddr>,
    /// Addresses through relays we hold reservations on.
    pub relayed: Vec<Multiaddr>,
    pub hole_punches_succeeded: u64,
    pub hole_punches_failed: u64,
    /// Why the last hole punch failed.
    pub last_hole_punch_error: Option<String>,
    pub upnp: Upnp,
}

/// The facts behind [`Reachability`].
#[derive(Clone, Debug, Default)]
pub struct Tracker {
    /// Confirmed external addresses that are not relayed.
    direct: BTreeSet<Multiaddr>,
    /// Confirmed `/p2p-circuit` addresses (reservations on relays).
    relayed: BTreeSet<Multiaddr>,
    /// Candidates a dial-back failed for (and not confirmed since).
    failed: BTreeSet<Multiaddr>,
    /// Every listen address is loopback: whoever reaches us can dial us.
    loopback_only: bool,
}

/// Most refuted candidates remembered (peers report what they observe; it is not ours to
/// grow without bound).
const MAX_FAILED: usize = 64;

/// True for an address through a relay.
pub fn is_relayed(addr: &Multiaddr) -> bool {
    addr.iter().any(|p| p == Protocol::P2pCircuit)
}

fn is_loopback(addr: &Multiaddr) -> bool {
    match addr.iter().next() {
        Some(Protocol::Ip4(ip)) => ip.is_loopback(),
        Some(Protocol::Ip6(ip)) => ip.is_loopback(),
        _ => false,
    }
}

impl Tracker {
    /// A tracker for a node listening on `listen`.
    pub fn new(listen: &[Multiaddr]) -> Self {
        Self { loopback_only: !listen.is_empty() && listen.iter().all(is_loopback), ..Default::default() }
    }

    /// The swarm confirmed an external address (AutoNAT, a relay reservation, UPnP).
    pub fn confirmed(&mut self, addr: Multiaddr) {
        self.failed.remove(&addr);
        if is_relayed(&addr) {
            self.relayed.insert(addr);
        } else {
            self.direct.insert(addr);
        }
    }

    /// An external address expired (a reservation ended, a mapping went away).
    pub fn expired(&mut self, addr: &Multiaddr) {
        self.direct.remove(addr);
        self.relayed.remove(addr);
    }

    /// A dial-back to the candidate failed.
    pub fn refuted(&mut self, addr: Multiaddr) {
        if self.direct.contains(&addr) {
            return;
        }
        if self.failed.len() >= MAX_FAILED {
            self.failed.pop_first();
        }
        self.failed.insert(addr);
    }

    pub fn status(&self) -> Reachability {
        if self.loopback_only || !self.direct.is_empty() {
            Reachability::Public
        } else if !self.failed.is_empty() {
            Reachability::Private
        } else {
            Reachability::Unknown
        }
    }

    /// Confirmed external addresses that peers dial directly.
    pub fn external(&self) -> Vec<Multiaddr> {
        self.direct.iter().cloned().collect()
    }

    /// Addresses through relays.
    pub fn relayed(&self) -> Vec<Multiaddr> {
        self.relayed.iter().cloned().collect()
    }

    /// Kademlia serves the DHT only where others can dial it, unless the config forces a mode.
    pub fn kad_server(&self, mode: KadMode) -> bool {
        match mode {
            KadMode::Server => true,
            KadMode::Client => false,
            KadMode::Auto => self.status() == Reachability::Public,
        }
    }

    /// We relay for others only while publicly reachable.
    pub fn relay_server(&self) -> bool {
        self.status() == Reachability::Public
    }

    /// A node that peers may not be able to dial reserves slots on relays.
    pub fn wants_relays(&self) -> bool {
        self.status() != Reachability::Public
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> Multiaddr {
        s.parse().unwrap()
    }

    #[test]
    fn unknown_until_tested_private_when_refuted_public_when_dialed_back() {
        let mut t = Tracker::new(&[a("/ip4/0.0.0.0/tcp/4001")]);
        assert_eq!(t.status(), Reachability::Unknown);
        assert!(t.wants_relays() && !t.relay_server() && !t.kad_server(KadMode::Auto));
        t.refuted(a("/ip4/198.51.100.2/tcp/4001"));
        assert_eq!(t.status(), Reachability::Private);
        // A reservation gives a relayed address, not reachability.
        let circuit = a(
            "/ip4/203.0.113.1/tcp/4001/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN/p2p-circuit",
        );
        t.confirmed(circuit.clone());
        assert_eq!(t.status(), Reachability::Private);
        assert_eq!(t.relayed(), vec![circuit.clone()]);
        assert!(t.kad_server(KadMode::Server) && !t.kad_server(KadMode::Auto));
        t.confirmed(a("/ip4/198.51.100.2/tcp/4001"));
        assert_eq!(t.status(), Reachability::Public);
        assert!(t.relay_server() && t.kad_server(KadMode::Auto) && !t.kad_server(KadMode::Client));
        assert!(!t.wants_relays());
        // A refutation of a confirmed address does not undo it; its expiry does.
        t.refuted(a("/ip4/198.51.100.2/tcp/4001"));
        assert_eq!(t.status(), Reachability::Public);
        t.expired(&a("/ip4/198.51.100.2/tcp/4001"));
        assert_eq!(t.status(), Reachability::Unknown, "to be tested again");
        t.expired(&circuit);
        assert!(t.relayed().is_empty());
    }

    #[test]
    fn loopback_only_is_public_and_refuted_candidates_are_bounded() {
        assert_eq!(Tracker::new(&[a("/ip4/127.0.0.1/tcp/0")]).status(), Reachability::Public);
        assert_eq!(Tracker::new(&[]).status(), Reachability::Unknown);
        let mut t = Tracker::new(&[a("/ip4/127.0.0.1/tcp/0"), a("/ip4/0.0.0.0/tcp/0")]);
        assert_eq!(t.status(), Reachability::Unknown);
        for port in 0..1000u16 {
            t.refuted(a(&format!("/ip4/192.0.2.7/tcp/{port}")));
        }
        assert_eq!(t.failed.len(), MAX_FAILED);
    }
}
