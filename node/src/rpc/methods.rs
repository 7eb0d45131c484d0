//! The JSON-RPC methods.
//!
//! Conventions: parameters by name (one object) or by position, decoded and checked by
//! [`params`](super::params) before a method runs; bytes are standard base64; CIDs are strings;
//! times are unix seconds. Invalid parameters get -32602 with a message naming the field.

use std::sync::Arc;

use jsonrpsee::core::{RpcResult, SubscriptionResult};
use jsonrpsee::types::{ErrorObjectOwned, Params};
use jsonrpsee::{Extensions, PendingSubscriptionSink, RpcModule, SubscriptionMessage};
use serde_json::{json, Value};
use tokio::sync::watch;

use crate::bitswap::Progress;
use crate::blocks::cid::Cid;
use crate::blocks::{files, store};
use crate::json::b64;
use crate::network::Multiaddr;
use crate::node::Node;
use crate::signals::{names, Signals};

use super::params::{self, invalid};

/// JSON-RPC error codes.
pub mod codes {
    pub const INVALID_PARAMS: i32 = crate::rpc::params::INVALID_PARAMS;
    /// A well-formed request the node could not carry out.
    pub const FAILED: i32 = -32000;
    /// The answer would be larger than the RPC limit.
    pub const TOO_LARGE: i32 = -32001;
}

/// What every method sees.
pub struct Ctx {
    pub node: Node,
    pub signals: Signals,
    /// Largest file `blocks_cat` returns inline.
    pub max_cat_bytes: u64,
    /// Serve `debug_*` methods.
    pub debug_methods: bool,
    /// The RPC token and its file, for `node_rotateToken`.
    pub token: super::auth::Token,
    pub token_path: std::path::PathBuf,
    /// The port the RPC listens on (for the dashboard's login URL; the server sets it).
    pub rpc_port: u16,
}

/// A call the node cannot carry out: the caller gets the reason, and so does the log.
pub(super) fn failed(e: impl std::fmt::Display) -> ErrorObjectOwned {
    let reason = e.to_string();
    tracing::warn!(%reason, "RPC call failed");
    ErrorObjectOwned::owned(codes::FAILED, reason, None::<()>)
}

pub(super) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ErrorObjectOwned> + Send + 'static,
) -> Result<T, ErrorObjectOwned> {
    tokio::task::spawn_blocking(f).await.map_err(failed)?
}

pub(super) fn community_view(r: &crate::communities::Record) -> Value {
    json!({
        "communityId": r.id, "name": r.name, "control": r.control_secret.is_some(),
        "encrypted": r.encrypted(), "joinedAt": r.joined_at,
    })
}

/// Updates a community record.
async fn update_record(
    ctx: &Ctx,
    id: crate::community::CommunityId,
    f: impl FnOnce(&mut crate::communities::Record) + Send + 'static,
) -> Result<(), ErrorObjectOwned> {
    let communities = ctx.node.communities().clone();
    blocking(move || {
        let mut r = communities
            .get(&id)
            .map_err(failed)?
            .ok_or_else(|| failed(format!("community {id} is not joined")))?;
        f(&mut r);
        communities.put(&r).map_err(failed)
    })
    .await
}

/// Registers `debug_publish` (publishes raw bytes on a gossip topic, as a hostile peer would)
/// and `debug_signMessage` (a message signed by this node's key, with no membership check: what
/// a stranger who knows the community id can make).
fn register_debug(m: &mut RpcModule<Ctx>) -> Result<(), jsonrpsee::core::RegisterMethodError> {
    m.register_async_method("debug_publish", |p, ctx, _| async move {
        let (topic, data) = params::publish(&p)?;
        ctx.node.network().publish(topic, data).await.map_err(failed)?;
        RpcResult::Ok(json!({}))
    })?;
    m.register_async_method("debug_signMessage", |p, ctx, _| async move {
        let s = params::send(&p)?;
        let m = ctx.node.sign_message(&s.community, s.topic, s.payload);
        RpcResult::Ok(json!({"data": b64(&m.encode()), "hash": format!("0x{}", hex::encode(m.hash))}))
    })?;
    Ok(())
}

/// Registers `archive_*`.
fn register_archive(m: &mut RpcModule<Ctx>) -> Result<(), jsonrpsee::core::RegisterMethodError> {
    m.register_async_method("archive_createNow", |p, ctx, _| async move {
        let id = params::community(&p)?;
        let outcome = ctx.node.seeder().round(id).await.map_err(failed)?;
        RpcResult::Ok(json!({
            "from": outcome.from, "to": outcome.to, "archives": outcome.archives.len(),
            "messages": outcome.messages, "indexCid": outcome.index_cid, "rootCid": outcome.root_cid,
        }))
    })?;
    m.register_async_method("archive_setEnabled", |p, ctx, _| async move {
        let (id, enabled) = params::enabled(&p)?;
        update_record(&ctx, id, move |r| r.archives_enabled = enabled).await?;
        RpcResult::Ok(json!({"enabled": enabled}))
    })?;
    m.register_async_method("archive_getInterval", |p, ctx, _| async move {
        let id = params::community(&p)?;
        let r = ctx
            .node
            .communities()
            .get(&id)
            .map_err(failed)?
            .ok_or_else(|| failed("community is not joined"))?;
        RpcResult::Ok(json!({"seconds": r.archive_interval_secs}))
    })?;
    m.register_async_method("archive_setInterval", |p, ctx, _| async move {
        let (id, seconds) = params::interval(&p)?;
        update_record(&ctx, id, move |r| r.archive_interval_secs = seconds).await?;
        RpcResult::Ok(json!({"seconds": seconds}))
    })?;
    m.register_async_method("archive_latestAnnouncement", |p, ctx, _| async move {
        let id = params::community(&p)?;
        let node = ctx.node.clone();
        blocking(move || {
            let Some(s) = node.archive_state().accepted(&id).map_err(failed)? else { return Ok(Value::Null) };
            // What the announced CID names, when its block is here: a history root (the CID to
            // pin) holding an index, or (an older control node) the index itself.
            let announced: Option<crate::archive::history::Announced> = s
                .announcement
                .cid
                .parse()
                .ok()
                .and_then(|c| crate::archive::history::resolve_local(node.blocks(), c).ok().flatten());
            let whole = match announced.and_then(|a| a.root()) {
                Some(root) => node.blocks().is_complete(&root).map_err(failed)?,
                None => false,
            };
            Ok(json!({
                "clock": s.announcement.clock, "cid": s.announcement.cid, "envelope": b64(&s.bytes),
                "rootCid": announced.and_then(|a| a.root()).map(|c| c.to_string()),
                "indexCid": announced.map(|a| a.index().to_string()),
                "whole": whole,
            }))
        })
        .await
    })?;
    m.register_async_method("archive_resolve", |p, ctx, _| async move {
        let id = params::community(&p)?;
        let resolved = ctx.node.resolve_ipns(id).await.map_err(failed)?;
        let name = crate::ipns::name(&id).map_err(failed)?;
        RpcResult::Ok(resolved.map_or(Value::Null, |r| {
            json!({
                "name": format!("/ipns/{name}"),
                "rootCid": r.record.root.to_string(),
                "sequence": r.record.sequence,
                "validity": r.record.validity(),
                "ttlSecs": r.record.ttl_ns / 1_000_000_000,
                "source": if r.source.is_some() { "dht" } else { "local" },
                "peerId": r.source.map(|p| p.to_string()),
                "record": b64(&r.record.bytes),
            })
        }))
    })?;
    m.register_async_method("archive_downloadedArchiveIds", |p, ctx, _| async move {
        let id = params::community(&p)?;
        let downloaded = ctx.node.archive_state().downloaded(&id).map_err(failed)?;
        RpcResult::Ok(json!(downloaded.into_keys().collect::<Vec<_>>()))
    })?;
    m.register_async_method("archive_importProgress", |p, ctx, _| async move {
        let id = params::community(&p)?;
        let downloaded = ctx.node.archive_state().downloaded(&id).map_err(failed)?;
        let imported = downloaded.values().filter(|i| **i).count();
        RpcResult::Ok(json!({"downloaded": downloaded.len(), "imported": imported}))
    })?;
    m.register_async_method("archive_hasCommunityArchive", |p, ctx, _| async move {
        let id = params::community(&p)?;
        RpcResult::Ok(json!(ctx.node.archive_state().announcement(&id).map_err(failed)?.is_some()))
    })?;
    m.register_async_method("archive_syncStatus", |p, ctx, _| async move {
        let id = params::community(&p)?;
        let node = ctx.node.clone();
        let status = blocking(move || super::sync_status::sync_status(&node, &id).map_err(failed)).await?;
        serde_json::to_value(status).map_err(failed)
    })?;
    m.register_async_method("archive_index", |p, ctx, _| async move {
        let id = params::community(&p)?;
        let node = ctx.node.clone();
        let index = blocking(move || node.current_index(&id).map_err(failed)).await?;
        RpcResult::Ok(index.map_or(Value::Null, |i| {
            serde_json::to_value(crate::json::IndexView::from(&i)).unwrap_or(Value::Null)
        }))
    })?;
    Ok(())
}

/// Registers `community_*` and `messages_*`.
fn register_communities(m: &mut RpcModule<Ctx>) -> Result<(), jsonrpsee::core::RegisterMethodError> {
    m.register_async_method("community_create", |p, ctx, _| async move {
        let params = params::create(&p)?;
        let r =
            ctx.node.create_community(params.name, params.encrypted, params.access).await.map_err(failed)?;
        let id = r.community_id().map_err(failed)?;
        // Invitation-only: no invite for everyone; each is made for one member key.
        let invite = match params.access {
            crate::membership::Access::InvitationOnly => None,
            _ => Some(ctx.node.invite_member(id, None).await.map_err(failed)?.encode()),
        };
        RpcResult::Ok(json!({"communityId": r.id, "invite": invite, "access": params.access.as_str()}))
    })?;
    m.register_async_method("community_join", |p, ctx, _| async move {
        let invite = params::invite(&p)?;
        let r = ctx.node.join_community(invite).await.map_err(failed)?;
        RpcResult::Ok(community_view(&r))
    })?;
    m.register_async_method("community_leave", |p, ctx, _| async move {
        let id = params::community(&p)?;
        let left = ctx.node.leave_community(id).await.map_err(failed)?;
        RpcResult::Ok(json!({"left": left}))
    })?;
    m.register_async_method("community_list", |_p, ctx, _| async move {
        let list = ctx.node.communities().list().map_err(failed)?;
        RpcResult::Ok(json!(list.iter().map(community_view).collect::<Vec<_>>()))
    })?;
    m.register_async_method("messages_send", |p, ctx, _| async move {
        let s = params::send(&p)?;
        let m = ctx.node.send_message(s.community, s.topic, s.payload).await.map_err(failed)?;
        RpcResult::Ok(json!({"hash": format!("0x{}", hex::encode(m.hash)), "timestamp": m.timestamp}))
    })?;
    m.register_async_method("messages_query", |p, ctx, _| async move {
        let (id, q) = params::query(&p)?;
        let store = ctx.node.messages().clone();
        let page = blocking(move || {
            store.query(&id, &q).map_err(|e| match e {
                crate::message_store::Error::Cursor => invalid("invalid params: cursor"),
                other => failed(other),
            })
        })
        .await?;
        let messages: Vec<_> = page
            .messages
            .iter()
            .zip(&page.authors)
            .map(|(m, a)| crate::json::MessageView::with_author(m, a))
            .collect();
        RpcResult::Ok(json!({"messages": messages, "cursor": page.cursor}))
    })?;
    Ok(())
}

fn added(imported: crate::blocks::unixfs::Imported) -> Value {
    json!({"cid": imported.root.to_string(), "size": imported.size, "blocks": imported.blocks})
}

/// `node_info.bandwidth`: limit, total and current rate of block data each way.
fn bandwidth_json(b: &crate::bitswap::bandwidth::Bandwidth) -> serde_json::Value {
    let (up, down) = b.usage();
    json!({"upload": up, "download": down})
}

/// `node_info`'s `reachability` (`public`, `private`, `unknown`), `externalAddrs`,
/// `relayedAddrs`, `holePunches` and `upnp` (`off`, `searching`, `noGateway`,
/// `gatewayNotPublic`, `mapped`, `expired`).
fn nat_json(n: &crate::network::reachability::NatStatus) -> serde_json::Value {
    let strings = |v: &[crate::network::Multiaddr]| v.iter().map(|a| a.to_string()).collect::<Vec<_>>();
    json!({
        "reachability": n.reachability,
        "externalAddrs": strings(&n.external),
        "relayedAddrs": strings(&n.relayed),
        "holePunches": {
            "succeeded": n.hole_punches_succeeded,
            "failed": n.hole_punches_failed,
            "lastError": n.last_hole_punch_error,
        },
        "upnp": n.upnp,
    })
}

/// Builds the module with every method.
/// Errors of putting the methods together.
#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    #[error(transparent)]
    Register(#[from] jsonrpsee::core::RegisterMethodError),
    #[error("method {0} is registered but not in the RPC catalog")]
    NotInCatalog(&'static str),
}

pub fn module(ctx: Ctx) -> Result<RpcModule<Ctx>, RegisterError> {
    let debug = ctx.debug_methods;
    let mut m = RpcModule::new(ctx);

    m.register_async_method("node_info", |_p, ctx, _| async move {
        let addrs = ctx.node.network().listen_addrs().await.map_err(failed)?;
        RpcResult::Ok(json!({
            "peerId": ctx.node.network().local_peer_id().to_string(),
            "authorKey": ctx.node.author(),
            "listenAddrs": addrs.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
            "version": env!("CARGO_PKG_VERSION"),
            "served": ctx.node.bitswap().served(),
            "receivedTwice": ctx.node.bitswap().received_twice(),
            "banned": ctx.node.network().banned().iter().map(|p| p.to_string()).collect::<Vec<_>>(),
            "budgets": ctx.node.budgets(),
            "bandwidth": bandwidth_json(ctx.node.bitswap().bandwidth()),
        }))
        .map(|mut info| {
            let nat = nat_json(&ctx.node.network().nat());
            if let (Some(info), serde_json::Value::Object(nat)) = (info.as_object_mut(), nat) {
                info.extend(nat);
            }
            info
        })
    })?;

    m.register_async_method("node_rotateToken", |_p, ctx, _| async move {
        let (token, path) = (ctx.token.clone(), ctx.token_path.clone());
        blocking(move || {
            token.rotate(&path).map_err(|e| failed(format!("cannot write {}: {e}", path.display())))
        })
        .await?;
        tracing::info!("RPC token rotated; connections opened with the old one are closed");
        RpcResult::Ok(json!({"tokenFile": ctx.token_path.display().to_string()}))
    })?;

    m.register_method("node_uiLogin", |_p, ctx, _| {
        let code = ctx.token.sessions().new_login();
        RpcResult::Ok(json!({
            "url": format!("http://127.0.0.1:{}/ui/#login={code}", ctx.rpc_port),
            "expiresInSecs": super::session::LOGIN_TTL.as_secs(),
        }))
    })?;

    m.register_async_method("node_setBandwidthLimits", |p, ctx, _| async move {
        let (up, down) = params::bandwidth_limits(&p)?;
        let b = ctx.node.bitswap().bandwidth();
        b.set_limits(up, down);
        tracing::info!(?up, ?down, "bandwidth limits set");
        RpcResult::Ok(bandwidth_json(b))
    })?;

    m.register_async_method("node_connect", |p, ctx, _| async move {
        let addr = params::connect(&p)?;
        let peer = ctx.node.network().dial(addr).await.map_err(failed)?;
        RpcResult::Ok(json!({"peerId": peer.to_string()}))
    })?;

    m.register_async_method("node_peers", |_p, ctx, _| async move {
        let peers = ctx.node.network().peers().await.map_err(failed)?;
        RpcResult::Ok(json!(peers
            .into_iter()
            .map(|p| {
                let moved =
                    p.peer_id.parse().map(|id| ctx.node.bitswap().bandwidth().peer(&id)).unwrap_or_default();
                json!({
                    "peerId": p.peer_id, "addrs": p.addrs, "link": p.link, "gossipScore": p.gossip_score,
                    "bytesUp": moved.up, "bytesDown": moved.down,
                })
            })
            .collect::<Vec<_>>()))
    })?;

    m.register_async_method("blocks_add", |p, ctx, _| async move {
        let (data, l) = params::add(&p)?;
        let store = ctx.node.blocks().clone();
        let imported = blocking(move || files::add(&store, &mut &data[..], l).map_err(failed)).await?;
        RpcResult::Ok(added(imported))
    })?;

    m.register_async_method("blocks_addPath", |p, ctx, _| async move {
        let (path, l) = params::add_path(&p)?;
        let store = ctx.node.blocks().clone();
        let imported = blocking(move || {
            let mut f = std::fs::File::open(&path)
                .map_err(|e| invalid(format!("invalid params: path: cannot open {path}: {e}")))?;
            files::add(&store, &mut f, l).map_err(failed)
        })
        .await?;
        RpcResult::Ok(added(imported))
    })?;

    m.register_async_method("blocks_cat", |p, ctx, _| async move {
        let root = params::root(&p)?;
        let (store, max) = (ctx.node.blocks().clone(), ctx.max_cat_bytes);
        let data = blocking(move || {
            let size = store.stat(&root).map_err(failed)?.size;
            match size {
                None => return Err(failed(format!("{root} is not in the block store"))),
                Some(s) if s > max => {
                    return Err(ErrorObjectOwned::owned(
                        codes::TOO_LARGE,
                        format!("{root} is {s} bytes, over the {max}-byte limit of blocks_cat; read it with `archive-node cat`"),
                        None::<()>,
                    ))
                }
                Some(_) => {}
            }
            let mut out = Vec::new();
            files::cat(&store, root, &mut out).map_err(failed)?;
            Ok(out)
        })
        .await?;
        RpcResult::Ok(json!({"data": b64(&data)}))
    })?;

    m.register_async_method("blocks_fetch", |p, ctx, _| async move {
        let (root, peers) = params::fetch(&p)?;
        fetch_with_signals(&ctx, root, &peers).await
    })?;

    m.register_async_method("blocks_stat", |p, ctx, _| async move {
        let root = params::root(&p)?;
        let store = ctx.node.blocks().clone();
        let stat: store::Stat = blocking(move || store.stat(&root).map_err(failed)).await?;
        serde_json::to_value(stat).map_err(failed)
    })?;

    m.register_async_method("blocks_verify", |_p, ctx, _| async move {
        let store = ctx.node.blocks().clone();
        let report = blocking(move || crate::blocks::verify::verify(&store).map_err(failed)).await?;
        if report.problem_count > 0 {
            tracing::error!(problems = report.problem_count, "block store verification found problems");
        }
        serde_json::to_value(report).map_err(failed)
    })?;

    m.register_async_method("blocks_gc", |_p, ctx, _| async move {
        let store = ctx.node.blocks().clone();
        let report = blocking(move || store.gc().map_err(failed)).await?;
        serde_json::to_value(report).map_err(failed)
    })?;

    register_communities(&mut m)?;
    super::membership::register(&mut m)?;
    register_archive(&mut m)?;
    if debug {
        register_debug(&mut m)?;
    }
    m.register_subscription("subscribe_signals", "signal", "unsubscribe_signals", signals_subscription)?;
    register_catalog(m)
}

/// Registers `rpc_methods`, after checking that the catalog lists every method registered.
fn register_catalog(mut m: RpcModule<Ctx>) -> Result<RpcModule<Ctx>, RegisterError> {
    let names: Vec<&'static str> = m.method_names().filter(|n| *n != "unsubscribe_signals").collect();
    if let Some(missing) = names.iter().find(|n| super::catalog::get(n).is_none()) {
        return Err(RegisterError::NotInCatalog(missing));
    }
    // In the catalog's order; debug methods only when they are served.
    let listed: Vec<_> = super::catalog::all()
        .into_iter()
        .filter(|c| c.name == "rpc_methods" || names.contains(&c.name))
        .collect();
    let listed = json!(listed);
    m.register_method("rpc_methods", move |_p, _ctx, _| RpcResult::Ok(listed.clone()))?;
    Ok(m)
}

async fn signals_subscription(
    _p: Params<'static>,
    pending: PendingSubscriptionSink,
    ctx: Arc<Ctx>,
    _ext: Extensions,
) -> SubscriptionResult {
    let mut rx = ctx.signals.subscribe();
    let sink = pending.accept().await?;
    loop {
        tokio::select! {
            s = rx.recv() => match s {
                Ok(signal) => {
                    let raw = serde_json::value::to_raw_value(&signal)?;
                    sink.send(SubscriptionMessage::from(raw)).await?;
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!(n, "a signal subscriber fell behind; signals dropped");
                }
                Err(_) => return Ok(()),
            },
            _ = sink.closed() => return Ok(()),
        }
    }
}

/// Fetches with progress signals; returns the stats.
async fn fetch_with_signals(ctx: &Ctx, root: Cid, peers: &[Multiaddr]) -> Result<Value, ErrorObjectOwned> {
    let (tx, mut rx) = watch::channel(Progress::default());
    let signals = ctx.signals.clone();
    let cid_s = root.to_string();
    signals.emit(names::FETCH_STARTED, json!({"cid": cid_s}));
    let progress = {
        let (signals, cid_s) = (signals.clone(), cid_s.clone());
        tokio::spawn(async move {
            while rx.changed().await.is_ok() {
                let p = rx.borrow().clone();
                signals.emit(
                    names::FETCH_PROGRESS,
                    json!({"cid": cid_s, "blocks": p.blocks, "bytes": p.bytes, "totalBytes": p.total_bytes}),
                );
                // At most a few progress signals a second.
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
        })
    };
    let result = ctx.node.fetch(root, peers, tx).await;
    progress.abort();
    match result {
        Ok(stats) => {
            let v = serde_json::to_value(&stats).map_err(failed)?;
            signals.emit(names::FETCH_COMPLETED, json!({"cid": cid_s, "stats": v}));
            Ok(v)
        }
        Err(e) => {
            signals.emit(names::FETCH_FAILED, json!({"cid": cid_s, "error": e.to_string()}));
            Err(failed(e))
        }
    }
}
