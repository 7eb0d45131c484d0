//! A hostile Bitswap peer, for the hardening tests (tests-functional/tests/test_hostile_peers.py).
//!
//! `hostile_peer serve --mode MODE` listens on 127.0.0.1 and answers every want-block the way
//! MODE says; `hostile_peer flood --target ADDR` floods a node with wantlists of random CIDs.
//! The first stdout line is `{"listening": ADDR, "peerId": ID}`; then one JSON line per event
//! (`connected`, `disconnected`, `wants`, `dialFailed`, `done`), for the test to wait on.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use archive_node::bitswap::{self, codec};
use archive_node::network::{self, Event, Multiaddr, PeerId};
use archive_proto::pb::bitswap as pb;
use clap::{Parser, Subcommand, ValueEnum};
use futures::AsyncWriteExt;
use prost::Message as _;
use serde_json::json;
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(about = "A Bitswap peer that lies, stalls or floods (for tests)")]
struct Args {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Listen and answer every want-block the way MODE says.
    Serve {
        #[arg(long, value_enum)]
        mode: Mode,
    },
    /// Dial TARGET and send it wantlists of random CIDs as fast as it takes them, redialling
    /// when it hangs up, for SECONDS.
    Flood {
        #[arg(long)]
        target: Multiaddr,
        #[arg(long, default_value_t = 10)]
        seconds: u64,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Mode {
    /// Random bytes under the wanted CID's prefix.
    WrongBytes,
    /// A 3 MiB block (the limit is 2 MiB) in a message under the 4 MiB frame limit.
    OversizedBlock,
    /// A frame that announces 64 MiB (the limit is 4 MiB).
    OversizedMessage,
    /// DONT_HAVE for every want, repeated for every CID ever asked, every 200 ms.
    DontHave,
    /// Read the wants and never answer.
    Silent,
}

fn say(v: serde_json::Value) {
    println!("{v}");
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let cancel = CancellationToken::new();
    let started = network::start(
        libp2p::identity::Keypair::generate_ed25519(),
        network::Config::default(),
        archive_node::gossip::Config::default(),
        bitswap::PROTOCOLS.to_vec(),
        cancel.clone(),
    )
    .await?;
    let addr =
        started.client.listen_addrs().await?.first().cloned().ok_or_else(|| anyhow::anyhow!("no address"))?;
    say(json!({"listening": addr.to_string(), "peerId": started.client.local_peer_id().to_string()}));
    match args.cmd {
        Cmd::Serve { mode } => serve(started, mode).await,
        Cmd::Flood { target, seconds } => flood(started, target, Duration::from_secs(seconds)).await,
    }
}

/// CIDs each peer asked for, for the endless DONT_HAVE.
type Asked = Arc<Mutex<HashMap<PeerId, HashSet<Vec<u8>>>>>;

async fn serve(started: network::Started, mode: Mode) -> anyhow::Result<()> {
    let network::Started { client, streams, mut incoming, .. } = started;
    let mut events = client.subscribe();
    let asked: Asked = Arc::default();
    if let Mode::DontHave = mode {
        tokio::spawn(repeat_dont_have(streams.clone(), asked.clone()));
    }
    loop {
        tokio::select! {
            s = incoming.recv() => {
                let Some((peer, stream)) = s else { return Ok(()) };
                tokio::spawn(answer(peer, stream, mode, streams.clone(), asked.clone()));
            }
            ev = events.recv() => log_event(ev),
        }
    }
}

fn log_event(ev: Result<Event, tokio::sync::broadcast::error::RecvError>) {
    match ev {
        Ok(Event::PeerConnected(p)) => say(json!({"event": "connected", "peer": p.to_string()})),
        Ok(Event::PeerDisconnected(p)) => say(json!({"event": "disconnected", "peer": p.to_string()})),
        _ => {}
    }
}

/// Reads a peer's wantlists from one stream and answers each the hostile way.
async fn answer(
    peer: PeerId,
    mut stream: libp2p::Stream,
    mode: Mode,
    control: libp2p_stream::Control,
    asked: Asked,
) {
    while let Ok(Some(m)) = codec::read(&mut stream).await {
        let wants: Vec<Vec<u8>> = m.wants.iter().filter(|w| !w.cancel).map(|w| w.cid.to_bytes()).collect();
        if wants.is_empty() {
            continue;
        }
        say(json!({"event": "wants", "peer": peer.to_string(), "count": wants.len()}));
        let frames = match mode {
            Mode::Silent => continue,
            Mode::WrongBytes => vec![frame(&pb::Message {
                payload: wants.iter().map(|c| block(c, rand::random::<[u8; 32]>().repeat(32))).collect(),
                ..Default::default()
            })],
            Mode::OversizedBlock => vec![frame(&pb::Message {
                payload: vec![block(&wants[0], vec![7u8; 3 * 1024 * 1024])],
                ..Default::default()
            })],
            Mode::OversizedMessage => {
                let mut f = Vec::new();
                f.extend_from_slice(unsigned_varint::encode::usize(
                    64 << 20,
                    &mut unsigned_varint::encode::usize_buffer(),
                ));
                f.extend_from_slice(&[0u8; 64 * 1024]);
                vec![f]
            }
            Mode::DontHave => {
                asked
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .entry(peer)
                    .or_default()
                    .extend(wants.iter().cloned());
                vec![frame(&dont_have(&wants))]
            }
        };
        send(&control, peer, &frames).await;
    }
}

/// A 1.2.0 block entry: the wanted CID's prefix (its bytes less the 32-byte digest) and `data`.
fn block(cid: &[u8], data: Vec<u8>) -> pb::message::Block {
    pb::message::Block { prefix: cid[..cid.len().saturating_sub(32)].to_vec().into(), data: data.into() }
}

fn dont_have(cids: &[Vec<u8>]) -> pb::Message {
    pb::Message {
        block_presences: cids
            .iter()
            .map(|c| pb::message::BlockPresence {
                cid: c.clone().into(),
                r#type: pb::message::BlockPresenceType::DontHave as i32,
            })
            .collect(),
        ..Default::default()
    }
}

fn frame(m: &pb::Message) -> Vec<u8> {
    let bytes = m.encode_to_vec();
    let mut f = Vec::with_capacity(bytes.len() + 10);
    f.extend_from_slice(unsigned_varint::encode::usize(
        bytes.len(),
        &mut unsigned_varint::encode::usize_buffer(),
    ));
    f.extend_from_slice(&bytes);
    f
}

async fn send(control: &libp2p_stream::Control, peer: PeerId, frames: &[Vec<u8>]) -> bool {
    let Ok(mut s) = control.clone().open_stream(peer, bitswap::PROTOCOL_1_2).await else { return false };
    for f in frames {
        if s.write_all(f).await.is_err() {
            return false;
        }
    }
    s.close().await.is_ok()
}

async fn repeat_dont_have(control: libp2p_stream::Control, asked: Asked) {
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    loop {
        tick.tick().await;
        let all: Vec<(PeerId, Vec<Vec<u8>>)> = asked
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(p, c)| (*p, c.iter().take(4096).cloned().collect()))
            .collect();
        for (peer, cids) in all {
            send(&control, peer, &[frame(&dont_have(&cids))]).await;
        }
    }
}

/// A random CIDv1 (raw, sha2-256) that nobody has.
fn random_cid() -> Vec<u8> {
    let mut c = vec![0x01, 0x55, 0x12, 0x20];
    c.extend_from_slice(&rand::random::<[u8; 32]>());
    c
}

fn wantlist() -> Vec<u8> {
    frame(&pb::Message {
        wantlist: Some(pb::message::Wantlist {
            entries: (0..bitswap::message::MAX_ENTRIES)
                .map(|_| pb::message::wantlist::Entry {
                    block: random_cid().into(),
                    priority: 1,
                    cancel: false,
                    want_type: pb::message::wantlist::WantType::Block as i32,
                    send_dont_have: true,
                })
                .collect(),
            full: false,
        }),
        ..Default::default()
    })
}

async fn flood(started: network::Started, target: Multiaddr, time: Duration) -> anyhow::Result<()> {
    let network::Started { client, streams, .. } = started;
    let deadline = Instant::now() + time;
    let (mut messages, mut dial_failures, mut connections) = (0u64, 0u64, 0u64);
    let mut events = client.subscribe();
    while Instant::now() < deadline {
        let peer = match client.dial(target.clone()).await {
            Ok(p) => p,
            Err(e) => {
                dial_failures += 1;
                say(json!({"event": "dialFailed", "error": e.to_string()}));
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        connections += 1;
        // Eight writers at once, each on its own stream, until the target hangs up.
        let sent = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let writers: Vec<_> = (0..8)
            .map(|_| {
                let (mut control, sent) = (streams.clone(), sent.clone());
                tokio::spawn(async move {
                    let Ok(mut s) = control.open_stream(peer, bitswap::PROTOCOL_1_2).await else { return };
                    while Instant::now() < deadline && s.write_all(&wantlist()).await.is_ok() {
                        sent.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                })
            })
            .collect();
        for w in writers {
            let _ = w.await;
        }
        messages += sent.load(std::sync::atomic::Ordering::Relaxed);
        while let Ok(ev) = events.try_recv() {
            log_event(Ok(ev));
        }
    }
    say(
        json!({"event": "done", "messages": messages, "connections": connections, "dialFailures": dial_failures}),
    );
    Ok(())
}
