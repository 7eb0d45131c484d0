//! Bitswap between real nodes in one process, on 127.0.0.1 with ephemeral ports.

use archive_node::bitswap::Progress;
use archive_node::blocks::cid::Cid;
use archive_node::blocks::unixfs::Layout;
use archive_node::blocks::{files, unixfs, Block};
use archive_node::data_dir::DataDir;
use archive_node::node::{Config, Node};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

struct TestNode {
    node: Node,
    _dir: tempfile::TempDir,
}

async fn start() -> TestNode {
    let dir = tempfile::tempdir().unwrap();
    let node =
        Node::start(&DataDir::new(dir.path()), Config::default(), CancellationToken::new()).await.unwrap();
    TestNode { node, _dir: dir }
}

fn bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.max(1);
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

async fn add(node: &Node, data: Vec<u8>, layout: Layout) -> Cid {
    let store = node.blocks().clone();
    tokio::task::spawn_blocking(move || files::add(&store, &mut &data[..], layout).unwrap().root)
        .await
        .unwrap()
}

async fn read(node: &Node, root: Cid) -> Vec<u8> {
    let store = node.blocks().clone();
    tokio::task::spawn_blocking(move || {
        let mut out = Vec::new();
        files::cat(&store, root, &mut out).unwrap();
        out
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_fetches_a_dag_from_another() {
    let (a, b) = (start().await, start().await);
    let data = bytes(5 * 1024 * 1024 + 777, 1);
    let root = add(&a.node, data.clone(), Layout::default()).await;
    let addr = a.node.network().listen_addrs().await.unwrap()[0].clone();

    let (tx, rx) = watch::channel(Progress::default());
    let stats = b.node.fetch(root, &[addr], tx).await.unwrap();
    assert_eq!(stats.blocks_fetched, 7, "six leaves and the root");
    assert!(stats.bytes_fetched as usize > data.len(), "the file plus its root node");
    assert!(rx.borrow().done);
    assert_eq!(rx.borrow().total_bytes, Some(data.len() as u64));
    assert_eq!(read(&b.node, root).await, data);
    assert!(b.node.blocks().is_complete(&root).unwrap());
    assert_eq!(b.node.blocks().pins().unwrap().get(&root), Some(&1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetching_a_directory_fetches_every_entry() {
    // A community history's shape: a directory of an index and archives (`ipfs get ROOT`).
    use archive_node::blocks::directory::{self, Entry};
    let (a, b) = (start().await, start().await);
    let layout = Layout { chunk_size: 64 * 1024, max_links: 4 };
    let (index, archive) = (bytes(100, 2), bytes(700 * 1024 + 3, 3));
    let mut entries = Vec::new();
    for (name, data) in [("index", &index), ("0a1b", &archive)] {
        let cid = add(&a.node, data.clone(), layout).await;
        let root = Block::verify(cid, a.node.blocks().get(&cid).unwrap().unwrap()).unwrap();
        entries.push(Entry { name: name.into(), cid, tsize: directory::cumulative_size(&root).unwrap() });
    }
    let dir = directory::build(entries.clone()).unwrap();
    a.node.blocks().put(&dir).unwrap();
    let addr = a.node.network().listen_addrs().await.unwrap()[0].clone();

    let (tx, _rx) = watch::channel(Progress::default());
    let stats = b.node.fetch(*dir.cid(), &[addr], tx).await.unwrap();
    assert!(stats.bytes_fetched as usize > index.len() + archive.len());
    assert_eq!(read(&b.node, entries[0].cid).await, index);
    assert_eq!(read(&b.node, entries[1].cid).await, archive);
    assert!(b.node.blocks().is_complete(dir.cid()).unwrap());
    // The directory's pin keeps its entries through a GC.
    b.node.blocks().gc().unwrap();
    assert!(b.node.blocks().missing(dir.cid()).unwrap().is_empty());
    assert_eq!(
        b.node.blocks().stat(dir.cid()).unwrap().blocks,
        a.node.blocks().stat(dir.cid()).unwrap().blocks
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocks_already_stored_are_not_fetched_again() {
    let (a, b) = (start().await, start().await);
    let layout = Layout { chunk_size: 64 * 1024, max_links: 8 };
    let data = bytes(40 * 64 * 1024, 2);
    let root = add(&a.node, data.clone(), layout).await;

    // B already holds some leaves, as after an interrupted fetch.
    let mut all = Vec::new();
    let mut sink = |blk: Block| {
        all.push(blk);
        Ok(())
    };
    let total = unixfs::import(&mut &data[..], layout, &mut sink).unwrap().blocks;
    assert_eq!(total, 46, "40 leaves, 5 nodes and the root");
    let leaves: Vec<Block> = all.into_iter().filter(|b| b.cid().codec() == 0x55).collect();
    b.node.blocks().put_many(&leaves[..25]).unwrap();

    let addr = a.node.network().listen_addrs().await.unwrap()[0].clone();
    let (tx, _rx) = watch::channel(Progress::default());
    let stats = b.node.fetch(root, &[addr], tx).await.unwrap();
    assert_eq!(stats.blocks_local, 25);
    assert_eq!(stats.blocks_fetched, total - 25);
    assert_eq!(read(&b.node, root).await, data);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_block_nobody_has_fails_the_fetch() {
    let (a, b) = (start().await, start().await);
    let addr = a.node.network().listen_addrs().await.unwrap()[0].clone();
    let absent = archive_node::blocks::cid::raw(b"nobody has this");
    let (tx, _rx) = watch::channel(Progress::default());
    let err = b.node.fetch(absent, &[addr], tx).await.unwrap_err();
    assert!(err.to_string().contains("no peer has block"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_without_bitswap_leaves_the_fetch_at_once() {
    // The relay a NATed node is connected to, say: it speaks libp2p but not Bitswap. Its wants
    // move on as soon as no stream can be opened to it, not after three 30 s timeouts (which
    // would end the fetch with "no peer has block").
    let (addr, _) = hostile::start(false).await;
    let b = start().await;
    let absent = archive_node::blocks::cid::raw(b"only a bitswap peer could say");
    let (tx, _rx) = watch::channel(Progress::default());
    let err = b.node.fetch(absent, &[addr], tx).await.unwrap_err();
    assert!(err.to_string().contains("no peer to fetch from"), "{err}");
}

/// A peer that speaks Bitswap but answers every want-block with wrong bytes under the wanted
/// CID's prefix (or, not `lying`, a peer without Bitswap at all).
mod hostile {
    use archive_node::bitswap::{codec, PROTOCOL_1_2};
    use archive_proto::pb::bitswap as pb;
    use futures::{AsyncWriteExt, StreamExt};
    use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
    use libp2p::{identify, noise, tcp, yamux, Multiaddr, PeerId};
    use prost::Message as _;

    #[derive(NetworkBehaviour)]
    struct Behaviour {
        stream: libp2p_stream::Behaviour,
        identify: identify::Behaviour,
    }

    /// Starts the hostile peer; returns its address (with /p2p/).
    pub async fn start(lying: bool) -> (Multiaddr, PeerId) {
        let mut swarm = libp2p::SwarmBuilder::with_new_identity()
            .with_tokio()
            .with_tcp(tcp::Config::default(), noise::Config::new, yamux::Config::default)
            .unwrap()
            .with_behaviour(|k| Behaviour {
                stream: libp2p_stream::Behaviour::new(),
                identify: identify::Behaviour::new(identify::Config::new("ipfs/0.1.0".into(), k.public())),
            })
            .unwrap()
            .with_swarm_config(|c| c.with_idle_connection_timeout(std::time::Duration::from_secs(60)))
            .build();
        swarm.listen_on("/ip4/127.0.0.1/tcp/0".parse().unwrap()).unwrap();
        let peer = *swarm.local_peer_id();
        let addr = loop {
            if let SwarmEvent::NewListenAddr { address, .. } = swarm.select_next_some().await {
                break address.with_p2p(peer).unwrap();
            }
        };
        let mut control = swarm.behaviour().stream.new_control();
        let incoming = lying.then(|| control.accept(PROTOCOL_1_2).unwrap());
        tokio::spawn(async move {
            loop {
                swarm.select_next_some().await;
            }
        });
        let Some(mut incoming) = incoming else { return (addr, peer) };
        tokio::spawn(async move {
            while let Some((from, mut stream)) = incoming.next().await {
                let mut control = control.clone();
                tokio::spawn(async move {
                    while let Ok(Some(msg)) = codec::read(&mut stream).await {
                        let lies: Vec<pb::message::Block> = msg
                            .wants
                            .iter()
                            .filter(|w| !w.cancel)
                            .map(|w| pb::message::Block {
                                prefix: vec![1, w.cid.codec() as u8, 0x12, 0x20].into(),
                                data: b"not the block you asked for".to_vec().into(),
                            })
                            .collect();
                        if lies.is_empty() {
                            continue;
                        }
                        let bytes = pb::Message { payload: lies, ..Default::default() }.encode_to_vec();
                        let Ok(mut out) = control.open_stream(from, PROTOCOL_1_2).await else { return };
                        let mut frame = Vec::new();
                        let mut p = unsigned_varint::encode::usize_buffer();
                        frame.extend_from_slice(unsigned_varint::encode::usize(bytes.len(), &mut p));
                        frame.extend_from_slice(&bytes);
                        let _ = out.write_all(&frame).await;
                        let _ = out.close().await;
                    }
                });
            }
        });
        (addr, peer)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fetch_from_an_honest_and_a_lying_peer_completes_and_bans_the_liar() {
    let (honest, fetcher) = (start().await, start().await);
    let (liar_addr, liar) = hostile::start(true).await;
    let data = bytes(3 * 1024 * 1024 + 5, 3);
    let layout = Layout { chunk_size: 64 * 1024, max_links: 16 };
    let root = add(&honest.node, data.clone(), layout).await;
    let honest_addr = honest.node.network().listen_addrs().await.unwrap()[0].clone();

    let mut events = fetcher.node.network().subscribe();
    let (tx, _rx) = watch::channel(Progress::default());
    let stats = fetcher.node.fetch(root, &[honest_addr, liar_addr.clone()], tx).await.unwrap();
    assert_eq!(read(&fetcher.node, root).await, data, "only correct bytes were stored");
    assert_eq!(stats.bad_peers, vec![liar.to_string()]);
    assert!(fetcher.node.blocks().is_complete(&root).unwrap());

    // The liar is reported and disconnected.
    let disconnected = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        loop {
            match events.recv().await {
                Ok(archive_node::network::Event::PeerDisconnected(p)) if p == liar => return true,
                Ok(_) => {}
                Err(_) => return false,
            }
        }
    })
    .await;
    assert_eq!(disconnected, Ok(true));
    // And banned: neither side can connect again.
    assert_eq!(fetcher.node.network().banned(), vec![liar]);
    assert!(fetcher.node.network().dial(liar_addr).await.is_err(), "a banned peer is not dialled");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_found_on_the_dht_serves_the_fetch() {
    // provider -- hub -- fetcher: the fetcher only knows the hub, which does not hold the DAG.
    let (provider, hub, fetcher) = (start().await, start().await, start().await);
    let hub_addr = hub.node.network().listen_addrs().await.unwrap()[0].clone();
    provider.node.network().dial(hub_addr.clone()).await.unwrap();
    fetcher.node.network().dial(hub_addr).await.unwrap();

    let data = bytes(2 * 1024 * 1024 + 1, 4);
    let root = add(&provider.node, data.clone(), Layout::default()).await;
    provider.node.network().provide(root).await.unwrap();

    let (tx, _rx) = watch::channel(Progress::default());
    let stats = fetcher.node.fetch(root, &[], tx).await.unwrap();
    assert_eq!(stats.blocks_fetched, 4);
    assert_eq!(read(&fetcher.node, root).await, data);
    let peers = fetcher.node.network().peers().await.unwrap();
    let provider_id = provider.node.network().local_peer_id().to_string();
    assert!(peers.iter().any(|p| p.peer_id == provider_id), "dialled the provider found on the DHT");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dialing_a_connected_peer_returns_it() {
    let (a, b) = (start().await, start().await);
    let addr = a.node.network().listen_addrs().await.unwrap()[0].clone();
    let first = b.node.network().dial(addr.clone()).await.unwrap();
    assert_eq!(b.node.network().dial(addr).await.unwrap(), first);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gc_while_a_fetch_runs_loses_nothing_of_it() {
    let (a, b) = (start().await, start().await);
    let data = bytes(24 * 1024 * 1024 + 3, 9);
    let root = add(&a.node, data.clone(), Layout::default()).await;
    let addr = a.node.network().listen_addrs().await.unwrap()[0].clone();
    let (tx, mut progress) = watch::channel(Progress::default());
    let fetch = {
        let (node, addr) = (b.node.clone(), addr.clone());
        tokio::spawn(async move { node.fetch(root, &[addr], tx).await })
    };
    // GC as often as the fetch moves: every block stored so far must survive each one.
    let mut collections = 0;
    while !fetch.is_finished() {
        if tokio::time::timeout(std::time::Duration::from_millis(200), progress.changed())
            .await
            .is_ok_and(|r| r.is_err())
        {
            break;
        }
        let store = b.node.blocks().clone();
        let report = tokio::task::spawn_blocking(move || store.gc().unwrap()).await.unwrap();
        assert_eq!(report.removed_blocks, 0, "GC removed blocks of a fetch in progress");
        collections += 1;
    }
    let stats = fetch.await.unwrap().unwrap();
    assert!(collections > 0 && stats.blocks_fetched > 0);
    assert_eq!(read(&b.node, root).await, data);
    assert!(b.node.blocks().held_roots().is_empty(), "released when the fetch ended");
}
