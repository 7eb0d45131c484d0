//! The node facade: opens the data dir, starts the network and Bitswap, wires their events, and
//! offers what the CLI and the RPC API call.

use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::bitswap::{self, Bitswap, FetchStats, Progress};
use crate::blocks::cid::Cid;
use crate::blocks::store::{self, BlockStore};
use crate::data_dir::DataDir;
use crate::db::{self, Db};
use crate::network::{self, Multiaddr, PeerId};

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
}

/// Settings of a node.
#[derive(Clone, Debug, Default)]
pub struct Config {
    pub network: network::Config,
    pub store: store::Config,
}

/// A running node; cheap to clone.
#[derive(Clone)]
pub struct Node {
    pub db: Db,
    pub blocks: BlockStore,
    pub network: network::Client,
    pub bitswap: Bitswap,
    cancel: CancellationToken,
}

impl Node {
    /// Opens the data dir and starts the node's tasks (children of `cancel`).
    pub async fn start(dir: &DataDir, config: Config, cancel: CancellationToken) -> Result<Self, Error> {
        dir.create()
            .map_err(|e| Error::DataDir { path: dir.root().display().to_string(), reason: e.to_string() })?;
        let (db, blocks) = {
            let (db_path, blocks_path, store_config) = (dir.db(), dir.blocks(), config.store.clone());
            tokio::task::spawn_blocking(move || -> Result<_, Error> {
                let db = Db::open(&db_path)?;
                let blocks = BlockStore::open(&db, &blocks_path, store_config)?;
                Ok((db, blocks))
            })
            .await
            .map_err(|e| Error::Join(e.to_string()))??
        };
        let key = network::keys::load_or_create(&dir.node_key())?;
        let started =
            network::start(key, config.network, bitswap::PROTOCOLS.to_vec(), cancel.child_token()).await?;
        let bitswap = Bitswap::start(started.streams, started.incoming, blocks.clone(), cancel.child_token());
        let node = Node { db, blocks, network: started.client, bitswap, cancel };
        tokio::spawn(node.clone().wire_events());
        tokio::spawn(node.clone().reprovide_loop());
        Ok(node)
    }

    /// Stops the node's tasks.
    pub fn shutdown(&self) {
        self.cancel.cancel();
    }

    /// Makes every store write durable (blocking; call from a blocking thread or at exit).
    pub fn flush(&self) -> Result<(), Error> {
        Ok(self.db.flush()?)
    }

    async fn wire_events(self) {
        let mut net = self.network.subscribe();
        let mut bs = self.bitswap.subscribe();
        loop {
            tokio::select! {
                ev = net.recv() => match ev {
                    Ok(network::Event::PeerDisconnected(peer)) => self.bitswap.peer_disconnected(&peer),
                    Ok(_) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => tracing::warn!(n, "missed network events"),
                    Err(_) => break,
                },
                ev = bs.recv() => match ev {
                    Ok(bitswap::Event::PeerMisbehaved { peer, reason }) => {
                        tracing::warn!(%peer, %reason, "disconnecting a misbehaving peer");
                        let _ = self.network.disconnect(peer).await;
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
        let mut ids: Vec<PeerId> = Vec::new();
        for addr in peers {
            ids.push(self.network.dial(addr.clone()).await?);
        }
        if ids.is_empty() {
            ids = self.network.peers().await?.iter().filter_map(|p| p.peer_id.parse().ok()).collect();
            for p in self.network.find_providers(root).await? {
                match self.network.dial_peer(p).await {
                    Ok(p) => ids.push(p),
                    Err(e) => tracing::debug!(peer = %p, error = %e, "provider unreachable"),
                }
            }
        }
        ids.sort();
        ids.dedup();
        let stats = self.bitswap.fetch(root, ids, progress).await?;
        if let Err(e) = self.network.provide(root).await {
            tracing::debug!(%root, error = %e, "provide failed");
        }
        Ok(stats)
    }
}
