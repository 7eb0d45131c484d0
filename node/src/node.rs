//! The node facade: opens the data dir, starts the network and Bitswap, wires their events, and
//! offers what the CLI and the RPC API call.

mod counters;
pub mod discovery;
pub mod ipns;
mod membership;
mod state_exchange;
mod sync;
pub(crate) mod validation;

pub use counters::Counters;
pub use membership::MembershipError;
pub use sync::SyncError;
pub use validation::{VALIDATION_QUEUE, VALIDATION_WORKERS};

use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::bitswap::{self, Bitswap, FetchStats, Progress, Scope};
use crate::blocks::cid::Cid;
use crate::blocks::store::{self, BlockStore};
use crate::communities::{self, Communities, Invite, Record};
use crate::community::CommunityId;
use crate::crypto::KeyPair;
use crate::data_dir::DataDir;
use crate::db::{self, Db};
use crate::gossip::{self, Verdict};
use crate::membership::rate::RateLimiter;
use crate::membership::store::MembershipStore;
use crate::membership::{rule, Access};
use crate::message::{Message, Topic};
use crate::message_store::{self, MessageStore};
use crate::network::{self, Multiaddr, PeerId};

/// How far in the future a message's timestamp may be (clock skew).
pub const MAX_FUTURE_SECS: u64 = rule::MAX_FUTURE_SECS;
/// How long sending in a just-joined community waits for its description (who may write).
const SEND_WAITS_FOR_DESCRIPTION: Duration = Duration::from_secs(10);
/// Distinct (community, key id) pairs reported missing; past this, no more reports.
const MAX_MISSING_KEYS_REPORTED: usize = 1024;
/// Node events buffered per subscriber.
const EVENT_QUEUE: usize = 1024;
/// How long a peer that sent wrong or malformed Bitswap data is refused.
pub const BAN: Duration = Duration::from_secs(10 * 60);

/// What the node tells its users (the daemon turns these into signals).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A message was stored: sent here, or received by gossip.
    MessageStored { community: CommunityId, hash: [u8; 32], received: bool },
    /// A newer announcement of the community's index was accepted.
    AnnouncementAccepted { community: CommunityId, clock: u64, cid: String },
    /// A newer IPNS record of the community's name was kept (`source`: the peer that gave it).
    IpnsAccepted { community: CommunityId, sequence: u64, root: String, source: Option<libp2p::PeerId> },
    /// An announcement failed verification (forged or malformed).
    AnnouncementRejected { community: CommunityId, source: PeerId, reason: String },
    /// A member fetched the index an announcement names.
    /// The index (`cid`) and the history root that holds it, when the announcement named one.
    IndexDownloaded { community: CommunityId, cid: String, root: Option<String> },
    /// A member starts fetching the archives it lacks.
    DownloadingStarted { community: CommunityId, archives: usize },
    /// One archive is stored locally (not yet imported); `bytes` came from peers.
    ArchiveDownloaded { community: CommunityId, archive_id: String, from: u64, to: u64, bytes: u64 },
    /// Importing one archive's messages starts.
    ImportStarted { community: CommunityId, archive_id: String },
    /// One archive's messages are imported.
    Imported { community: CommunityId, archive_id: String, outcome: crate::archive::importer::Imported },
    /// Every archive of the index is downloaded and imported.
    DownloadingFinished { community: CommunityId },
    /// A newer community description was taken.
    DescriptionUpdated { community: CommunityId, clock: u64 },
    /// A key became a member (by invite, accepted request, or an open community's join).
    MemberJoined { community: CommunityId, member: crate::community::MemberKey },
    /// A member was kicked or left.
    MemberRemoved { community: CommunityId, member: crate::community::MemberKey },
    /// A key was banned.
    MemberBanned { community: CommunityId, member: crate::community::MemberKey },
    /// The community has a new archive key (a member was removed).
    Rekeyed { community: CommunityId, key_id: String },
    /// A request to join reached this control node.
    RequestToJoin { community: CommunityId, member: crate::community::MemberKey, display_name: String },
    /// This control node rejected a request to join.
    RequestRejected { community: CommunityId, member: crate::community::MemberKey },
    /// Data of the community is sealed with an archive key this node does not hold.
    KeyMissing { community: CommunityId, key_id: String },
}

/// How often complete roots are provided again on the DHT.
pub const REPROVIDE_INTERVAL: Duration = Duration::from_secs(12 * 3600);

/// Errors of the node.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Db(#[from] db::Error),
    #[error(transparent)]
    Store(#[from] store::Error),
    #[error(transparent)]
    Network(#[from] network::Error),
    #[error(transparent)]
    Fetch(#[from] bitswap::client::Error),
    #[error("cannot create data dir {path}: {reason}")]
    DataDir { path: String, reason: String },
    #[error("blocking task failed: {0}")]
    Join(String),
    #[error(transparent)]
    Communities(#[from] communities::Error),
    #[error(transparent)]
    Messages(#[from] message_store::Error),
    #[error(transparent)]
    Message(#[from] crate::message::Error),
    #[error("author key: {0}")]
    AuthorKey(String),
    #[error(transparent)]
    Sync(#[from] sync::SyncError),
    #[error(transparent)]
    Membership(#[from] membership::MembershipError),
}

/// Settings of a node.
#[derive(Clone, Debug, Default)]
pub struct Config {
    pub network: network::Config,
    pub store: store::Config,
    pub gossip: gossip::Config,
    pub archive: crate::archive::seeder::Config,
    pub membership: crate::membership::Config,
}

/// The budgets a peer can reach, in use now.
#[derive(Clone, Copy, Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Budgets {
    pub bitswap: bitswap::Usage,
    /// Gossip messages waiting for a validation worker (at most [`VALIDATION_QUEUE`]).
    pub validation_queued: usize,
    /// Gossip messages held for a newer community description.
    pub validation_held: usize,
    /// Gossip messages ignored and requests refused because the node's queue was full.
    pub requests_dropped: u64,
    /// Publishes dropped while they waited for a subscribed peer.
    pub publishes_dropped: u64,
    /// Network notices a lagging subscriber missed.
    pub notices_missed: u64,
    /// Roots held against GC by fetches in progress.
    pub fetches_held: usize,
}

/// A running node; cheap to clone.
#[derive(Clone)]
pub struct Node {
    db: Db,
    blocks: BlockStore,
    messages: MessageStore,
    communities: Communities,
    archive_state: crate::archive::state::ArchiveState,
    seeder: crate::archive::seeder::Seeder,
    network: network::Client,
    bitswap: Bitswap,
    /// Community descriptions and requests to join.
    membership: MembershipStore,
    /// The gossip validation queue (set once at start: its workers hold a clone of the node).
    validator: std::sync::Arc<std::sync::OnceLock<validation::Validator>>,
    /// What was refused, and why.
    counters: std::sync::Arc<Counters>,
    /// Per-author message rates.
    rate: std::sync::Arc<std::sync::Mutex<RateLimiter>>,
    /// Descriptions are issued one at a time.
    issuing: std::sync::Arc<tokio::sync::Mutex<()>>,
    /// Keys reported missing already (reported once each).
    missing_keys: std::sync::Arc<std::sync::Mutex<std::collections::HashSet<(CommunityId, String)>>>,
    /// The key this node signs its messages with.
    author: KeyPair,
    events: tokio::sync::broadcast::Sender<Event>,
    /// The running sync per community (a newer announcement replaces it).
    syncs:
        std::sync::Arc<std::sync::Mutex<std::collections::HashMap<CommunityId, tokio::task::JoinHandle<()>>>>,
    /// Communities whose last sync failed (no peer had the index yet, say): retried when a
    /// peer connects.
    stalled: std::sync::Arc<std::sync::Mutex<std::collections::HashSet<CommunityId>>>,
    /// Woken when a peer connects: an index fetch waiting to retry tries again at once.
    peer_connected: std::sync::Arc<tokio::sync::Notify>,
    cancel: CancellationToken,
}

pub(crate) fn now_secs() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn load_or_create_author(path: &std::path::Path) -> Result<KeyPair, Error> {
    match std::fs::read_to_string(path) {
        Ok(hex) => KeyPair::from_secret_hex(&hex).map_err(|e| Error::AuthorKey(e.to_string())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = KeyPair::generate();
            crate::data_dir::write_private(path, key.secret_hex().as_bytes())
                .map_err(|e| Error::AuthorKey(e.to_string()))?;
            Ok(key)
        }
        Err(e) => Err(Error::AuthorKey(e.to_string())),
    }
}

impl Node {
    /// Opens the data dir and starts the node's tasks (children of `cancel`).
    pub async fn start(dir: &DataDir, config: Config, cancel: CancellationToken) -> Result<Self, Error> {
        dir.create()
            .map_err(|e| Error::DataDir { path: dir.root().display().to_string(), reason: e.to_string() })?;
        let quota = Some(config.membership.max_community_store_bytes).filter(|q| *q > 0);
        let (db, blocks, messages, communities, archive_state, membership) = {
            let (db_path, blocks_path, store_config) = (dir.db(), dir.blocks(), config.store.clone());
            tokio::task::spawn_blocking(move || -> Result<_, Error> {
                let db = Db::open_with_cache(&db_path, store_config.db_cache_bytes)?;
                let blocks = BlockStore::open(&db, &blocks_path, store_config)?;
                let messages = MessageStore::open(&db)?.with_quota(quota).with_archives(blocks.clone());
                let communities = Communities::open(&db)?;
                let archive_state =
                    crate::archive::state::ArchiveState::open(&db).map_err(|e| Error::Join(e.to_string()))?;
                let membership = MembershipStore::open(&db).map_err(MembershipError::from)?;
                Ok((db, blocks, messages, communities, archive_state, membership))
            })
            .await
            .map_err(|e| Error::Join(e.to_string()))??
        };
        let author = load_or_create_author(&dir.author_key())?;
        let key = network::keys::load_or_create(&dir.node_key())?;
        let heartbeat = Duration::from_millis(config.gossip.heartbeat_ms.max(1));
        let bandwidth = crate::bitswap::bandwidth::Bandwidth::new(
            config.network.max_upload_rate,
            config.network.max_download_rate,
        );
        let started = network::start(
            key,
            config.network,
            config.gossip,
            bitswap::PROTOCOLS.to_vec(),
            cancel.child_token(),
        )
        .await?;
        let bitswap = Bitswap::start(
            started.streams,
            started.incoming,
            blocks.clone(),
            bandwidth,
            cancel.child_token(),
        )?;
        let (events, _) = tokio::sync::broadcast::channel(EVENT_QUEUE);
        let seeder = crate::archive::seeder::Seeder {
            messages: messages.clone(),
            state: archive_state.clone(),
            blocks: blocks.clone(),
            communities: communities.clone(),
            network: started.client.clone(),
            config: config.archive,
            events: tokio::sync::broadcast::channel(EVENT_QUEUE).0,
            bitswap: bitswap.clone(),
            membership: membership.clone(),
        };
        let node = Node {
            db,
            blocks,
            messages,
            communities,
            archive_state,
            seeder,
            network: started.client,
            bitswap,
            membership,
            validator: Default::default(),
            counters: Default::default(),
            rate: std::sync::Arc::new(std::sync::Mutex::new(RateLimiter::new(
                config.membership.max_messages_per_author_per_minute,
                config.membership.author_burst,
            ))),
            issuing: Default::default(),
            missing_keys: Default::default(),
            author,
            events,
            syncs: Default::default(),
            stalled: Default::default(),
            peer_connected: Default::default(),
            cancel,
        };
        let (validator, validating) = validation::start(node.clone(), heartbeat, node.cancel.child_token());
        let _ = node.validator.set(validator);
        tokio::spawn(validating);
        // Gossip for every community joined before; a community controlled here and made before
        // descriptions existed gets its first one (an open community).
        for r in node.communities.list()? {
            let id = r.community_id()?;
            node.set_subscribed(&id, true).await?;
            if r.control_secret.is_some() {
                node.ensure_description(id, Access::Open).await?;
            }
        }
        tokio::spawn(node.seeder.clone().run(node.cancel.child_token()));
        // Resume: import what was downloaded but not imported, and fetch what the last accepted
        // index lists that is still missing.
        for r in node.communities.list()? {
            node.start_sync(r.community_id()?);
        }
        tokio::spawn(node.clone().wire_events());
        tokio::spawn(node.clone().serve_requests(started.requests));
        tokio::spawn(node.clone().reprovide_loop());
        tokio::spawn(node.clone().stalled_sync_loop());
        tokio::spawn(node.clone().discovery_loop());
        tokio::spawn(node.clone().ipns_loop());
        Ok(node)
    }

    /// The database every store of this node lives in.
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// The block store (blocks, pins, GC).
    pub fn blocks(&self) -> &BlockStore {
        &self.blocks
    }

    /// The message store.
    pub fn messages(&self) -> &MessageStore {
        &self.messages
    }

    /// The communities this node has joined or created.
    pub fn communities(&self) -> &Communities {
        &self.communities
    }

    /// Announcements accepted and archives downloaded, per community.
    pub fn archive_state(&self) -> &crate::archive::state::ArchiveState {
        &self.archive_state
    }

    /// The seeder: archive rounds of the communities this node controls.
    pub fn seeder(&self) -> &crate::archive::seeder::Seeder {
        &self.seeder
    }

    /// The network task's handle (peers, gossip, DHT).
    pub fn network(&self) -> &network::Client {
        &self.network
    }

    /// Bitswap (serving and fetching blocks).
    pub fn bitswap(&self) -> &Bitswap {
        &self.bitswap
    }

    /// Stops the node's tasks.
    pub fn shutdown(&self) {
        self.cancel.cancel();
    }

    /// Makes every store write durable (blocking; call from a blocking thread or at exit).
    pub fn flush(&self) -> Result<(), Error> {
        Ok(self.db.flush()?)
    }

    /// Subscribes to node events.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    /// The public key this node signs its messages with.
    pub fn author(&self) -> String {
        self.author.public_hex()
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Node) -> Result<T, Error> + Send + 'static,
    ) -> Result<T, Error> {
        let node = self.clone();
        tokio::task::spawn_blocking(move || f(&node)).await.map_err(|e| Error::Join(e.to_string()))?
    }

    async fn set_subscribed(&self, id: &CommunityId, on: bool) -> Result<(), Error> {
        self.network.subscribe_topic(gossip::messages_topic(id), on).await?;
        self.network.subscribe_topic(gossip::archives_topic(id), on).await?;
        Ok(())
    }

    /// The gossip validation queue.
    fn validator(&self) -> &validation::Validator {
        self.validator.get().expect("the validator is set before the node is handed out")
    }

    /// What the node refused, by reason.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// The budgets a peer can reach, in use now (`node_info.budgets`, `/metrics`).
    pub fn budgets(&self) -> Budgets {
        let (validation_queued, validation_held) = self.validator().usage();
        Budgets {
            bitswap: self.bitswap.usage(),
            validation_queued,
            validation_held,
            requests_dropped: self.network.requests_dropped(),
            publishes_dropped: self.network.publishes_dropped(),
            notices_missed: self.counters.missed(),
            fetches_held: self.blocks.held_roots().len(),
        }
    }

    /// Takes one message of `author` from its rate; false when it is over.
    fn allow_rate(&self, author: &crate::community::MemberKey) -> bool {
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        self.rate.lock().unwrap_or_else(|p| p.into_inner()).allow(author, now_ms)
    }

    /// Reports (once per key) that data of a community is sealed with a key this node lacks:
    /// a removed member's node, say.
    fn key_missing(&self, community: &CommunityId, key_id: &str) {
        let mut seen = self.missing_keys.lock().unwrap_or_else(|p| p.into_inner());
        if seen.len() < MAX_MISSING_KEYS_REPORTED && seen.insert((*community, key_id.to_string())) {
            tracing::warn!(%community, key_id, "community data is sealed with an archive key this node does not hold");
            let _ = self.events.send(Event::KeyMissing { community: *community, key_id: key_id.to_string() });
        }
    }

    /// Creates a community: this node holds its key and is its control node, and its own author
    /// key is the first member.
    pub async fn create_community(
        &self,
        name: String,
        encrypted: bool,
        access: Access,
    ) -> Result<Record, Error> {
        let r = self.blocking(move |n| Ok(n.communities.create(&name, encrypted, now_secs())?)).await?;
        let id = r.community_id()?;
        self.set_subscribed(&id, true).await?;
        self.ensure_description(id, access).await?;
        let node = self.clone();
        tokio::spawn(async move { node.discover(id).await });
        Ok(r)
    }

    /// Adopts a community record holding its control key: this node becomes a second device of
    /// the community's control node. It asks its connected peers for the community's
    /// description first, and makes a first (open) one only when none has one.
    pub async fn adopt_community(&self, record: Record) -> Result<Record, Error> {
        let r = record.clone();
        self.blocking(move |n| Ok(n.communities.put(&r)?)).await?;
        let id = record.community_id()?;
        self.set_subscribed(&id, true).await?;
        for p in self.network.peers().await? {
            if let Ok(peer) = p.peer_id.parse() {
                self.clone().pull_state(peer, vec![id]).await;
            }
        }
        self.ensure_description(id, Access::Open).await?;
        Ok(record)
    }

    /// Joins a community from an invite (one with a grant must name this node's key), and asks
    /// the connected peers for its latest description and announcement.
    pub async fn join_community(&self, invite: Invite) -> Result<Record, Error> {
        let granted = self.check_grant(&invite)?;
        let r = self.blocking(move |n| Ok(n.communities.join(&invite, now_secs(), granted)?)).await?;
        let id = r.community_id()?;
        self.set_subscribed(&id, true).await?;
        for p in self.network.peers().await? {
            if let Ok(peer) = p.peer_id.parse() {
                tokio::spawn(self.clone().pull_state(peer, vec![id]));
            }
        }
        // Peers found later are asked for the state as they connect.
        let node = self.clone();
        tokio::spawn(async move { node.discover(id).await });
        Ok(r)
    }

    /// Leaves a community (telling its control node, when this node's key is a member);
    /// returns whether it was joined.
    pub async fn leave_community(&self, id: CommunityId) -> Result<bool, Error> {
        if let Err(e) = self.announce_leave(id).await {
            tracing::warn!(community = %id, error = %e, "cannot tell the community this node leaves");
        }
        self.set_subscribed(&id, false).await?;
        // Leave first, then forget: a description taken meanwhile forgets itself (see
        // take_description).
        let was = self
            .blocking(move |n| {
                let was = n.communities.leave(&id)?;
                n.membership.forget(&id).map_err(MembershipError::from)?;
                Ok(was)
            })
            .await?;
        Ok(was)
    }

    /// Validates an announcement from gossip; stores it when it is newer than ours.
    fn receive_announcement(&self, id: &CommunityId, data: &[u8], source: PeerId) -> Result<Verdict, Error> {
        if self.communities.get(id)?.is_none() {
            return Ok(Verdict::Ignore);
        }
        let signed = match crate::announce::verify(id, data) {
            Ok(s) => s,
            Err(e) => {
                let _ = self.events.send(Event::AnnouncementRejected {
                    community: *id,
                    source,
                    reason: e.to_string(),
                });
                return Ok(Verdict::Reject);
            }
        };
        let stored =
            self.archive_state.accepted(id).map_err(|e| Error::Join(e.to_string()))?.map(|s| s.announcement);
        let a = signed.announcement;
        if crate::announce::decide(stored.as_ref(), &a) == crate::announce::Decision::Ignore {
            return Ok(Verdict::Ignore);
        }
        let mut clock = self.archive_state.clock(id).map_err(|e| Error::Join(e.to_string()))?;
        clock.observe(a.clock);
        self.archive_state.accept_announcement(id, data, clock).map_err(|e| Error::Join(e.to_string()))?;
        let _ = self.events.send(Event::AnnouncementAccepted { community: *id, clock: a.clock, cid: a.cid });
        self.start_sync(*id);
        Ok(Verdict::Accept)
    }

    /// A message of this node's key, signed now, with no membership check and stored nowhere
    /// (the `debug_signMessage` method: what any key holder can make).
    pub fn sign_message(&self, id: &CommunityId, topic: Topic, payload: Vec<u8>) -> Message {
        Message::new_signed(&self.author, id, topic, now_secs(), payload)
    }

    /// Signs, stores and publishes a message in a joined community: this node's key must be
    /// allowed to write under the description in force, and within its rate. In an encrypted
    /// community the message travels sealed with the current archive key.
    pub async fn send_message(
        &self,
        id: CommunityId,
        topic: Topic,
        payload: Vec<u8>,
    ) -> Result<Message, Error> {
        // Just joined: the description comes from the first peer within moments (a stale one
        // may come first: with a grant, wait for one as new as the grant).
        let granted = self.communities.get(&id).ok().flatten().and_then(|r| r.granted_at_clock).unwrap_or(0);
        self.wait_description_since(id, granted, SEND_WAITS_FOR_DESCRIPTION).await;
        let (m, wire) = self
            .blocking(move |n| {
                let record =
                    n.communities.get(&id)?.ok_or_else(|| communities::Error::NotJoined(id.to_string()))?;
                let d = n.description(&id)?.ok_or_else(|| MembershipError::NoDescription(id.to_string()))?;
                let now = now_secs();
                let me = n.member_key();
                if rule::standing(&d.description, &me, now) != rule::Standing::Member {
                    return Err(MembershipError::NotMember {
                        community: id.to_string(),
                        member: me.to_string(),
                    }
                    .into());
                }
                if !n.allow_rate(&me) {
                    return Err(MembershipError::RateLimited(me.to_string()).into());
                }
                let m = Message::new_signed(&n.author, &id, topic, now, payload);
                let verified = m.clone().verify(&id)?;
                n.messages.insert(&id, &[verified])?;
                n.messages.flush()?;
                let wire = match n.current_key(&record)? {
                    Some(key) if record.encrypted() => crate::seal::seal(&key, &m.encode()),
                    _ => m.encode(),
                };
                Ok((m, wire))
            })
            .await?;
        let _ = self.events.send(Event::MessageStored { community: id, hash: m.hash, received: false });
        self.network.publish(gossip::messages_topic(&id), wire).await?;
        Ok(m)
    }

    /// Takes what peers ask of the node, in order, from the network's bounded queue.
    async fn serve_requests(self, mut requests: tokio::sync::mpsc::Receiver<network::Request>) {
        loop {
            let r = tokio::select! {
                r = requests.recv() => match r { Some(r) => r, None => return },
                _ = self.cancel.cancelled() => return,
            };
            match r {
                network::Request::Gossip { topic, data, id, source } => {
                    self.on_gossip(topic, data, id, source).await
                }
                network::Request::State { community, id, .. } => {
                    tokio::spawn(self.clone().answer_state_request(community, id));
                }
            }
        }
    }

    async fn wire_events(self) {
        let mut net = self.network.subscribe();
        let mut bs = self.bitswap.subscribe();
        loop {
            tokio::select! {
                ev = net.recv() => match ev {
                    Ok(network::Event::PeerConnected(peer)) => {
                        if let Ok(list) = self.communities.list() {
                            let ids = list.iter().filter_map(|r| r.community_id().ok()).collect();
                            tokio::spawn(self.clone().pull_state(peer, ids));
                        }
                        self.peer_connected.notify_waiters();
                        self.retry_stalled_syncs();
                    }
                    Ok(network::Event::PeerDisconnected(peer)) => self.bitswap.peer_disconnected(&peer),
                    Ok(network::Event::PeerDirect(_)) => self.retry_stalled_syncs(),
                    Ok(network::Event::RecordStored { key, value, source }) => {
                        if let Some(id) = crate::ipns::community_of(&key) {
                            let node = self.clone();
                            let r = tokio::task::spawn_blocking(move || node.receive_ipns(&id, &value, Some(source), true)).await;
                            if let Ok(Err(e)) = r {
                                tracing::warn!(community = %id, error = %e, "cannot keep an IPNS record");
                            }
                        }
                    }
                    Ok(_) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                        // Only notices (peers came and went) travel here: missed ones cost a pull
                        // or a ban later, never an answer owed to a peer.
                        self.counters.notices_missed(n);
                        tracing::warn!(n, "missed network notices");
                    }
                    Err(_) => break,
                },
                ev = bs.recv() => match ev {
                    Ok(bitswap::Event::PeerMisbehaved { peer, reason }) => {
                        tracing::warn!(%peer, %reason, ban_secs = BAN.as_secs(), "banning a misbehaving peer");
                        let _ = self.network.ban(peer, BAN).await;
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(_) => break,
                },
                _ = self.cancel.cancelled() => break,
            }
        }
    }

    async fn reprovide_loop(self) {
        let mut tick = tokio::time::interval(REPROVIDE_INTERVAL);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = self.cancel.cancelled() => return,
            }
            let store = self.blocks.clone();
            let roots = tokio::task::spawn_blocking(move || -> Result<Vec<Cid>, store::Error> {
                let mut out = Vec::new();
                for root in store.pins()?.into_keys() {
                    if store.is_complete(&root)? {
                        out.push(root);
                    }
                }
                Ok(out)
            })
            .await;
            match roots {
                Ok(Ok(roots)) => {
                    for root in roots {
                        if let Err(e) = self.network.provide(root).await {
                            tracing::debug!(%root, error = %e, "provide failed");
                        }
                    }
                }
                Ok(Err(e)) => tracing::warn!(error = %e, "cannot list pinned roots"),
                Err(e) => tracing::warn!(error = %e, "reprovide task failed"),
            }
        }
    }

    /// Fetches the DAG under `root`: from `peers` (dialled first) if given, else from the connected
    /// peers and the providers found on the DHT. Provides it once complete.
    pub async fn fetch(
        &self,
        root: Cid,
        peers: &[Multiaddr],
        progress: watch::Sender<Progress>,
    ) -> Result<FetchStats, Error> {
        self.fetch_scoped(root, Scope::Dag, peers, progress).await
    }

    /// [`Node::fetch`] of the whole DAG or of its root block alone (`scope`); a root block alone
    /// is not provided (this node does not hold what is under it yet).
    pub async fn fetch_scoped(
        &self,
        root: Cid,
        scope: Scope,
        peers: &[Multiaddr],
        progress: watch::Sender<Progress>,
    ) -> Result<FetchStats, Error> {
        let mut ids: Vec<PeerId> = Vec::new();
        for addr in peers {
            ids.push(self.network.dial(addr.clone()).await?);
        }
        if ids.is_empty() {
            for p in self.network.find_providers(root).await? {
                if let Err(e) = self.network.dial_peer(p).await {
                    tracing::debug!(peer = %p, error = %e, "provider unreachable");
                }
            }
            // Bitswap runs on direct connections only: a peer reachable only through a relay
            // (a provider too: dialing it may only have reached its relay) would take each want
            // to its timeout (30 s) before the want moved on. A sync that finds no direct peer
            // is retried when one connects or a hole is punched.
            ids = self
                .network
                .peers()
                .await?
                .iter()
                .filter(|p| p.link == network::Link::Direct)
                .filter_map(|p| p.peer_id.parse().ok())
                .collect();
        }
        ids.sort();
        ids.dedup();
        let stats = self.bitswap.fetch(root, scope, ids, progress).await?;
        if scope == Scope::Dag {
            if let Err(e) = self.network.provide(root).await {
                tracing::debug!(%root, error = %e, "provide failed");
            }
        }
        Ok(stats)
    }
}
