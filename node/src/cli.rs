//! The `archive-node` command line: parsing, dispatch, and one-line errors.

mod archive;
mod blocks;
mod client;
mod community;
mod daemon;
mod keygen;
mod membership;
mod messages;
mod net;
mod rpc;
mod store;
mod token;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::data_dir::{self, DataDir};

/// A peer-to-peer node that keeps the message history of communities alive.
///
/// Messages of a community are cut into time-partitioned history archives (status-go's wire
/// format), addressed by CID (IPFS-compatible UnixFS blocks), and served to peers over Bitswap.
/// `archive-node daemon` runs the node with a JSON-RPC API; the other commands talk to the daemon
/// running on --data-dir, or, like `ipfs`, open the data dir directly when none runs.
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
    Gc(blocks::StoreArgs),
    /// Run the node: peers, Bitswap and the JSON-RPC API, until SIGINT/SIGTERM.
    Daemon(daemon::DaemonArgs),
    /// Show the running daemon's peer id, listen addresses and version.
    Info(client::InfoArgs),
    /// Ask the running daemon to connect to a peer.
    Connect(client::ConnectArgs),
    /// List the running daemon's connected peers, each `direct` or `relayed`.
    Peers(client::InfoArgs),
    /// Show the running daemon's bandwidth use and limits on block data, or set the limits.
    Bandwidth(client::BandwidthArgs),
    /// Print the running daemon's signals as JSON lines until interrupted.
    Signals(client::InfoArgs),
    /// Size, blocks, completeness and pins of a DAG, as JSON (same as `blocks stat`).
    Stat(blocks::StatArgs),
    /// Create, join, list and follow communities (through the daemon).
    #[command(subcommand)]
    Community(community::CommunityCommand),
    /// Send a message to a community (through the daemon).
    Send(community::SendArgs),
    /// Print a community's stored messages: time, author, topic and text, one a line
    /// (`--raw`: JSON lines) (through the daemon).
    Messages(messages::MessagesArgs),
    /// A community's archives from its latest index, and which are downloaded; `--root` prints
    /// the history root to pin (through the daemon).
    Archives(community::ArchivesArgs),
    /// Serve the block store over Bitswap until interrupted; prints each listen address.
    Serve(net::ServeArgs),
    /// Fetch a DAG over Bitswap into the block store (progress bar on a terminal).
    Fetch(net::FetchArgs),
    /// Manage the RPC token.
    #[command(subcommand)]
    Token(token::TokenCommand),
    /// Call any JSON-RPC method of the daemon, or list them with their parameters (`--list`).
    Rpc(rpc::RpcArgs),
    /// Print a one-time login URL of the daemon's web dashboard and open it in a browser.
    Ui(rpc::UiArgs),
}

/// The data dir option shared by every store command, and how to reach its daemon.
#[derive(clap::Args, Debug, Clone)]
pub struct DataDirArg {
    /// Data directory of the node [default: ~/.archive-node].
    #[arg(long, env = data_dir::ENV, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// RPC URL of the daemon [default: from <data-dir>/rpc.port when a daemon runs there].
    #[arg(long, value_name = "URL")]
    rpc: Option<String>,
    /// File holding the RPC token [default: <data-dir>/rpc.token].
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,
}

/// A command needs a running daemon and none runs (exit code 2).
#[derive(Debug, thiserror::Error)]
#[error("no archive-node daemon runs on data dir {0} (start one with `archive-node daemon`)")]
pub struct NoDaemon(pub String);

impl DataDirArg {
    /// The data dir.
    fn dir(&self) -> DataDir {
        DataDir::new(self.data_dir.clone().unwrap_or_else(DataDir::default_path))
    }

    /// The daemon running on the data dir, if any.
    fn daemon(&self) -> anyhow::Result<Option<crate::rpc::client::Endpoint>> {
        Ok(crate::rpc::client::Endpoint::discover(
            &self.dir(),
            self.rpc.as_deref(),
            self.token_file.as_deref(),
        )?)
    }

    fn open(&self) -> anyhow::Result<(DataDir, crate::db::Db)> {
        let dir = self.dir();
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
    // Before any thread exists: every command's threads allocate from the arenas this caps.
    crate::malloc::tune();
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into());
    let log = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = match &cli.command {
        Command::Daemon(a) if a.log_format() == daemon::LogFormat::Json => {
            log.json().flatten_event(true).with_current_span(false).try_init()
        }
        // Colours only for a person at a terminal; log files and CI output stay plain text.
        _ => log.with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())).try_init(),
    };
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        // The reader of our output went away (`| head`): not an error of ours.
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) if e.downcast_ref::<NoDaemon>().is_some() => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
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
        Command::Daemon(a) => daemon::run(a),
        Command::Info(a) => client::info(a),
        Command::Connect(a) => client::connect(a),
        Command::Peers(a) => client::peers(a),
        Command::Bandwidth(a) => client::bandwidth(a),
        Command::Signals(a) => client::signals(a),
        Command::Stat(a) => blocks::stat(a),
        Command::Community(c) => community::run(c),
        Command::Send(a) => community::send(a),
        Command::Messages(a) => messages::messages(a),
        Command::Archives(a) => community::archives(a),
        Command::Serve(a) => net::serve(a),
        Command::Fetch(a) => net::fetch(a),
        Command::Token(c) => token::run(c),
        Command::Rpc(a) => rpc::rpc(a),
        Command::Ui(a) => rpc::ui(a),
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
