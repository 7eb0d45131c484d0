//! IPNS records put to a node's DHT store (real nodes, in process): only valid records of a
//! community name that rank above the one held are stored and served.

use std::time::Duration;

use archive_node::crypto::KeyPair;
use archive_node::data_dir::DataDir;
use archive_node::ipns;
use archive_node::network::Event;
use archive_node::node::{Config, Node};
use tokio_util::sync::CancellationToken;

struct TestNode {
    node: Node,
    _dir: tempfile::TempDir,
}

async fn start() -> TestNode {
    let mut c = Config::default();
    c.network.kad_mode = archive_node::network::KadMode::Server;
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(&DataDir::new(dir.path()), c, CancellationToken::new()).await.unwrap();
    TestNode { node, _dir: dir }
}

const HOUR: Duration = Duration::from_secs(3600);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_expired_and_replayed_records_are_neither_stored_nor_served() {
    let (target, sender, asker) = (start().await, start().await, start().await);
    let target_addr = target.node.network().listen_addrs().await.unwrap()[0].clone();
    sender.node.network().dial(target_addr.clone()).await.unwrap();
    let key = KeyPair::generate();
    let id = key.public_hex().parse().unwrap();
    let name = ipns::routing_key(&id).unwrap();
    let root = archive_node::blocks::cid::raw(b"root");
    let now = ipns::now_ns();
    let newer = ipns::create(&key, &root, 10, now, HOUR, HOUR).unwrap();
    let older = ipns::create(&key, &root, 9, now, HOUR, HOUR).unwrap();
    let forged = ipns::create(&KeyPair::generate(), &root, 11, now, HOUR, HOUR).unwrap();
    let expired = ipns::create(&key, &root, 12, now - 2 * HOUR.as_nanos() as i128, HOUR, HOUR).unwrap();

    let mut stored = target.node.network().subscribe();
    let put = |bytes: Vec<u8>| {
        let (network, name) = (sender.node.network().clone(), name.clone());
        async move { network.put_record(name, bytes).await.unwrap() }
    };
    put(newer.bytes.clone()).await;
    let first = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            if let Ok(Event::RecordStored { value, .. }) = stored.recv().await {
                return value;
            }
        }
    })
    .await
    .expect("a valid record is stored");
    assert_eq!(first, newer.bytes);
    for bad in [&forged, &expired, &older] {
        put(bad.bytes.clone()).await;
    }
    // Each put is answered by the target before the next goes out: had any been stored, its
    // notice would be queued by now.
    tokio::task::yield_now().await;
    let mut later = Vec::new();
    while let Ok(ev) = stored.try_recv() {
        if let Event::RecordStored { value, .. } = ev {
            later.push(value);
        }
    }
    assert!(later.is_empty(), "no other record was stored");

    // A peer that asks the target alone gets the valid, newest record only.
    asker.node.network().dial(target_addr).await.unwrap();
    let found = asker.node.network().get_records(name).await.unwrap();
    let target_id = target.node.network().local_peer_id();
    let served: Vec<_> =
        found.iter().filter(|(p, _)| *p == Some(target_id)).map(|(_, v)| v.clone()).collect();
    assert_eq!(served, vec![newer.bytes.clone()]);
}
