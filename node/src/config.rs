//! The daemon's configuration: one TOML section per subsystem, every field defaulted.
//!
//! Precedence: built-in defaults < the config file (`--config`) < command-line flags. Each
//! subsystem receives only its own section.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::blocks::store;
use crate::network;

/// The whole configuration.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub node: NodeConfig,
    pub store: store::Config,
    pub network: network::Config,
    pub gossip: crate::gossip::Config,
    pub archive: crate::archive::seeder::Config,
    pub membership: crate::membership::Config,
    pub rpc: RpcConfig,
}

/// `[node]`: where the node keeps its state.
/// A daemon's defaults: those of each subsystem, listening on every interface (the in-process
/// network default is loopback).
impl Default for Config {
    fn default() -> Self {
        Self {
            node: NodeConfig::default(),
            store: store::Config::default(),
            network: network::Config { listen: network::config::public_listen(), ..Default::default() },
            gossip: Default::default(),
            archive: Default::default(),
            membership: Default::default(),
            rpc: RpcConfig::default(),
        }
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NodeConfig {
    /// Data directory [default: $ARCHIVE_NODE_DATA_DIR, else ~/.archive-node].
    pub data_dir: Option<PathBuf>,
}

/// `[rpc]`: the JSON-RPC API (HTTP and WebSocket on one port, 127.0.0.1 only).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RpcConfig {
    /// Port on 127.0.0.1; 0 picks a free one and writes it to `<data-dir>/rpc.port`.
    pub port: u16,
    /// Most simultaneous RPC connections.
    pub max_connections: u32,
    /// Largest request body in bytes (a `blocks_add` of up to 32 MiB in base64 fits).
    pub max_request_bytes: u32,
    /// Largest response body in bytes (a `blocks_cat` of up to 32 MiB in base64 fits).
    pub max_response_bytes: u32,
    /// Serve `debug_*` methods (publishing raw gossip): for hostile-peer tests only.
    pub debug_methods: bool,
    /// Host names besides 127.0.0.1, localhost and [::1] that requests may name in `Host`
    /// (a name of this machine behind an SSH tunnel or a reverse proxy, say); anything else is
    /// refused, against DNS rebinding.
    pub allowed_hosts: Vec<String>,
}

/// The default RPC port.
pub const DEFAULT_RPC_PORT: u16 = 5420;

impl Default for RpcConfig {
    fn default() -> Self {
        Self {
            port: DEFAULT_RPC_PORT,
            max_connections: 100,
            max_request_bytes: 48 * 1024 * 1024,
            max_response_bytes: 48 * 1024 * 1024,
            debug_methods: false,
            allowed_hosts: Vec::new(),
        }
    }
}

/// Errors of loading a config file.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read config {path}: {reason}")]
    Read { path: String, reason: String },
    #[error("invalid config {path}: {reason}")]
    Parse { path: String, reason: String },
}

impl Config {
    /// Reads a TOML file; missing fields take their defaults, unknown fields are refused.
    pub fn load(path: &Path) -> Result<Self, Error> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::Read { path: path.display().to_string(), reason: e.to_string() })?;
        Self::parse(&text).map_err(|reason| Error::Parse { path: path.display().to_string(), reason })
    }

    /// Parses TOML text.
    pub fn parse(text: &str) -> Result<Self, String> {
        toml::from_str(text).map_err(|e| e.to_string().replace('\n', " "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_text_is_all_defaults_and_fields_override() {
        let c = Config::parse("").unwrap();
        assert_eq!(c.rpc.port, DEFAULT_RPC_PORT);
        assert!(c.network.bootstrap.is_empty(), "no public bootstrap peers by default");
        let public = network::config::public_listen();
        assert_eq!(c.network.listen, public, "a daemon listens on every interface by default");
        assert_eq!(Config::default().network.listen, public);
        assert_eq!(Config::parse("[network]\nupnp = true\n").unwrap().network.listen, public);
        assert!(Config::parse("[network]\nupnp = true\n").unwrap().network.upnp);
        let c = Config::parse("[rpc]\nport = 0\n[store]\nquota = 1000\n").unwrap();
        assert_eq!(c.rpc.port, 0);
        assert_eq!(c.store.quota, Some(1000));
        assert_eq!(c.rpc.max_connections, 100);
    }

    #[test]
    fn unknown_fields_are_refused_with_their_name() {
        let err = Config::parse("[rpc]\nprot = 1\n").unwrap_err();
        assert!(err.contains("prot"), "{err}");
    }

    #[test]
    fn the_example_file_parses_and_matches_the_defaults() {
        let text =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../archive-node.example.toml"))
                .unwrap();
        let example = Config::parse(&text).unwrap();
        let defaults = Config::default();
        assert_eq!(toml::to_string(&example).unwrap(), toml::to_string(&defaults).unwrap());
    }
}
