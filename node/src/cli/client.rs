//! Commands that talk to a running daemon: `info`, `connect`, `peers`, `bandwidth`, `signals`.

use clap::Args;
use serde_json::json;

use super::DataDirArg;
use crate::rpc::client::Endpoint;

#[derive(Args, Debug)]
pub struct InfoArgs {
    #[command(flatten)]
    data_dir: DataDirArg,
}

#[derive(Args, Debug)]
pub struct ConnectArgs {
    #[command(flatten)]
    data_dir: DataDirArg,
    /// The peer's address, with /p2p/<id>.
    multiaddr: String,
}

#[derive(Args, Debug)]
pub struct BandwidthArgs {
    #[command(flatten)]
    data_dir: DataDirArg,
    /// Set the most bytes of blocks served per second (0: no limit).
    #[arg(long, value_name = "BYTES_PER_SEC")]
    max_upload_rate: Option<u64>,
    /// Set the most bytes of blocks taken in per second (0: no limit).
    #[arg(long, value_name = "BYTES_PER_SEC")]
    max_download_rate: Option<u64>,
}

/// Runs `f` against the daemon on the data dir, or fails with exit code 2 when none runs.
pub(super) fn with_daemon<T>(
    d: &DataDirArg,
    f: impl AsyncFnOnce(Endpoint) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let Some(endpoint) = d.daemon()? else {
        return Err(super::NoDaemon(d.dir().root().display().to_string()).into());
    };
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(f(endpoint))
}

pub fn info(a: InfoArgs) -> anyhow::Result<()> {
    let v = with_daemon(&a.data_dir, async |e| Ok(e.call("node_info", json!({})).await?))?;
    Ok(super::out(serde_json::to_string_pretty(&v)?)?)
}

pub fn connect(a: ConnectArgs) -> anyhow::Result<()> {
    let v = with_daemon(&a.data_dir, async |e| {
        Ok(e.call("node_connect", json!({"multiaddr": a.multiaddr})).await?)
    })?;
    Ok(super::out(format!("connected to {}", v["peerId"].as_str().unwrap_or("?")))?)
}

pub fn peers(a: InfoArgs) -> anyhow::Result<()> {
    let v = with_daemon(&a.data_dir, async |e| Ok(e.call("node_peers", json!({})).await?))?;
    for p in v.as_array().into_iter().flatten() {
        let (id, link) = (p["peerId"].as_str().unwrap_or("?"), p["link"].as_str().unwrap_or("?"));
        super::out(format!("{id} {link}"))?;
    }
    Ok(())
}

pub fn bandwidth(a: BandwidthArgs) -> anyhow::Result<()> {
    let v = with_daemon(&a.data_dir, async |e| {
        if a.max_upload_rate.is_some() || a.max_download_rate.is_some() {
            let mut p = serde_json::Map::new();
            if let Some(r) = a.max_upload_rate {
                p.insert("maxUploadRate".into(), r.into());
            }
            if let Some(r) = a.max_download_rate {
                p.insert("maxDownloadRate".into(), r.into());
            }
            Ok(e.call("node_setBandwidthLimits", serde_json::Value::Object(p)).await?)
        } else {
            Ok(e.call("node_info", json!({})).await?["bandwidth"].clone())
        }
    })?;
    Ok(super::out(serde_json::to_string_pretty(&v)?)?)
}

pub fn signals(a: InfoArgs) -> anyhow::Result<()> {
    with_daemon(&a.data_dir, async |e| {
        let mut failed = None;
        e.signals(|s| match super::out(s) {
            Ok(()) => true,
            Err(err) => {
                failed = Some(err);
                false
            }
        })
        .await?;
        match failed {
            Some(err) => Err(err.into()),
            None => Ok(()),
        }
    })
}
