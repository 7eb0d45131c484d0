//! The `archive-node` command line: parsing, dispatch, and one-line errors.

mod archive;
mod blocks;
mod keygen;
mod net;
mod store;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::data_dir::{self, DataDir};

/// A peer-to-peer node that keeps the message history of communities alive.
///
/// Messages of a community are cut into time-partitioned history archives (status-go's wire
/// format), addressed by CID, and served to members. Commands that take --data-dir open the
/// node's store directly.
#[derive(Parser, Debug)]
#[command(name = "archive-node", version, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Print a new secp256k1 key pair (an author key, or a community id).
    Keygen,
    /// Work with the message store of a data dir.
    #[command(subcommand)]
    Store(store::StoreCommand),
    /// Build and inspect history archives.
    #[command(subcommand)]
    Archive(archive::ArchiveCommand),
    /// Add a file to the block store as a UnixFS DAG (IPFS unixfs-v1-2025 layout); prints its CID.
    Add(blocks::AddArgs),
    /// Write the file with the given CID to stdout, verifying every block.
    Cat(blocks::CatArgs),
    /// Inspect blocks in the store.
    #[command(subcommand)]
    Blocks(blocks::BlocksCommand),
    /// Export or import CAR v1 files.
    #[command(subcommand)]
    Car(blocks::CarCommand),
    /// Remove every block not reachable from a pinned root and compact the pack files.
    Gc(blocks::GcArgs),
    /// Serve the block store over Bitswap until interrupted; prints each listen address.
    Serve(net::ServeArgs),
    /// Fetch a DAG over Bitswap into the block store (progress bar on a terminal).
    Fetch(net::FetchArgs),
}

/// The data dir option shared by every store command.
#[derive(clap::Args, Debug, Clone)]
pub struct DataDirArg {
    /// Data directory of the node [default: ~/.archive-node].
    #[arg(long, env = data_dir::ENV, value_name = "DIR")]
    data_dir: Option<PathBuf>,
}

impl DataDirArg {
    fn open(&self) -> anyhow::Result<(DataDir, crate::db::Db)> {
        let dir = DataDir::new(self.data_dir.clone().unwrap_or_else(DataDir::default_path));
        dir.create().map_err(|e| anyhow::anyhow!("cannot create data dir {}: {e}", dir.root().display()))?;
        let db = crate::db::Db::open(&dir.db())?;
        Ok((dir, db))
    }

    /// Opens the data dir and its block store.
    fn open_blocks(&self) -> anyhow::Result<(crate::db::Db, crate::blocks::store::BlockStore)> {
        let (dir, db) = self.open()?;
        let store = crate::blocks::store::BlockStore::open(&db, &dir.blocks(), Default::default())?;
        Ok((db, store))
    }
}

/// Runs the command line; errors come out as one line on stderr and a non-zero exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into());
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        // The reader of our output went away (`| head`): not an error of ours.
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", one_line(&e));
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Keygen => keygen::run(),
        Command::Store(c) => store::run(c),
        Command::Archive(c) => archive::run(c),
        Command::Add(a) => blocks::add(a),
        Command::Cat(a) => blocks::cat(a),
        Command::Blocks(c) => blocks::run_blocks(c),
        Command::Car(c) => blocks::run_car(c),
        Command::Gc(a) => blocks::gc(a),
        Command::Serve(a) => net::serve(a),
        Command::Fetch(a) => net::fetch(a),
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// Prints one line on stdout, returning an error (instead of panicking) when stdout is closed.
pub(crate) fn out(line: impl std::fmt::Display) -> std::io::Result<()> {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{line}")?;
    stdout.flush()
}

/// An error and its causes on one line.
fn one_line(e: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in e.chain() {
        let s = cause.to_string();
        if !parts.iter().any(|p| p.contains(&s)) {
            parts.push(s);
        }
    }
    parts.join(": ").replace('\n', " ")
}
