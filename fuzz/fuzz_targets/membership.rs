//! What peers send about membership: signed descriptions, grants, requests to join and to
//! leave (routed by the envelope's type, as the control topic does), the community-state
//! answer, and a sealed member key.
#![no_main]
use archive_node::community::CommunityId;
use archive_node::crypto::KeyPair;
use archive_node::membership::{description, keys, requests};
use libfuzzer_sys::fuzz_target;
use prost::Message as _;

fuzz_target!(|data: &[u8]| {
    // The community key the seeds are signed with ([2; 32]).
    let control = KeyPair::from_secret_bytes(&[2u8; 32]).expect("valid secret");
    let id: CommunityId = control.public_hex().parse().expect("valid id");
    let _ = description::verify(&id, data);
    let _ = description::Description::decode(data);
    let _ = requests::Grant::verify(&id, data);
    let _ = requests::RequestToJoin::verify(&id, data);
    let _ = requests::RequestToLeave::verify(&id, data);
    if let Ok(state) = archive_proto::pb::membership::CommunityState::decode(data) {
        let _ = description::verify(&id, &state.description);
    }
    let _ = keys::open_for_member(&id, &control, data);
});
