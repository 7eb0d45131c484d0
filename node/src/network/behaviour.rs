//! The composed libp2p behaviour.

use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::swarm::NetworkBehaviour;
use libp2p::{
    allow_block_list, autonat, connection_limits, dcutr, gossipsub, identify, identity, kad, ping, relay,
    request_response, upnp, StreamProtocol,
};

use super::{Config, Error};

/// Longest a DHT query (provide, find providers) runs.
const DHT_QUERY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(20);

/// Identify's protocol version string (the protocol itself is `/ipfs/id/1.0.0`).
const PROTOCOL_VERSION: &str = "ipfs/0.1.0";

#[derive(NetworkBehaviour)]
pub(super) struct Behaviour {
    /// Banned peers: their connections are closed and refused.
    pub banned: allow_block_list::Behaviour<allow_block_list::BlockedPeers>,
    pub limits: connection_limits::Behaviour,
    pub identify: identify::Behaviour,
    pub ping: ping::Behaviour,
    pub kad: kad::Behaviour<super::kad_store::SplitStore>,
    pub gossipsub: gossipsub::Behaviour,
    pub state: request_response::Behaviour<super::state_codec::Codec>,
    /// Bitswap's streams, on direct connections only.
    pub stream: super::direct_only::DirectOnly<libp2p_stream::Behaviour>,
    pub inbound: super::direct_only::DirectOnly<super::inbound::Behaviour>,
    /// Listens through relays (`/p2p-circuit`) and dials peers that listen so.
    pub relay_client: relay::client::Behaviour,
    /// Relays for others; advertised only while we are publicly reachable.
    pub relay_server: Toggle<relay::Behaviour>,
    /// Upgrades relayed connections to direct ones (hole punching).
    pub dcutr: dcutr::Behaviour,
    /// Asks peers to dial our candidate addresses back (AutoNAT v2).
    pub autonat_client: Toggle<autonat::v2::client::Behaviour>,
    /// Dials back the candidate addresses of peers that ask.
    pub autonat_server: Toggle<autonat::v2::server::Behaviour>,
    /// Port mapping on the home router (opt-in).
    pub upnp: Toggle<upnp::tokio::Behaviour>,
}

/// Scoring of a community topic: a peer is penalised for what it forwards that our checks
/// reject (P4), and not for being quiet (a community may be silent for days).
pub(super) fn topic_score_params() -> libp2p::gossipsub::TopicScoreParams {
    libp2p::gossipsub::TopicScoreParams {
        topic_weight: 1.0,
        time_in_mesh_weight: 0.01,
        first_message_deliveries_weight: 0.1,
        mesh_message_deliveries_weight: 0.0,
        mesh_failure_penalty_weight: 0.0,
        // One forged message forwarded puts a peer under the graylist threshold (-80).
        invalid_message_deliveries_weight: -100.0,
        invalid_message_deliveries_decay: 0.9,
        ..Default::default()
    }
}

impl Behaviour {
    pub fn new(
        key: &identity::Keypair,
        config: &Config,
        gossip: &crate::gossip::Config,
        inbound_protocols: Vec<StreamProtocol>,
        relay_client: relay::client::Behaviour,
    ) -> Result<(Self, tokio::sync::mpsc::Receiver<super::inbound::Incoming>), Error> {
        let peer = key.public().to_peer_id();
        let kad_protocol = StreamProtocol::try_from_owned(config.kad_protocol.clone())
            .map_err(|e| Error::Setup(format!("kad protocol {:?}: {e}", config.kad_protocol)))?;
        let mut kad_config = kad::Config::new(kad_protocol);
        kad_config.set_query_timeout(DHT_QUERY_TIMEOUT);
        // Records and provider records peers put to us are stored only after our checks
        // (event_loop/records.rs).
        kad_config.set_record_filtering(kad::StoreInserts::FilterBoth);
        let mut kad = kad::Behaviour::with_config(peer, super::kad_store::SplitStore::new(peer), kad_config);
        // Auto: the event loop sets the mode from our reachability (see `reachability.rs`).
        kad.set_mode(match config.kad_mode {
            super::KadMode::Server => Some(kad::Mode::Server),
            super::KadMode::Client | super::KadMode::Auto => Some(kad::Mode::Client),
        });
        let limits = connection_limits::ConnectionLimits::default()
            .with_max_established(Some(config.max_connections))
            .with_max_established_per_peer(Some(config.max_connections_per_peer));
        let (inbound, incoming) = super::inbound::Behaviour::new(inbound_protocols);
        let gossip_config = gossipsub::ConfigBuilder::default()
            .validation_mode(gossipsub::ValidationMode::Strict)
            // Our own checks decide Accept / Ignore / Reject before anything is forwarded.
            .validate_messages()
            // Content-addressed ids: the same bytes are the same message, whoever relays them.
            .message_id_fn(|m: &gossipsub::Message| {
                gossipsub::MessageId::from(
                    crate::crypto::sha256(&[m.topic.as_str().as_bytes(), &m.data]).to_vec(),
                )
            })
            .max_transmit_size(gossip.max_transmit_bytes)
            .heartbeat_interval(std::time::Duration::from_millis(gossip.heartbeat_ms))
            .heartbeat_initial_delay(std::time::Duration::from_millis(gossip.heartbeat_ms.min(5000) / 2))
            .mesh_n(gossip.mesh_n)
            .mesh_n_low(gossip.mesh_n_low)
            .mesh_n_high(gossip.mesh_n_high)
            .mesh_outbound_min(gossip.mesh_outbound_min)
            .history_length(super::GOSSIP_HISTORY_HEARTBEATS)
            .build()
            .map_err(|e| Error::Setup(format!("gossipsub config: {e}")))?;
        let mut gossipsub =
            gossipsub::Behaviour::new(gossipsub::MessageAuthenticity::Signed(key.clone()), gossip_config)
                .map_err(|e| Error::Setup(format!("gossipsub: {e}")))?;
        let score = gossipsub::PeerScoreParams {
            // Many honest peers share an address (NATs; every test peer is on 127.0.0.1).
            ip_colocation_factor_weight: 0.0,
            ..Default::default()
        };
        gossipsub
            .with_peer_score(score, gossipsub::PeerScoreThresholds::default())
            .map_err(|e| Error::Setup(format!("gossipsub scoring: {e}")))?;
        let behaviour = Self {
            banned: allow_block_list::Behaviour::default(),
            limits: connection_limits::Behaviour::new(limits),
            identify: identify::Behaviour::new(
                identify::Config::new(PROTOCOL_VERSION.to_string(), key.public())
                    .with_agent_version(format!("archive-node/{}", env!("CARGO_PKG_VERSION"))),
            ),
            ping: ping::Behaviour::default(),
            kad,
            gossipsub,
            state: request_response::Behaviour::new(
                [(super::state_codec::PROTOCOL, request_response::ProtocolSupport::Full)],
                request_response::Config::default().with_request_timeout(std::time::Duration::from_secs(10)),
            ),
            stream: super::direct_only::DirectOnly::new(libp2p_stream::Behaviour::new()),
            inbound: super::direct_only::DirectOnly::new(inbound),
            relay_client,
            relay_server: Toggle::from(
                config.relay.server.then(|| relay::Behaviour::new(peer, config.relay.server_config())),
            ),
            dcutr: dcutr::Behaviour::new(peer),
            // Tests the most reported candidates every 5 s.
            autonat_client: Toggle::from(config.autonat.then(autonat::v2::client::Behaviour::default)),
            autonat_server: Toggle::from(config.autonat.then(autonat::v2::server::Behaviour::default)),
            upnp: Toggle::from(config.upnp.then(upnp::tokio::Behaviour::default)),
        };
        Ok((behaviour, incoming))
    }
}
