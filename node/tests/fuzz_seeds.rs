//! The fuzzers' seed corpora: real encodings made by the node's own code (signed messages in an
//! archive, an index, sealed blobs, a signed announcement, Bitswap messages, a dag-pb node, a CAR
//! file, the params of every RPC method), each checked to decode as the fuzz target decodes it.
//! With `FUZZ_SEEDS_DIR` set (scripts/fuzz.sh sets it), they are also written to
//! `<dir>/<target>/`.

use std::path::PathBuf;

use archive_node::announce::{self, Announcement};
use archive_node::archive::format::ArchiveWriter;
use archive_node::archive::{seal, Entry, Index, Metadata};
use archive_node::bitswap::codec;
use archive_node::bitswap::message::{Message as BitswapMessage, Want, WantType};
use archive_node::blocks::store::{BlockStore, Config};
use archive_node::blocks::unixfs::Layout;
use archive_node::blocks::{car, files};
use archive_node::community::CommunityId;
use archive_node::crypto::{ArchiveKey, KeyPair};
use archive_node::message::{Message, Topic};

fn write(dir: &Option<PathBuf>, target: &str, name: &str, bytes: &[u8]) {
    let Some(dir) = dir else { return };
    let d = dir.join(target);
    std::fs::create_dir_all(&d).expect("corpus dir");
    std::fs::write(d.join(name), bytes).expect("seed file");
}

#[test]
fn seeds_are_real_encodings_that_decode() {
    let dir: Option<PathBuf> = std::env::var_os("FUZZ_SEEDS_DIR").map(PathBuf::from);
    let control = KeyPair::from_secret_bytes(&[2u8; 32]).expect("key");
    let community: CommunityId = control.public_hex().parse().expect("id");
    let author = KeyPair::from_secret_bytes(&[3u8; 32]).expect("key");

    // An archive of three signed messages, and the index listing it.
    let metadata = Metadata { from: 100, to: 200, topics: vec![Topic::from_name("chat")] };
    let mut w = ArchiveWriter::new(&metadata);
    for i in 0..3u64 {
        let m =
            Message::new_signed(&author, &community, Topic::from_name("chat"), 100 + i, vec![i as u8; 20]);
        w.push_encoded(&m.encode());
    }
    let archive = w.finish();
    let decoded = archive_node::archive::Archive::decode(&archive).expect("archive decodes");
    assert!(decoded.messages.into_iter().all(|m| m.verify(&community).is_ok()));
    write(&dir, "archive", "three-messages", &archive);
    let mut index = Index::default();
    index.insert(Entry {
        metadata: metadata.clone(),
        cid: archive_node::blocks::unixfs::root_cid(&archive).to_string(),
    });
    index.insert(Entry { metadata: Metadata { from: 200, to: 300, topics: vec![] }, cid: "bafkqaaa".into() });
    assert_eq!(Index::decode(&index.encode()).expect("index decodes"), index);
    write(&dir, "index", "two-entries", &index.encode());

    // Sealed with the key the `sealed` target opens with, and with another.
    let key = ArchiveKey::from_bytes(&[9u8; 32]).expect("32 bytes");
    let sealed = seal::seal(&key, &archive);
    assert_eq!(seal::open(&sealed, &seal::KeyRing::single(key.clone())).expect("opens"), archive);
    write(&dir, "sealed", "archive", &sealed);
    write(&dir, "sealed", "index", &seal::seal(&key, &index.encode()));
    write(&dir, "sealed", "other-key", &seal::seal(&ArchiveKey::generate(), b"x"));

    let signed = announce::sign(&control, &Announcement { clock: 7, cid: "bafkqaaa".into() });
    assert_eq!(announce::verify(&community, &signed.bytes).expect("verifies").announcement.clock, 7);
    write(&dir, "announcement", "clock-7", &signed.bytes);
    // An IPNS record of the community the target reads records against (secret [1; 32]).
    let ipns_key = KeyPair::from_secret_bytes(&[1u8; 32]).expect("a valid secret");
    let ipns_community: CommunityId = ipns_key.public_hex().parse().expect("a community id");
    let now = archive_node::ipns::now_ns();
    let hour = std::time::Duration::from_secs(3600);
    let record = archive_node::ipns::create(
        &ipns_key,
        &archive_node::blocks::cid::raw(b"root"),
        7,
        now,
        100_000 * hour,
        hour,
    )
    .expect("a record");
    assert!(archive_node::ipns::validate(&ipns_community, &record.bytes, now).is_ok());
    write(&dir, "announcement", "ipns-record", &record.bytes);

    // A DAG of a few chunks: its dag-pb root, Bitswap messages carrying it, and its CAR.
    let store = BlockStore::memory(Config::default());
    let data: Vec<u8> = (0..40_000u32).flat_map(|i| i.to_be_bytes()).collect();
    let layout = Layout { chunk_size: 16 * 1024, max_links: 4 };
    let root = files::add(&store, &mut &data[..], layout).expect("add").root;
    let root_bytes = store.get(&root).expect("get").expect("root stored");
    assert_eq!(
        archive_node::blocks::dag_pb::decode_file_node(&root_bytes).expect("dag-pb decodes").links.len(),
        3
    );
    write(&dir, "dag_pb", "root", &root_bytes);
    let mut car_bytes = Vec::new();
    car::export(&store, &root, &mut car_bytes).expect("car export");
    let other = BlockStore::memory(Config::default());
    car::import(&other, std::io::Cursor::new(&car_bytes)).expect("CAR imports");
    assert!(
        other.is_complete(&root).expect("complete flag") || other.missing(&root).expect("missing").is_empty()
    );
    write(&dir, "car", "small-dag", &car_bytes);
    let block = archive_node::blocks::Block::verify(root, root_bytes).expect("verified");
    let msgs = [
        BitswapMessage {
            wants: vec![Want {
                cid: root,
                priority: 1,
                cancel: false,
                want_type: WantType::Block,
                send_dont_have: true,
            }],
            full: true,
            ..Default::default()
        },
        BitswapMessage { blocks: vec![block], ..Default::default() },
    ];
    let stream = futures::executor::block_on(async {
        let mut out = futures::io::Cursor::new(Vec::new());
        for m in &msgs {
            codec::write(&mut out, m).await.expect("encode");
        }
        out.into_inner()
    });
    let mut read = futures::io::Cursor::new(stream.clone());
    futures::executor::block_on(async {
        for m in &msgs {
            assert_eq!(codec::read(&mut read).await.expect("reads").as_ref(), Some(m));
        }
    });
    write(&dir, "bitswap", "want-then-block", &stream);

    // Membership: a signed description with members, keys and a ban; a grant; requests to join
    // and to leave; the community-state answer; a key sealed to the control key.
    {
        use archive_node::community::MemberKey;
        use archive_node::membership::{description, keys, requests, Access, Description};
        let mut d = Description::new("a community", Access::OnRequest, true);
        d.clock = 1_700_000_000_000;
        let member = MemberKey::from_bytes(author.public());
        d.admit(member, 100, &[description::ROLE_OWNER]);
        d.ban(MemberKey::from_bytes(KeyPair::from_secret_bytes(&[4u8; 32]).expect("key").public()), 150);
        d.key_chain.push(keys::link(&key, None));
        d.members.get_mut(&member).expect("admitted").sealed_key =
            keys::seal_to_member(&community, &member, &key);
        let signed = description::sign(&control, &d);
        assert_eq!(description::verify(&community, &signed.bytes).expect("verifies").description, d);
        write(&dir, "membership", "description", &signed.bytes);
        let grant = requests::Grant { member, clock: 5 }.sign(&control);
        assert!(requests::Grant::verify(&community, &grant).is_ok());
        write(&dir, "membership", "grant", &grant);
        let join = requests::RequestToJoin::sign(&author, &community, 6, "alice");
        assert!(requests::RequestToJoin::verify(&community, &join).is_ok());
        write(&dir, "membership", "request-to-join", &join);
        let leave = requests::RequestToLeave::sign(&author, &community, 7);
        assert!(requests::RequestToLeave::verify(&community, &leave).is_ok());
        write(&dir, "membership", "request-to-leave", &leave);
        let state = archive_proto::pb::membership::CommunityState {
            announcement: announce::sign(&control, &Announcement { clock: 1, cid: "bafkqaaa".into() })
                .bytes
                .into(),
            description: signed.bytes.clone().into(),
            ..Default::default()
        };
        write(&dir, "membership", "state", &prost::Message::encode_to_vec(&state));
        let to_control = keys::seal_to_member(&community, &MemberKey::from_bytes(control.public()), &key);
        assert_eq!(keys::open_for_member(&community, &control, &to_control).expect("opens"), key);
        write(&dir, "membership", "sealed-key", &to_control);
    }

    // Valid params of every method the rpc_params target picks (first byte: the method).
    let invite = archive_node::communities::Invite {
        id: community.to_string(),
        name: "a community".into(),
        key: Some(hex::encode([9u8; 32])),
        grant: None,
    }
    .encode();
    let peer = libp2p::identity::Keypair::ed25519_from_bytes([7u8; 32]).expect("key").public().to_peer_id();
    for (i, method) in archive_node::rpc::params::METHODS.iter().enumerate() {
        let raw = match *method {
            "node_connect" => r#"{"multiaddr":"/ip4/127.0.0.1/tcp/4001"}"#.to_string(),
            "community_create" => r#"{"name":"a community","encrypted":true}"#.to_string(),
            "community_join" | "community_requestToJoin" => format!(r#"{{"invite":"{invite}"}}"#),
            "community_invite" | "community_kick" => {
                format!(r#"{{"communityId":"{community}","memberKey":"{community}"}}"#)
            }
            "community_setAccess" => format!(r#"{{"communityId":"{community}","access":"on-request"}}"#),
            "messages_send" => format!(r#"{{"communityId":"{community}","topic":"chat","payload":"aGk="}}"#),
            "messages_query" => {
                format!(
                    r#"{{"communityId":"{community}","topics":["chat","0x01020304"],"from":1,"limit":5}}"#
                )
            }
            "archive_setEnabled" => format!(r#"{{"communityId":"{community}","enabled":false}}"#),
            "archive_setInterval" => format!(r#"["{community}",60]"#),
            "blocks_add" => r#"{"data":"aGVsbG8=","chunkSize":1024,"maxLinks":4}"#.to_string(),
            "blocks_addPath" => r#"{"path":"/tmp/x"}"#.to_string(),
            "blocks_cat" => format!(r#"{{"cid":"{root}"}}"#),
            "blocks_fetch" => format!(r#"{{"cid":"{root}","peers":["/ip4/127.0.0.1/tcp/1/p2p/{peer}"]}}"#),
            "debug_publish" => r#"{"topic":"t","data":""}"#.to_string(),
            "node_setBandwidthLimits" => r#"{"maxUploadRate":1000000,"maxDownloadRate":0}"#.to_string(),
            _ => format!(r#"{{"communityId":"{community}"}}"#),
        };
        archive_node::rpc::params::check(method, &raw).unwrap_or_else(|e| panic!("{method} {raw}: {e:?}"));
        write(&dir, "rpc_params", method, &[&[i as u8][..], raw.as_bytes()].concat());
    }
}
