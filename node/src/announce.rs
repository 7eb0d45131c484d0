//! Signed announcements of a community's latest archive index (pure).
//!
//! Wire: `SignedEnvelope { signature, payload, type }` whose payload is
//! `ArchiveIndexCidMessage { clock, cid }` and whose signature is the 65-byte recoverable
//! secp256k1 signature of keccak256(payload) by the community key. A node accepts an announcement
//! only when the signature recovers the community id, the community is joined, and (clock, cid)
//! is strictly greater than the stored pair; equal or older is ignored, a bad signature or
//! encoding is rejected (and its forwarder penalised).

use archive_proto::pb::archive as pb;
use prost::Message as _;

use crate::community::CommunityId;
use crate::crypto::{self, KeyPair};
use crate::envelope::{self, Kind};

/// Largest envelope accepted (a CID and a clock fit in far less).
pub const MAX_ENVELOPE_BYTES: usize = 1024;
/// Longest CID string accepted.
pub const MAX_CID_LEN: usize = 128;

/// An index announcement: the community's latest index CID at a clock.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Announcement {
    pub clock: u64,
    pub cid: String,
}

/// A signed announcement as it travels.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Signed {
    pub announcement: Announcement,
    /// The encoded `SignedEnvelope`.
    pub bytes: Vec<u8>,
}

/// Why an envelope is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    #[error("envelope of {0} bytes is over the limit")]
    TooLarge(usize),
    #[error("malformed envelope: {0}")]
    Malformed(String),
    #[error("envelope type {0} is not an index announcement")]
    WrongType(u32),
    #[error("not signed by the community key")]
    WrongSigner,
    #[error("bad signature: {0}")]
    Signature(#[from] crypto::Error),
}

/// Signs an announcement with the community key.
pub fn sign(community_key: &KeyPair, a: &Announcement) -> Signed {
    let payload = pb::ArchiveIndexCidMessage { clock: a.clock, cid: a.cid.clone() }.encode_to_vec();
    let bytes = envelope::sign(community_key, Kind::Announcement, payload);
    Signed { announcement: a.clone(), bytes }
}

/// Decodes an envelope and checks it was signed by `community`'s key.
pub fn verify(community: &CommunityId, bytes: &[u8]) -> Result<Signed, Error> {
    let env = envelope::open(bytes, MAX_ENVELOPE_BYTES).map_err(|e| match e {
        envelope::Error::TooLarge { len, .. } => Error::TooLarge(len),
        envelope::Error::Malformed(m) => Error::Malformed(m),
        envelope::Error::UnknownType(t) => Error::WrongType(t),
        envelope::Error::Signature(s) => Error::Signature(s),
    })?;
    if env.kind != Kind::Announcement {
        return Err(Error::WrongType(env.kind as u32));
    }
    if &env.signer != community.as_bytes() {
        return Err(Error::WrongSigner);
    }
    let msg =
        pb::ArchiveIndexCidMessage::decode(&env.payload[..]).map_err(|e| Error::Malformed(e.to_string()))?;
    if msg.cid.is_empty() || msg.cid.len() > MAX_CID_LEN {
        return Err(Error::Malformed(format!("CID of {} characters", msg.cid.len())));
    }
    Ok(Signed { announcement: Announcement { clock: msg.clock, cid: msg.cid }, bytes: bytes.to_vec() })
}

/// What to do with a verified announcement, given the stored one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Newer: store it, act on it, forward it.
    Accept,
    /// Equal or older: drop it, do not forward.
    Ignore,
}

/// The acceptance rule: strictly greater (clock, cid), lexicographically.
pub fn decide(stored: Option<&Announcement>, incoming: &Announcement) -> Decision {
    match stored {
        Some(s) if incoming <= s => Decision::Ignore,
        _ => Decision::Accept,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(clock: u64, cid: &str) -> Announcement {
        Announcement { clock, cid: cid.into() }
    }

    #[test]
    fn sign_verify_and_forgeries() {
        let key = KeyPair::generate();
        let community: CommunityId = key.public_hex().parse().unwrap();
        let signed = sign(&key, &a(7, "bafyindex"));
        assert_eq!(verify(&community, &signed.bytes).unwrap().announcement, a(7, "bafyindex"));

        // Signed by another key: rejected.
        let forged = sign(&KeyPair::generate(), &a(8, "bafyevil"));
        assert_eq!(verify(&community, &forged.bytes), Err(Error::WrongSigner));

        // Payload changed after signing: the signature no longer recovers the community key.
        let mut env = pb::SignedEnvelope::decode(&signed.bytes[..]).unwrap();
        env.payload = pb::ArchiveIndexCidMessage { clock: 9, cid: "bafyindex".into() }.encode_to_vec().into();
        assert!(verify(&community, &env.encode_to_vec()).is_err());

        assert!(matches!(verify(&community, &[0xff; 10]), Err(Error::Malformed(_))));
        assert!(matches!(verify(&community, &vec![0u8; MAX_ENVELOPE_BYTES + 1]), Err(Error::TooLarge(_))));
    }

    #[test]
    fn only_strictly_greater_is_accepted() {
        assert_eq!(decide(None, &a(1, "x")), Decision::Accept);
        assert_eq!(decide(Some(&a(5, "b")), &a(5, "b")), Decision::Ignore, "a replay");
        assert_eq!(decide(Some(&a(5, "b")), &a(4, "z")), Decision::Ignore, "older clock");
        assert_eq!(decide(Some(&a(5, "b")), &a(5, "c")), Decision::Accept, "same clock, greater cid");
        assert_eq!(decide(Some(&a(5, "b")), &a(5, "a")), Decision::Ignore);
        assert_eq!(decide(Some(&a(5, "b")), &a(6, "a")), Decision::Accept);
    }

    /// 50 simulated nodes gossip announcements with random delays, duplication and loss (seeded);
    /// each applies `decide` and forwards only what it accepted. Every node that hears the
    /// newest announcement ends on it, and no node ever moves backwards.
    #[test]
    fn simulation_converges_to_the_greatest_announcement() {
        use rand::{Rng, SeedableRng};
        for seed in 0..20u64 {
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            const N: usize = 50;
            // A sparse random topology: each node links to 3 others (both ways).
            let mut links = vec![Vec::new(); N];
            for i in 0..N {
                for _ in 0..3 {
                    let j = rng.gen_range(0..N);
                    if i != j {
                        links[i].push(j);
                        links[j].push(i);
                    }
                }
                // A ring keeps the graph connected.
                links[i].push((i + 1) % N);
                links[(i + 1) % N].push(i);
            }
            let mut stored: Vec<Option<Announcement>> = vec![None; N];
            // (deliver_at, to, announcement)
            let mut queue: Vec<(u64, usize, Announcement)> = Vec::new();
            let announcements: Vec<Announcement> = (0..5).map(|k| a(100 + k, &format!("cid{k}"))).collect();
            for (k, ann) in announcements.iter().enumerate() {
                // The control node (node 0) publishes at times 0, 10, 20...; the last one is the greatest.
                queue.push((k as u64 * 10, 0, ann.clone()));
            }
            // The control node re-publishes its latest to its neighbours now and then.
            for t in (100..400).step_by(50) {
                for &peer in &links[0] {
                    queue.push((t, peer, announcements[4].clone()));
                }
            }
            let mut pulls_left = 5;
            loop {
                if queue.is_empty() {
                    // Request-response: every node asks a random neighbour for its latest (lossy).
                    if pulls_left == 0 {
                        break;
                    }
                    pulls_left -= 1;
                    for i in 0..N {
                        let peer = links[i][rng.gen_range(0..links[i].len())];
                        if let (Some(ann), false) = (stored[peer].clone(), rng.gen_bool(0.2)) {
                            queue.push((1_000, i, ann));
                        }
                    }
                    continue;
                }
                queue.sort_by_key(|(t, _, _)| std::cmp::Reverse(*t));
                let (now, to, ann) = queue.pop().expect("checked non-empty above");
                let before = stored[to].clone();
                if decide(stored[to].as_ref(), &ann) == Decision::Ignore {
                    continue;
                }
                assert!(before.as_ref().is_none_or(|b| &ann > b), "never backwards");
                stored[to] = Some(ann.clone());
                for &peer in &links[to] {
                    if rng.gen_bool(0.2) {
                        continue; // lost
                    }
                    let copies = if rng.gen_bool(0.1) { 2 } else { 1 }; // duplicated
                    for _ in 0..copies {
                        queue.push((now + rng.gen_range(1..30), peer, ann.clone()));
                    }
                }
            }
            for (i, s) in stored.iter().enumerate() {
                assert_eq!(s.as_ref(), Some(&announcements[4]), "seed {seed}: node {i} did not converge");
            }
        }
    }
}
