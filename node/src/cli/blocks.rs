//! Block store commands: `add`, `cat`, `blocks stat`, `car export|import`, `gc`.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};

use super::DataDirArg;
use crate::blocks::cid::Cid;
use crate::blocks::unixfs::{self, Layout, DEFAULT_CHUNK_SIZE, DEFAULT_MAX_LINKS};
use crate::blocks::{car, files, Block};
use crate::json::{b64, from_b64};
use crate::rpc::client::Endpoint;
use serde_json::json;
use std::io::{Read, Write};

#[derive(Args, Debug)]
pub struct AddArgs {
    #[command(flatten)]
    data_dir: DataDirArg,
    /// Only compute the CID; store nothing (no data dir needed).
    #[arg(long)]
    only_hash: bool,
    /// Chunk size in bytes.
    #[arg(long, default_value_t = DEFAULT_CHUNK_SIZE)]
    chunk_size: usize,
    /// Most links per dag-pb node.
    #[arg(long, default_value_t = DEFAULT_MAX_LINKS)]
    max_links: usize,
    /// The file to add ("-" for standard input).
    file: PathBuf,
}

#[derive(Args, Debug)]
pub struct CatArgs {
    #[command(flatten)]
    data_dir: DataDirArg,
    /// Root CID of the file.
    cid: Cid,
}

#[derive(Subcommand, Debug)]
pub enum BlocksCommand {
    /// Size, blocks, completeness and pins of a DAG, as JSON.
    Stat(StatArgs),
    /// Read and hash every block of every DAG flagged complete; report as JSON, exit 1 on a
    /// problem (a missing block, bytes that do not match their CID).
    Verify(StoreArgs),
}

#[derive(Args, Debug)]
pub struct StatArgs {
    #[command(flatten)]
    data_dir: DataDirArg,
    /// Root CID.
    cid: Cid,
}

#[derive(Subcommand, Debug)]
pub enum CarCommand {
    /// Write the DAG under a root to a CAR v1 file.
    Export {
        #[command(flatten)]
        data_dir: DataDirArg,
        /// Root CID.
        cid: Cid,
        /// Output file.
        #[arg(short, long)]
        out: PathBuf,
    },
    /// Import a CAR v1 file: every block is verified first (one bad block refuses the whole
    /// file), then stored; the roots are pinned.
    Import {
        #[command(flatten)]
        data_dir: DataDirArg,
        /// The CAR file.
        file: PathBuf,
    },
}

/// Just the data dir (`gc`, `blocks verify`).
#[derive(Args, Debug)]
pub struct StoreArgs {
    #[command(flatten)]
    data_dir: DataDirArg,
}

fn open_input(file: &PathBuf) -> anyhow::Result<Box<dyn std::io::Read>> {
    if file.as_os_str() == "-" {
        return Ok(Box::new(std::io::stdin().lock()));
    }
    Ok(Box::new(std::fs::File::open(file).with_context(|| format!("cannot open {}", file.display()))?))
}

pub fn add(a: AddArgs) -> anyhow::Result<()> {
    let layout = Layout { chunk_size: a.chunk_size, max_links: a.max_links };
    layout.validate()?;
    if !a.only_hash {
        if let Some(endpoint) = a.data_dir.daemon()? {
            return add_via_daemon(endpoint, &a);
        }
    }
    let mut input = open_input(&a.file)?;
    let root = if a.only_hash {
        let mut sink = |_: Block| Ok(());
        unixfs::import(&mut input, layout, &mut sink)?.root
    } else {
        let (_db, store) = a.data_dir.open_blocks()?;
        files::add(&store, &mut input, layout)?.root
    };
    Ok(super::out(root)?)
}

fn add_via_daemon(endpoint: Endpoint, a: &AddArgs) -> anyhow::Result<()> {
    let layout = json!({"chunkSize": a.chunk_size, "maxLinks": a.max_links});
    let (method, mut params) = if a.file.as_os_str() == "-" {
        let mut data = Vec::new();
        std::io::stdin().lock().read_to_end(&mut data)?;
        ("blocks_add", json!({"data": b64(&data)}))
    } else {
        let path =
            std::fs::canonicalize(&a.file).with_context(|| format!("cannot open {}", a.file.display()))?;
        ("blocks_addPath", json!({"path": path}))
    };
    if let (Some(p), Some(l)) = (params.as_object_mut(), layout.as_object()) {
        p.extend(l.clone());
    }
    let v = block_on(endpoint.call(method, params))?;
    Ok(super::out(v["cid"].as_str().unwrap_or_default())?)
}

fn block_on<T>(
    f: impl std::future::Future<Output = Result<T, crate::rpc::client::Error>>,
) -> anyhow::Result<T> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    Ok(rt.block_on(f)?)
}

pub fn cat(a: CatArgs) -> anyhow::Result<()> {
    if let Some(endpoint) = a.data_dir.daemon()? {
        let v = block_on(endpoint.call("blocks_cat", json!({"cid": a.cid.to_string()})))?;
        let data = from_b64(v["data"].as_str().unwrap_or_default())?;
        let mut out = std::io::stdout().lock();
        out.write_all(&data)?;
        return Ok(out.flush()?);
    }
    let (_db, store) = a.data_dir.open_blocks()?;
    files::cat(&store, a.cid, &mut std::io::stdout().lock())?;
    Ok(())
}

pub fn stat(a: StatArgs) -> anyhow::Result<()> {
    if let Some(endpoint) = a.data_dir.daemon()? {
        let v = block_on(endpoint.call("blocks_stat", json!({"cid": a.cid.to_string()})))?;
        return Ok(super::out(v)?);
    }
    let (_db, store) = a.data_dir.open_blocks()?;
    Ok(super::out(serde_json::to_string(&store.stat(&a.cid)?)?)?)
}

pub fn run_blocks(cmd: BlocksCommand) -> anyhow::Result<()> {
    match cmd {
        BlocksCommand::Stat(a) => stat(a),
        BlocksCommand::Verify(a) => verify(a),
    }
}

fn verify(a: StoreArgs) -> anyhow::Result<()> {
    let report = match a.data_dir.daemon()? {
        Some(endpoint) => block_on(endpoint.call("blocks_verify", json!({})))?,
        None => {
            let (_db, store) = a.data_dir.open_blocks()?;
            serde_json::to_value(crate::blocks::verify::verify(&store)?)?
        }
    };
    super::out(&report)?;
    match report["problemCount"].as_u64() {
        Some(0) => Ok(()),
        n => anyhow::bail!("the block store has {} problem(s)", n.unwrap_or(0)),
    }
}

pub fn run_car(cmd: CarCommand) -> anyhow::Result<()> {
    match cmd {
        CarCommand::Export { data_dir, cid, out } => {
            let (_db, store) = data_dir.open_blocks()?;
            let tmp = out.with_extension("car.partial");
            let file =
                std::fs::File::create(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
            let mut w = std::io::BufWriter::new(file);
            let stats = car::export(&store, &cid, &mut w).inspect_err(|_| {
                let _ = std::fs::remove_file(&tmp);
            })?;
            w.into_inner().map_err(|e| e.into_error())?.sync_all()?;
            std::fs::rename(&tmp, &out)?;
            Ok(super::out(serde_json::to_string(&stats)?)?)
        }
        CarCommand::Import { data_dir, file } => {
            let (_db, store) = data_dir.open_blocks()?;
            let f = std::fs::File::open(&file).with_context(|| format!("cannot open {}", file.display()))?;
            let stats = car::import(&store, f)?;
            Ok(super::out(serde_json::to_string(&stats)?)?)
        }
    }
}

pub fn gc(a: StoreArgs) -> anyhow::Result<()> {
    if let Some(endpoint) = a.data_dir.daemon()? {
        return Ok(super::out(block_on(endpoint.call("blocks_gc", json!({})))?)?);
    }
    let (_db, store) = a.data_dir.open_blocks()?;
    Ok(super::out(serde_json::to_string(&store.gc()?)?)?)
}
