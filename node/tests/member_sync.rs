//! A member downloads and imports a community's history from archives (real nodes, in process).

use std::time::Duration;

use archive_node::communities::Invite;
use archive_node::data_dir::DataDir;
use archive_node::message::Topic;
use archive_node::message_store::Query;
use archive_node::node::{Config, Event, Node};
use tokio_util::sync::CancellationToken;

const HEARTBEAT_MS: u64 = 200;

struct TestNode {
    node: Node,
    _dir: tempfile::TempDir,
}

async fn start(partition_secs: u64) -> TestNode {
    let mut c = Config { gossip: archive_node::gossip::Config::fast_for_tests(), ..Config::default() };
    assert_eq!(c.gossip.heartbeat_ms, HEARTBEAT_MS);
    c.archive.partition_secs = partition_secs;
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(&DataDir::new(dir.path()), c, CancellationToken::new()).await.unwrap();
    TestNode { node, _dir: dir }
}

async fn past(timestamp: u64) {
    let now = || std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    while now() <= timestamp {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_member_gets_the_whole_history_from_archives() {
    let control = start(1).await;
    let mut record = control
        .node
        .create_community("history".into(), true, archive_node::membership::Access::Open)
        .await
        .unwrap();
    let id = record.community_id().unwrap();
    record.archives_enabled = false; // explicit rounds only
    control.node.communities.put(&record).unwrap();
    // A witness is subscribed before anything is sent, so no publish waits in the queue for
    // the next subscriber: the late member can only get the history from the archives.
    let witness = start(1).await;
    let invite = Invite::decode(&control.node.communities.invite(&id).unwrap().encode()).unwrap();
    witness.node.join_community(invite.clone()).await.unwrap();
    witness.node.network.dial(control.node.network.listen_addrs().await.unwrap()[0].clone()).await.unwrap();
    let mut witness_events = witness.node.subscribe();

    // Messages in three different seconds: three one-second windows, three archives.
    let mut last = 0;
    for i in 0..3u8 {
        for j in 0..4u8 {
            last =
                control.node.send_message(id, Topic::from_name("chat"), vec![i, j]).await.unwrap().timestamp;
        }
        past(last).await;
    }
    // Every message reached the witness by gossip (so none is queued for later).
    let mut seen = 0;
    tokio::time::timeout(Duration::from_secs(20), async {
        while seen < 12 {
            if let Ok(Event::MessageStored { received: true, .. }) = witness_events.recv().await {
                seen += 1;
            }
        }
    })
    .await
    .expect("the witness receives every message");
    let round = control.node.seeder.round(id).await.unwrap();
    assert_eq!(round.archives.len(), 3);
    // Gossipsub advertises (IHAVE) and serves (IWANT) a message for 5 heartbeats after it is
    // sent, to peers joining the mesh too: a protocol bound, waited out so that nothing of the
    // history can reach the late member but the archives.
    tokio::time::sleep(Duration::from_millis(5 * HEARTBEAT_MS + 500)).await;

    // A member who was not there: everything must come from the archives.
    let member = start(1).await;
    let mut events = member.node.subscribe();
    member.node.join_community(invite).await.unwrap();
    member.node.network.dial(control.node.network.listen_addrs().await.unwrap()[0].clone()).await.unwrap();

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

    let ours = control.node.messages.query(&id, &Query::default()).unwrap().messages;
    let theirs = member.node.messages.query(&id, &Query::default()).unwrap().messages;
    assert_eq!(ours.len(), 12);
    assert_eq!(theirs, ours, "byte-exact, no loss, no duplicates");
    let downloaded = member.node.archive_state.downloaded(&id).unwrap();
    assert_eq!(downloaded.len(), 3);
    assert!(downloaded.values().all(|imported| *imported));
    let ids: Vec<_> = round.archives.iter().map(|a| a.id.clone()).collect();
    assert!(ids.iter().all(|a| downloaded.contains_key(a)));
}
