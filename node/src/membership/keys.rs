//! Archive keys of encrypted communities as a description carries them (pure).
//!
//! - To one member: the current key sealed to the member's author key, with an ephemeral
//!   secp256k1 key: ECDH, then HKDF-SHA256 (info binds the community and the member), then
//!   AES-256-GCM. Bytes: ephemeral public key (33) || ciphertext || tag || nonce (12).
//! - The chain: each new key seals the key before it, so a member given the current key opens
//!   every older archive too, while a removed member, never given a newer key, opens none of
//!   what comes after its removal.

use crate::community::{CommunityId, MemberKey};
use crate::crypto::{self, ArchiveKey, KeyPair, PUBLIC_KEY_LEN};
use crate::seal::{self, KeyRing};

use super::description::{Description, KeyLink};

/// Why a key cannot be opened.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    #[error("sealed key is malformed")]
    Malformed,
    #[error("the sealed key is not for this member key")]
    NotForUs,
    #[error("key chain is broken at link {0}")]
    BrokenChain(usize),
}

fn info(community: &CommunityId, member: &MemberKey) -> Vec<u8> {
    let mut v = b"archive-node/member-key/1".to_vec();
    v.extend_from_slice(community.as_bytes());
    v.extend_from_slice(member.as_bytes());
    v
}

/// Seals `key` to `member` (a fresh ephemeral key each time).
pub fn seal_to_member(community: &CommunityId, member: &MemberKey, key: &ArchiveKey) -> Vec<u8> {
    let ephemeral = KeyPair::generate();
    let shared = crypto::shared_key(&ephemeral, member.as_bytes(), &info(community, member))
        .expect("a member key in a description is a valid public key");
    let mut out = ephemeral.public().to_vec();
    out.extend_from_slice(&shared.seal(key.as_bytes()));
    out
}

/// Opens a key sealed to `ours` (this node's author key).
pub fn open_for_member(community: &CommunityId, ours: &KeyPair, sealed: &[u8]) -> Result<ArchiveKey, Error> {
    if sealed.len() <= PUBLIC_KEY_LEN {
        return Err(Error::Malformed);
    }
    let (ephemeral, body) = sealed.split_at(PUBLIC_KEY_LEN);
    let ephemeral: [u8; PUBLIC_KEY_LEN] = ephemeral.try_into().map_err(|_| Error::Malformed)?;
    let member = MemberKey::from_bytes(ours.public());
    let shared =
        crypto::shared_key(ours, &ephemeral, &info(community, &member)).map_err(|_| Error::Malformed)?;
    let raw = shared.open(body).map_err(|_| Error::NotForUs)?;
    ArchiveKey::from_bytes(&raw).map_err(|_| Error::Malformed)
}

/// The link that makes `new` the current key after `previous` (if any).
pub fn link(new: &ArchiveKey, previous: Option<&ArchiveKey>) -> KeyLink {
    KeyLink { key_id: new.id(), previous: previous.map_or_else(Vec::new, |p| seal::seal(new, p.as_bytes())) }
}

/// Every key of the chain that `known` opens: each known key, and all the keys before it.
pub fn unlock_chain(chain: &[KeyLink], known: &KeyRing) -> Result<KeyRing, Error> {
    let mut ring = known.clone();
    // Newest first: a key found opens the link before it, and so on down.
    let mut current: Option<ArchiveKey> = None;
    for (i, l) in chain.iter().enumerate().rev() {
        let key = match current.take().filter(|k| k.id() == l.key_id) {
            Some(k) => Some(k),
            None => ring.get(&l.key_id).cloned(),
        };
        let Some(key) = key else { continue };
        ring.add(key.clone());
        if i > 0 {
            let raw = seal::open(&l.previous, &KeyRing::single(key)).map_err(|_| Error::BrokenChain(i))?;
            let prev = ArchiveKey::from_bytes(&raw).map_err(|_| Error::BrokenChain(i))?;
            if prev.id() != chain[i - 1].key_id {
                return Err(Error::BrokenChain(i));
            }
            current = Some(prev);
        }
    }
    Ok(ring)
}

/// Of the keys held (oldest first), the one new data is sealed with: the description's current
/// key when held, else the newest.
pub fn current<'a>(held: &'a [ArchiveKey], d: Option<&Description>) -> Option<&'a ArchiveKey> {
    d.and_then(|d| d.current_key_id())
        .and_then(|id| held.iter().find(|k| k.id() == id))
        .or_else(|| held.last())
}

/// The keys this member can open from a description: its sealed current key, then the chain.
pub fn member_ring(
    community: &CommunityId,
    ours: &KeyPair,
    description: &Description,
    known: &KeyRing,
) -> Result<KeyRing, Error> {
    let mut ring = known.clone();
    if let Some(m) = description.members.get(&MemberKey::from_bytes(ours.public())) {
        if !m.sealed_key.is_empty() {
            ring.add(open_for_member(community, ours, &m.sealed_key)?);
        }
    }
    unlock_chain(&description.key_chain, &ring)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_key_opens_for_its_member_only() {
        let community: CommunityId = KeyPair::generate().public_hex().parse().unwrap();
        let member = KeyPair::generate();
        let key = ArchiveKey::generate();
        let sealed = seal_to_member(&community, &MemberKey::from_bytes(member.public()), &key);
        assert_eq!(open_for_member(&community, &member, &sealed).unwrap(), key);
        assert_eq!(open_for_member(&community, &KeyPair::generate(), &sealed), Err(Error::NotForUs));
        let other: CommunityId = KeyPair::generate().public_hex().parse().unwrap();
        assert_eq!(open_for_member(&other, &member, &sealed), Err(Error::NotForUs), "bound to its community");
        assert_eq!(open_for_member(&community, &member, &sealed[..20]), Err(Error::Malformed));
    }

    #[test]
    fn the_current_key_opens_every_older_one_and_an_old_key_no_newer_one() {
        let keys: Vec<ArchiveKey> = (0..4).map(|_| ArchiveKey::generate()).collect();
        let chain: Vec<KeyLink> =
            keys.iter().enumerate().map(|(i, k)| link(k, i.checked_sub(1).map(|p| &keys[p]))).collect();
        let all = unlock_chain(&chain, &KeyRing::single(keys[3].clone())).unwrap();
        assert!(keys.iter().all(|k| all.get(&k.id()).is_some()));
        let old = unlock_chain(&chain, &KeyRing::single(keys[1].clone())).unwrap();
        assert!(old.get(&keys[0].id()).is_some() && old.get(&keys[1].id()).is_some());
        assert!(old.get(&keys[2].id()).is_none() && old.get(&keys[3].id()).is_none(), "a removed member");
        let mut broken = chain.clone();
        broken[2].previous = seal::seal(&keys[2], ArchiveKey::generate().as_bytes());
        assert_eq!(
            unlock_chain(&broken, &KeyRing::single(keys[3].clone())).err(),
            Some(Error::BrokenChain(2))
        );
    }
}
