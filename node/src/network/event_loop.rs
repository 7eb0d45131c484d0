//! The task that owns the swarm.

use futures::StreamExt;
use libp2p::multiaddr::Protocol;
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::{ConnectionId, SwarmEvent};
use libp2p::{gossipsub, identify, identity, kad, noise, request_response, tcp, Multiaddr, PeerId, Swarm};
use std::collections::HashMap;
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

mod nat;
mod records;

pub use records::Found;

use super::behaviour::{Behaviour, BehaviourEvent};
use super::command::{Client, Command, PeerInfo, Status, COMMAND_QUEUE};
use super::muxer;
use super::pending::Pending;
use super::{Config, Error, Event};

/// Bound of the event broadcast: a subscriber this far behind loses the oldest events.
const EVENT_QUEUE: usize = 1024;

/// Longest a connection takes to open and upgrade (TCP, Noise, Yamux). Shorter than AutoNAT
/// v2's 10 s per test: a dial-back to a peer behind a NAT that drops it silently then fails
/// in time to tell the peer it is not reachable, rather than leaving it untested. Ample for
/// links of a few hundred milliseconds.
const CONNECTION_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Community state requests from peers awaiting our answer (more are refused).
const PENDING_INBOUND_REQUESTS: usize = 1024;

/// A started network.
pub struct Started {
    pub client: Client,
    /// What peers ask of the node (gossip to validate, state requests to answer).
    pub requests: mpsc::Receiver<super::Request>,
    /// Opens protocol streams (Bitswap) outside the swarm task.
    pub streams: libp2p_stream::Control,
    /// Streams peers opened to us on the `inbound_protocols` given to [`start`].
    pub incoming: tokio::sync::mpsc::Receiver<super::inbound::Incoming>,
    /// The swarm task; ends when `cancel` fires or every client is dropped.
    pub task: tokio::task::JoinHandle<()>,
}

/// Builds the swarm, starts listening and spawns the task that owns it.
pub async fn start(
    key: identity::Keypair,
    config: Config,
    gossip: crate::gossip::Config,
    inbound_protocols: Vec<libp2p::StreamProtocol>,
    cancel: CancellationToken,
) -> Result<Started, Error> {
    let local = key.public().to_peer_id();
    let builder = libp2p::SwarmBuilder::with_existing_identity(key.clone())
        .with_tokio()
        .with_tcp(tcp::Config::default().nodelay(true), noise::Config::new, (muxer::wide, muxer::standard))
        .map_err(|e| Error::Setup(e.to_string()))?;
    #[cfg(feature = "quic")]
    let builder = builder.with_quic();
    let mut incoming = None;
    let mut swarm = builder
        .with_relay_client(noise::Config::new, muxer::standard)
        .map_err(|e| Error::Setup(e.to_string()))?
        .with_behaviour(|_, relay_client| {
            let (behaviour, rx) = Behaviour::new(&key, &config, &gossip, inbound_protocols, relay_client)
                .map_err(|e| -> Box<dyn std::error::Error + Send + Sync> { Box::new(e) })?;
            incoming = Some(rx);
            Ok(behaviour)
        })
        .map_err(|e| Error::Setup(e.to_string()))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(config.idle_timeout()))
        .with_connection_timeout(CONNECTION_TIMEOUT)
        .build();

    let mut listen_ids = Vec::new();
    for addr in &config.listen {
        let id = swarm
            .listen_on(addr.clone())
            .map_err(|e| Error::Listen { addr: addr.to_string(), reason: e.to_string() })?;
        listen_ids.push(id);
    }
    let incoming = incoming.ok_or_else(|| Error::Setup("no behaviour built".into()))?;
    let streams = swarm.behaviour().stream.inner().new_control();
    let (tx, rx) = mpsc::channel(COMMAND_QUEUE);
    let (requests_tx, requests) = mpsc::channel(super::REQUEST_QUEUE);
    let requests_dropped = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let publishes_dropped = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let (events, _) = broadcast::channel(EVENT_QUEUE);
    let mut initial = Status::default();
    if config.upnp {
        initial.nat.upnp = super::reachability::Upnp::Searching;
    }
    let (status, status_rx) = watch::channel(initial);
    let client = Client {
        tx,
        events: events.clone(),
        local,
        status: status_rx,
        requests_dropped: requests_dropped.clone(),
        publishes_dropped: publishes_dropped.clone(),
    };
    let mut lp = EventLoop {
        swarm,
        rx,
        events,
        local,
        status,
        pending_listen: listen_ids.len(),
        pending_dials: HashMap::new(),
        pending_provides: HashMap::new(),
        pending_providers: HashMap::new(),
        records: records::Queries::default(),
        pending_publishes: Pending::default(),
        pending_requests: HashMap::new(),
        inbound_requests: HashMap::new(),
        next_inbound: 0,
        requests_tx,
        requests_dropped,
        publishes_dropped,
        bans: HashMap::new(),
        nat: super::reachability::Tracker::new(&config.listen),
        nat_settings: nat::Settings {
            kad_mode: config.kad_mode,
            relay_client: config.relay.client,
            max_relays: config.relay.max_relays,
        },
        relays: nat::Relays::default(),
        connections: super::connections::Connections::default(),
        awaiting_peer: HashMap::new(),
    };
    for addr in &config.external {
        // The behaviours hear of it from the swarm; the swarm reports no event for it.
        lp.swarm.add_external_address(addr.clone());
        lp.nat.confirmed(addr.clone());
    }
    lp.apply_reachability();
    // Wait until every listener reported an address, so callers can print them.
    while lp.pending_listen > 0 {
        tokio::select! {
            ev = lp.swarm.select_next_some() => lp.on_swarm_event(ev),
            _ = cancel.cancelled() => return Err(Error::Shutdown),
        }
    }
    for addr in config.bootstrap.clone() {
        if let Err(e) = lp.swarm.dial(addr.clone()) {
            tracing::warn!(%addr, error = %e, "cannot dial bootstrap peer");
        }
    }
    let task = tokio::spawn(lp.run(cancel));
    Ok(Started { client, requests, streams, incoming, task })
}

type DialReply = oneshot::Sender<Result<PeerId, Error>>;
type ProvidersReply = oneshot::Sender<Result<Vec<PeerId>, Error>>;

struct EventLoop {
    swarm: Swarm<Behaviour>,
    rx: mpsc::Receiver<Command>,
    events: broadcast::Sender<Event>,
    local: PeerId,
    status: watch::Sender<Status>,
    pending_listen: usize,
    pending_dials: HashMap<ConnectionId, (Multiaddr, oneshot::Sender<Result<PeerId, Error>>)>,
    pending_provides: HashMap<kad::QueryId, oneshot::Sender<Result<(), Error>>>,
    pending_providers: HashMap<kad::QueryId, (Vec<PeerId>, ProvidersReply)>,
    /// Record puts and gets under way.
    records: records::Queries,
    /// Publishes made before any peer subscribed to their topic, flushed on `Subscribed`.
    pending_publishes: Pending,
    pending_requests: HashMap<request_response::OutboundRequestId, oneshot::Sender<Result<Vec<u8>, Error>>>,
    inbound_requests: HashMap<u64, request_response::ResponseChannel<Vec<u8>>>,
    next_inbound: u64,
    requests_tx: mpsc::Sender<super::Request>,
    /// Requests answered at once because the node's queue was full.
    requests_dropped: std::sync::Arc<std::sync::atomic::AtomicU64>,
    /// Publishes dropped while waiting for a peer (over [`Pending`]'s bounds).
    publishes_dropped: std::sync::Arc<std::sync::atomic::AtomicU64>,
    /// Banned peers and when their ban ends.
    bans: HashMap<PeerId, std::time::Instant>,
    /// Whether peers can dial us.
    nat: super::reachability::Tracker,
    nat_settings: nat::Settings,
    /// Reservations asked of relays.
    relays: nat::Relays,
    /// Open connections, direct or relayed.
    connections: super::connections::Connections,
    /// Dial requests waiting on a dial to the same peer already under way.
    awaiting_peer: HashMap<PeerId, Vec<(Multiaddr, DialReply)>>,
}

/// Providers a lookup dials at most, while the query still knows their addresses.
const PROVIDERS_DIALED: usize = 16;

/// How often expired bans are lifted.
const BAN_SWEEP: std::time::Duration = std::time::Duration::from_secs(5);
/// Most peers banned at once (an attacker can make peer ids for free): past this, the ban that
/// ends first is lifted early.
const MAX_BANS: usize = 10_000;

impl EventLoop {
    async fn run(mut self, cancel: CancellationToken) {
        let mut sweep = tokio::time::interval(BAN_SWEEP);
        loop {
            tokio::select! {
                ev = self.swarm.select_next_some() => self.on_swarm_event(ev),
                _ = sweep.tick() => self.lift_expired_bans(),
                cmd = self.rx.recv() => match cmd {
                    Some(cmd) => self.on_command(cmd),
                    None => break,
                },
                _ = cancel.cancelled() => break,
            }
        }
        tracing::debug!("network task stopped");
    }

    fn lift_expired_bans(&mut self) {
        let now = std::time::Instant::now();
        let expired: Vec<PeerId> =
            self.bans.iter().filter(|(_, until)| **until <= now).map(|(p, _)| *p).collect();
        if expired.is_empty() {
            return;
        }
        for peer in expired {
            self.lift_ban(peer);
        }
        self.publish_bans();
    }

    fn lift_ban(&mut self, peer: PeerId) {
        self.bans.remove(&peer);
        self.swarm.behaviour_mut().banned.unblock_peer(peer);
        tracing::info!(%peer, "ban lifted");
    }

    /// Status queries read the ban list from here.
    fn publish_bans(&self) {
        let banned = self.bans.keys().copied().collect();
        self.status.send_modify(|s| s.banned = banned);
    }

    fn dropped_request(&self, what: &str) {
        let n = self.requests_dropped.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        if n.is_power_of_two() {
            tracing::warn!(what, dropped = n, "the node's request queue is full: answered at once");
        }
    }

    fn emit(&self, e: Event) {
        // No subscriber is fine.
        let _ = self.events.send(e);
    }

    fn on_command(&mut self, cmd: Command) {
        match cmd {
            Command::Dial { addr, reply } => {
                let opts = match addr.iter().last() {
                    Some(Protocol::P2p(peer)) if self.swarm.is_connected(&peer) => {
                        let _ = reply.send(Ok(peer));
                        return;
                    }
                    Some(Protocol::P2p(peer)) => {
                        DialOpts::peer_id(peer).addresses(vec![addr.clone()]).build()
                    }
                    _ => DialOpts::unknown_peer_id().address(addr.clone()).build(),
                };
                self.start_dial(opts, addr, reply);
            }
            Command::DialPeer { peer, reply } => {
                if self.swarm.is_connected(&peer) {
                    let _ = reply.send(Ok(peer));
                    return;
                }
                let addr = Multiaddr::empty().with(Protocol::P2p(peer));
                self.start_dial(DialOpts::peer_id(peer).build(), addr, reply);
            }
            Command::Subscribe { topic, subscribe } => {
                let t = gossipsub::IdentTopic::new(topic);
                if subscribe {
                    if let Err(e) = self.swarm.behaviour_mut().gossipsub.subscribe(&t) {
                        tracing::warn!(topic = %t, error = %e, "cannot subscribe");
                    }
                    if let Err(e) = self
                        .swarm
                        .behaviour_mut()
                        .gossipsub
                        .set_topic_params(t.clone(), super::behaviour::topic_score_params())
                    {
                        tracing::warn!(topic = %t, error = e, "cannot set topic scoring");
                    }
                } else {
                    self.swarm.behaviour_mut().gossipsub.unsubscribe(&t);
                    self.pending_publishes.take(&t.hash());
                }
            }
            Command::Publish { topic, data, reply } => {
                let t = gossipsub::IdentTopic::new(topic);
                let r = match self.swarm.behaviour_mut().gossipsub.publish(t.clone(), data.clone()) {
                    Ok(_) | Err(gossipsub::PublishError::Duplicate) => Ok(()),
                    Err(gossipsub::PublishError::NoPeersSubscribedToTopic) => {
                        let dropped = self.pending_publishes.push(t.hash(), data);
                        if dropped > 0 {
                            self.publishes_dropped
                                .fetch_add(dropped as u64, std::sync::atomic::Ordering::Relaxed);
                            tracing::debug!(topic = %t, dropped, "publishes waiting for a peer over their bounds (256, 4 MiB): oldest dropped; archives carry them");
                        }
                        Ok(())
                    }
                    Err(e) => Err(Error::Gossip(e.to_string())),
                };
                let _ = reply.send(r);
            }
            Command::Report { id, source, verdict } => {
                let acceptance = match verdict {
                    crate::gossip::Verdict::Accept => gossipsub::MessageAcceptance::Accept,
                    crate::gossip::Verdict::Ignore => gossipsub::MessageAcceptance::Ignore,
                    crate::gossip::Verdict::Reject => gossipsub::MessageAcceptance::Reject,
                };
                self.swarm.behaviour_mut().gossipsub.report_message_validation_result(
                    &gossipsub::MessageId::from(id),
                    &source,
                    acceptance,
                );
            }
            Command::PeerScore { peer, reply } => {
                let _ = reply.send(self.swarm.behaviour().gossipsub.peer_score(&peer));
            }
            Command::RequestState { peer, community, reply } => {
                let id = self.swarm.behaviour_mut().state.send_request(&peer, community);
                self.pending_requests.insert(id, reply);
            }
            Command::RespondState { id, state } => {
                if let Some(channel) = self.inbound_requests.remove(&id) {
                    let _ = self.swarm.behaviour_mut().state.send_response(channel, state);
                }
            }
            Command::Ban { peer, duration } => {
                if self.bans.len() >= MAX_BANS && !self.bans.contains_key(&peer) {
                    if let Some(first) = self.bans.iter().min_by_key(|(_, until)| **until).map(|(p, _)| *p) {
                        self.lift_ban(first);
                    }
                }
                // Blocking closes the peer's connections and refuses new ones.
                self.swarm.behaviour_mut().banned.block_peer(peer);
                let until = std::time::Instant::now() + duration;
                let end = self.bans.entry(peer).or_insert(until);
                *end = (*end).max(until);
                self.publish_bans();
            }
            Command::Peers { reply } => {
                let peers = self
                    .swarm
                    .connected_peers()
                    .map(|p| PeerInfo {
                        peer_id: p.to_string(),
                        addrs: self.connections.addrs(p).iter().map(|a| a.to_string()).collect(),
                        link: self.connections.link(p).unwrap_or(super::Link::Direct),
                        gossip_score: self.swarm.behaviour().gossipsub.peer_score(p),
                    })
                    .collect();
                let _ = reply.send(peers);
            }
            Command::Provide { cid, reply } => {
                match self
                    .swarm
                    .behaviour_mut()
                    .kad
                    .start_providing(kad::RecordKey::new(&cid.hash().to_bytes()))
                {
                    Ok(q) => {
                        self.pending_provides.insert(q, reply);
                    }
                    Err(e) => {
                        let _ = reply.send(Err(Error::Dht(e.to_string())));
                    }
                }
            }
            Command::PutRecord { key, value, reply } => self.put_record(key, value, reply),
            Command::GetRecords { key, reply } => self.get_records(key, reply),
            Command::FindProviders { cid, reply } => {
                let q =
                    self.swarm.behaviour_mut().kad.get_providers(kad::RecordKey::new(&cid.hash().to_bytes()));
                self.pending_providers.insert(q, (Vec::new(), reply));
            }
        }
    }

    /// Dials; the reply goes out when the connection is established or fails.
    fn start_dial(&mut self, opts: DialOpts, addr: Multiaddr, reply: oneshot::Sender<Result<PeerId, Error>>) {
        let id = opts.connection_id();
        let peer = opts.get_peer_id();
        match self.swarm.dial(opts) {
            Ok(()) => {
                self.pending_dials.insert(id, (addr, reply));
            }
            // A dial to the peer is under way already (a provider lookup started it): its
            // outcome answers this one too.
            Err(libp2p::swarm::DialError::DialPeerConditionFalse(_)) if peer.is_some() => {
                let peer = peer.expect("checked");
                self.awaiting_peer.entry(peer).or_default().push((addr, reply));
            }
            Err(e) => {
                let _ = reply.send(Err(Error::Dial { addr: addr.to_string(), reason: e.to_string() }));
            }
        }
    }

    fn on_swarm_event(&mut self, ev: SwarmEvent<BehaviourEvent>) {
        match ev {
            SwarmEvent::NewListenAddr { address, .. } => {
                let full = address.with_p2p(self.local).unwrap_or_else(|a| a);
                tracing::info!(addr = %full, "listening");
                self.status.send_modify(|s| s.listen_addrs.push(full.clone()));
                self.pending_listen = self.pending_listen.saturating_sub(1);
                self.emit(Event::ListeningOn(full));
            }
            SwarmEvent::ListenerError { error, .. } => tracing::warn!(%error, "listener error"),
            SwarmEvent::ListenerClosed { listener_id, reason, .. } => {
                tracing::debug!(?reason, "listener closed");
                self.on_listener_closed(listener_id);
            }
            SwarmEvent::ExpiredListenAddr { address, .. } => {
                let full = address.with_p2p(self.local).unwrap_or_else(|a| a);
                self.status.send_modify(|s| s.listen_addrs.retain(|a| *a != full));
            }
            SwarmEvent::ExternalAddrConfirmed { address } => self.on_external_confirmed(address),
            SwarmEvent::ExternalAddrExpired { address } => self.on_external_expired(&address),
            SwarmEvent::ConnectionEstablished {
                peer_id, connection_id, num_established, endpoint, ..
            } => {
                let remote = endpoint.get_remote_address().clone();
                let was = self.connections.link(&peer_id);
                self.connections.opened(peer_id, connection_id, remote, endpoint.is_dialer());
                if was == Some(super::Link::Relayed)
                    && self.connections.link(&peer_id) == Some(super::Link::Direct)
                {
                    tracing::info!(peer = %peer_id, "direct connection to a relayed peer");
                    self.emit(Event::PeerDirect(peer_id));
                }
                if let Some((_, reply)) = self.pending_dials.remove(&connection_id) {
                    let _ = reply.send(Ok(peer_id));
                }
                for (_, reply) in self.awaiting_peer.remove(&peer_id).unwrap_or_default() {
                    let _ = reply.send(Ok(peer_id));
                }
                if endpoint.is_dialer() {
                    self.swarm
                        .behaviour_mut()
                        .kad
                        .add_address(&peer_id, endpoint.get_remote_address().clone());
                }
                if num_established.get() == 1 {
                    tracing::debug!(peer = %peer_id, "connected");
                    self.emit(Event::PeerConnected(peer_id));
                }
            }
            SwarmEvent::ConnectionClosed { peer_id, connection_id, num_established, .. } => {
                self.connections.closed(&peer_id, connection_id);
                if num_established == 0 {
                    tracing::debug!(peer = %peer_id, "disconnected");
                    self.emit(Event::PeerDisconnected(peer_id));
                }
            }
            SwarmEvent::OutgoingConnectionError { connection_id, error, peer_id } => {
                if let Some((addr, reply)) = self.pending_dials.remove(&connection_id) {
                    let _ =
                        reply.send(Err(Error::Dial { addr: addr.to_string(), reason: error.to_string() }));
                }
                if let Some(peer) = peer_id.filter(|p| !self.swarm.is_connected(p)) {
                    for (addr, reply) in self.awaiting_peer.remove(&peer).unwrap_or_default() {
                        let _ = reply
                            .send(Err(Error::Dial { addr: addr.to_string(), reason: error.to_string() }));
                    }
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Identify(identify::Event::Received {
                peer_id,
                info,
                ..
            })) => {
                let kad_protocol = self.swarm.behaviour().kad.protocol_names().first().cloned();
                if kad_protocol.is_some_and(|p| info.protocols.contains(&p)) {
                    for addr in info.listen_addrs {
                        self.swarm.behaviour_mut().kad.add_address(&peer_id, addr);
                    }
                }
                self.maybe_reserve(peer_id, &info.protocols);
                let protocols = info.protocols.iter().map(|p| p.to_string()).collect();
                self.emit(Event::PeerIdentified { peer: peer_id, protocols });
            }
            SwarmEvent::Behaviour(BehaviourEvent::AutonatClient(ev)) => self.on_autonat(ev),
            SwarmEvent::Behaviour(BehaviourEvent::RelayClient(ev)) => self.on_relay_client(ev),
            SwarmEvent::Behaviour(BehaviourEvent::RelayServer(ev)) => self.on_relay_server(ev),
            SwarmEvent::Behaviour(BehaviourEvent::Dcutr(ev)) => self.on_dcutr(ev),
            SwarmEvent::Behaviour(BehaviourEvent::Upnp(ev)) => self.on_upnp(ev),
            SwarmEvent::Behaviour(BehaviourEvent::Kad(ev)) => self.on_kad_event(ev),
            SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(ev)) => self.on_gossip_event(ev),
            SwarmEvent::Behaviour(BehaviourEvent::State(ev)) => self.on_state_event(ev),
            _ => {}
        }
    }

    fn on_state_event(&mut self, ev: request_response::Event<Vec<u8>, Vec<u8>>) {
        match ev {
            request_response::Event::Message { peer, message, .. } => match message {
                request_response::Message::Request { request, channel, .. } => {
                    if self.inbound_requests.len() >= PENDING_INBOUND_REQUESTS {
                        tracing::warn!(%peer, "too many community state requests pending: one refused");
                        return;
                    }
                    let id = self.next_inbound;
                    self.next_inbound += 1;
                    match self.requests_tx.try_send(super::Request::State { peer, community: request, id }) {
                        Ok(()) => {
                            self.inbound_requests.insert(id, channel);
                        }
                        // The channel drops: the peer's request fails at once, and may be retried.
                        Err(_) => self.dropped_request("community state request"),
                    }
                }
                request_response::Message::Response { request_id, response } => {
                    if let Some(reply) = self.pending_requests.remove(&request_id) {
                        let _ = reply.send(Ok(response));
                    }
                }
            },
            request_response::Event::OutboundFailure { request_id, error, .. } => {
                if let Some(reply) = self.pending_requests.remove(&request_id) {
                    let _ = reply.send(Err(Error::Gossip(format!("community state request: {error}"))));
                }
            }
            request_response::Event::InboundFailure { .. } | request_response::Event::ResponseSent { .. } => {
            }
        }
    }

    fn on_gossip_event(&mut self, ev: gossipsub::Event) {
        match ev {
            gossipsub::Event::Message { propagation_source, message_id, message } => {
                let request = super::Request::Gossip {
                    topic: message.topic.into_string(),
                    data: message.data,
                    id: message_id.0.clone(),
                    source: propagation_source,
                };
                if self.requests_tx.try_send(request).is_err() {
                    // Not validated, not forwarded, and nobody blamed.
                    self.swarm.behaviour_mut().gossipsub.report_message_validation_result(
                        &message_id,
                        &propagation_source,
                        gossipsub::MessageAcceptance::Ignore,
                    );
                    self.dropped_request("gossip message");
                }
            }
            gossipsub::Event::Subscribed { topic, .. } => {
                let Some(queued) = self.pending_publishes.take(&topic) else { return };
                for data in queued {
                    let t = gossipsub::TopicHash::from_raw(topic.as_str());
                    if let Err(e) = self.swarm.behaviour_mut().gossipsub.publish(t, data) {
                        tracing::debug!(%topic, error = %e, "queued publish failed");
                    }
                }
            }
            _ => {}
        }
    }

    fn on_kad_event(&mut self, ev: kad::Event) {
        let (id, result, step) = match ev {
            kad::Event::OutboundQueryProgressed { id, result, step, .. } => (id, result, step),
            kad::Event::InboundRequest {
                request: kad::InboundRequest::PutRecord { source, record: Some(r), .. },
            } => {
                return self.on_inbound_put(source, r);
            }
            kad::Event::InboundRequest { request: kad::InboundRequest::AddProvider { record: Some(r) } } => {
                return self.on_inbound_provider(r);
            }
            _ => return,
        };
        match result {
            kad::QueryResult::PutRecord(r) => self.on_put_result(id, r),
            kad::QueryResult::GetRecord(r) => self.on_get_result(id, r, step.last),
            kad::QueryResult::StartProviding(r) => {
                if let Some(reply) = self.pending_provides.remove(&id) {
                    // With no peer in the routing table the record is still stored locally and
                    // served to peers who ask: that is a success for a small private network.
                    let _ = reply.send(match r {
                        Ok(_) | Err(kad::AddProviderError::Timeout { .. }) => Ok(()),
                    });
                }
            }
            kad::QueryResult::GetProviders(r) => {
                if let Some((found, _)) = self.pending_providers.get_mut(&id) {
                    if let Ok(kad::GetProvidersOk::FoundProviders { providers, .. }) = r {
                        found.extend(providers.into_iter().filter(|p| *p != self.local));
                    }
                    // The providers' addresses live only as long as the query: dial them now.
                    let dial: Vec<PeerId> = found
                        .iter()
                        .filter(|p| !self.swarm.is_connected(p))
                        .take(PROVIDERS_DIALED)
                        .copied()
                        .collect();
                    for p in dial {
                        let opts =
                            DialOpts::peer_id(p).condition(PeerCondition::DisconnectedAndNotDialing).build();
                        if let Err(e) = self.swarm.dial(opts) {
                            tracing::debug!(peer = %p, error = %e, "cannot dial a provider");
                        }
                    }
                }
                if step.last {
                    if let Some((mut found, reply)) = self.pending_providers.remove(&id) {
                        found.sort();
                        found.dedup();
                        let _ = reply.send(Ok(found));
                    }
                }
            }
            _ => {}
        }
    }
}
