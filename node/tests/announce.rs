//! Archive rounds and signed announcements between real nodes in one process.

use std::time::Duration;

use archive_node::announce::{self, Announcement};
use archive_node::communities::Invite;
use archive_node::community::CommunityId;
use archive_node::crypto::KeyPair;
use archive_node::data_dir::DataDir;
use archive_node::message::Topic;
use archive_node::node::{Config, Event, Node};
use tokio::sync::broadcast::Receiver;
use tokio_util::sync::CancellationToken;

struct TestNode {
    node: Node,
    _dir: tempfile::TempDir,
}

async fn start() -> TestNode {
    let c = Config { gossip: archive_node::gossip::Config::fast_for_tests(), ..Config::default() };
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(&DataDir::new(dir.path()), c, CancellationToken::new()).await.unwrap();
    TestNode { node, _dir: dir }
}

async fn connect(a: &Node, b: &Node) {
    a.network().dial(b.network().listen_addrs().await.unwrap()[0].clone()).await.unwrap();
}

/// The next announcement accepted by a node (ignoring other events).
async fn next_accepted(rx: &mut Receiver<Event>) -> (u64, String) {
    tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            if let Ok(Event::AnnouncementAccepted { clock, cid, .. }) = rx.recv().await {
                return (clock, cid);
            }
        }
    })
    .await
    .expect("an announcement is accepted")
}

/// Archive windows are `[from, to)` in seconds: a round covers a message only once the wall
/// clock has passed the message's second.
async fn past(timestamp: u64) {
    let now = || std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    while now() <= timestamp {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn rejected(events: &[Event]) -> usize {
    events.iter().filter(|e| matches!(e, Event::AnnouncementRejected { .. })).count()
}

/// Creates a community whose rounds the test drives: the automatic seeding loop could otherwise
/// archive a message first and announce an index the test does not expect.
async fn create_driven(node: &Node, name: &str) -> archive_node::communities::Record {
    let mut record =
        node.create_community(name.into(), false, archive_node::membership::Access::Open).await.unwrap();
    record.archives_enabled = false;
    node.communities().put(&record).unwrap();
    record
}

/// Everything received so far.
fn drain(rx: &mut Receiver<Event>) -> Vec<Event> {
    let mut out = Vec::new();
    while let Ok(e) = rx.try_recv() {
        out.push(e);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rounds_are_announced_forgeries_rejected_and_replays_ignored() {
    let (control, relay, member, attacker) = (start().await, start().await, start().await, start().await);
    let record = create_driven(&control.node, "general").await;
    let id: CommunityId = record.community_id().unwrap();
    let invite = Invite::decode(&control.node.communities().invite(&id).unwrap().encode()).unwrap();
    for n in [&relay, &member, &attacker] {
        n.node.join_community(invite.clone()).await.unwrap();
    }
    // control -- relay -- member, and attacker -- relay.
    connect(&relay.node, &control.node).await;
    connect(&member.node, &relay.node).await;
    connect(&attacker.node, &relay.node).await;
    let mut relay_events = relay.node.subscribe();
    let mut member_events = member.node.subscribe();

    // Round 1: a message, then an archive, announced with the community key.
    let m = control.node.send_message(id, Topic::from_name("chat"), b"one".to_vec()).await.unwrap();
    past(m.timestamp).await;
    let first = control.node.seeder().round(id).await.unwrap();
    let (clock1, cid1) = next_accepted(&mut member_events).await;
    assert_eq!(Some(cid1.clone()), first.root_cid, "a round announces its history root");

    // A forged announcement (another key) from the attacker: rejected by the relay.
    let forged = announce::sign(
        &KeyPair::generate(),
        &Announcement { clock: clock1 + 1_000_000, cid: "bafyforged".into() },
    );
    let topic = archive_node::gossip::archives_topic(&id);
    attacker.node.network().publish(topic.clone(), forged.bytes).await.unwrap();
    // A replay of round 1 with different bytes (an unknown envelope field), same content.
    let mut replay = control.node.archive_state().announcement(&id).unwrap().unwrap();
    replay.extend_from_slice(&[0x78, 0x01]); // field 15, varint 1
    attacker.node.network().publish(topic, replay).await.unwrap();

    // Round 2 arrives at the member after both, on the same links.
    let m = control.node.send_message(id, Topic::from_name("chat"), b"two".to_vec()).await.unwrap();
    past(m.timestamp).await;
    let second = control.node.seeder().round(id).await.unwrap();
    let (clock2, cid2) = next_accepted(&mut member_events).await;
    assert!(clock2 > clock1);
    assert_eq!(Some(cid2), second.root_cid);

    let member_seen = drain(&mut member_events);
    assert_eq!(rejected(&member_seen), 0, "the forgery was not forwarded to the member");
    assert!(
        !member_seen.iter().any(|e| matches!(e, Event::AnnouncementAccepted { .. })),
        "the replay was not accepted again"
    );
    // The relay saw the forgery and rejected it.
    let relay_seen = drain(&mut relay_events);
    assert!(rejected(&relay_seen) >= 1, "{relay_seen:?}");
    // And penalised the attacker through gossipsub's scoring.
    let score = relay.node.network().peer_score(attacker.node.network().local_peer_id()).await.unwrap();
    assert!(score.is_some_and(|s| s < -50.0), "attacker's score at the relay: {score:?}");
    let latest =
        announce::verify(&id, &member.node.archive_state().announcement(&id).unwrap().unwrap()).unwrap();
    assert_eq!(latest.announcement.clock, clock2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_round_without_messages_makes_no_announcement() {
    let control = start().await;
    let id = create_driven(&control.node, "quiet").await.community_id().unwrap();
    let outcome = control.node.seeder().round(id).await.unwrap();
    assert!(outcome.archives.is_empty() && outcome.index_cid.is_none());
    assert!(control.node.archive_state().announcement(&id).unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_index_committed_by_a_round_cut_before_announcing_is_announced_by_the_next() {
    let control = start().await;
    let id = create_driven(&control.node, "cut").await.community_id().unwrap();
    let m = control.node.send_message(id, Topic::from_name("chat"), b"one".to_vec()).await.unwrap();
    past(m.timestamp).await;
    let announced = control.node.seeder().round(id).await.unwrap().root_cid.unwrap();
    // A round that committed its archives and index, then died before announcing them (kill -9).
    let m = control.node.send_message(id, Topic::from_name("chat"), b"two".to_vec()).await.unwrap();
    past(m.timestamp).await;
    let seeder = &control.node.seeder();
    let builder = archive_node::archive::Builder::new(seeder.messages.clone(), seeder.state.clone());
    let params = archive_node::archive::Params {
        community: id,
        from: None,
        to: m.timestamp + 1,
        partition_secs: seeder.config.partition_secs,
        topics: Vec::new(),
        key: None,
        members: None,
    };
    let cut =
        builder.run(&params, &mut archive_node::archive::StoreSink::new(seeder.blocks.clone())).unwrap();
    let committed = cut.index_cid.unwrap();
    assert_ne!(committed, announced);
    let accepted =
        |n: &Node| announce::verify(&id, &n.archive_state().announcement(&id).unwrap().unwrap()).unwrap();
    assert_eq!(accepted(&control.node).announcement.cid, announced);

    // The next round finds no new message, and still announces what the cut round committed.
    let next = seeder.round(id).await.unwrap();
    assert!(next.archives.is_empty());
    assert_eq!(next.index_cid.as_deref(), Some(committed.as_str()));
    assert_eq!(Some(accepted(&control.node).announcement.cid), next.root_cid);
    // Once announced, a quiet round announces nothing again.
    let clock = accepted(&control.node).announcement.clock;
    assert!(seeder.round(id).await.unwrap().index_cid.is_none());
    assert_eq!(accepted(&control.node).announcement.clock, clock);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_joiner_gets_the_latest_announcement_by_request() {
    let (control, late) = (start().await, start().await);
    let id = create_driven(&control.node, "history").await.community_id().unwrap();
    let m =
        control.node.send_message(id, Topic::from_name("chat"), b"before you came".to_vec()).await.unwrap();
    past(m.timestamp).await;
    let round = control.node.seeder().round(id).await.unwrap();
    // Nobody heard the gossip. The late member joins, then connects.
    let mut events = late.node.subscribe();
    late.node
        .join_community(Invite::decode(&control.node.communities().invite(&id).unwrap().encode()).unwrap())
        .await
        .unwrap();
    connect(&late.node, &control.node).await;
    let (_, cid) = next_accepted(&mut events).await;
    assert_eq!(Some(cid), round.root_cid);

    // The protocol itself: the peer answers with exactly its stored envelopes, or nothing.
    let control_peer = control.node.network().local_peer_id();
    let answer = late.node.network().request_state(control_peer, id.as_bytes().to_vec()).await.unwrap();
    let state =
        <archive_proto::pb::membership::CommunityState as prost::Message>::decode(&answer[..]).unwrap();
    assert_eq!(Some(state.announcement.to_vec()), control.node.archive_state().announcement(&id).unwrap());
    assert_eq!(state.description.to_vec(), control.node.description(&id).unwrap().unwrap().bytes);
    let unknown = KeyPair::generate().public();
    let none = late.node.network().request_state(control_peer, unknown.to_vec()).await.unwrap();
    let none = <archive_proto::pb::membership::CommunityState as prost::Message>::decode(&none[..]).unwrap();
    assert!(none.announcement.is_empty() && none.description.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_device_merges_the_other_devices_index_before_announcing() {
    let (first, second) = (start().await, start().await);
    let mut record = first
        .node
        .create_community("two devices".into(), false, archive_node::membership::Access::Open)
        .await
        .unwrap();
    let id = record.community_id().unwrap();
    // Explicit rounds only, so the test decides who builds what.
    record.archives_enabled = false;
    first.node.communities().put(&record).unwrap();
    second.node.adopt_community(record).await.unwrap();
    connect(&second.node, &first.node).await;
    let mut second_events = second.node.subscribe();
    let mut first_events = first.node.subscribe();

    // The first device archives a message and announces.
    let m = first.node.send_message(id, Topic::from_name("chat"), b"from device one".to_vec()).await.unwrap();
    past(m.timestamp).await;
    let one = first.node.seeder().round(id).await.unwrap();
    let (clock1, _) = next_accepted(&mut second_events).await;

    // The second device archives its own message: its index must keep the first device's archive.
    let m =
        second.node.send_message(id, Topic::from_name("chat"), b"from device two".to_vec()).await.unwrap();
    past(m.timestamp).await;
    let two = second.node.seeder().round(id).await.unwrap();
    let (clock2, cid2) = next_accepted(&mut first_events).await;
    assert!(clock2 > clock1, "the second device's clock passed the one it observed");
    assert_eq!(Some(cid2.clone()), two.root_cid);

    // The announced root names the merged index and every archive of both devices, those
    // the second device does not hold with their sizes from the first device's root.
    let root: archive_node::blocks::cid::Cid = cid2.parse().unwrap();
    let root_block = second.node.blocks().get(&root).unwrap().unwrap();
    let entries = archive_node::blocks::directory::read(&root_block).unwrap();
    let first_root: archive_node::blocks::cid::Cid = one.root_cid.unwrap().parse().unwrap();
    let first_entries =
        archive_node::blocks::directory::read(&first.node.blocks().get(&first_root).unwrap().unwrap())
            .unwrap();
    for archive in one.archives.iter().chain(&two.archives) {
        let e = entries.iter().find(|e| e.name == archive.id).expect("every archive is in the root");
        assert_eq!(e.cid.to_string(), archive.cid);
    }
    for e in first_entries.iter().filter(|e| e.name != "index") {
        assert!(entries.contains(e), "{} keeps its size", e.name);
    }
    let merged_cid = archive_node::archive::history::resolve(root, &root_block).unwrap().index();
    assert_eq!(Some(merged_cid.to_string()), two.index_cid);
    let mut raw = Vec::new();
    archive_node::blocks::files::cat(second.node.blocks(), merged_cid, &mut raw).unwrap();
    let merged = archive_node::archive::Index::decode(&raw).unwrap();
    for archive in one.archives.iter().chain(&two.archives) {
        assert!(merged.archives.contains_key(&archive.id), "archive {} kept", archive.id);
    }
}
