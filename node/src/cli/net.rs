//! `archive-node serve` and `archive-node fetch`: a node that runs for the length of the command.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::DataDirArg;
use crate::bitswap::Progress;
use crate::blocks::{cid::Cid, files};
use crate::data_dir::{write_atomic, DataDir};
use crate::network::{self, Multiaddr};
use crate::node::{self, Node};

#[derive(Args, Debug)]
pub struct ServeArgs {
    #[command(flatten)]
    data_dir: DataDirArg,
    /// Address to listen on (repeatable).
    #[arg(long, default_value = "/ip4/127.0.0.1/tcp/0")]
    listen: Vec<Multiaddr>,
    /// Peer to connect to at start, with /p2p/<id> (repeatable).
    #[arg(long)]
    bootstrap: Vec<Multiaddr>,
}

#[derive(Args, Debug)]
pub struct FetchArgs {
    #[command(flatten)]
    data_dir: DataDirArg,
    /// Root CID to fetch.
    cid: Cid,
    /// Peer to fetch from, with /p2p/<id> (repeatable) [default: the connected peers and the
    /// providers found on the DHT].
    #[arg(long)]
    peer: Vec<Multiaddr>,
    /// Peer to join the DHT through (repeatable).
    #[arg(long)]
    bootstrap: Vec<Multiaddr>,
    /// Also write the file here.
    #[arg(short, long)]
    out: Option<PathBuf>,
    /// Address to listen on while fetching.
    #[arg(long, default_value = "/ip4/127.0.0.1/tcp/0")]
    listen: Vec<Multiaddr>,
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread().enable_all().build()?)
}

fn data_dir(arg: &DataDirArg) -> DataDir {
    DataDir::new(arg.data_dir.clone().unwrap_or_else(DataDir::default_path))
}

async fn start(
    dir: &DataDir,
    listen: Vec<Multiaddr>,
    bootstrap: Vec<Multiaddr>,
) -> anyhow::Result<(Node, CancellationToken)> {
    let cancel = CancellationToken::new();
    let config = node::Config {
        network: network::Config { listen, bootstrap, ..Default::default() },
        ..Default::default()
    };
    let node = Node::start(dir, config, cancel.clone()).await?;
    Ok((node, cancel))
}

async fn stop(node: Node, cancel: CancellationToken) -> anyhow::Result<()> {
    cancel.cancel();
    tokio::task::spawn_blocking(move || node.flush()).await??;
    Ok(())
}

pub fn serve(a: ServeArgs) -> anyhow::Result<()> {
    runtime()?.block_on(async {
        let (node, cancel) = start(&data_dir(&a.data_dir), a.listen, a.bootstrap).await?;
        for addr in node.network().listen_addrs().await? {
            super::out(addr)?;
        }
        eprintln!("serving the block store of {}; Ctrl-C to stop", data_dir(&a.data_dir).root().display());
        crate::daemon::shutdown_signal().await;
        stop(node, cancel).await
    })
}

pub fn fetch(a: FetchArgs) -> anyhow::Result<()> {
    if let Some(endpoint) = a.data_dir.daemon()? {
        return runtime()?.block_on(fetch_via_daemon(endpoint, &a));
    }
    runtime()?.block_on(async {
        let dir = data_dir(&a.data_dir);
        let (node, cancel) = start(&dir, a.listen, a.bootstrap).await?;
        let (tx, rx) = watch::channel(Progress::default());
        let bar = std::io::stderr().is_terminal().then(progress_bar);
        let show = tokio::spawn(show_progress(rx, bar.clone()));
        let started = Instant::now();
        let result = tokio::select! {
            r = node.fetch(a.cid, &a.peer, tx) => r,
            _ = crate::daemon::shutdown_signal() => {
                stop(node, cancel).await?;
                anyhow::bail!("interrupted; blocks fetched so far are kept and a new fetch resumes");
            }
        };
        show.abort();
        if let Some(bar) = &bar {
            bar.finish_and_clear();
        }
        let stats = result?;
        let secs = started.elapsed().as_secs_f64().max(1e-6);
        if let Some(out) = &a.out {
            let store = node.blocks().clone();
            let (root, out) = (a.cid, out.clone());
            tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
                let mut bytes = Vec::new();
                files::cat(&store, root, &mut bytes)?;
                write_atomic(&out, &bytes).with_context(|| format!("cannot write {}", out.display()))?;
                Ok(())
            })
            .await??;
        }
        super::out(format!(
            "fetched {}: {} bytes in {} blocks ({} already local) in {:.2} s, {:.1} MB/s{}",
            a.cid,
            stats.bytes_fetched,
            stats.blocks_fetched,
            stats.blocks_local,
            secs,
            stats.bytes_fetched as f64 / secs / 1e6,
            if stats.bad_peers.is_empty() {
                String::new()
            } else {
                format!("; dropped bad peers {:?}", stats.bad_peers)
            }
        ))?;
        stop(node, cancel).await
    })
}

/// `blocks_fetch` on the daemon; a progress bar fed by its `blocks.fetchProgress` signals.
async fn fetch_via_daemon(endpoint: crate::rpc::client::Endpoint, a: &FetchArgs) -> anyhow::Result<()> {
    let cid = a.cid.to_string();
    let bar = std::io::stderr().is_terminal().then(progress_bar);
    let watcher = bar.clone().map(|bar| {
        let (endpoint, cid) = (endpoint.clone(), cid.clone());
        tokio::spawn(async move {
            let _ = endpoint
                .signals(|s| {
                    if s["type"] == crate::signals::names::FETCH_PROGRESS && s["event"]["cid"] == cid.as_str()
                    {
                        if let Some(t) = s["event"]["totalBytes"].as_u64() {
                            bar.set_length(t);
                        }
                        bar.set_position(s["event"]["bytes"].as_u64().unwrap_or(0));
                    }
                    true
                })
                .await;
        })
    });
    let started = Instant::now();
    let peers: Vec<String> = a.peer.iter().map(|p| p.to_string()).collect();
    let result = endpoint.call("blocks_fetch", serde_json::json!({"cid": cid, "peers": peers})).await;
    if let Some(w) = watcher {
        w.abort();
    }
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    let stats = result?;
    let secs = started.elapsed().as_secs_f64().max(1e-6);
    if let Some(out) = &a.out {
        let v = endpoint.call("blocks_cat", serde_json::json!({"cid": cid})).await?;
        let data = crate::json::from_b64(v["data"].as_str().unwrap_or_default())?;
        write_atomic(out, &data).with_context(|| format!("cannot write {}", out.display()))?;
    }
    let bytes = stats["bytesFetched"].as_u64().unwrap_or(0);
    super::out(format!(
        "fetched {cid}: {bytes} bytes in {} blocks ({} already local) in {secs:.2} s, {:.1} MB/s (by the daemon)",
        stats["blocksFetched"], stats["blocksLocal"], bytes as f64 / secs / 1e6
    ))?;
    Ok(())
}

fn progress_bar() -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

async fn show_progress(mut rx: watch::Receiver<Progress>, bar: Option<indicatif::ProgressBar>) {
    let Some(bar) = bar else { return };
    while rx.changed().await.is_ok() {
        let p = rx.borrow().clone();
        if let Some(total) = p.total_bytes {
            bar.set_length(total);
        }
        bar.set_position(p.bytes);
    }
}
