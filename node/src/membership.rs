//! Membership of a community (DESIGN.md §3.5): who may write its history.
//!
//! - [`description`]: the signed `CommunityDescription`, its order and the merge of two
//!   control devices' descriptions;
//! - [`rule`]: "may this author write at time t", and the gossip verdict built on it;
//! - [`requests`]: grants carried by invites, requests to join and to leave;
//! - [`keys`]: archive keys sealed to members, and the chain that opens older ones;
//! - [`rate`]: per-author message rate limits;
//! - [`store`]: the descriptions and requests a node holds, persisted.
//!
//! Everything here but `store` is pure.

pub mod description;
pub mod keys;
pub mod rate;
pub mod requests;
pub mod rule;
pub mod store;

pub use description::{Access, Description, Member, Signed};
pub use rule::{Check, Standing};

/// Limits on what members write (the `[membership]` section of the config file).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Messages an author may write a minute on average (0: no limit).
    pub max_messages_per_author_per_minute: u32,
    /// Messages an author may write in a burst above that rate.
    pub author_burst: u32,
    /// Bytes of messages stored per community; past this, more are refused (0: no limit).
    pub max_community_store_bytes: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            // Ten a second: far above a person typing, far below a flood.
            max_messages_per_author_per_minute: 600,
            author_burst: 100,
            max_community_store_bytes: 16 * 1024 * 1024 * 1024,
        }
    }
}
