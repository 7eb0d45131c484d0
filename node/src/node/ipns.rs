//! The community's IPNS name on every node: records (signed by the community key, naming the
//! latest history root with the announcement's clock as sequence) are kept when valid and newer
//! (from DHT puts, DHT lookups and peers' state answers), put to the DHT again every
//! `ipns_republish_secs` (the control node issues a fresh one before half its validity passed),
//! and looked up on the DHT by a member that has no announcement yet, or every
//! [`RESOLVE_INTERVAL`]: a member whose only peers are IPFS nodes still finds the history.

use std::time::Duration;

use libp2p::PeerId;

use super::sync::SyncError;
use super::{Error, Event, Node};
use crate::community::CommunityId;
use crate::ipns;

/// How often a member looks its communities' names up while it knows an announcement.
pub const RESOLVE_INTERVAL: Duration = Duration::from_secs(300);

/// A record found for a name, and where.
#[derive(Clone, Debug)]
pub struct Resolved {
    pub record: ipns::Record,
    /// The peer that answered with it; `None`: this node's own store.
    pub source: Option<PeerId>,
}

fn state_err(e: impl ToString) -> Error {
    Error::Join(e.to_string())
}

impl Node {
    /// The IPNS record held for the community, valid now.
    pub fn ipns_record(&self, id: &CommunityId) -> Result<Option<ipns::Record>, Error> {
        let held = self.archive_state.ipns_record(id).map_err(SyncError::from)?;
        Ok(held.and_then(|b| ipns::validate(id, &b, ipns::now_ns()).ok()))
    }

    /// A record of the community's name from `source` (blocking): kept when valid and ranked
    /// above the one held; when it names a newer history than the accepted announcement, the
    /// history syncs. A kept record that is not in our DHT store yet (`in_dht` false: it came from
    /// a lookup or a peer's state answer) is put there, so this node serves it, and refuses older
    /// ones put to it. Returns whether it was kept.
    pub(super) fn receive_ipns(
        &self,
        id: &CommunityId,
        bytes: &[u8],
        source: Option<PeerId>,
        in_dht: bool,
    ) -> Result<bool, Error> {
        if self.communities.get(id)?.is_none() {
            return Ok(false);
        }
        let record = match ipns::validate(id, bytes, ipns::now_ns()) {
            Ok(r) => r,
            Err(e) => {
                tracing::info!(community = %id, peer = ?source, error = %e, "refused an IPNS record");
                return Ok(false);
            }
        };
        if self.ipns_record(id)?.is_some_and(|held| held.rank() >= record.rank()) {
            return Ok(false);
        }
        self.archive_state.set_ipns_record(id, bytes).map_err(SyncError::from)?;
        if !in_dht {
            if let (Ok(rt), Ok(key)) = (tokio::runtime::Handle::try_current(), ipns::routing_key(id)) {
                let (network, value, id) = (self.network.clone(), bytes.to_vec(), *id);
                rt.spawn(async move {
                    if let Err(e) = network.put_record(key, value).await {
                        tracing::debug!(community = %id, error = %e, "cannot put the IPNS record to the DHT");
                    }
                });
            }
        }
        let announced =
            self.archive_state.accepted(id).map_err(SyncError::from)?.map(|s| s.announcement.clock);
        let _ = self.events.send(Event::IpnsAccepted {
            community: *id,
            sequence: record.sequence,
            root: record.root.to_string(),
            source,
        });
        if announced.is_none_or(|clock| record.sequence > clock) {
            self.start_sync(*id);
        }
        Ok(true)
    }

    /// The latest history this node knows of (blocking): the `(clock, CID)` of the accepted
    /// announcement or of the IPNS record held, whichever is newer. A record keeps naming its
    /// root after it expired: it was valid when kept.
    pub fn latest_history(&self, id: &CommunityId) -> Result<Option<(u64, String)>, Error> {
        let announced = self
            .archive_state
            .accepted(id)
            .map_err(SyncError::from)?
            .map(|s| (s.announcement.clock, s.announcement.cid));
        let named = self
            .archive_state
            .ipns_record(id)
            .map_err(SyncError::from)?
            .and_then(|b| ipns::validate(id, &b, i128::MIN).ok())
            .map(|r| (r.sequence, r.root.to_string()));
        Ok(match (announced, named) {
            (Some(a), Some(n)) if n.0 > a.0 => Some(n),
            (Some(a), _) => Some(a),
            (None, n) => n,
        })
    }

    /// Looks the community's name up on the DHT, keeps the best valid record found (see
    /// [`Node::receive_ipns`]), and returns it with its source; `None` when no valid record exists.
    pub async fn resolve_ipns(&self, id: CommunityId) -> Result<Option<Resolved>, Error> {
        let key = ipns::routing_key(&id).map_err(state_err)?;
        let found = self.network.get_records(key).await?;
        let now = ipns::now_ns();
        let best = found
            .into_iter()
            .filter_map(|(peer, bytes)| {
                ipns::validate(&id, &bytes, now).ok().map(|r| Resolved { record: r, source: peer })
            })
            .max_by_key(|r| r.record.rank());
        let Some(best) = best else {
            return Ok(self.ipns_record(&id)?.map(|record| Resolved { record, source: None }));
        };
        let (bytes, source) = (best.record.bytes.clone(), best.source);
        let kept = self.blocking(move |n| n.receive_ipns(&id, &bytes, source, false)).await?;
        if kept {
            tracing::info!(community = %id, sequence = best.record.sequence, root = %best.record.root, peer = ?source, "resolved the community's IPNS name");
        }
        // What this node holds now: the record found, or a better one it had.
        Ok(self.ipns_record(&id)?.map(|record| {
            let source = if record == best.record { best.source } else { None };
            Resolved { record, source }
        }))
    }

    /// Puts every valid record held to the DHT again, every `ipns_republish_secs` (the control
    /// node through [`crate::archive::seeder::Seeder::publish_ipns`], which refreshes its
    /// validity), so the name outlives any one node.
    pub(super) async fn ipns_loop(self) {
        let period = Duration::from_secs(self.seeder.config.ipns_republish_secs.max(60));
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = self.cancel.cancelled() => return,
            }
            let listed = self
                .blocking(|n| {
                    Ok(n.communities
                        .list()?
                        .into_iter()
                        .filter_map(|r| Some((r.community_id().ok()?, r.control_secret.is_some())))
                        .collect::<Vec<_>>())
                })
                .await;
            for (id, control) in listed.unwrap_or_default() {
                let put = match control {
                    true => self.seeder.publish_ipns(id).await.map(|_| ()).map_err(state_err),
                    false => self.republish_ipns(id).await,
                };
                if let Err(e) = put {
                    tracing::debug!(community = %id, error = %e, "cannot republish the IPNS record");
                }
            }
        }
    }

    async fn republish_ipns(&self, id: CommunityId) -> Result<(), Error> {
        let Some(record) = self.ipns_record(&id)? else { return Ok(()) };
        let key = ipns::routing_key(&id).map_err(state_err)?;
        Ok(self.network.put_record(key, record.bytes).await?)
    }
}
