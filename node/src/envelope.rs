//! Signed envelopes (pure): `SignedEnvelope { signature, payload, type }`, status-go's
//! ApplicationMetadataMessage shape. The signature is the 65-byte recoverable secp256k1
//! signature of keccak256(payload); the signer is recovered from it, never taken from the bytes.

use archive_proto::pb::archive as pb;
use prost::Message as _;

use crate::crypto::{self, KeyPair, PUBLIC_KEY_LEN};

/// What a `SignedEnvelope` carries, by its `type` field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum Kind {
    /// `ArchiveIndexCidMessage`, signed by the community key.
    Announcement = 1,
    /// `CommunityDescription`, signed by the community key.
    Description = 2,
    /// `CommunityRequestToJoin`, signed by the requester's author key.
    RequestToJoin = 3,
    /// `CommunityRequestToLeave`, signed by the member's author key.
    RequestToLeave = 4,
    /// `Grant`, signed by the community key (carried by an invite).
    Grant = 5,
}

impl Kind {
    fn from_u32(v: u32) -> Option<Self> {
        Some(match v {
            1 => Kind::Announcement,
            2 => Kind::Description,
            3 => Kind::RequestToJoin,
            4 => Kind::RequestToLeave,
            5 => Kind::Grant,
            _ => return None,
        })
    }
}

/// Why an envelope is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    #[error("envelope of {len} bytes is over the {max}-byte limit")]
    TooLarge { len: usize, max: usize },
    #[error("malformed envelope: {0}")]
    Malformed(String),
    #[error("envelope type {0} is not known")]
    UnknownType(u32),
    #[error("bad signature: {0}")]
    Signature(#[from] crypto::Error),
}

/// A decoded envelope whose signer was recovered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Opened {
    pub kind: Kind,
    /// The compressed public key that signed the payload.
    pub signer: [u8; PUBLIC_KEY_LEN],
    pub payload: bytes::Bytes,
}

/// Signs `payload` with `key` into `SignedEnvelope` bytes.
pub fn sign(key: &KeyPair, kind: Kind, payload: Vec<u8>) -> Vec<u8> {
    let signature = key.sign_prehash(&crypto::keccak256(&[&payload]));
    pb::SignedEnvelope { signature: signature.to_vec().into(), payload: payload.into(), r#type: kind as u32 }
        .encode_to_vec()
}

/// Decodes an envelope of at most `max` bytes and recovers its signer.
pub fn open(bytes: &[u8], max: usize) -> Result<Opened, Error> {
    if bytes.len() > max {
        return Err(Error::TooLarge { len: bytes.len(), max });
    }
    let env = pb::SignedEnvelope::decode(bytes).map_err(|e| Error::Malformed(e.to_string()))?;
    let kind = Kind::from_u32(env.r#type).ok_or(Error::UnknownType(env.r#type))?;
    let signer = crypto::recover(&crypto::keccak256(&[&env.payload]), &env.signature)?;
    Ok(Opened { kind, signer, payload: env.payload })
}

/// The `type` of an envelope without checking its signature (to route it), if it decodes.
pub fn peek_kind(bytes: &[u8]) -> Option<Kind> {
    pb::SignedEnvelope::decode(bytes).ok().and_then(|e| Kind::from_u32(e.r#type))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_envelopes_name_their_signer_and_kind() {
        let key = KeyPair::generate();
        let bytes = sign(&key, Kind::Description, b"payload".to_vec());
        let opened = open(&bytes, 1024).unwrap();
        assert_eq!(
            (opened.kind, opened.signer, &opened.payload[..]),
            (Kind::Description, key.public(), &b"payload"[..])
        );
        assert_eq!(peek_kind(&bytes), Some(Kind::Description));
        assert!(matches!(open(&bytes, 10), Err(Error::TooLarge { .. })));
        assert!(matches!(open(&[0xff; 8], 1024), Err(Error::Malformed(_))));

        let mut env = pb::SignedEnvelope::decode(&bytes[..]).unwrap();
        env.payload = b"changed".to_vec().into();
        let changed = open(&env.encode_to_vec(), 1024);
        assert!(
            changed.is_err() || changed.unwrap().signer != key.public(),
            "a changed payload loses the signer"
        );
        env.r#type = 99;
        assert_eq!(open(&env.encode_to_vec(), 1024), Err(Error::UnknownType(99)));
    }
}
