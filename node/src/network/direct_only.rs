//! A behaviour wrapper that keeps its protocols off relayed connections: Bitswap moves blocks
//! only over direct connections (a relay carries gossip, announcements and the hole punch, and
//! its circuits are capped at a few MiB). The inner behaviour never hears of a relayed
//! connection; such a connection gets a handler that speaks nothing.

use std::collections::HashSet;
use std::task::{Context, Poll};

use libp2p::core::transport::PortUse;
use libp2p::core::Endpoint;
// The `Either` the swarm implements `ConnectionHandler` for.
use libp2p::swarm::derive_prelude::Either;
use libp2p::swarm::{
    dummy, ConnectionDenied, ConnectionId, FromSwarm, NetworkBehaviour, THandler, THandlerInEvent,
    THandlerOutEvent, ToSwarm,
};
use libp2p::{Multiaddr, PeerId};

use super::reachability::is_relayed;

/// `B`, on direct connections only.
pub struct DirectOnly<B> {
    inner: B,
    relayed: HashSet<ConnectionId>,
}

impl<B> DirectOnly<B> {
    pub fn new(inner: B) -> Self {
        Self { inner, relayed: HashSet::new() }
    }

    pub fn inner(&self) -> &B {
        &self.inner
    }
}

impl<B: NetworkBehaviour> NetworkBehaviour for DirectOnly<B> {
    type ConnectionHandler = Either<THandler<B>, dummy::ConnectionHandler>;
    type ToSwarm = B::ToSwarm;

    fn handle_pending_inbound_connection(
        &mut self,
        id: ConnectionId,
        local: &Multiaddr,
        remote: &Multiaddr,
    ) -> Result<(), ConnectionDenied> {
        if is_relayed(local) {
            return Ok(());
        }
        self.inner.handle_pending_inbound_connection(id, local, remote)
    }

    fn handle_established_inbound_connection(
        &mut self,
        id: ConnectionId,
        peer: PeerId,
        local: &Multiaddr,
        remote: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        if is_relayed(local) {
            self.relayed.insert(id);
            return Ok(Either::Right(dummy::ConnectionHandler));
        }
        Ok(Either::Left(self.inner.handle_established_inbound_connection(id, peer, local, remote)?))
    }

    fn handle_pending_outbound_connection(
        &mut self,
        id: ConnectionId,
        peer: Option<PeerId>,
        addresses: &[Multiaddr],
        role: Endpoint,
    ) -> Result<Vec<Multiaddr>, ConnectionDenied> {
        self.inner.handle_pending_outbound_connection(id, peer, addresses, role)
    }

    fn handle_established_outbound_connection(
        &mut self,
        id: ConnectionId,
        peer: PeerId,
        addr: &Multiaddr,
        role: Endpoint,
        port_use: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        if is_relayed(addr) {
            self.relayed.insert(id);
            return Ok(Either::Right(dummy::ConnectionHandler));
        }
        Ok(Either::Left(self.inner.handle_established_outbound_connection(id, peer, addr, role, port_use)?))
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        let connection = match &event {
            FromSwarm::ConnectionEstablished(e) => Some(e.connection_id),
            FromSwarm::ConnectionClosed(e) => Some(e.connection_id),
            FromSwarm::AddressChange(e) => Some(e.connection_id),
            _ => None,
        };
        if let Some(id) = connection {
            if self.relayed.contains(&id) {
                if matches!(event, FromSwarm::ConnectionClosed(_)) {
                    self.relayed.remove(&id);
                }
                return;
            }
        }
        self.inner.on_swarm_event(event)
    }

    fn on_connection_handler_event(&mut self, peer: PeerId, id: ConnectionId, event: THandlerOutEvent<Self>) {
        match event {
            Either::Left(e) => self.inner.on_connection_handler_event(peer, id, e),
            Either::Right(never) => libp2p::core::util::unreachable(never),
        }
    }

    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        self.inner.poll(cx).map(|e| e.map_in(Either::Left))
    }
}
