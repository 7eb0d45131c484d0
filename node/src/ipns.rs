//! IPNS records naming a community's latest history root (specs.ipfs.tech/ipns/ipns-record).
//!
//! The name is the libp2p peer id of the community's secp256k1 key (the key inlined in an
//! identity multihash), so the community id maps to exactly one IPNS name. A record holds
//! `/ipfs/<root>` with `Sequence` = the announcement's Lamport clock, signed (V2: over
//! `"ipns-signature:"` + the DAG-CBOR `data`) by the community key. We write V2-only records, as
//! Helia does with `v1Compatible: false`; on records we read, V1 fields, when present, must match
//! `data` (as Helia and kubo check).
//!
//! A record is valid when it is at most [`MAX_RECORD_BYTES`], its V2 signature verifies with the
//! community key, its value is `/ipfs/<CID>`, and it has not expired. Of two valid records the one
//! with the greater sequence wins, then the one valid longer (the IPNS selector).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use archive_proto::pb::ipns as pb;
use libp2p::identity::{self, secp256k1};
use libp2p::PeerId;
use prost::Message as _;
use serde::{Deserialize, Serialize};

use crate::blocks::cid::Cid;
use crate::community::CommunityId;
use crate::crypto::KeyPair;

/// Largest record accepted (Helia's and kubo's limit).
pub const MAX_RECORD_BYTES: usize = 10 * 1024;

/// What the V2 signature covers, before the data.
const SIGNATURE_V2_PREFIX: &[u8] = b"ipns-signature:";

/// The only validity type: valid until (`EOL`).
const EOL: u64 = 0;

/// Errors of making and checking records.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    #[error("IPNS record of {0} bytes, over {MAX_RECORD_BYTES}")]
    TooLarge(usize),
    #[error("malformed IPNS record: {0}")]
    Malformed(String),
    #[error("IPNS record without a V2 signature or data")]
    Unsigned,
    #[error("IPNS record signature does not verify with the community key")]
    BadSignature,
    #[error("IPNS record carries a public key that is not the community's")]
    WrongKey,
    #[error("IPNS record expired at {0}")]
    Expired(String),
    #[error("IPNS record's validity type {0} is not EOL")]
    ValidityType(u64),
    #[error("IPNS record's V1 fields do not match its data")]
    Mismatch,
    #[error("IPNS record value {0:?} is not /ipfs/<CID>")]
    Value(String),
    #[error("community key: {0}")]
    Key(String),
}

/// The DAG-CBOR `data` of a record (map keys sorted by the encoder, as DAG-CBOR wants).
#[derive(Serialize, Deserialize)]
struct Data {
    #[serde(rename = "Value", with = "serde_bytes")]
    value: Vec<u8>,
    #[serde(rename = "Validity", with = "serde_bytes")]
    validity: Vec<u8>,
    #[serde(rename = "ValidityType")]
    validity_type: u64,
    #[serde(rename = "Sequence")]
    sequence: u64,
    #[serde(rename = "TTL")]
    ttl: u64,
}

/// A valid record, with its bytes as received or made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// The history root the record names.
    pub root: Cid,
    /// The announcement clock.
    pub sequence: u64,
    /// Valid until, nanoseconds since the Unix epoch.
    pub validity_ns: i128,
    /// How long others may cache it, nanoseconds.
    pub ttl_ns: u64,
    /// The protobuf `IpnsEntry`.
    pub bytes: Vec<u8>,
}

impl Record {
    /// The validity as RFC 3339 (what the record holds).
    pub fn validity(&self) -> String {
        rfc3339(self.validity_ns)
    }

    /// How the IPNS selector orders records of one name: sequence, then validity.
    pub fn rank(&self) -> (u64, i128) {
        (self.sequence, self.validity_ns)
    }
}

/// The IPNS name of a community: the peer id of its key.
pub fn name(community: &CommunityId) -> Result<PeerId, Error> {
    Ok(public_key(community)?.to_peer_id())
}

/// The DHT key of a community's records: `/ipns/` + the name's multihash bytes.
pub fn routing_key(community: &CommunityId) -> Result<Vec<u8>, Error> {
    let mut key = b"/ipns/".to_vec();
    key.extend_from_slice(&name(community)?.to_bytes());
    Ok(key)
}

/// The community whose name a DHT key (`/ipns/` + multihash) is, when the name inlines a
/// secp256k1 key (the only names this node keeps records of).
pub fn community_of(routing_key: &[u8]) -> Option<CommunityId> {
    let name = PeerId::from_bytes(routing_key.strip_prefix(b"/ipns/")?).ok()?;
    let hash = multihash::Multihash::<64>::from_bytes(&name.to_bytes()).ok()?;
    if hash.code() != 0x00 {
        return None;
    }
    let key = identity::PublicKey::try_decode_protobuf(hash.digest()).ok()?.try_into_secp256k1().ok()?;
    Some(CommunityId::from_bytes(key.to_bytes()))
}

fn public_key(community: &CommunityId) -> Result<identity::PublicKey, Error> {
    let key =
        secp256k1::PublicKey::try_from_bytes(community.as_bytes()).map_err(|e| Error::Key(e.to_string()))?;
    Ok(identity::PublicKey::from(key))
}

/// Nanoseconds since the Unix epoch, now.
pub fn now_ns() -> i128 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as i128)
}

/// RFC 3339 in UTC with nine fractional digits (as Helia writes it).
fn rfc3339(ns: i128) -> String {
    let format = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:9]Z"
    );
    time::OffsetDateTime::from_unix_timestamp_nanos(ns)
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_default()
}

fn parse_rfc3339(s: &str) -> Result<i128, Error> {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map(|t| t.unix_timestamp_nanos())
        .map_err(|e| Error::Malformed(format!("validity {s:?}: {e}")))
}

/// Makes the record naming `root` with `sequence`, valid for `validity` from `now_ns`, cached
/// for `ttl`, signed by the community key.
pub fn create(
    key: &KeyPair,
    root: &Cid,
    sequence: u64,
    now_ns: i128,
    validity: Duration,
    ttl: Duration,
) -> Result<Record, Error> {
    let validity_ns = now_ns.saturating_add(validity.as_nanos() as i128);
    let data = Data {
        value: format!("/ipfs/{root}").into_bytes(),
        validity: rfc3339(validity_ns).into_bytes(),
        validity_type: EOL,
        sequence,
        ttl: ttl.as_nanos() as u64,
    };
    let data = serde_ipld_dagcbor::to_vec(&data).map_err(|e| Error::Malformed(e.to_string()))?;
    let secret = hex::decode(key.secret_hex()).map_err(|e| Error::Key(e.to_string()))?;
    let secret = secp256k1::SecretKey::try_from_bytes(secret).map_err(|e| Error::Key(e.to_string()))?;
    let signature = identity::Keypair::from(secp256k1::Keypair::from(secret))
        .sign(&[SIGNATURE_V2_PREFIX, &data].concat())
        .map_err(|e| Error::Key(e.to_string()))?;
    let entry =
        pb::IpnsEntry { signature_v2: Some(signature.into()), data: Some(data.into()), ..Default::default() };
    let bytes = entry.encode_to_vec();
    Ok(Record { root: *root, sequence, validity_ns, ttl_ns: ttl.as_nanos() as u64, bytes })
}

/// Checks a record of `community`'s name at `now_ns` (module docs).
pub fn validate(community: &CommunityId, bytes: &[u8], now_ns: i128) -> Result<Record, Error> {
    if bytes.len() > MAX_RECORD_BYTES {
        return Err(Error::TooLarge(bytes.len()));
    }
    let entry = pb::IpnsEntry::decode(bytes).map_err(|e| Error::Malformed(e.to_string()))?;
    let (Some(signature), Some(raw)) = (&entry.signature_v2, &entry.data) else {
        return Err(Error::Unsigned);
    };
    let key = public_key(community)?;
    if let Some(embedded) = &entry.pub_key {
        if identity::PublicKey::try_decode_protobuf(embedded).ok().as_ref() != Some(&key) {
            return Err(Error::WrongKey);
        }
    }
    if !key.verify(&[SIGNATURE_V2_PREFIX, raw].concat(), signature) {
        return Err(Error::BadSignature);
    }
    let data: Data =
        serde_ipld_dagcbor::from_slice(raw).map_err(|e| Error::Malformed(format!("data: {e}")))?;
    if data.validity_type != EOL {
        return Err(Error::ValidityType(data.validity_type));
    }
    // A V1+V2 record: the signed data is what counts, and the V1 copy must say the same.
    if entry.value.is_some() && entry.signature_v1.is_some() {
        let same = entry.value.as_deref() == Some(&data.value[..])
            && entry.validity.as_deref() == Some(&data.validity[..])
            && entry.validity_type.unwrap_or(0) as u64 == data.validity_type
            && entry.sequence == Some(data.sequence)
            && entry.ttl.is_none_or(|t| t == data.ttl);
        if !same {
            return Err(Error::Mismatch);
        }
    }
    let validity =
        String::from_utf8(data.validity).map_err(|_| Error::Malformed("validity is not UTF-8".into()))?;
    let validity_ns = parse_rfc3339(&validity)?;
    if validity_ns < now_ns {
        return Err(Error::Expired(validity));
    }
    let value = String::from_utf8_lossy(&data.value).into_owned();
    let root = value
        .strip_prefix("/ipfs/")
        .and_then(|c| c.parse::<Cid>().ok())
        .ok_or_else(|| Error::Value(value.clone()))?;
    Ok(Record { root, sequence: data.sequence, validity_ns, ttl_ns: data.ttl, bytes: bytes.to_vec() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const HOUR: Duration = Duration::from_secs(3600);

    fn community() -> (KeyPair, CommunityId) {
        let key = KeyPair::generate();
        let id = key.public_hex().parse().unwrap();
        (key, id)
    }

    fn root() -> Cid {
        crate::blocks::cid::raw(b"history root")
    }

    #[test]
    fn a_record_validates_and_says_what_it_was_made_with() {
        let (key, id) = community();
        let now = now_ns();
        let made = create(&key, &root(), 42, now, 48 * HOUR, HOUR).unwrap();
        let read = validate(&id, &made.bytes, now).unwrap();
        assert_eq!(read, made);
        assert_eq!((read.root, read.sequence, read.ttl_ns), (root(), 42, HOUR.as_nanos() as u64));
        assert_eq!(parse_rfc3339(&read.validity()).unwrap(), read.validity_ns);
        // The name inlines the key: its multihash is the identity of the protobuf public key.
        let name = name(&id).unwrap();
        assert_eq!(name.to_bytes()[0], 0x00, "identity multihash");
        assert!(routing_key(&id).unwrap().starts_with(b"/ipns/"));
        assert_eq!(community_of(&routing_key(&id).unwrap()), Some(id));
        assert_eq!(community_of(b"/ipns/not a peer id"), None);
        assert_eq!(community_of(b"/pk/whatever"), None);
    }

    #[test]
    fn another_key_an_expired_record_and_a_changed_byte_are_refused() {
        let (key, id) = community();
        let (other, _) = community();
        let now = now_ns();
        let forged = create(&other, &root(), 1, now, HOUR, HOUR).unwrap();
        assert_eq!(validate(&id, &forged.bytes, now), Err(Error::BadSignature));
        let old = create(&key, &root(), 1, now - 2 * HOUR.as_nanos() as i128, HOUR, HOUR).unwrap();
        assert!(matches!(validate(&id, &old.bytes, now), Err(Error::Expired(_))));
        let good = create(&key, &root(), 1, now, HOUR, HOUR).unwrap();
        let mut entry = pb::IpnsEntry::decode(&good.bytes[..]).unwrap();
        let mut data = entry.data.clone().unwrap().to_vec();
        let last = data.len() - 1;
        data[last] ^= 1; // the TTL's last byte
        entry.data = Some(data.into());
        assert_eq!(validate(&id, &entry.encode_to_vec(), now), Err(Error::BadSignature));
        assert_eq!(
            validate(&id, &vec![0u8; MAX_RECORD_BYTES + 1], now),
            Err(Error::TooLarge(MAX_RECORD_BYTES + 1))
        );
        assert_eq!(validate(&id, &pb::IpnsEntry::default().encode_to_vec(), now), Err(Error::Unsigned));
    }

    #[test]
    fn v1_fields_that_disagree_with_the_signed_data_are_refused() {
        let (key, id) = community();
        let now = now_ns();
        let good = create(&key, &root(), 7, now, HOUR, HOUR).unwrap();
        let mut entry = pb::IpnsEntry::decode(&good.bytes[..]).unwrap();
        entry.value = Some(format!("/ipfs/{}", crate::blocks::cid::raw(b"elsewhere")).into_bytes().into());
        entry.signature_v1 = Some(vec![1, 2, 3].into());
        entry.sequence = Some(7);
        assert_eq!(validate(&id, &entry.encode_to_vec(), now), Err(Error::Mismatch));
    }

    #[test]
    fn an_embedded_key_must_be_the_communitys() {
        let (key, id) = community();
        let (other, _) = community();
        let now = now_ns();
        let good = create(&key, &root(), 7, now, HOUR, HOUR).unwrap();
        let mut entry = pb::IpnsEntry::decode(&good.bytes[..]).unwrap();
        let other_id: CommunityId = other.public_hex().parse().unwrap();
        entry.pub_key = Some(public_key(&other_id).unwrap().encode_protobuf().into());
        assert_eq!(validate(&id, &entry.encode_to_vec(), now), Err(Error::WrongKey));
    }

    #[test]
    fn our_records_equal_what_helia_makes_byte_for_byte() {
        // node/tests/data/ipns_vectors.json: tests-functional/js/ipns-check.mjs vectors.
        let raw = include_str!("../tests/data/ipns_vectors.json");
        let vectors: serde_json::Value = serde_json::from_str(raw).unwrap();
        let cases = vectors["cases"].as_array().unwrap();
        assert!(!cases.is_empty());
        for case in cases {
            let key = KeyPair::from_secret_hex(case["secret"].as_str().unwrap()).unwrap();
            let id: CommunityId = key.public_hex().parse().unwrap();
            let root: Cid = case["value"].as_str().unwrap().strip_prefix("/ipfs/").unwrap().parse().unwrap();
            let sequence: u64 = case["sequence"].as_str().unwrap().parse().unwrap();
            let now = i128::from(case["now_ms"].as_u64().unwrap()) * 1_000_000;
            let validity = Duration::from_millis(case["lifetime_ms"].as_u64().unwrap());
            let ttl = Duration::from_nanos(case["ttl_ns"].as_str().unwrap().parse().unwrap());
            let ours = create(&key, &root, sequence, now, validity, ttl).unwrap();
            let helia = base64::Engine::decode(
                &base64::engine::general_purpose::STANDARD,
                case["record"].as_str().unwrap(),
            )
            .unwrap();
            assert_eq!(ours.bytes, helia, "record of {}", case["value"]);
            assert_eq!(validate(&id, &helia, now).unwrap(), ours);
        }
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_validate_and_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let (_, id) = community();
            prop_assert!(validate(&id, &bytes, now_ns()).is_err());
        }

        #[test]
        fn rank_orders_by_sequence_then_validity(a in 0u64..100, b in 0u64..100, da in 1u64..1000, db in 1u64..1000) {
            let (key, id) = community();
            let now = now_ns();
            let ra = validate(&id, &create(&key, &root(), a, now, Duration::from_secs(da), HOUR).unwrap().bytes, now).unwrap();
            let rb = validate(&id, &create(&key, &root(), b, now, Duration::from_secs(db), HOUR).unwrap().bytes, now).unwrap();
            prop_assert_eq!(ra.rank() > rb.rank(), a > b || (a == b && da > db));
        }
    }
}
