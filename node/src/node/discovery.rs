//! Members find each other: each node provides, on the DHT, a key derived from the id of every
//! community it joined, and looks up that key's providers at join, at start and every
//! [`DISCOVERY_INTERVAL`], connecting to up to [`COMMUNITY_PEERS`] of them. A member that knows
//! only the invite and one bootstrap node finds the rest. Providing again each round keeps the
//! record's addresses current (a relayed address appears once a reservation holds). A member
//! that knows no history yet also looks up the community's IPNS name, and every member does
//! every [`super::ipns::RESOLVE_INTERVAL`].

use std::time::Duration;

use crate::blocks::cid::{self, Cid};
use crate::community::CommunityId;

use super::Node;

/// How often a node provides and looks up the keys of its communities.
pub const DISCOVERY_INTERVAL: Duration = Duration::from_secs(30);

/// Peers of one community a lookup connects to at most (beyond those connected already).
pub const COMMUNITY_PEERS: usize = 8;

/// The DHT key under which the nodes of a community provide: the CID of a raw block that
/// nobody stores, so it never names content.
pub fn community_key(id: &CommunityId) -> Cid {
    let mut bytes = b"/archive-node/community/v1/".to_vec();
    bytes.extend_from_slice(id.as_bytes());
    cid::raw(&bytes)
}

impl Node {
    /// Provides the community's key and connects to some of the other providers; returns how
    /// many new peers it connected to.
    pub async fn discover(&self, id: CommunityId) -> usize {
        let key = community_key(&id);
        if let Err(e) = self.network.provide(key).await {
            tracing::debug!(community = %id, error = %e, "cannot provide the community key");
        }
        let found = match self.network.find_providers(key).await {
            Ok(found) => found,
            Err(e) => {
                tracing::debug!(community = %id, error = %e, "community lookup failed");
                return 0;
            }
        };
        let connected: std::collections::HashSet<String> =
            self.network.peers().await.unwrap_or_default().into_iter().map(|p| p.peer_id).collect();
        let mut new = 0;
        for peer in found.into_iter().filter(|p| !connected.contains(&p.to_string())).take(COMMUNITY_PEERS) {
            match self.network.dial_peer(peer).await {
                Ok(_) => new += 1,
                Err(e) => tracing::debug!(community = %id, %peer, error = %e, "community peer unreachable"),
            }
        }
        if new > 0 {
            tracing::info!(community = %id, new, "found peers of the community");
        }
        // No community peer told us of any history yet: the IPNS name may, from any DHT node.
        let unknown = self.blocking(move |n| Ok(n.latest_history(&id)?.is_none())).await.unwrap_or(false);
        if unknown {
            self.resolve_quietly(id).await;
        }
        new
    }

    /// Looks up the community's IPNS name (not for a community this node controls: it makes
    /// the records), logging a failure.
    async fn resolve_quietly(&self, id: CommunityId) {
        let controlled = self
            .blocking(move |n| Ok(n.communities.get(&id)?.is_some_and(|r| r.control_secret.is_some())))
            .await
            .unwrap_or(true);
        if controlled {
            return;
        }
        if let Err(e) = self.resolve_ipns(id).await {
            tracing::debug!(community = %id, error = %e, "IPNS lookup failed");
        }
    }

    /// Discovers the peers of every joined community, now and every [`DISCOVERY_INTERVAL`].
    pub(super) async fn discovery_loop(self) {
        let mut tick = tokio::time::interval(DISCOVERY_INTERVAL);
        let resolve_every = (super::ipns::RESOLVE_INTERVAL.as_secs() / DISCOVERY_INTERVAL.as_secs()).max(1);
        let mut round = 0u64;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = self.cancel.cancelled() => return,
            }
            // sled reads stay off the async threads.
            let listed = self
                .blocking(|n| {
                    Ok(n.communities.list()?.iter().filter_map(|r| r.community_id().ok()).collect())
                })
                .await;
            let ids: Vec<CommunityId> = match listed {
                Ok(ids) => ids,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot list communities to discover their peers");
                    continue;
                }
            };
            // Each round, and every few rounds the IPNS names too (a newer history than any
            // community peer told of).
            let resolve = round % resolve_every == resolve_every - 1;
            round += 1;
            for id in ids {
                self.discover(id).await;
                if resolve {
                    self.resolve_quietly(id).await;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_community_has_its_own_key() {
        let (a, b) = (crate::crypto::KeyPair::generate(), crate::crypto::KeyPair::generate());
        let (a, b) = (CommunityId::from_bytes(a.public()), CommunityId::from_bytes(b.public()));
        assert_ne!(community_key(&a), community_key(&b));
        assert_eq!(community_key(&a), community_key(&a));
        assert_eq!(community_key(&a).codec(), cid::RAW);
    }
}
