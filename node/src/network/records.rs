//! What this node keeps on the DHT for other peers: IPNS records of community names (a name
//! inlining a secp256k1 key), each valid ([`crate::ipns::validate`]) and ranked above the one
//! held for that name. Any other record is refused: our DHT carries providers and these names.

use crate::ipns;

/// Why a record put to us is not stored.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Refused {
    #[error("not the IPNS name of a community key")]
    NotACommunityName,
    #[error("invalid IPNS record: {0}")]
    Invalid(#[from] ipns::Error),
    #[error("not newer than the record held (sequence {held_sequence})")]
    NotNewer { held_sequence: u64 },
}

/// Whether to store `value` under `key`, given the record `held` there (validated again: it may
/// have expired since), at `now_ns`.
pub fn admit(key: &[u8], value: &[u8], held: Option<&[u8]>, now_ns: i128) -> Result<ipns::Record, Refused> {
    let community = ipns::community_of(key).ok_or(Refused::NotACommunityName)?;
    let record = ipns::validate(&community, value, now_ns)?;
    if let Some(held) = held.and_then(|h| ipns::validate(&community, h, now_ns).ok()) {
        if record.rank() <= held.rank() {
            return Err(Refused::NotNewer { held_sequence: held.sequence });
        }
    }
    Ok(record)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::community::CommunityId;
    use crate::crypto::KeyPair;
    use std::time::Duration;

    const HOUR: Duration = Duration::from_secs(3600);

    #[test]
    fn only_newer_valid_records_of_community_names_are_kept() {
        let key = KeyPair::generate();
        let id: CommunityId = key.public_hex().parse().unwrap();
        let name = ipns::routing_key(&id).unwrap();
        let now = ipns::now_ns();
        let root = crate::blocks::cid::raw(b"root");
        let first = ipns::create(&key, &root, 5, now, HOUR, HOUR).unwrap();
        let newer = ipns::create(&key, &root, 6, now, HOUR, HOUR).unwrap();
        let longer = ipns::create(&key, &root, 5, now, 2 * HOUR, HOUR).unwrap();
        assert_eq!(admit(&name, &first.bytes, None, now).unwrap().sequence, 5);
        assert!(admit(&name, &newer.bytes, Some(&first.bytes), now).is_ok());
        assert!(admit(&name, &longer.bytes, Some(&first.bytes), now).is_ok(), "same sequence, valid longer");
        assert_eq!(
            admit(&name, &first.bytes, Some(&newer.bytes), now),
            Err(Refused::NotNewer { held_sequence: 6 })
        );
        assert_eq!(
            admit(&name, &first.bytes, Some(&first.bytes), now),
            Err(Refused::NotNewer { held_sequence: 5 })
        );
        // An expired held record no longer counts.
        let later = now + 3 * HOUR.as_nanos() as i128;
        let fresh = ipns::create(&key, &root, 1, later, HOUR, HOUR).unwrap();
        assert!(admit(&name, &fresh.bytes, Some(&newer.bytes), later).is_ok());
        // Another community's record under this name, or any other key.
        let other = KeyPair::generate();
        let forged = ipns::create(&other, &root, 9, now, HOUR, HOUR).unwrap();
        assert_eq!(admit(&name, &forged.bytes, None, now), Err(Refused::Invalid(ipns::Error::BadSignature)));
        assert_eq!(admit(b"/pk/x", &first.bytes, None, now), Err(Refused::NotACommunityName));
    }
}
