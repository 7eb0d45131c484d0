//! The open connections of each peer and whether they are direct or through a relay. Bounded
//! by the connection limits; pure state the event loop keeps current.

use std::collections::HashMap;

use libp2p::swarm::ConnectionId;
use libp2p::{Multiaddr, PeerId};

use super::reachability::is_relayed;

/// How we are connected to a peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Link {
    /// At least one connection does not go through a relay.
    Direct,
    /// Every connection goes through a relay.
    Relayed,
}

#[derive(Clone, Debug)]
struct Connection {
    remote: Multiaddr,
    /// We dialed it (so `remote` is an address the peer listens on).
    dialer: bool,
}

/// Connections by peer.
#[derive(Clone, Debug, Default)]
pub struct Connections {
    peers: HashMap<PeerId, HashMap<ConnectionId, Connection>>,
}

impl Connections {
    pub fn opened(&mut self, peer: PeerId, id: ConnectionId, remote: Multiaddr, dialer: bool) {
        self.peers.entry(peer).or_default().insert(id, Connection { remote, dialer });
    }

    pub fn closed(&mut self, peer: &PeerId, id: ConnectionId) {
        if let Some(c) = self.peers.get_mut(peer) {
            c.remove(&id);
            if c.is_empty() {
                self.peers.remove(peer);
            }
        }
    }

    /// How we are connected to `peer`, if we are.
    pub fn link(&self, peer: &PeerId) -> Option<Link> {
        let c = self.peers.get(peer)?;
        Some(if c.values().any(|c| !is_relayed(&c.remote)) { Link::Direct } else { Link::Relayed })
    }

    /// The remote addresses of the peer's connections.
    pub fn addrs(&self, peer: &PeerId) -> Vec<Multiaddr> {
        self.peers.get(peer).map(|c| c.values().map(|c| c.remote.clone()).collect()).unwrap_or_default()
    }

    /// An address we dialed the peer at directly (where we can ask it for a relay reservation).
    pub fn dialed(&self, peer: &PeerId) -> Option<Multiaddr> {
        self.peers.get(peer)?.values().find(|c| c.dialer && !is_relayed(&c.remote)).map(|c| c.remote.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_is_direct_while_one_connection_is() {
        let (peer, mut c) = (PeerId::random(), Connections::default());
        let relay = PeerId::random();
        let circuit: Multiaddr =
            format!("/ip4/203.0.113.1/tcp/4001/p2p/{relay}/p2p-circuit").parse().unwrap();
        let direct: Multiaddr = "/ip4/198.51.100.2/tcp/4001".parse().unwrap();
        assert_eq!(c.link(&peer), None);
        c.opened(peer, ConnectionId::new_unchecked(1), circuit.clone(), true);
        assert_eq!(c.link(&peer), Some(Link::Relayed));
        assert_eq!(c.dialed(&peer), None, "a relayed connection is no place to reserve on");
        c.opened(peer, ConnectionId::new_unchecked(2), direct.clone(), false);
        assert_eq!(c.link(&peer), Some(Link::Direct));
        assert_eq!(c.dialed(&peer), None, "an inbound connection's address is not one it listens on");
        c.opened(peer, ConnectionId::new_unchecked(3), direct.clone(), true);
        assert_eq!(c.dialed(&peer), Some(direct));
        c.closed(&peer, ConnectionId::new_unchecked(2));
        c.closed(&peer, ConnectionId::new_unchecked(3));
        assert_eq!(c.link(&peer), Some(Link::Relayed));
        assert_eq!(c.addrs(&peer), vec![circuit]);
        c.closed(&peer, ConnectionId::new_unchecked(1));
        assert_eq!(c.link(&peer), None);
        assert!(c.peers.is_empty());
    }
}
