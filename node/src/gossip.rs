//! Gossip of a community: topic names, settings, and our validation verdicts.

use serde::{Deserialize, Serialize};

use crate::community::CommunityId;

/// Members' messages of a community.
pub fn messages_topic(community: &CommunityId) -> String {
    format!("/archive-node/1/{community}/messages")
}

/// Signed index announcements of a community.
pub fn archives_topic(community: &CommunityId) -> String {
    format!("/archive-node/1/{community}/archives")
}

/// What our checks decided about a gossip message; nothing is forwarded before this.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Valid and new: forward it.
    Accept,
    /// Valid but not worth forwarding (a duplicate, a stale announcement).
    Ignore,
    /// Invalid: drop it and penalise the peer that forwarded it.
    Reject,
}

/// Gossipsub settings (the `[gossip]` section of the config file).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Heartbeat interval in milliseconds.
    pub heartbeat_ms: u64,
    /// Largest gossip message in bytes (a message's payload and signature, with framing).
    pub max_transmit_bytes: usize,
    /// Mesh size: target, low and high watermarks.
    pub mesh_n: usize,
    pub mesh_n_low: usize,
    pub mesh_n_high: usize,
    /// Outbound peers kept in the mesh.
    pub mesh_outbound_min: usize,
}

impl Config {
    /// Small meshes and 200 ms heartbeats: what the multi-node tests run with (the defaults
    /// suit long-running nodes).
    pub fn fast_for_tests() -> Self {
        Self {
            heartbeat_ms: 200,
            mesh_n: 2,
            mesh_n_low: 1,
            mesh_n_high: 4,
            mesh_outbound_min: 0,
            ..Self::default()
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            heartbeat_ms: 1000,
            max_transmit_bytes: 1024 * 1024,
            mesh_n: 6,
            mesh_n_low: 4,
            mesh_n_high: 12,
            mesh_outbound_min: 2,
        }
    }
}
