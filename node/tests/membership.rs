//! Membership between real nodes in one process (127.0.0.1, ephemeral ports): who may write a
//! community's history, requests to join, bans, re-keying, and a control node that lies.

use std::time::Duration;

use archive_node::archive::format::{ArchiveWriter, Entry, Metadata};
use archive_node::archive::Index;
use archive_node::communities::Invite;
use archive_node::community::{CommunityId, MemberKey};
use archive_node::crypto::KeyPair;
use archive_node::data_dir::DataDir;
use archive_node::membership::Access;
use archive_node::message::{Message, Topic};
use archive_node::message_store::Query;
use archive_node::node::{Config, Event, Node};
use tokio::sync::broadcast::Receiver;
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(30);

struct TestNode {
    node: Node,
    dir: tempfile::TempDir,
}

impl TestNode {
    fn key(&self) -> MemberKey {
        self.node.member_key()
    }

    /// The node's author key pair, read from its data dir (to publish as it would, bypassing
    /// its own checks).
    fn author(&self) -> KeyPair {
        let hex = std::fs::read_to_string(DataDir::new(self.dir.path()).author_key()).unwrap();
        KeyPair::from_secret_hex(&hex).unwrap()
    }
}

async fn start() -> TestNode {
    let c = Config { gossip: archive_node::gossip::Config::fast_for_tests(), ..Config::default() };
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(&DataDir::new(dir.path()), c, CancellationToken::new()).await.unwrap();
    TestNode { node, dir }
}

async fn connect(a: &Node, b: &Node) {
    a.network().dial(b.network().listen_addrs().await.unwrap()[0].clone()).await.unwrap();
}

/// A community whose archive rounds the test drives.
async fn create(control: &Node, access: Access, encrypted: bool) -> CommunityId {
    let mut record = control.create_community("club".into(), encrypted, access).await.unwrap();
    record.archives_enabled = false;
    control.communities().put(&record).unwrap();
    record.community_id().unwrap()
}

/// The first event `pick` returns something for, within [`WAIT`].
async fn wait_for<T>(events: &mut Receiver<Event>, mut pick: impl FnMut(&Event) -> Option<T>) -> T {
    tokio::time::timeout(WAIT, async {
        loop {
            if let Ok(e) = events.recv().await {
                if let Some(t) = pick(&e) {
                    return t;
                }
            }
        }
    })
    .await
    .expect("the awaited event")
}

/// Waits until `node` holds a description in which `key` is an active member.
async fn wait_member(node: &Node, id: CommunityId, key: MemberKey, events: &mut Receiver<Event>) {
    let active = || {
        node.description(&id)
            .unwrap()
            .is_some_and(|d| d.description.members.get(&key).is_some_and(|m| m.is_active()))
    };
    if active() {
        return;
    }
    wait_for(events, |e| (matches!(e, Event::DescriptionUpdated { .. }) && active()).then_some(())).await;
}

/// Invites `member`'s key, joins it through the control node, and waits until it sees itself
/// admitted.
async fn invite_and_join(control: &Node, member: &TestNode, id: CommunityId, events: &mut Receiver<Event>) {
    let invite = control.invite_member(id, Some(member.key())).await.unwrap();
    member.node.join_community(invite).await.unwrap();
    connect(&member.node, control).await;
    wait_member(&member.node, id, member.key(), events).await;
}

async fn wait_stored(events: &mut Receiver<Event>, hash: [u8; 32]) {
    wait_for(events, |e| {
        matches!(e, Event::MessageStored { hash: h, received: true, .. } if *h == hash).then_some(())
    })
    .await;
}

/// Waits until `node` gives `peer` a gossip score below zero (it forwarded what was rejected).
async fn wait_negative_score(node: &Node, peer: libp2p::PeerId) {
    tokio::time::timeout(WAIT, async {
        loop {
            if node.network().peer_score(peer).await.unwrap().is_some_and(|s| s < 0.0) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the peer is penalised");
}

fn signed(author: &KeyPair, id: &CommunityId, text: &str) -> Message {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    Message::new_signed(author, id, Topic::from_name("chat"), now, text.as_bytes().to_vec())
}

fn stored(node: &Node, id: &CommunityId) -> Vec<Message> {
    node.messages().query(id, &Query::default()).unwrap().messages
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_request_accept_admits_reject_does_not_and_outsiders_are_refused() {
    let (control, alice, bob) = (start().await, start().await, start().await);
    let id = create(&control.node, Access::OnRequest, false).await;
    let invite = Invite::decode(&control.node.invite_member(id, None).await.unwrap().encode()).unwrap();
    assert!(invite.key.is_none() && invite.grant.is_none());
    let mut control_events = control.node.subscribe();
    let mut alice_events = alice.node.subscribe();
    for n in [&alice, &bob] {
        n.node.request_to_join(invite.clone()).await.unwrap();
        connect(&n.node, &control.node).await;
    }
    // Both requests reach the control node, signed by the requesters' keys.
    let mut requesters = std::collections::BTreeSet::new();
    while requesters.len() < 2 {
        requesters.insert(
            wait_for(&mut control_events, |e| match e {
                Event::RequestToJoin { member, .. } => Some(*member),
                _ => None,
            })
            .await,
        );
    }
    assert_eq!(requesters, [alice.key(), bob.key()].into_iter().collect());
    assert_eq!(control.node.pending_requests(&id).unwrap().len(), 2);

    control.node.accept_request(id, alice.key()).await.unwrap();
    control.node.reject_request(id, bob.key()).await.unwrap();
    assert!(control.node.pending_requests(&id).unwrap().is_empty());
    assert!(control.node.accept_request(id, bob.key()).await.is_err(), "no longer pending");
    wait_member(&alice.node, id, alice.key(), &mut alice_events).await;

    // Alice's message is taken; Bob's node refuses to send, and what Bob publishes anyway
    // (signed by his key) is refused and costs his node its score.
    let sent = alice.node.send_message(id, Topic::from_name("chat"), b"hi, I am in".to_vec()).await.unwrap();
    wait_stored(&mut control_events, sent.hash).await;
    assert!(bob.node.send_message(id, Topic::from_name("chat"), b"let me in".to_vec()).await.is_err());
    let forced = signed(&bob.author(), &id, "I write anyway");
    bob.node.network().publish(archive_node::gossip::messages_topic(&id), forced.encode()).await.unwrap();
    wait_negative_score(&control.node, bob.node.network().local_peer_id()).await;
    assert_eq!(stored(&control.node, &id).iter().filter(|m| m.hash == forced.hash).count(), 0);
    assert!(control.node.counters().refusals().iter().any(|(r, n)| r.contains("not a member") && *n > 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_banned_key_is_refused_everywhere_from_then_on() {
    let (control, alice, carol) = (start().await, start().await, start().await);
    let id = create(&control.node, Access::InvitationOnly, false).await;
    let mut carol_events = carol.node.subscribe();
    for n in [&alice, &carol] {
        let invite = control.node.invite_member(id, Some(n.key())).await.unwrap();
        // An invite names its member: another node cannot use it.
        let other = if n.key() == alice.key() { &carol } else { &alice };
        assert!(other.node.join_community(invite.clone()).await.is_err(), "the invite is for another key");
        n.node.join_community(invite).await.unwrap();
        connect(&n.node, &control.node).await;
    }
    wait_member(&carol.node, id, alice.key(), &mut carol_events).await;
    let before =
        alice.node.send_message(id, Topic::from_name("chat"), b"before the ban".to_vec()).await.unwrap();
    wait_stored(&mut carol_events, before.hash).await;

    control.node.ban(id, alice.key()).await.unwrap();
    wait_for(&mut carol_events, |e| {
        matches!(e, Event::MemberBanned { member, .. } if *member == alice.key()).then_some(())
    })
    .await;
    let after = signed(&alice.author(), &id, "after the ban");
    alice.node.network().publish(archive_node::gossip::messages_topic(&id), after.encode()).await.unwrap();
    wait_negative_score(&control.node, alice.node.network().local_peer_id()).await;
    for n in [&control, &carol] {
        assert!(stored(&n.node, &id).iter().all(|m| m.hash != after.hash), "not stored");
    }
    // Nor archived, the earlier one included: a banned key's messages are not served.
    let m = control.node.send_message(id, Topic::from_name("chat"), b"still here".to_vec()).await.unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    while std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
        <= now.max(m.timestamp)
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let round = control.node.seeder().round(id).await.unwrap();
    assert_eq!((round.messages, round.refused), (1, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kicked_member_cannot_read_what_follows_and_the_others_read_everything() {
    let (control, alice, bob) = (start().await, start().await, start().await);
    let id = create(&control.node, Access::InvitationOnly, true).await;
    let mut alice_events = alice.node.subscribe();
    let mut bob_events = bob.node.subscribe();
    for n in [&alice, &bob] {
        let invite = control.node.invite_member(id, Some(n.key())).await.unwrap();
        assert!(invite.key.is_none(), "the key comes sealed to the member, not in the invite");
        n.node.join_community(invite).await.unwrap();
        connect(&n.node, &control.node).await;
    }
    wait_member(&alice.node, id, bob.key(), &mut alice_events).await;
    wait_member(&bob.node, id, bob.key(), &mut bob_events).await;
    let first = control.node.send_message(id, Topic::from_name("chat"), b"for both".to_vec()).await.unwrap();
    wait_stored(&mut alice_events, first.hash).await;
    wait_stored(&mut bob_events, first.hash).await;

    control.node.kick(id, bob.key()).await.unwrap();
    let rekeyed = wait_for(&mut alice_events, |e| match e {
        Event::Rekeyed { key_id, .. } => Some(key_id.clone()),
        _ => None,
    })
    .await;
    let second =
        control.node.send_message(id, Topic::from_name("chat"), b"after the kick".to_vec()).await.unwrap();
    wait_stored(&mut alice_events, second.hash).await;
    let missing = wait_for(&mut bob_events, |e| match e {
        Event::KeyMissing { key_id, .. } => Some(key_id.clone()),
        _ => None,
    })
    .await;
    assert_eq!(missing, rekeyed, "the kicked member's node names the key it lacks");
    assert_eq!(stored(&bob.node, &id), vec![first.clone()], "it keeps what it could read");
    assert_eq!(stored(&alice.node, &id).len(), 2);
}

/// Builds an archive of `messages` and an index of it, stores both on `node` and announces
/// the index with the community key: what a lying control node could do.
async fn announce_forged_history(control: &Node, id: CommunityId, messages: &[Message]) {
    let record = control.communities().get(&id).unwrap().unwrap();
    let key = record.control_key().unwrap().unwrap();
    let ts: Vec<u64> = messages.iter().map(|m| m.timestamp).collect();
    let metadata = Metadata {
        from: *ts.iter().min().unwrap(),
        to: ts.iter().max().unwrap() + 1,
        topics: vec![Topic::from_name("chat")],
    };
    let mut w = ArchiveWriter::new(&metadata);
    for m in messages {
        w.push_encoded(&m.encode());
    }
    let layout = archive_node::blocks::unixfs::Layout::default();
    let archive = archive_node::blocks::files::add(control.blocks(), &mut &w.finish()[..], layout).unwrap();
    let mut index = Index::default();
    index.insert(Entry { metadata, cid: archive.root.to_string() });
    let index = archive_node::blocks::files::add(control.blocks(), &mut &index.encode()[..], layout).unwrap();
    let clock = u64::MAX / 2;
    let signed = archive_node::announce::sign(
        &key,
        &archive_node::announce::Announcement { clock, cid: index.root.to_string() },
    );
    control.network().publish(archive_node::gossip::archives_topic(&id), signed.bytes).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_reject_at_import_what_a_lying_control_node_put_in_an_archive() {
    let (control, alice) = (start().await, start().await);
    let id = create(&control.node, Access::InvitationOnly, false).await;
    let mut events = alice.node.subscribe();
    invite_and_join(&control.node, &alice, id, &mut events).await;
    // A real message of the control node's own key, one "by" a key that is no member, and one
    // whose text was changed after its member signed it.
    let control_author = control.author();
    let genuine = signed(&control_author, &id, "genuine");
    let stranger = signed(&KeyPair::generate(), &id, "I was never invited");
    let mut altered = signed(&alice.author(), &id, "what alice said");
    altered.payload = b"what alice never said".to_vec();
    announce_forged_history(&control.node, id, &[genuine.clone(), stranger, altered]).await;
    let outcome = wait_for(&mut events, |e| match e {
        Event::Imported { outcome, .. } => Some(*outcome),
        _ => None,
    })
    .await;
    assert_eq!((outcome.imported, outcome.rejected), (1, 2));
    assert_eq!(stored(&alice.node, &id), vec![genuine]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_that_leaves_is_removed_and_an_unbanned_key_must_be_admitted_again() {
    let (control, alice) = (start().await, start().await);
    let id = create(&control.node, Access::InvitationOnly, false).await;
    let mut control_events = control.node.subscribe();
    let mut alice_events = alice.node.subscribe();
    invite_and_join(&control.node, &alice, id, &mut alice_events).await;

    assert!(alice.node.leave_community(id).await.unwrap());
    wait_for(&mut control_events, |e| {
        matches!(e, Event::MemberRemoved { member, .. } if *member == alice.key()).then_some(())
    })
    .await;
    let entry = control.node.description(&id).unwrap().unwrap().description.members[&alice.key()].clone();
    assert!(!entry.is_active() && entry.spans.len() == 1 && entry.spans[0].to.is_some(), "{entry:?}");
    assert!(alice.node.description(&id).unwrap().is_none(), "the leaver forgets the community");

    control.node.ban(id, alice.key()).await.unwrap();
    assert!(control.node.invite_member(id, Some(alice.key())).await.is_err(), "a banned key is not invited");
    control.node.unban(id, alice.key()).await.unwrap();
    assert!(control.node.unban(id, alice.key()).await.is_err(), "not banned any more");
    let d = control.node.description(&id).unwrap().unwrap();
    assert!(!d.description.members[&alice.key()].is_active(), "unbanned, not admitted");
    control.node.invite_member(id, Some(alice.key())).await.unwrap();
    let d = control.node.description(&id).unwrap().unwrap();
    assert_eq!(d.description.members[&alice.key()].spans.len(), 2, "a second span of membership");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_community_made_before_descriptions_becomes_an_open_one_on_start() {
    let dir = tempfile::tempdir().unwrap();
    let data = DataDir::new(dir.path());
    data.create().unwrap();
    // What an older version left: a controlled community and no description.
    let id = {
        let db = archive_node::db::Db::open(&data.db()).unwrap();
        let communities = archive_node::communities::Communities::open(&db).unwrap();
        communities.create("old", false, 1).unwrap().community_id().unwrap()
    };
    let c = Config { gossip: archive_node::gossip::Config::fast_for_tests(), ..Config::default() };
    let node = Node::start(&data, c, CancellationToken::new()).await.unwrap();
    let d = node.description(&id).unwrap().expect("a first description");
    assert_eq!(d.description.access, Access::Open);
    assert!(d.description.members[&node.member_key()].is_active(), "the control node's key is a member");
    node.send_message(id, Topic::from_name("chat"), b"still works".to_vec()).await.unwrap();
}
