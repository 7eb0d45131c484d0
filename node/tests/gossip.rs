//! Community message gossip between real nodes in one process (127.0.0.1, ephemeral ports).

use std::time::Duration;

use archive_node::communities::Invite;
use archive_node::crypto::KeyPair;
use archive_node::data_dir::DataDir;
use archive_node::message::{Message, Topic};
use archive_node::message_store::Query;
use archive_node::node::{Config, Event, Node};
use tokio_util::sync::CancellationToken;

struct TestNode {
    node: Node,
    _dir: tempfile::TempDir,
}

fn fast() -> Config {
    Config { gossip: archive_node::gossip::Config::fast_for_tests(), ..Config::default() }
}

async fn start() -> TestNode {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(&DataDir::new(dir.path()), fast(), CancellationToken::new()).await.unwrap();
    TestNode { node, _dir: dir }
}

async fn wait_stored(events: &mut tokio::sync::broadcast::Receiver<Event>, hash: [u8; 32]) {
    tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            if let Ok(Event::MessageStored { hash: h, received: true, .. }) = events.recv().await {
                if h == hash {
                    return;
                }
            }
        }
    })
    .await
    .expect("the message arrives by gossip");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_members_message_reaches_the_control_node_and_forgeries_do_not() {
    let (control, member, attacker) = (start().await, start().await, start().await);
    let community = control
        .node
        .create_community("general".into(), false, archive_node::membership::Access::Open)
        .await
        .unwrap();
    let id = community.community_id().unwrap();
    let invite = control.node.communities().invite(&id).unwrap().encode();
    let addr = control.node.network().listen_addrs().await.unwrap()[0].clone();
    for n in [&member, &attacker] {
        n.node.join_community(Invite::decode(&invite).unwrap()).await.unwrap();
        n.node.network().dial(addr.clone()).await.unwrap();
        n.node.wait_description(id, Duration::from_secs(20)).await.expect("the description arrives");
    }
    let mut events = control.node.subscribe();

    // Forgeries first: a signed message whose payload was changed afterwards (the hash no longer
    // matches), and one with a malformed signature.
    let topic = archive_node::gossip::messages_topic(&id);
    let author = KeyPair::generate();
    let mut tampered =
        Message::new_signed(&author, &id, Topic::from_name("chat"), 1_700_000_000, b"real".to_vec());
    tampered.payload = b"fake".to_vec();
    let mut malformed =
        Message::new_signed(&author, &id, Topic::from_name("chat"), 1_700_000_001, b"x".to_vec());
    malformed.sig.truncate(64);
    for forged in [&tampered, &malformed] {
        attacker.node.network().publish(topic.clone(), forged.encode()).await.unwrap();
    }

    let sent = member
        .node
        .send_message(id, Topic::from_name("chat"), b"hello from a member".to_vec())
        .await
        .unwrap();
    wait_stored(&mut events, sent.hash).await;

    // The forgeries came on another connection, in no fixed order with the valid message: wait
    // until the attacker's score shows they were judged and rejected (no event reports scores).
    let attacker_id = attacker.node.network().local_peer_id();
    tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            if control.node.network().peer_score(attacker_id).await.unwrap().is_some_and(|s| s < -50.0) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the attacker is penalised for forwarding forgeries");
    let page = control.node.messages().query(&id, &Query::default()).unwrap();
    assert_eq!(page.messages, vec![sent], "stored byte-exact, and only the valid message");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishes_past_the_waiting_bound_are_counted_as_dropped() {
    use archive_node::network::pending::MAX_PER_TOPIC;
    let alone = start().await;
    let net = &alone.node.network();
    let topic = "/archive-node-test/alone".to_string();
    net.subscribe_topic(topic.clone(), true).await.unwrap();
    assert_eq!(alone.node.budgets().publishes_dropped, 0);
    for i in 0..MAX_PER_TOPIC + 5 {
        net.publish(topic.clone(), format!("m{i}").into_bytes()).await.unwrap();
    }
    // Each publish is answered after the network task handled it: the count is final.
    assert_eq!(alone.node.budgets().publishes_dropped, 5, "no peer listens: the 5 oldest are dropped");
}
