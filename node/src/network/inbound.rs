//! Accepting inbound streams of given protocols into a bounded queue.
//!
//! `libp2p-stream` hands inbound streams over through a channel of capacity zero and drops a
//! stream that arrives while the previous one is still being taken: kubo opens up to eight
//! Bitswap streams at once (one block each) and Helia one per message, so bursts were dropped.
//! This behaviour negotiates the protocols itself and queues up to [`QUEUE`] streams; past that
//! it drops with a log line, never grows without bound.

use std::convert::Infallible;
use std::task::{Context, Poll};

use futures::future::{ready, Ready};
use libp2p::core::transport::PortUse;
use libp2p::core::upgrade::{DeniedUpgrade, InboundUpgrade, UpgradeInfo};
use libp2p::core::Endpoint;
use libp2p::swarm::handler::{ConnectionEvent, FullyNegotiatedInbound};
use libp2p::swarm::{
    ConnectionDenied, ConnectionHandler, ConnectionHandlerEvent, ConnectionId, FromSwarm, NetworkBehaviour,
    SubstreamProtocol, THandler, THandlerInEvent, THandlerOutEvent, ToSwarm,
};
use libp2p::{Multiaddr, PeerId, Stream, StreamProtocol};
use tokio::sync::mpsc;

/// Inbound streams queued before the consumer takes them.
pub const QUEUE: usize = 1024;

/// A stream a peer opened to us.
pub type Incoming = (PeerId, Stream);

/// The behaviour.
pub struct Behaviour {
    protocols: Vec<StreamProtocol>,
    tx: mpsc::Sender<Incoming>,
}

impl Behaviour {
    /// Accepts `protocols`; the streams come out of the returned receiver.
    pub fn new(protocols: Vec<StreamProtocol>) -> (Self, mpsc::Receiver<Incoming>) {
        let (tx, rx) = mpsc::channel(QUEUE);
        (Self { protocols, tx }, rx)
    }

    fn handler(&self, peer: PeerId) -> Handler {
        Handler { peer, protocols: self.protocols.clone(), tx: self.tx.clone() }
    }
}

impl NetworkBehaviour for Behaviour {
    type ConnectionHandler = Handler;
    type ToSwarm = Infallible;

    fn handle_established_inbound_connection(
        &mut self,
        _: ConnectionId,
        peer: PeerId,
        _: &Multiaddr,
        _: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(self.handler(peer))
    }

    fn handle_established_outbound_connection(
        &mut self,
        _: ConnectionId,
        peer: PeerId,
        _: &Multiaddr,
        _: Endpoint,
        _: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(self.handler(peer))
    }

    fn on_swarm_event(&mut self, _: FromSwarm) {}

    fn on_connection_handler_event(&mut self, _: PeerId, _: ConnectionId, ev: THandlerOutEvent<Self>) {
        match ev {}
    }

    fn poll(&mut self, _: &mut Context<'_>) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        Poll::Pending
    }
}

/// The per-connection handler: takes every negotiated inbound stream.
pub struct Handler {
    peer: PeerId,
    protocols: Vec<StreamProtocol>,
    tx: mpsc::Sender<Incoming>,
}

/// The protocols offered, yielding the raw stream once one is negotiated.
#[derive(Clone)]
pub struct Protocols(Vec<StreamProtocol>);

impl UpgradeInfo for Protocols {
    type Info = StreamProtocol;
    type InfoIter = std::vec::IntoIter<StreamProtocol>;
    fn protocol_info(&self) -> Self::InfoIter {
        self.0.clone().into_iter()
    }
}

impl InboundUpgrade<Stream> for Protocols {
    type Output = Stream;
    type Error = Infallible;
    type Future = Ready<Result<Stream, Infallible>>;
    fn upgrade_inbound(self, stream: Stream, _: StreamProtocol) -> Self::Future {
        ready(Ok(stream))
    }
}

impl ConnectionHandler for Handler {
    type FromBehaviour = Infallible;
    type ToBehaviour = Infallible;
    type InboundProtocol = Protocols;
    type OutboundProtocol = DeniedUpgrade;
    type InboundOpenInfo = ();
    type OutboundOpenInfo = Infallible;

    fn listen_protocol(&self) -> SubstreamProtocol<Protocols> {
        SubstreamProtocol::new(Protocols(self.protocols.clone()), ())
    }

    fn poll(
        &mut self,
        _: &mut Context<'_>,
    ) -> Poll<ConnectionHandlerEvent<DeniedUpgrade, Infallible, Infallible>> {
        Poll::Pending
    }

    fn on_behaviour_event(&mut self, ev: Infallible) {
        match ev {}
    }

    fn on_connection_event(&mut self, ev: ConnectionEvent<Protocols, DeniedUpgrade, (), Infallible>) {
        if let ConnectionEvent::FullyNegotiatedInbound(FullyNegotiatedInbound { protocol: stream, .. }) = ev {
            if self.tx.try_send((self.peer, stream)).is_err() {
                tracing::warn!(peer = %self.peer, "inbound stream queue full: stream dropped");
            }
        }
    }
}
