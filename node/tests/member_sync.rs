//! A member downloads and imports a community's history from archives (real nodes, in process).

use std::time::Duration;

use archive_node::communities::Invite;
use archive_node::data_dir::DataDir;
use archive_node::message::{Message, Topic};
use archive_node::message_store::Query;
use archive_node::node::{Config, Event, Node};
use tokio_util::sync::CancellationToken;

struct TestNode {
    node: Node,
    _dir: tempfile::TempDir,
}

async fn start(partition_secs: u64) -> TestNode {
    let mut c = Config { gossip: archive_node::gossip::Config::fast_for_tests(), ..Config::default() };
    c.archive.partition_secs = partition_secs;
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(&DataDir::new(dir.path()), c, CancellationToken::new()).await.unwrap();
    TestNode { node, _dir: dir }
}

/// A control node holding three archives (one-second windows, four messages each) that were
/// never gossiped: the round's outcome, and an invite.
async fn control_with_history(
) -> (TestNode, archive_node::community::CommunityId, Invite, archive_node::archive::Outcome) {
    let control = start(1).await;
    let mut record = control
        .node
        .create_community("history".into(), true, archive_node::membership::Access::Open)
        .await
        .unwrap();
    let id = record.community_id().unwrap();
    record.archives_enabled = false; // explicit rounds only
    control.node.communities().put(&record).unwrap();
    // The history is stored on the control node without ever being gossiped (as messages
    // imported before the node ran): nothing of it can reach the late member but the archives.
    let invite = Invite::decode(&control.node.communities().invite(&id).unwrap().encode()).unwrap();
    let author = archive_node::crypto::KeyPair::generate();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let mut history = Vec::new();
    // Messages in the next three seconds (after any round the seeding loop made before it was
    // turned off): three one-second windows, three archives.
    for i in 0..3u8 {
        for j in 0..4u8 {
            let m = Message::new_signed(
                &author,
                &id,
                Topic::from_name("chat"),
                now + 1 + u64::from(i),
                vec![i, j],
            );
            history.push(m.verify(&id).unwrap());
        }
    }
    control.node.messages().insert(&id, &history).unwrap();
    while std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() <= now + 3 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let round = control.node.seeder().round(id).await.unwrap();
    assert_eq!(round.archives.len(), 3);

    (control, id, invite, round)
}

/// A member that joined by `invite` and dialled `control`.
async fn member_of(
    control: &TestNode,
    invite: Invite,
) -> (TestNode, tokio::sync::broadcast::Receiver<Event>) {
    let member = start(1).await;
    let events = member.node.subscribe();
    member.node.join_community(invite).await.unwrap();
    member
        .node
        .network()
        .dial(control.node.network().listen_addrs().await.unwrap()[0].clone())
        .await
        .unwrap();
    (member, events)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_member_gets_the_whole_history_from_archives() {
    let (control, id, invite, round) = control_with_history().await;
    // A member who was not there: everything must come from the archives.
    let (member, mut events) = member_of(&control, invite).await;

    let mut imported = 0;
    tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            match events.recv().await {
                Ok(Event::Imported { outcome, .. }) => {
                    assert_eq!(outcome.rejected, 0);
                    imported += outcome.imported;
                }
                Ok(Event::MessageStored { received: true, .. }) => panic!("history arrived by gossip"),
                Ok(Event::DownloadingFinished { .. }) if imported == 12 => return,
                _ => {}
            }
        }
    })
    .await
    .expect("the member downloads and imports the history");

    let ours = control.node.messages().query(&id, &Query::default()).unwrap().messages;
    let theirs = member.node.messages().query(&id, &Query::default()).unwrap().messages;
    assert_eq!(ours.len(), 12);
    assert_eq!(theirs, ours, "byte-exact, no loss, no duplicates");
    let downloaded = member.node.archive_state().downloaded(&id).unwrap();
    assert_eq!(downloaded.len(), 3);
    assert!(downloaded.values().all(|imported| *imported));
    let ids: Vec<_> = round.archives.iter().map(|a| a.id.clone()).collect();
    assert!(ids.iter().all(|a| downloaded.contains_key(a)));

    // The member keeps the whole history under the announced root: pinned, whole, one CID to
    // serve (DownloadingFinished follows the pin).
    let root: archive_node::blocks::cid::Cid = round.root_cid.unwrap().parse().unwrap();
    assert_eq!(member.node.archive_state().root(&id).unwrap(), Some(root));
    assert_eq!(member.node.blocks().pins().unwrap().get(&root), Some(&1));
    assert!(member.node.blocks().is_complete(&root).unwrap());
    assert!(member.node.blocks().missing(&root).unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_announcement_of_the_index_itself_still_syncs() {
    // A control node of the previous release announced its index, not a history root.
    let (control, id, invite, round) = control_with_history().await;
    let key = control.node.communities().get(&id).unwrap().unwrap().control_key().unwrap().unwrap();
    let state = control.node.archive_state();
    let mut clock = state.clock(&id).unwrap();
    let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis();
    let old = archive_node::announce::Announcement {
        clock: clock.issue(now_ms as u64),
        cid: round.index_cid.clone().unwrap(),
    };
    state.accept_announcement(&id, &archive_node::announce::sign(&key, &old).bytes, clock).unwrap();

    let (member, mut events) = member_of(&control, invite).await;
    tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            if let Ok(Event::DownloadingFinished { .. }) = events.recv().await {
                return;
            }
        }
    })
    .await
    .expect("the member syncs from the old announcement");
    let ours = control.node.messages().query(&id, &Query::default()).unwrap().messages;
    let theirs = member.node.messages().query(&id, &Query::default()).unwrap().messages;
    assert_eq!((ours.len(), theirs), (12, ours));
    assert_eq!(member.node.archive_state().root(&id).unwrap(), None, "no root was announced");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_pinned_the_root_alone_serves_the_whole_history_and_its_description() {
    let (control, id, invite, round) = control_with_history().await;
    let root: archive_node::blocks::cid::Cid = round.root_cid.clone().unwrap().parse().unwrap();
    // A plain IPFS-style node, outside the community: it fetches (pins) the one root CID.
    let pinner = start(1).await;
    let control_addr = control.node.network().listen_addrs().await.unwrap()[0].clone();
    let (tx, _rx) = tokio::sync::watch::channel(archive_node::bitswap::Progress::default());
    pinner.node.fetch(root, &[control_addr], tx).await.unwrap();
    assert!(pinner.node.blocks().is_complete(&root).unwrap(), "one fetch takes the whole history");

    // A new member knows the signed announcement (as an IPNS record would give it) and no
    // community node: its only peer is the pinner, which has no community state to tell.
    let member = start(1).await;
    let mut events = member.node.subscribe();
    member.node.join_community(invite).await.unwrap();
    let announcement = control.node.archive_state().announcement(&id).unwrap().unwrap();
    let clock = control.node.archive_state().clock(&id).unwrap();
    member.node.archive_state().accept_announcement(&id, &announcement, clock).unwrap();
    control.node.shutdown();
    member.node.network().dial(pinner.node.network().listen_addrs().await.unwrap()[0].clone()).await.unwrap();
    member.node.start_sync(id);
    tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            if let Ok(Event::DownloadingFinished { .. }) = events.recv().await {
                return;
            }
        }
    })
    .await
    .expect("the member syncs from the pinner alone");
    let ours = pinner_messages_expected(&round);
    let theirs = member.node.messages().query(&id, &Query::default()).unwrap().messages;
    assert_eq!(theirs.len(), ours, "every archived message, verified against the root's description");
    assert!(member.node.description(&id).unwrap().is_some(), "the description came from the root");
    let peers = member.node.network().peers().await.unwrap();
    assert!(
        peers.iter().all(|p| p.peer_id == pinner.node.network().local_peer_id().to_string()),
        "the pinner was the only peer: {peers:?}"
    );
    assert_eq!(member.node.archive_state().root(&id).unwrap(), Some(root));
}

/// Messages the round archived.
fn pinner_messages_expected(round: &archive_node::archive::Outcome) -> usize {
    round.archives.iter().map(|a| a.messages).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_finds_the_history_by_its_ipns_name_on_a_dht_node_alone() {
    let (control, id, invite, round) = control_with_history().await;
    let root: archive_node::blocks::cid::Cid = round.root_cid.clone().unwrap().parse().unwrap();
    // A DHT server outside the community, holding the history (an IPFS node that pinned it).
    let pinner = start_dht_server().await;
    let control_addr = control.node.network().listen_addrs().await.unwrap()[0].clone();
    let (tx, _rx) = tokio::sync::watch::channel(archive_node::bitswap::Progress::default());
    pinner.node.fetch(root, &[control_addr], tx).await.unwrap();
    // The control node puts its record to the DHT: the pinner is the closest (only) server.
    let mut stored = pinner.node.network().subscribe();
    let published = control.node.seeder().publish_ipns(id).await.unwrap().expect("a record of the root");
    assert_eq!((published.root, published.sequence), (root, round_clock(&control, id)));
    tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            if let Ok(archive_node::network::Event::RecordStored { value, .. }) = stored.recv().await {
                if value == published.bytes {
                    return;
                }
            }
        }
    })
    .await
    .expect("the pinner admitted the record");
    control.node.shutdown();

    // A member that knows only the invite and the pinner: no announcement reaches it.
    let member = start(1).await;
    let mut events = member.node.subscribe();
    member.node.join_community(invite).await.unwrap();
    member.node.network().dial(pinner.node.network().listen_addrs().await.unwrap()[0].clone()).await.unwrap();
    let resolved = member.node.resolve_ipns(id).await.unwrap().expect("the name resolves");
    assert_eq!(resolved.record.root, root);
    assert_eq!(resolved.source, Some(pinner.node.network().local_peer_id()));
    tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            if let Ok(Event::DownloadingFinished { .. }) = events.recv().await {
                return;
            }
        }
    })
    .await
    .expect("the member syncs the history the name points to");
    let theirs = member.node.messages().query(&id, &Query::default()).unwrap().messages;
    assert_eq!(theirs.len(), pinner_messages_expected(&round));
    assert!(member.node.archive_state().accepted(&id).unwrap().is_none(), "no announcement was ever seen");
    assert_eq!(member.node.latest_history(&id).unwrap().map(|(_, c)| c), Some(root.to_string()));
}

/// A node serving the DHT from the start (a public node, as IPFS DHT servers are).
async fn start_dht_server() -> TestNode {
    let mut c = Config { gossip: archive_node::gossip::Config::fast_for_tests(), ..Config::default() };
    c.network.kad_mode = archive_node::network::KadMode::Server;
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(&DataDir::new(dir.path()), c, CancellationToken::new()).await.unwrap();
    TestNode { node, _dir: dir }
}

/// The clock of the control node's accepted announcement.
fn round_clock(control: &TestNode, id: archive_node::community::CommunityId) -> u64 {
    control.node.archive_state().accepted(&id).unwrap().unwrap().announcement.clock
}
