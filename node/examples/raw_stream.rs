//! A raw libp2p stream, the ceiling `scripts/bench.sh wan` compares our fetch with: TCP, Noise
//! and the node's own yamux settings, bytes on one or more streams, no Bitswap.
//!
//! `raw_stream serve` listens on 127.0.0.1 and prints its address (with `/p2p/`); each stream
//! opened to it names a length (8 bytes, big-endian) and gets that many bytes back.
//! `raw_stream fetch ADDR BYTES [--streams N]` dials ADDR, asks for BYTES spread over N streams
//! and prints one JSON line `{"bytes", "secs", "mb_per_s"}`. `--standard` on either side keeps
//! to `/yamux/1.0.0` (windows of at most 1 MiB), as with a peer that is not an archive-node.
//!
//! `--sink FILE` makes the fetch a raw pipeline, the floor of what any Bitswap fetch pays
//! (`scripts/bench.sh transfer`): every MiB received is hashed with SHA-256 and appended to FILE
//! with one `fdatasync` per 16 MiB, on a thread of its own beside the network; the time ends
//! when the last byte is durable.

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use archive_node::network::muxer;
use clap::{Parser, Subcommand};
use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
use libp2p::swarm::SwarmEvent;
use libp2p::{noise, tcp, Multiaddr, PeerId, StreamProtocol, Swarm};
use tokio::sync::mpsc;

const PROTOCOL: StreamProtocol = StreamProtocol::new("/archive-node/bench-raw/1.0.0");
/// Longest answer a stream may ask for.
const MAX_BYTES: u64 = 16 * 1024 * 1024 * 1024;
/// What the sink hashes at a time.
const CHUNK: usize = 1 << 20;
/// Bytes the sink appends between two `fdatasync`s.
const SYNC_EVERY: u64 = 16 << 20;
/// Chunks received and not yet hashed and written, at most.
const SINK_QUEUE: usize = 16;

#[derive(Parser)]
#[command(about = "Bytes over a raw libp2p stream (TCP, Noise, yamux), for benchmarks")]
struct Args {
    /// Offer only `/yamux/1.0.0`, whose windows stay at most 1 MiB.
    #[arg(long, global = true)]
    standard: bool,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Listen on 127.0.0.1 and answer each stream with the bytes it asks for.
    Serve,
    /// Dial ADDR and read BYTES from it over STREAMS streams.
    Fetch {
        addr: Multiaddr,
        bytes: u64,
        #[arg(long, default_value_t = 1)]
        streams: u64,
        /// Hash every MiB with SHA-256 and append it to this file, one fdatasync per 16 MiB.
        #[arg(long)]
        sink: Option<PathBuf>,
    },
}

/// The sink's thread: hashes each chunk, appends it, syncs every [`SYNC_EVERY`] bytes and once
/// at the end; returns the bytes written.
fn sink(file: PathBuf, mut chunks: mpsc::Receiver<Vec<u8>>) -> std::io::Result<u64> {
    use sha2::Digest;
    let mut out = std::fs::OpenOptions::new().create(true).truncate(true).write(true).open(file)?;
    let (mut written, mut unsynced) = (0u64, 0u64);
    let mut digests = 0u8;
    while let Some(chunk) = chunks.blocking_recv() {
        // Folded into a byte so the hash cannot be optimised away.
        digests ^= sha2::Sha256::digest(&chunk)[0];
        out.write_all(&chunk)?;
        written += chunk.len() as u64;
        unsynced += chunk.len() as u64;
        if unsynced >= SYNC_EVERY {
            out.sync_data()?;
            unsynced = 0;
        }
    }
    out.sync_data()?;
    std::hint::black_box(digests);
    Ok(written)
}

fn swarm(standard: bool) -> anyhow::Result<Swarm<libp2p_stream::Behaviour>> {
    let builder = libp2p::SwarmBuilder::with_new_identity().with_tokio();
    let swarm = if standard {
        builder
            .with_tcp(tcp::Config::default().nodelay(true), noise::Config::new, muxer::standard)?
            .with_behaviour(|_| libp2p_stream::Behaviour::new())?
            .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
            .build()
    } else {
        builder
            .with_tcp(
                tcp::Config::default().nodelay(true),
                noise::Config::new,
                (muxer::wide, muxer::standard),
            )?
            .with_behaviour(|_| libp2p_stream::Behaviour::new())?
            .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
            .build()
    };
    Ok(swarm)
}

async fn answer(mut stream: libp2p::Stream) -> std::io::Result<()> {
    let mut len = [0u8; 8];
    stream.read_exact(&mut len).await?;
    let mut left = u64::from_be_bytes(len).min(MAX_BYTES);
    let chunk = vec![0x5a; 1 << 20];
    while left > 0 {
        let n = left.min(chunk.len() as u64) as usize;
        stream.write_all(&chunk[..n]).await?;
        left -= n as u64;
    }
    stream.close().await
}

async fn serve(mut swarm: Swarm<libp2p_stream::Behaviour>) -> anyhow::Result<()> {
    let mut incoming = swarm.behaviour().new_control().accept(PROTOCOL)?;
    swarm.listen_on("/ip4/127.0.0.1/tcp/0".parse()?)?;
    let local = *swarm.local_peer_id();
    tokio::spawn(async move {
        while let Some((_, stream)) = incoming.next().await {
            tokio::spawn(async move {
                if let Err(e) = answer(stream).await {
                    eprintln!("stream ended early: {e}");
                }
            });
        }
    });
    loop {
        if let SwarmEvent::NewListenAddr { address, .. } = swarm.select_next_some().await {
            println!("{address}/p2p/{local}");
        }
    }
}

/// Reads one stream's share; with a sink, hands it every whole MiB (and the tail).
async fn read(
    mut control: libp2p_stream::Control,
    peer: PeerId,
    bytes: u64,
    sink: Option<mpsc::Sender<Vec<u8>>>,
) -> anyhow::Result<u64> {
    let mut stream = control.open_stream(peer, PROTOCOL).await?;
    stream.write_all(&bytes.to_be_bytes()).await?;
    stream.flush().await?;
    let mut buf = vec![0u8; CHUNK];
    let (mut got, mut filled) = (0u64, 0usize);
    loop {
        let n = stream.read(&mut buf[filled..]).await?;
        got += n as u64;
        filled += n;
        if let Some(tx) = &sink {
            if filled == CHUNK || (n == 0 && filled > 0) {
                // A full queue waits: back pressure, as a store that falls behind gives.
                tx.send(buf[..filled].to_vec()).await.map_err(|_| anyhow::anyhow!("the sink stopped"))?;
                filled = 0;
            }
        } else {
            filled = 0;
        }
        if n == 0 {
            return Ok(got);
        }
    }
}

async fn fetch(
    mut swarm: Swarm<libp2p_stream::Behaviour>,
    addr: Multiaddr,
    bytes: u64,
    streams: u64,
    sink_file: Option<PathBuf>,
) -> anyhow::Result<()> {
    let Some(libp2p::multiaddr::Protocol::P2p(peer)) = addr.iter().last() else {
        anyhow::bail!("{addr} does not end in /p2p/<peer id>");
    };
    let control = swarm.behaviour().new_control();
    swarm.dial(addr)?;
    loop {
        match swarm.select_next_some().await {
            SwarmEvent::ConnectionEstablished { .. } => break,
            SwarmEvent::OutgoingConnectionError { error, .. } => anyhow::bail!("cannot dial: {error}"),
            _ => {}
        }
    }
    tokio::spawn(async move {
        loop {
            swarm.select_next_some().await;
        }
    });
    let streams = streams.max(1);
    let start = Instant::now();
    let (tx, writer) = match sink_file {
        Some(file) => {
            let (tx, rx) = mpsc::channel(SINK_QUEUE);
            (Some(tx), Some(std::thread::spawn(move || sink(file, rx))))
        }
        None => (None, None),
    };
    let reads = (0..streams).map(|i| {
        let share = bytes / streams + u64::from(i < bytes % streams);
        read(control.clone(), peer, share, tx.clone())
    });
    let got: u64 = futures::future::try_join_all(reads).await?.into_iter().sum();
    drop(tx);
    if let Some(writer) = writer {
        let written = writer.join().map_err(|_| anyhow::anyhow!("the sink thread panicked"))??;
        anyhow::ensure!(written == bytes, "the sink wrote {written} bytes of {bytes}");
    }
    let secs = start.elapsed().as_secs_f64();
    anyhow::ensure!(got == bytes, "got {got} bytes of {bytes}");
    let mb_per_s = bytes as f64 / secs / 1e6;
    println!("{}", serde_json::json!({ "bytes": bytes, "secs": secs, "mb_per_s": mb_per_s }));
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let swarm = swarm(args.standard)?;
    match args.cmd {
        Cmd::Serve => serve(swarm).await,
        Cmd::Fetch { addr, bytes, streams, sink } => fetch(swarm, addr, bytes, streams, sink).await,
    }
}
