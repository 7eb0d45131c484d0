//! `archive-node daemon`: the long-running node with its RPC API.
//!
//! Start: load the config (file, then flag overrides), open the data dir (a second instance on
//! the same data dir is refused by the database lock), start the node, write the RPC token
//! (created once, mode 0600) and, for port 0, `rpc.port`; print the RPC URL and multiaddrs.
//! Stop (SIGINT/SIGTERM): stop accepting RPC, cancel the node's tasks, flush the stores, remove
//! `rpc.port`. A panic in any task is logged and stops the node.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::data_dir::{write_atomic, DataDir};
use crate::network::{self, Multiaddr};
use crate::node::{self, Node};
use crate::rpc::{self, auth::Token};
use crate::signals::{names, Signals};

mod metrics;

/// Command-line overrides of the config file.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    pub data_dir: Option<PathBuf>,
    pub listen: Vec<Multiaddr>,
    pub rpc_port: Option<u16>,
    pub bootstrap: Vec<Multiaddr>,
}

/// Applies the overrides.
pub fn merge(mut config: Config, o: Overrides) -> Config {
    if o.data_dir.is_some() {
        config.node.data_dir = o.data_dir;
    }
    if !o.listen.is_empty() {
        config.network.listen = o.listen;
    }
    if let Some(p) = o.rpc_port {
        config.rpc.port = p;
    }
    if !o.bootstrap.is_empty() {
        config.network.bootstrap = o.bootstrap;
    }
    config
}

/// Grace given to RPC calls in progress at shutdown.
const GRACE: Duration = Duration::from_secs(2);

/// Runs the daemon until SIGINT/SIGTERM or a task panics.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let dir = DataDir::new(config.node.data_dir.clone().unwrap_or_else(DataDir::default_path));
    let cancel = CancellationToken::new();
    let node_config = node::Config {
        network: config.network.clone(),
        store: config.store.clone(),
        gossip: config.gossip.clone(),
        archive: config.archive.clone(),
        membership: config.membership.clone(),
    };
    let node = Node::start(&dir, node_config, cancel.clone()).await.map_err(|e| match e {
        node::Error::Db(crate::db::Error::Locked { .. }) => {
            anyhow::anyhow!("another archive-node already runs on data dir {}", dir.root().display())
        }
        other => other.into(),
    })?;
    let signals = Signals::default();
    tokio::spawn(forward_network_signals(node.network().clone(), signals.clone(), cancel.clone()));
    tokio::spawn(forward_node_signals(node.clone(), signals.clone(), cancel.clone()));
    tokio::spawn(bandwidth_signals(node.bitswap().bandwidth().clone(), signals.clone(), cancel.clone()));

    let token = Token::new(
        rpc::auth::load_or_create_token(&dir.rpc_token())
            .with_context(|| format!("cannot write {}", dir.rpc_token().display()))?,
    );
    let started = Instant::now();
    let metrics = {
        let node = node.clone();
        std::sync::Arc::new(move || metrics::text(&node, started)) as rpc::gate::MetricsFn
    };
    let ctx = rpc::methods::Ctx {
        node: node.clone(),
        signals,
        max_cat_bytes: u64::from(config.rpc.max_response_bytes) / 4 * 3 - 1024,
        debug_methods: config.rpc.debug_methods,
        token: token.clone(),
        token_path: dir.rpc_token(),
        rpc_port: config.rpc.port,
    };
    let server = rpc::server::start(&config.rpc, ctx, token, metrics).await?;
    write_atomic(&dir.rpc_port(), server.addr.port().to_string().as_bytes())
        .with_context(|| format!("cannot write {}", dir.rpc_port().display()))?;

    println!("rpc http://{}", server.addr);
    for addr in node.network().listen_addrs().await? {
        println!("listening {addr}");
    }
    tracing::info!(data_dir = %dir.root().display(), "daemon started");

    let panicked = watch_panics(cancel.clone());
    tokio::select! {
        _ = shutdown_signal() => tracing::info!("shutting down"),
        _ = panicked => tracing::error!("a task panicked: shutting down"),
    }
    // Stop accepting, let calls in flight finish, then stop the node and flush.
    let _ = server.handle.stop();
    let _ = tokio::time::timeout(GRACE, server.handle.stopped()).await;
    cancel.cancel();
    let _ = std::fs::remove_file(dir.rpc_port());
    tokio::task::spawn_blocking(move || node.flush()).await??;
    tracing::info!("stopped");
    Ok(())
}

/// Resolves when a panic hook fired (the hook cancels the node with a logged reason).
async fn watch_panics(cancel: CancellationToken) {
    let token = cancel.clone();
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        tracing::error!(%info, "panic");
        previous(info);
        token.cancel();
    }));
    cancel.cancelled().await;
}

/// How often `node.bandwidth` is emitted (the dashboard's live chart).
pub const BANDWIDTH_SIGNAL_EVERY: Duration = Duration::from_secs(2);

/// Emits `node.bandwidth` (`{upload, download}` as in `node_info.bandwidth`) periodically.
async fn bandwidth_signals(
    b: crate::bitswap::bandwidth::Bandwidth,
    signals: Signals,
    cancel: CancellationToken,
) {
    let mut tick = tokio::time::interval(BANDWIDTH_SIGNAL_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let (up, down) = b.usage();
                signals.emit(names::BANDWIDTH, serde_json::json!({"upload": up, "download": down}));
            }
            _ = cancel.cancelled() => return,
        }
    }
}

async fn forward_network_signals(net: network::Client, signals: Signals, cancel: CancellationToken) {
    let mut rx = net.subscribe();
    loop {
        tokio::select! {
            ev = rx.recv() => match ev {
                Ok(network::Event::PeerConnected(p)) => signals.emit(names::PEER_CONNECTED, serde_json::json!({"peerId": p.to_string()})),
                Ok(network::Event::PeerDisconnected(p)) => signals.emit(names::PEER_DISCONNECTED, serde_json::json!({"peerId": p.to_string()})),
                Ok(_) => {}
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(_) => return,
            },
            _ = cancel.cancelled() => return,
        }
    }
}

async fn forward_node_signals(node: Node, signals: Signals, cancel: CancellationToken) {
    use crate::archive::seeder::Event as Seeder;
    use serde_json::json;
    let mut rx = node.subscribe();
    let mut seeder = node.seeder().events.subscribe();
    loop {
        tokio::select! {
            ev = rx.recv() => match ev {
                Ok(node::Event::MessageStored { community, hash, received }) => signals.emit(
                    names::MESSAGES_NEW,
                    json!({"communityId": community.to_string(), "hash": format!("0x{}", hex::encode(hash)), "received": received}),
                ),
                Ok(node::Event::AnnouncementAccepted { community, clock, cid }) => signals.emit(
                    names::ANNOUNCEMENT_ACCEPTED,
                    json!({"communityId": community.to_string(), "clock": clock, "cid": cid}),
                ),
                Ok(node::Event::IpnsAccepted { community, sequence, root, source }) => signals.emit(
                    names::IPNS_ACCEPTED,
                    json!({"communityId": community.to_string(), "sequence": sequence, "rootCid": root, "peerId": source.map(|p| p.to_string())}),
                ),
                Ok(node::Event::IndexDownloaded { community, cid, root }) => signals.emit(
                    names::INDEX_DOWNLOADED,
                    json!({"communityId": community.to_string(), "indexCid": cid, "rootCid": root}),
                ),
                Ok(node::Event::DownloadingStarted { community, archives }) => signals.emit(
                    names::DOWNLOADING_STARTED,
                    json!({"communityId": community.to_string(), "archives": archives}),
                ),
                Ok(node::Event::ArchiveDownloaded { community, archive_id, from, to, bytes }) => signals.emit(
                    names::ARCHIVE_DOWNLOADED,
                    json!({"communityId": community.to_string(), "archiveId": archive_id, "from": from, "to": to, "bytes": bytes}),
                ),
                Ok(node::Event::ImportStarted { community, archive_id }) => signals.emit(
                    names::IMPORT_STARTED,
                    json!({"communityId": community.to_string(), "archiveId": archive_id}),
                ),
                Ok(node::Event::Imported { community, archive_id, outcome }) => signals.emit(
                    names::IMPORT_FINISHED,
                    json!({"communityId": community.to_string(), "archiveId": archive_id,
                           "imported": outcome.imported, "duplicates": outcome.duplicates, "rejected": outcome.rejected}),
                ),
                Ok(node::Event::DownloadingFinished { community }) => {
                    signals.emit(names::DOWNLOADING_FINISHED, json!({"communityId": community.to_string()}))
                }
                Ok(node::Event::AnnouncementRejected { community, source, reason }) => signals.emit(
                    names::ANNOUNCEMENT_REJECTED,
                    json!({"communityId": community.to_string(), "peerId": source.to_string(), "reason": reason}),
                ),
                Ok(node::Event::DescriptionUpdated { community, clock }) => signals.emit(
                    names::DESCRIPTION_UPDATED,
                    json!({"communityId": community.to_string(), "clock": clock}),
                ),
                Ok(node::Event::MemberJoined { community, member }) => signals.emit(
                    names::MEMBER_JOINED,
                    json!({"communityId": community.to_string(), "memberKey": member.to_string()}),
                ),
                Ok(node::Event::MemberRemoved { community, member }) => signals.emit(
                    names::MEMBER_REMOVED,
                    json!({"communityId": community.to_string(), "memberKey": member.to_string()}),
                ),
                Ok(node::Event::MemberBanned { community, member }) => signals.emit(
                    names::MEMBER_BANNED,
                    json!({"communityId": community.to_string(), "memberKey": member.to_string()}),
                ),
                Ok(node::Event::Rekeyed { community, key_id }) => signals.emit(
                    names::REKEYED,
                    json!({"communityId": community.to_string(), "keyId": key_id}),
                ),
                Ok(node::Event::RequestToJoin { community, member, display_name }) => signals.emit(
                    names::REQUEST_TO_JOIN,
                    json!({"communityId": community.to_string(), "memberKey": member.to_string(), "displayName": display_name}),
                ),
                Ok(node::Event::RequestRejected { community, member }) => signals.emit(
                    names::REQUEST_REJECTED,
                    json!({"communityId": community.to_string(), "memberKey": member.to_string()}),
                ),
                Ok(node::Event::KeyMissing { community, key_id }) => signals.emit(
                    names::KEY_MISSING,
                    json!({"communityId": community.to_string(), "keyId": key_id}),
                ),
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(_) => return,
            },
            ev = seeder.recv() => match ev {
                Ok(Seeder::Creating { community }) => {
                    signals.emit(names::CREATING_ARCHIVES, json!({"communityId": community.to_string()}))
                }
                Ok(Seeder::Created { community, from, to, archives, index_cid, root_cid }) => signals.emit(
                    names::ARCHIVES_CREATED,
                    json!({"communityId": community.to_string(), "from": from, "to": to, "archives": archives, "indexCid": index_cid, "rootCid": root_cid}),
                ),
                Ok(Seeder::NoneCreated { community, from, to }) => signals.emit(
                    names::NO_ARCHIVES_CREATED,
                    json!({"communityId": community.to_string(), "from": from, "to": to}),
                ),
                Ok(Seeder::Seeding { community, index_cid, root_cid }) => signals.emit(
                    names::ARCHIVES_SEEDING,
                    json!({"communityId": community.to_string(), "indexCid": index_cid, "rootCid": root_cid}),
                ),
                Ok(Seeder::Failed { community, error }) => signals.emit(
                    names::ARCHIVES_FAILED,
                    json!({"communityId": community.to_string(), "error": error}),
                ),
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(_) => return,
            },
            _ = cancel.cancelled() => return,
        }
    }
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}
