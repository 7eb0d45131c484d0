//! What a member or a would-be member signs (pure): grants in invites, requests to join and to
//! leave. Each is a `SignedEnvelope` of its own type; the signer is recovered, never claimed.

use archive_proto::pb::membership as pb;
use prost::Message as _;

use crate::community::{CommunityId, MemberKey};
use crate::crypto::{KeyPair, PUBLIC_KEY_LEN};
use crate::envelope::{self, Kind};

/// Largest grant or request envelope (a few keys and a name).
pub const MAX_REQUEST_BYTES: usize = 1024;
/// Longest display name in a request to join, in characters.
pub const MAX_DISPLAY_NAME_CHARS: usize = 100;

/// Why a grant or request is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    #[error(transparent)]
    Envelope(#[from] envelope::Error),
    #[error("envelope is a {found:?}, not a {expected:?}")]
    WrongType { found: Kind, expected: Kind },
    #[error("not signed by the community key")]
    WrongSigner,
    #[error("for another community")]
    WrongCommunity,
    #[error("malformed: {0}")]
    Malformed(String),
}

fn open(bytes: &[u8], expected: Kind) -> Result<envelope::Opened, Error> {
    let env = envelope::open(bytes, MAX_REQUEST_BYTES)?;
    if env.kind != expected {
        return Err(Error::WrongType { found: env.kind, expected });
    }
    Ok(env)
}

fn community_of(raw: &[u8], community: &CommunityId) -> Result<(), Error> {
    if raw != community.as_bytes() {
        return Err(Error::WrongCommunity);
    }
    Ok(())
}

/// A grant: the control node lets `member` in (an invite of an invitation-only community).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grant {
    pub member: MemberKey,
    pub clock: u64,
}

impl Grant {
    /// Signs the grant with the community key.
    pub fn sign(&self, community_key: &KeyPair) -> Vec<u8> {
        let payload = pb::Grant {
            community_id: community_key.public().to_vec().into(),
            member_id: self.member.as_bytes().to_vec().into(),
            clock: self.clock,
            expires: 0,
        }
        .encode_to_vec();
        envelope::sign(community_key, Kind::Grant, payload)
    }

    /// Checks a grant of `community` signed by its key.
    pub fn verify(community: &CommunityId, bytes: &[u8]) -> Result<Self, Error> {
        let env = open(bytes, Kind::Grant)?;
        if &env.signer != community.as_bytes() {
            return Err(Error::WrongSigner);
        }
        let g = pb::Grant::decode(&env.payload[..]).map_err(|e| Error::Malformed(e.to_string()))?;
        community_of(&g.community_id, community)?;
        let member: [u8; PUBLIC_KEY_LEN] =
            g.member_id[..].try_into().map_err(|_| Error::Malformed("member key".into()))?;
        Ok(Self { member: MemberKey::from_bytes(member), clock: g.clock })
    }
}

/// A request to join, signed by the requester's author key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestToJoin {
    /// Recovered from the signature.
    pub requester: MemberKey,
    pub clock: u64,
    pub display_name: String,
}

impl RequestToJoin {
    /// Signs a request with the requester's author key.
    pub fn sign(author: &KeyPair, community: &CommunityId, clock: u64, display_name: &str) -> Vec<u8> {
        let payload = pb::CommunityRequestToJoin {
            clock,
            community_id: community.as_bytes().to_vec().into(),
            display_name: display_name.chars().take(MAX_DISPLAY_NAME_CHARS).collect(),
        }
        .encode_to_vec();
        envelope::sign(author, Kind::RequestToJoin, payload)
    }

    /// Checks a request to join `community`.
    pub fn verify(community: &CommunityId, bytes: &[u8]) -> Result<Self, Error> {
        let env = open(bytes, Kind::RequestToJoin)?;
        let r = pb::CommunityRequestToJoin::decode(&env.payload[..])
            .map_err(|e| Error::Malformed(e.to_string()))?;
        community_of(&r.community_id, community)?;
        if r.display_name.chars().count() > MAX_DISPLAY_NAME_CHARS {
            return Err(Error::Malformed("display name too long".into()));
        }
        Ok(Self {
            requester: MemberKey::from_bytes(env.signer),
            clock: r.clock,
            display_name: r.display_name,
        })
    }
}

/// A request to leave, signed by the member's author key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestToLeave {
    /// Recovered from the signature.
    pub member: MemberKey,
    pub clock: u64,
}

impl RequestToLeave {
    /// Signs a request with the member's author key.
    pub fn sign(author: &KeyPair, community: &CommunityId, clock: u64) -> Vec<u8> {
        let payload =
            pb::CommunityRequestToLeave { clock, community_id: community.as_bytes().to_vec().into() }
                .encode_to_vec();
        envelope::sign(author, Kind::RequestToLeave, payload)
    }

    /// Checks a request to leave `community`.
    pub fn verify(community: &CommunityId, bytes: &[u8]) -> Result<Self, Error> {
        let env = open(bytes, Kind::RequestToLeave)?;
        let r = pb::CommunityRequestToLeave::decode(&env.payload[..])
            .map_err(|e| Error::Malformed(e.to_string()))?;
        community_of(&r.community_id, community)?;
        Ok(Self { member: MemberKey::from_bytes(env.signer), clock: r.clock })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_and_requests_verify_and_name_their_signer() {
        let control = KeyPair::generate();
        let id: CommunityId = control.public_hex().parse().unwrap();
        let member = KeyPair::generate();
        let mk = MemberKey::from_bytes(member.public());

        let grant = Grant { member: mk, clock: 3 }.sign(&control);
        assert_eq!(Grant::verify(&id, &grant).unwrap(), Grant { member: mk, clock: 3 });
        let forged = Grant { member: mk, clock: 3 }.sign(&KeyPair::generate());
        assert!(matches!(Grant::verify(&id, &forged), Err(Error::WrongSigner | Error::WrongCommunity)));

        let join = RequestToJoin::sign(&member, &id, 9, "alice");
        let r = RequestToJoin::verify(&id, &join).unwrap();
        assert_eq!((r.requester, r.clock, r.display_name.as_str()), (mk, 9, "alice"));
        let other: CommunityId = KeyPair::generate().public_hex().parse().unwrap();
        assert_eq!(RequestToJoin::verify(&other, &join), Err(Error::WrongCommunity));
        assert!(matches!(Grant::verify(&id, &join), Err(Error::WrongType { .. })));

        let leave = RequestToLeave::sign(&member, &id, 10);
        assert_eq!(RequestToLeave::verify(&id, &leave).unwrap(), RequestToLeave { member: mk, clock: 10 });
    }
}
