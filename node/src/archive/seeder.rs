//! The control node's seeding loop.
//!
//! At start and every `archive_interval` of each community this node controls (archives
//! enabled): build archives for `[last_archive_end, now)`, store them and the new cumulative index
//! as pinned DAGs (unpinning the previous index), provide them on the DHT, and announce the index
//! CID signed by the community key with the next Lamport clock. The latest announcement is
//! re-published every `republish_interval` so late joiners and lossy links catch up. No messages:
//! no archive, no index, no announcement.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use super::builder::{Builder, Outcome, Params, Sink};
use super::history;
use super::importer;
use super::index::Index;
use super::schedule::{handle_tick, CommunityState};
use super::state::ArchiveState;
use super::store_sink::StoreSink;
use crate::announce::{self, Announcement};
use crate::blocks::directory;
use crate::blocks::store::BlockStore;
use crate::communities::{Communities, Record};
use crate::community::CommunityId;
use crate::gossip;
use crate::membership::keys;
use crate::message_store::MessageStore;
use crate::network;
use crate::seal::{self, KeyRing};

/// Settings of archives (the `[archive]` section of the config file): seeding them as a
/// control node, fetching and importing them as a member.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Window length of an archive, seconds.
    pub partition_secs: u64,
    /// How often the latest announcement is published again, seconds.
    pub republish_interval_secs: u64,
    /// Archives a member downloads at the same time.
    pub fetch_concurrency: usize,
    /// Most messages a member imports per second; 0 imports at storage speed.
    pub import_rate: u64,
    /// How long an IPNS record of the history root stays valid, seconds (the control node
    /// issues a fresh one when half of it has passed).
    pub ipns_validity_secs: u64,
    /// How long others may cache an IPNS record before they look for a newer one, seconds.
    pub ipns_ttl_secs: u64,
    /// How often every node puts the latest IPNS record it holds to the DHT again, seconds.
    pub ipns_republish_secs: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            partition_secs: super::partition::DEFAULT_PARTITION_SECS,
            republish_interval_secs: 300,
            fetch_concurrency: 4,
            import_rate: 0,
            ipns_validity_secs: 48 * 3600,
            ipns_ttl_secs: 3600,
            ipns_republish_secs: 4 * 3600,
        }
    }
}

/// What the seeder reports (the daemon turns these into status-go's signals).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    Creating {
        community: CommunityId,
    },
    Created {
        community: CommunityId,
        from: u64,
        to: u64,
        archives: usize,
        index_cid: String,
        /// The history root announced (none when the history outgrew a flat directory).
        root_cid: Option<String>,
    },
    NoneCreated {
        community: CommunityId,
        from: u64,
        to: u64,
    },
    Seeding {
        community: CommunityId,
        index_cid: String,
        root_cid: Option<String>,
    },
    Failed {
        community: CommunityId,
        error: String,
    },
}

/// Errors of a round.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("community {0} is not controlled by this node")]
    NotControlled(String),
    #[error("community record: {0}")]
    Record(#[from] crate::communities::Error),
    #[error("membership: {0}")]
    Membership(#[from] crate::membership::store::Error),
    #[error("building archives: {0}")]
    Build(#[from] super::builder::Error),
    #[error("archive state: {0}")]
    State(#[from] super::state::Error),
    #[error("block store: {0}")]
    Blocks(#[from] crate::blocks::store::Error),
    #[error("storing the merged index: {0}")]
    Sink(#[source] super::builder::SinkError),
    #[error("{0}")]
    Index(#[from] super::index::ReadError),
    #[error("{0}")]
    History(#[from] super::history::Error),
    #[error("network: {0}")]
    Network(#[from] network::Error),
    #[error("the announced index {cid} is not a CID: {reason}")]
    Cid { cid: String, reason: String },
    #[error("IPNS record: {0}")]
    Ipns(String),
    #[error("a storage task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// Parses a CID an index or announcement names.
fn parse_cid(cid: &str) -> Result<crate::blocks::cid::Cid, Error> {
    cid.parse().map_err(|e| Error::Cid { cid: cid.to_string(), reason: format!("{e}") })
}

fn now() -> Duration {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default()
}

/// The seeder; cheap to clone.
#[derive(Clone)]
pub struct Seeder {
    pub messages: MessageStore,
    pub state: ArchiveState,
    pub blocks: BlockStore,
    pub communities: Communities,
    pub network: network::Client,
    pub config: Config,
    pub events: broadcast::Sender<Event>,
    /// Fetches another device's index to merge.
    pub bitswap: crate::bitswap::Bitswap,
    /// The descriptions that say whose messages are archived, and with which key.
    pub membership: crate::membership::store::MembershipStore,
}

/// Longest a round waits for another device's index.
const MERGE_FETCH_TIMEOUT: Duration = Duration::from_secs(30);

impl Seeder {
    /// One round for a controlled community; returns what the builder did.
    pub async fn round(&self, community: CommunityId) -> Result<Outcome, Error> {
        let record = self
            .communities
            .get(&community)?
            .filter(|r| r.control_secret.is_some())
            .ok_or_else(|| Error::NotControlled(community.to_string()))?;
        let _ = self.events.send(Event::Creating { community });
        let result = self.build_and_announce(record).await;
        if let Err(e) = &result {
            let _ = self.events.send(Event::Failed { community, error: e.to_string() });
        }
        result
    }

    async fn build_and_announce(&self, record: Record) -> Result<Outcome, Error> {
        let community = record.community_id()?;
        let description = self.membership.description(&community)?;
        let members = description.as_ref().map(|d| std::sync::Arc::new(d.description.clone()));
        let held = record.keys()?;
        let key = keys::current(&held, members.as_deref()).cloned();
        let params = Params {
            community,
            from: None,
            to: now().as_secs(),
            partition_secs: self.config.partition_secs,
            topics: Vec::new(),
            key,
            members,
        };
        let (builder, blocks) =
            (Builder::new(self.messages.clone(), self.state.clone()), self.blocks.clone());
        let outcome =
            tokio::task::spawn_blocking(move || builder.run(&params, &mut StoreSink::new(blocks))).await??;
        let made = match outcome.index_cid.clone() {
            Some(cid) => Some(cid),
            None => self.unannounced(&record).await?,
        };
        let Some(index_cid) = made else {
            let _ = self.events.send(Event::NoneCreated { community, from: outcome.from, to: outcome.to });
            return Ok(outcome);
        };
        let (index_cid, known) = self.merge_other_device(&record, index_cid).await?;
        let root_cid = self.store_root(community, &index_cid, known).await?;
        let mut outcome = outcome;
        outcome.index_cid = Some(index_cid.clone());
        outcome.root_cid = root_cid.clone();
        let _ = self.events.send(Event::Created {
            community,
            from: outcome.from,
            to: outcome.to,
            archives: outcome.archives.len(),
            index_cid: index_cid.clone(),
            root_cid: root_cid.clone(),
        });
        let announced = root_cid.clone().unwrap_or_else(|| index_cid.clone());
        let provided = outcome.archives.iter().map(|a| &a.cid).chain([&index_cid]).chain(root_cid.as_ref());
        for cid in provided {
            if let Ok(c) = cid.parse() {
                if let Err(e) = self.network.provide(c).await {
                    tracing::debug!(%cid, error = %e, "provide failed");
                }
            }
        }
        self.announce(&record, announced).await?;
        let _ = self.events.send(Event::Seeding { community, index_cid, root_cid });
        self.store_once(community, &outcome).await;
        Ok(outcome)
    }

    /// Builds, stores and pins the history root of `index_cid` (unpinning the previous root);
    /// `None` when the history has outgrown a flat directory (then the index itself is
    /// announced, as before history roots).
    async fn store_root(
        &self,
        community: CommunityId,
        index_cid: &str,
        known: Vec<directory::Entry>,
    ) -> Result<Option<String>, Error> {
        let (blocks, state, index_root) = (self.blocks.clone(), self.state.clone(), parse_cid(index_cid)?);
        let description = self.membership.description(&community)?.map(|d| d.bytes.clone());
        tokio::task::spawn_blocking(move || -> Result<Option<String>, Error> {
            let index = state.index(&community)?;
            let description = match description {
                Some(bytes) => Some(super::store_sink::put_file(&blocks, &bytes).map_err(Error::Sink)?),
                None => None,
            };
            let heads = history::Heads { index: index_root, description };
            let root = match history::store(&blocks, heads, &index, &known) {
                Ok(root) => root,
                Err(history::Error::Directory(e @ directory::Error::TooLarge(_))) => {
                    tracing::warn!(%community, error = %e, "the history is announced by its index alone");
                    return Ok(None);
                }
                Err(e) => return Err(e.into()),
            };
            history::pin_latest(&blocks, &state, &community, root)?;
            Ok(Some(root.to_string()))
        })
        .await?
    }

    /// Moves the rows of the messages just archived onto the archives and reclaims their
    /// copies in the message pack files, so each byte is stored once. A failure leaves the
    /// rows where they were (still readable) and is logged: the archives are announced already.
    async fn store_once(&self, community: CommunityId, outcome: &Outcome) {
        let roots: Vec<_> = outcome.archives.iter().filter_map(|a| a.cid.parse().ok()).collect();
        let (messages, blocks) = (self.messages.clone(), self.blocks.clone());
        let done = tokio::task::spawn_blocking(move || -> Result<_, importer::Error> {
            let mut moved = 0;
            for root in roots {
                moved += importer::point_rows_at(&messages, &community, &blocks, root)?;
            }
            Ok((moved, messages.compact()?))
        })
        .await;
        match done {
            Ok(Ok((moved, compacted))) => tracing::debug!(
                %community, moved, segments = compacted.segments, reclaimed = compacted.reclaimed_bytes,
                "archived messages now read from their archives"
            ),
            Ok(Err(e)) => tracing::warn!(%community, error = %e, "archived messages keep their copies"),
            Err(e) => tracing::warn!(%community, error = %e, "archived messages keep their copies"),
        }
    }

    /// The index committed by an earlier round when no accepted announcement covers its
    /// archives: a round cut (a crash) between committing its index and announcing it. Without
    /// this, a round that finds no new messages would leave those archives unannounced for good.
    /// An announcement of our index itself (made before history roots) counts as unannounced
    /// too, so the history gets its root.
    async fn unannounced(&self, record: &Record) -> Result<Option<String>, Error> {
        let community = record.community_id()?;
        let Some(ours) = self.state.index_cid(&community)? else { return Ok(None) };
        let Some(theirs) = self.state.accepted(&community)?.map(|s| s.announcement.cid) else {
            return Ok(Some(ours));
        };
        let (blocks, state, ring) = (self.blocks.clone(), self.state.clone(), record.keys()?);
        let (theirs_cid, ours_cid) = (parse_cid(&theirs)?, parse_cid(&ours)?);
        tokio::task::spawn_blocking(move || -> Result<Option<String>, Error> {
            // An announcement we cannot read here is merged (fetched) by the round.
            let Some(announced) = history::resolve_local(&blocks, theirs_cid).ok().flatten() else {
                return Ok(Some(ours));
            };
            match announced {
                history::Announced::Root { index, .. } if index == ours_cid => return Ok(None),
                history::Announced::Index(index) if index == ours_cid => return Ok(Some(ours)),
                _ => {}
            }
            let ring: KeyRing = ring.iter().cloned().collect();
            let Ok(announced) = super::index::read(&blocks, announced.index(), &ring) else {
                return Ok(Some(ours));
            };
            let committed = state.index(&community)?;
            let covered = committed.archives.keys().all(|id| announced.archives.contains_key(id));
            Ok((!covered).then_some(ours))
        })
        .await?
    }

    /// Fetches what another device announced (`scope`), within [`MERGE_FETCH_TIMEOUT`]; false
    /// (logged) when it cannot.
    async fn fetch_other_device(&self, cid: crate::blocks::cid::Cid, scope: crate::bitswap::Scope) -> bool {
        let peers: Vec<_> = match self.network.peers().await {
            Ok(peers) => peers.iter().filter_map(|p| p.peer_id.parse().ok()).collect(),
            Err(e) => {
                tracing::warn!(%cid, error = %e, "cannot list peers to fetch the other device's history");
                return false;
            }
        };
        let (tx, _rx) = tokio::sync::watch::channel(crate::bitswap::Progress::default());
        match tokio::time::timeout(MERGE_FETCH_TIMEOUT, self.bitswap.fetch(cid, scope, peers, tx)).await {
            Ok(Ok(_)) => true,
            Ok(Err(e)) => {
                tracing::warn!(%cid, error = %e, "cannot fetch the other device's history; announcing ours");
                false
            }
            Err(_) => {
                tracing::warn!(%cid, "timed out fetching the other device's history; announcing ours");
                false
            }
        }
    }

    /// A second device holding the same community key may have announced an index we do not
    /// have: merge it into ours (union by archive id) so racing devices never drop an archive.
    /// Returns the index CID to announce, and the entries of the announced history root (the
    /// sizes of archives only the other device holds).
    async fn merge_other_device(
        &self,
        record: &Record,
        ours: String,
    ) -> Result<(String, Vec<directory::Entry>), Error> {
        use crate::bitswap::Scope;
        let community = record.community_id()?;
        let accepted = self.state.accepted(&community)?;
        let Some(theirs) = accepted.map(|s| s.announcement.cid) else {
            return Ok((ours, Vec::new()));
        };
        let theirs_cid = parse_cid(&theirs)?;
        let blocks = self.blocks.clone();
        let local = {
            let blocks = blocks.clone();
            tokio::task::spawn_blocking(move || history::resolve_local(&blocks, theirs_cid)).await?
        };
        let announced = match local {
            Ok(Some(a)) => a,
            Ok(None) if !self.fetch_other_device(theirs_cid, Scope::Block).await => {
                return Ok((ours, Vec::new()))
            }
            Ok(None) => {
                let blocks = blocks.clone();
                match tokio::task::spawn_blocking(move || history::resolve_local(&blocks, theirs_cid)).await?
                {
                    Ok(Some(a)) => a,
                    _ => return Ok((ours, Vec::new())),
                }
            }
            Err(e) => {
                tracing::warn!(%theirs, error = %e, "the announced history root does not read; announcing ours");
                return Ok((ours, Vec::new()));
            }
        };
        let known = {
            let blocks = blocks.clone();
            tokio::task::spawn_blocking(move || history::entries_local(&blocks, theirs_cid))
                .await?
                .unwrap_or_default()
        };
        let theirs_index = announced.index();
        if theirs_index.to_string() == ours {
            return Ok((ours, known));
        }
        let complete = {
            let blocks = blocks.clone();
            tokio::task::spawn_blocking(move || blocks.is_complete(&theirs_index)).await??
        };
        if !complete && !self.fetch_other_device(theirs_index, Scope::Dag).await {
            return Ok((ours, known));
        }
        let state = self.state.clone();
        let key = record.keys()?;
        let description = self.membership.description(&community)?;
        let current = keys::current(&key, description.as_ref().map(|d| &d.description)).cloned();
        let ours_cid = parse_cid(&ours)?;
        let merged = tokio::task::spawn_blocking(move || -> Result<String, Error> {
            let ring: KeyRing = key.iter().cloned().collect();
            let read = |cid| -> Result<Index, Error> { Ok(super::index::read(&blocks, cid, &ring)?) };
            let mut merged = read(ours_cid)?;
            let before = merged.archives.len();
            merged.merge(&read(theirs_index)?);
            if merged.archives.len() == before {
                return Ok(ours);
            }
            let plain = merged.encode();
            let bytes = match &current {
                Some(k) => seal::seal(k, &plain),
                None => plain,
            };
            let mut sink = StoreSink::new(blocks.clone());
            let merged_cid = sink.put(&bytes).map_err(Error::Sink)?;
            // Our un-merged index is superseded; later rounds build on the merged entries.
            blocks.unpin(&ours_cid)?;
            let entries: Vec<_> = merged.archives.into_iter().collect();
            // end 0: last_archive_end only moves forward, so it stays where this round put it.
            state.commit_round(&community, &entries, Some(&merged_cid), 0)?;
            Ok(merged_cid)
        })
        .await??;
        Ok((merged, known))
    }

    /// Signs and publishes an announcement of `cid` (the history root) with the next clock.
    async fn announce(&self, record: &Record, cid: String) -> Result<(), Error> {
        let community = record.community_id()?;
        let key = record.control_key()?.ok_or_else(|| Error::NotControlled(community.to_string()))?;
        let mut clock = self.state.clock(&community)?;
        let a = Announcement { clock: clock.issue(now().as_millis() as u64), cid };
        let signed = announce::sign(&key, &a);
        self.state.accept_announcement(&community, &signed.bytes, clock)?;
        self.network.publish(gossip::archives_topic(&community), signed.bytes).await?;
        // The DHT put waits on peers' answers: the round does not.
        let seeder = self.clone();
        tokio::spawn(async move {
            if let Err(e) = seeder.publish_ipns(community).await {
                tracing::warn!(%community, error = %e, "cannot publish the IPNS record of the history");
            }
        });
        Ok(())
    }

    /// Puts the IPNS record of the latest announced history root to the DHT, issuing a new one
    /// (sequence = the announcement's clock) unless the record held names that announcement and
    /// has more than half its validity left. Returns the record put; `None` when the latest
    /// announcement names no history root (an index alone) or this node does not control the
    /// community.
    pub async fn publish_ipns(&self, community: CommunityId) -> Result<Option<crate::ipns::Record>, Error> {
        let Some(key) = self.communities.get(&community)?.map(|r| r.control_key()).transpose()?.flatten()
        else {
            return Ok(None);
        };
        let Some(signed) = self.state.accepted(&community)? else { return Ok(None) };
        let announced = parse_cid(&signed.announcement.cid)?;
        let blocks = self.blocks.clone();
        let Some(root) = tokio::task::spawn_blocking(move || history::resolve_local(&blocks, announced))
            .await??
            .and_then(|a| a.root())
        else {
            return Ok(None);
        };
        let now = crate::ipns::now_ns();
        let validity = Duration::from_secs(self.config.ipns_validity_secs.max(60));
        let held =
            self.state.ipns_record(&community)?.and_then(|b| crate::ipns::validate(&community, &b, now).ok());
        let record = match held {
            Some(r)
                if r.sequence == signed.announcement.clock
                    && r.root == root
                    && r.validity_ns - now > validity.as_nanos() as i128 / 2 =>
            {
                r
            }
            _ => {
                let ttl = Duration::from_secs(self.config.ipns_ttl_secs);
                let r = crate::ipns::create(&key, &root, signed.announcement.clock, now, validity, ttl)
                    .map_err(|e| Error::Ipns(e.to_string()))?;
                self.state.set_ipns_record(&community, &r.bytes)?;
                r
            }
        };
        let name = crate::ipns::routing_key(&community).map_err(|e| Error::Ipns(e.to_string()))?;
        self.network.put_record(name, record.bytes.clone()).await?;
        Ok(Some(record))
    }

    /// Runs rounds when due and re-publishes, until cancelled.
    pub async fn run(self, cancel: CancellationToken) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let republish = Duration::from_secs(self.config.republish_interval_secs.max(1));
        let mut last_republish = tokio::time::Instant::now();
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = cancel.cancelled() => return,
            }
            let (communities, state) = (self.communities.clone(), self.state.clone());
            let states = tokio::task::spawn_blocking(move || -> Result<Vec<CommunityState>, String> {
                let mut out = Vec::new();
                for r in communities.list().map_err(|e| e.to_string())? {
                    let Ok(id) = r.community_id() else { continue };
                    out.push(CommunityState {
                        id,
                        control: r.control_secret.is_some(),
                        archives_enabled: r.archives_enabled,
                        interval_secs: r.archive_interval_secs,
                        last_archive_end: state.last_archive_end(&id).map_err(|e| e.to_string())?,
                    });
                }
                Ok(out)
            })
            .await;
            let states = match states {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "cannot read the communities");
                    continue;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "seeding tick failed");
                    continue;
                }
            };
            let republish_due = last_republish.elapsed() >= republish;
            if republish_due {
                last_republish = tokio::time::Instant::now();
            }
            let actions = handle_tick(&states, now().as_secs(), republish_due);
            for c in actions.rounds {
                if let Err(e) = self.round(c).await {
                    tracing::warn!(community = %c, error = %e, "archive round failed");
                }
            }
            for c in actions.republish {
                if let Ok(Some(d)) = self.membership.description(&c) {
                    let _ = self.network.publish(gossip::archives_topic(&c), d.bytes.clone()).await;
                }
                if let Ok(Some(bytes)) = self.state.announcement(&c) {
                    let _ = self.network.publish(gossip::archives_topic(&c), bytes).await;
                }
            }
        }
    }
}
