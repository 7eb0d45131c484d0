//! The community state exchange: a node asks each peer that connects for the latest signed
//! description and announcement of its communities (`/archive-node/community-state/1.0.0`),
//! and answers the same question from its own store. Both envelopes are verified like gossip,
//! so any node can relay them, and a late joiner learns who may write before it imports.

use archive_proto::pb::membership as pb;
use prost::Message as _;

use super::{Error, Node};
use crate::community::CommunityId;
use crate::network::PeerId;

impl Node {
    /// Asks `peer` for its latest description and announcement of each community, takes what
    /// is newer (the description first), and publishes this node's pending requests to join
    /// again (the peer may be the one that relays them to the control node).
    pub(super) async fn pull_state(self, peer: PeerId, communities: Vec<CommunityId>) {
        for c in communities {
            if let Err(e) = self.republish_request(c).await {
                tracing::debug!(community = %c, error = %e, "cannot publish the request to join");
            }
            let raw = match self.network.request_state(peer, c.as_bytes().to_vec()).await {
                Ok(raw) => raw,
                Err(e) => {
                    tracing::debug!(%peer, error = %e, "community state request failed");
                    continue;
                }
            };
            let Ok(state) = pb::CommunityState::decode(&raw[..]) else {
                tracing::debug!(%peer, "malformed community state answer");
                continue;
            };
            let r = self
                .blocking(move |n| {
                    if !state.description.is_empty() {
                        n.receive_description(&c, &state.description)?;
                    }
                    if !state.announcement.is_empty() {
                        n.receive_announcement(&c, &state.announcement, peer)?;
                    }
                    if !state.ipns_record.is_empty() {
                        n.receive_ipns(&c, &state.ipns_record, Some(peer), false)?;
                    }
                    Ok(())
                })
                .await;
            if let Err(e) = r {
                tracing::warn!(%peer, error = %e, "cannot take a peer's community state");
            }
        }
    }

    /// Answers a peer's community state request from our store.
    pub(super) async fn answer_state_request(self, community: Vec<u8>, id: u64) {
        let state = self
            .blocking(move |n| {
                let Ok(raw) = <[u8; crate::crypto::PUBLIC_KEY_LEN]>::try_from(&community[..]) else {
                    return Ok(Vec::new());
                };
                let c = CommunityId::from_bytes(raw);
                let announcement = n
                    .archive_state
                    .announcement(&c)
                    .map_err(|e| Error::Join(e.to_string()))?
                    .unwrap_or_default();
                let description = n.description(&c)?.map(|d| d.bytes.clone()).unwrap_or_default();
                let ipns_record = n.ipns_record(&c)?.map(|r| r.bytes).unwrap_or_default();
                Ok(pb::CommunityState {
                    announcement: announcement.into(),
                    description: description.into(),
                    ipns_record: ipns_record.into(),
                }
                .encode_to_vec())
            })
            .await
            .unwrap_or_default();
        let _ = self.network.respond_state(id, state).await;
    }
}
