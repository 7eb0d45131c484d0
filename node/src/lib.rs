//! archive-node: a peer-to-peer node that keeps the message history of communities alive.
//!
//! Layout, bottom up (no module imports one above it):
//! - [`crypto`], [`community`], [`message`]: keys, ids and the rules that make a message valid;
//! - [`clock`], [`envelope`], [`announce`]: the Lamport clock, signed envelopes and signed
//!   index announcements (pure);
//! - [`seal`]: sealed bytes of encrypted communities and their key ring;
//! - [`membership`]: community descriptions, who may write at a time, join requests (pure, but
//!   for its store);
//! - [`malloc`]: giving freed memory back to the system;
//! - [`db`]: the embedded key-value database (the only module that imports sled);
//! - [`packs`]: append-only pack files for the bytes too large for the database;
//! - [`message_store`]: verified messages ordered by community and time;
//! - [`communities`]: the communities a node takes part in, their keys and invites;
//! - [`blocks`]: content addressing;
//! - [`bitswap`]: block exchange with IPFS peers (Bitswap 1.2.0);
//! - [`gossip`]: topic names, settings and verdicts of community gossip;
//! - [`network`]: the libp2p swarm behind a command channel;
//! - [`archive`]: status-go's history archive format, partitioning, builder and index;
//! - [`node`]: the facade that starts and wires the network, Bitswap and the stores;
//! - [`data_dir`], [`json`]: the data directory layout and the JSON views shared by CLI and RPC;
//! - [`signals`], [`rpc`], [`config`], [`daemon`]: the long-running daemon and its JSON-RPC API;
//! - [`cli`]: the `archive-node` command line.

pub mod announce;
pub mod archive;
pub mod bitswap;
pub mod blocks;
pub mod cli;
pub mod clock;
pub mod communities;
pub mod community;
pub mod config;
pub mod crypto;
pub mod daemon;
pub mod data_dir;
pub mod db;
pub mod envelope;
pub mod gossip;
pub mod ipns;
pub mod json;
pub mod malloc;
pub mod membership;
pub mod message;
pub mod message_store;
pub mod network;
pub mod node;
pub mod packs;
pub mod rpc;
pub mod seal;
pub mod signals;
