//! The event loop's part in NAT traversal: it feeds AutoNAT's verdicts and confirmed external
//! addresses to the [`Tracker`], applies what it decides (Kademlia's mode, relaying for others),
//! reserves slots on relays while we are not publicly reachable, counts hole punches and
//! follows UPnP port mapping.

use libp2p::core::transport::ListenerId;
use libp2p::multiaddr::Protocol;
use libp2p::{autonat, dcutr, kad, relay, upnp, Multiaddr, PeerId, StreamProtocol};

use crate::network::reachability::Upnp;

use super::EventLoop;

/// The relay server's protocol, as identify lists it.
const HOP: StreamProtocol = StreamProtocol::new("/libp2p/circuit/relay/0.2.0/hop");

/// What the loop needs to know of the config.
#[derive(Clone, Debug)]
pub(super) struct Settings {
    pub kad_mode: crate::network::KadMode,
    pub relay_client: bool,
    pub max_relays: usize,
}

/// Reservations we asked relays for (a listener each).
#[derive(Debug, Default)]
pub(super) struct Relays {
    listeners: std::collections::HashMap<PeerId, ListenerId>,
}

impl EventLoop {
    /// Applies the tracker's decisions and publishes them to status readers.
    pub(super) fn apply_reachability(&mut self) {
        let server = self.nat.kad_server(self.nat_settings.kad_mode);
        let mode = if server { kad::Mode::Server } else { kad::Mode::Client };
        self.swarm.behaviour_mut().kad.set_mode(Some(mode));
        if let Some(relay) = self.swarm.behaviour_mut().relay_server.as_mut() {
            let status = if self.nat.relay_server() { relay::Status::Enable } else { relay::Status::Disable };
            relay.set_status(Some(status));
        }
        let (status, external, relayed) = (self.nat.status(), self.nat.external(), self.nat.relayed());
        self.status.send_modify(|s| {
            s.nat.reachability = status;
            s.nat.external = external;
            s.nat.relayed = relayed;
        });
    }

    pub(super) fn on_external_confirmed(&mut self, addr: Multiaddr) {
        tracing::info!(%addr, "external address confirmed");
        self.nat.confirmed(addr);
        self.apply_reachability();
    }

    pub(super) fn on_external_expired(&mut self, addr: &Multiaddr) {
        tracing::info!(%addr, "external address expired");
        self.nat.expired(addr);
        self.apply_reachability();
    }

    pub(super) fn on_autonat(&mut self, ev: autonat::v2::client::Event) {
        match ev.result {
            Ok(()) => tracing::debug!(addr = %ev.tested_addr, server = %ev.server, "dialed back"),
            Err(e) => {
                tracing::debug!(addr = %ev.tested_addr, server = %ev.server, error = %e, "not dialed back");
                self.nat.refuted(ev.tested_addr);
                self.apply_reachability();
            }
        }
    }

    /// A peer that relays for others, while we are not publicly reachable: listen through it
    /// (up to `max_relays` of them), at the address we dialed it on.
    pub(super) fn maybe_reserve(&mut self, peer: PeerId, protocols: &[StreamProtocol]) {
        let s = &self.nat_settings;
        if !s.relay_client
            || !self.nat.wants_relays()
            || !protocols.contains(&HOP)
            || self.relays.listeners.contains_key(&peer)
            || self.relays.listeners.len() >= s.max_relays
        {
            return;
        }
        let Some(addr) = self.connections.dialed(&peer) else { return };
        let circuit = addr.with_p2p(peer).unwrap_or_else(|a| a).with(Protocol::P2pCircuit);
        match self.swarm.listen_on(circuit.clone()) {
            Ok(id) => {
                tracing::info!(relay = %peer, addr = %circuit, "reserving a relay slot");
                self.relays.listeners.insert(peer, id);
            }
            Err(e) => tracing::warn!(relay = %peer, error = %e, "cannot listen through the relay"),
        }
    }

    /// A listener closed: a reservation that ended can be asked of another relay.
    pub(super) fn on_listener_closed(&mut self, id: ListenerId) {
        self.relays.listeners.retain(|_, l| *l != id);
    }

    pub(super) fn on_relay_client(&mut self, ev: relay::client::Event) {
        tracing::debug!(?ev, "relay client");
    }

    pub(super) fn on_relay_server(&mut self, ev: relay::Event) {
        tracing::debug!(?ev, "relay server");
    }

    /// A mapping's external address is confirmed by the swarm itself (the UPnP behaviour says
    /// so); this records where mapping stands, for `node_info.upnp`.
    pub(super) fn on_upnp(&mut self, ev: upnp::Event) {
        let state = match &ev {
            upnp::Event::NewExternalAddr { local_addr, external_addr } => {
                tracing::info!(%local_addr, %external_addr, "UPnP: port mapped on the gateway");
                Upnp::Mapped
            }
            upnp::Event::ExpiredExternalAddr { local_addr, external_addr } => {
                tracing::warn!(%local_addr, %external_addr, "UPnP: the gateway stopped renewing the mapping");
                Upnp::Expired
            }
            upnp::Event::GatewayNotFound => {
                tracing::info!("UPnP: no Internet gateway device answered");
                Upnp::NoGateway
            }
            upnp::Event::NonRoutableGateway => {
                tracing::warn!("UPnP: the gateway's external address is not public; no mapping made");
                Upnp::GatewayNotPublic
            }
        };
        self.status.send_modify(|s| s.nat.upnp = state);
    }

    pub(super) fn on_dcutr(&mut self, ev: dcutr::Event) {
        let peer = ev.remote_peer_id;
        match ev.result {
            Ok(connection) => {
                tracing::info!(%peer, ?connection, "hole punched: direct connection");
                self.status.send_modify(|s| s.nat.hole_punches_succeeded += 1);
            }
            Err(e) => {
                tracing::info!(%peer, error = %e, "hole punch failed: the peer stays relayed");
                let error = e.to_string();
                self.status.send_modify(|s| {
                    s.nat.hole_punches_failed += 1;
                    s.nat.last_hole_punch_error = Some(error);
                });
            }
        }
    }
}
