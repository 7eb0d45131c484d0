//! `archive-node daemon`.

use std::path::PathBuf;

use clap::Args;

use crate::config::Config;
use crate::daemon::{self, Overrides};
use crate::data_dir;
use crate::network::Multiaddr;

#[derive(Args, Debug)]
pub struct DaemonArgs {
    /// TOML config file (see archive-node.example.toml); flags override it.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Data directory [default: [node] data_dir, else $ARCHIVE_NODE_DATA_DIR, else ~/.archive-node].
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Address to listen on for peers (repeatable) [default: /ip4/0.0.0.0/tcp/4001, every interface].
    #[arg(long)]
    listen: Vec<Multiaddr>,
    /// RPC port on 127.0.0.1; 0 picks a free port and writes it to <data-dir>/rpc.port [default: 5420].
    #[arg(long)]
    rpc_port: Option<u16>,
    /// Peer to dial at start, with /p2p/<id> (repeatable).
    #[arg(long)]
    bootstrap: Vec<Multiaddr>,
    /// Log lines on stderr as text, or as one JSON object each (for journald, Loki, jq).
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

/// How the daemon writes its log.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

impl DaemonArgs {
    /// The log format asked for.
    pub fn log_format(&self) -> LogFormat {
        self.log_format
    }
}

pub fn run(a: DaemonArgs) -> anyhow::Result<()> {
    let config = match &a.config {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    let data_dir = a.data_dir.or_else(|| std::env::var_os(data_dir::ENV).map(PathBuf::from));
    let config = daemon::merge(
        config,
        Overrides { data_dir, listen: a.listen, rpc_port: a.rpc_port, bootstrap: a.bootstrap },
    );
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(daemon::run(config))
}
