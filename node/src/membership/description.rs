//! The community description (status-go's `CommunityDescription`), pure: who may write a
//! community's history, how one joins, and the sealed archive keys of its members.
//!
//! The control node signs it with the community key in a `SignedEnvelope` of its own type.
//! Descriptions are ordered like announcements: a strictly greater (clock, hash) wins. Every
//! member entry carries the clock of its last change, so two devices of the control node merge
//! their descriptions entry by entry ([`merge`]).

use std::collections::BTreeMap;
use std::str::FromStr;

use archive_proto::pb::membership as pb;
use prost::Message as _;

use crate::community::{CommunityId, MemberKey};
use crate::crypto::{self, KeyPair, KEY_ID_LEN};
use crate::envelope::{self, Kind};

/// Largest signed description accepted (it travels by gossip and in one request-response answer).
pub const MAX_DESCRIPTION_BYTES: usize = 512 * 1024;
/// Most member entries a description holds (about 120 bytes each with a sealed key).
pub const MAX_MEMBERS: usize = 4000;
/// Most membership spans per member (each kick and re-admission adds one).
pub const MAX_SPANS: usize = 64;
/// Most links of the archive key chain (one per re-key).
pub const MAX_KEY_CHAIN: usize = 1024;
/// Longest sealed key or key link accepted (a sealed 32-byte key is 93 bytes).
const MAX_SEALED_BYTES: usize = 256;
/// Longest community name, in characters.
pub const MAX_NAME_CHARS: usize = 100;
/// Longest community description text, in characters.
pub const MAX_ABOUT_CHARS: usize = 1000;
/// status-go's `ROLE_OWNER`: the control node's own author key.
pub const ROLE_OWNER: u32 = 1;

/// Why a description is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    #[error(transparent)]
    Envelope(#[from] envelope::Error),
    #[error("envelope is a {0:?}, not a community description")]
    WrongType(Kind),
    #[error("not signed by the community key")]
    WrongSigner,
    #[error("malformed description: {0}")]
    Malformed(String),
}

fn malformed(reason: impl Into<String>) -> Error {
    Error::Malformed(reason.into())
}

/// How one becomes a member (status-go's `CommunityPermissions.Access`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Access {
    /// Anyone may write (still rate-limited); banned keys may not.
    Open,
    /// Only keys the control node invited (an invite carries a grant for one key).
    InvitationOnly,
    /// A node asks with a signed request; the control node accepts or rejects it.
    OnRequest,
}

impl Access {
    /// The API's name: `open`, `invitation-only`, `on-request`.
    pub fn as_str(self) -> &'static str {
        match self {
            Access::Open => "open",
            Access::InvitationOnly => "invitation-only",
            Access::OnRequest => "on-request",
        }
    }

    fn to_pb(self) -> pb::community_permissions::Access {
        use pb::community_permissions::Access as A;
        match self {
            Access::Open => A::NoMembership,
            Access::InvitationOnly => A::InvitationOnly,
            Access::OnRequest => A::OnRequest,
        }
    }

    fn from_pb(v: i32) -> Result<Self, Error> {
        use pb::community_permissions::Access as A;
        match A::try_from(v) {
            Ok(A::NoMembership) => Ok(Access::Open),
            Ok(A::InvitationOnly) => Ok(Access::InvitationOnly),
            Ok(A::OnRequest) => Ok(Access::OnRequest),
            _ => Err(malformed(format!("access {v}"))),
        }
    }
}

impl FromStr for Access {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "open" => Ok(Access::Open),
            "invitation-only" => Ok(Access::InvitationOnly),
            "on-request" => Ok(Access::OnRequest),
            other => Err(format!("access must be open, invitation-only or on-request, not {other:?}")),
        }
    }
}

/// `[from, to)` in unix seconds during which a member may write; `to` is `None` while it is one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Span {
    pub from: u64,
    pub to: Option<u64>,
}

impl Span {
    /// True when `t` falls inside the span.
    pub fn contains(&self, t: u64) -> bool {
        t >= self.from && self.to.is_none_or(|to| t < to)
    }
}

/// One member entry.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Member {
    /// status-go's role values ([`ROLE_OWNER`] for the control node's own key).
    pub roles: Vec<u32>,
    /// Membership spans, oldest first; only the last may be open.
    pub spans: Vec<Span>,
    /// When the key was banned (unix seconds).
    pub banned_at: Option<u64>,
    /// The description clock of this entry's last change.
    pub updated: u64,
    /// The current archive key sealed to this member (encrypted communities); empty otherwise.
    pub sealed_key: Vec<u8>,
}

impl Member {
    /// A member now: an open span and no ban.
    pub fn is_active(&self) -> bool {
        self.banned_at.is_none() && self.spans.last().is_some_and(|s| s.to.is_none())
    }

    /// True when a span of this member contains `t`.
    pub fn was_member_at(&self, t: u64) -> bool {
        self.spans.iter().any(|s| s.contains(t))
    }
}

/// One link of the archive key chain: the key `key_id`, and the key before it sealed with it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct KeyLink {
    pub key_id: [u8; KEY_ID_LEN],
    /// `EncryptedBlob` of the previous key sealed with this one; empty for the first key.
    pub previous: Vec<u8>,
}

/// A community description.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Description {
    /// Lamport clock (milliseconds of the control node's wall time, or one more than the last).
    pub clock: u64,
    pub access: Access,
    pub name: String,
    pub about: String,
    pub encrypted: bool,
    pub members: BTreeMap<MemberKey, Member>,
    /// Oldest first; the last link is the current archive key.
    pub key_chain: Vec<KeyLink>,
}

impl Description {
    /// A first description: no members yet.
    pub fn new(name: &str, access: Access, encrypted: bool) -> Self {
        Self {
            clock: 0,
            access,
            name: name.to_string(),
            about: String::new(),
            encrypted,
            members: BTreeMap::new(),
            key_chain: Vec::new(),
        }
    }

    /// Unix seconds of the control node's wall time when it issued this description.
    pub fn issued_secs(&self) -> u64 {
        self.clock / 1000
    }

    /// The id of the archive key new archives and messages use, when a chain exists.
    pub fn current_key_id(&self) -> Option<[u8; KEY_ID_LEN]> {
        self.key_chain.last().map(|l| l.key_id)
    }

    /// The members now, in key order.
    pub fn active_members(&self) -> impl Iterator<Item = (&MemberKey, &Member)> {
        self.members.iter().filter(|(_, m)| m.is_active())
    }

    /// Admits `key` from `at` on (a no-op for an active member); returns whether it changed.
    /// A banned key stays banned: unban it first.
    pub fn admit(&mut self, key: MemberKey, at: u64, roles: &[u32]) -> bool {
        let m = self.members.entry(key).or_default();
        if m.is_active() || m.banned_at.is_some() {
            return false;
        }
        // A new span never starts before the last one ended.
        let from = m.spans.last().and_then(|s| s.to).map_or(at, |end| at.max(end));
        m.spans.push(Span { from, to: None });
        m.roles = roles.to_vec();
        m.updated = self.clock;
        true
    }

    /// Ends `key`'s membership at `at` (kick or leave); returns whether it was a member.
    pub fn remove(&mut self, key: &MemberKey, at: u64) -> bool {
        let Some(m) = self.members.get_mut(key) else { return false };
        let Some(last) = m.spans.last_mut().filter(|s| s.to.is_none()) else { return false };
        last.to = Some(at.max(last.from));
        m.sealed_key.clear();
        m.updated = self.clock;
        true
    }

    /// Bans `key` from `at` on (ending its membership); returns whether it changed.
    pub fn ban(&mut self, key: MemberKey, at: u64) -> bool {
        self.remove(&key, at);
        let m = self.members.entry(key).or_default();
        if m.banned_at.is_some() {
            return false;
        }
        m.banned_at = Some(at);
        m.sealed_key.clear();
        m.updated = self.clock;
        true
    }

    /// Lifts a ban (the key is not a member again until admitted); returns whether it was banned.
    pub fn unban(&mut self, key: &MemberKey) -> bool {
        let Some(m) = self.members.get_mut(key).filter(|m| m.banned_at.is_some()) else { return false };
        m.banned_at = None;
        m.updated = self.clock;
        true
    }

    /// Protobuf encoding (`CommunityDescription`).
    pub fn encode(&self) -> Vec<u8> {
        let members = self.members.iter().map(|(k, m)| (k.to_string(), member_to_pb(m))).collect();
        let ban_list =
            self.members.iter().filter(|(_, m)| m.banned_at.is_some()).map(|(k, _)| k.to_string()).collect();
        pb::CommunityDescription {
            clock: self.clock,
            members,
            permissions: Some(pb::CommunityPermissions {
                ens_only: false,
                private: self.access != Access::Open,
                access: self.access.to_pb() as i32,
            }),
            identity: Some(pb::ChatIdentity {
                clock: self.clock,
                display_name: self.name.clone(),
                description: self.about.clone(),
            }),
            ban_list,
            encrypted: self.encrypted,
            key_chain: self
                .key_chain
                .iter()
                .map(|l| pb::KeyLink {
                    key_id: l.key_id.to_vec().into(),
                    previous: l.previous.clone().into(),
                })
                .collect(),
        }
        .encode_to_vec()
    }

    /// Decodes and checks a `CommunityDescription` (bounded in every dimension).
    pub fn decode(bytes: &[u8]) -> Result<Self, Error> {
        let d = pb::CommunityDescription::decode(bytes).map_err(|e| malformed(e.to_string()))?;
        if d.members.len() > MAX_MEMBERS {
            return Err(malformed(format!("{} members, over {MAX_MEMBERS}", d.members.len())));
        }
        if d.key_chain.len() > MAX_KEY_CHAIN {
            return Err(malformed(format!("key chain of {} links", d.key_chain.len())));
        }
        let access = Access::from_pb(d.permissions.as_ref().map_or(0, |p| p.access))?;
        let identity = d.identity.unwrap_or_default();
        if identity.display_name.chars().count() > MAX_NAME_CHARS {
            return Err(malformed("name too long"));
        }
        if identity.description.chars().count() > MAX_ABOUT_CHARS {
            return Err(malformed("description text too long"));
        }
        let mut members = BTreeMap::new();
        for (k, m) in d.members {
            let key: MemberKey = k.parse().map_err(|e: crypto::Error| malformed(e.to_string()))?;
            members.insert(key, member_from_pb(m)?);
        }
        for k in &d.ban_list {
            let key: MemberKey = k.parse().map_err(|e: crypto::Error| malformed(e.to_string()))?;
            let m = members.entry(key).or_default();
            m.banned_at.get_or_insert(0);
        }
        let key_chain = d
            .key_chain
            .into_iter()
            .map(|l| {
                let key_id: [u8; KEY_ID_LEN] =
                    l.key_id[..].try_into().map_err(|_| malformed("key id must be 8 bytes"))?;
                if l.previous.len() > MAX_SEALED_BYTES {
                    return Err(malformed("key link too long"));
                }
                Ok(KeyLink { key_id, previous: l.previous.to_vec() })
            })
            .collect::<Result<Vec<_>, Error>>()?;
        Ok(Self {
            clock: d.clock,
            access,
            name: identity.display_name,
            about: identity.description,
            encrypted: d.encrypted,
            members,
            key_chain,
        })
    }
}

fn member_to_pb(m: &Member) -> pb::CommunityMember {
    pb::CommunityMember {
        roles: m.roles.clone(),
        spans: m.spans.iter().map(|s| pb::MembershipSpan { from: s.from, to: s.to.unwrap_or(0) }).collect(),
        banned_at: m.banned_at.unwrap_or(0),
        updated: m.updated,
        sealed_key: m.sealed_key.clone().into(),
    }
}

fn member_from_pb(m: pb::CommunityMember) -> Result<Member, Error> {
    if m.spans.len() > MAX_SPANS || m.roles.len() > 8 || m.sealed_key.len() > MAX_SEALED_BYTES {
        return Err(malformed("member entry over its limits"));
    }
    let spans: Vec<Span> =
        m.spans.iter().map(|s| Span { from: s.from, to: (s.to != 0).then_some(s.to) }).collect();
    for (i, s) in spans.iter().enumerate() {
        let last = i + 1 == spans.len();
        match s.to {
            None if !last => return Err(malformed("only the last span may be open")),
            Some(to) if to < s.from => return Err(malformed("span ends before it starts")),
            _ => {}
        }
        if let Some(next) = spans.get(i + 1) {
            if s.to.is_some_and(|to| next.from < to) {
                return Err(malformed("spans overlap or are out of order"));
            }
        }
    }
    Ok(Member {
        roles: m.roles,
        spans,
        banned_at: (m.banned_at != 0).then_some(m.banned_at),
        updated: m.updated,
        sealed_key: m.sealed_key.to_vec(),
    })
}

/// A description with its signed envelope.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Signed {
    pub description: Description,
    /// The encoded `SignedEnvelope`.
    pub bytes: Vec<u8>,
    /// sha256 of the signed payload: breaks ties between equal clocks.
    pub hash: [u8; 32],
}

impl Signed {
    /// The order key: (clock, hash).
    pub fn order(&self) -> (u64, [u8; 32]) {
        (self.description.clock, self.hash)
    }
}

/// Signs a description with the community key.
pub fn sign(community_key: &KeyPair, d: &Description) -> Signed {
    let payload = d.encode();
    let hash = crypto::sha256(&[&payload]);
    let bytes = envelope::sign(community_key, Kind::Description, payload);
    Signed { description: d.clone(), bytes, hash }
}

/// Decodes an envelope and checks it is a description signed by `community`'s key.
pub fn verify(community: &CommunityId, bytes: &[u8]) -> Result<Signed, Error> {
    let env = envelope::open(bytes, MAX_DESCRIPTION_BYTES)?;
    if env.kind != Kind::Description {
        return Err(Error::WrongType(env.kind));
    }
    if &env.signer != community.as_bytes() {
        return Err(Error::WrongSigner);
    }
    let description = Description::decode(&env.payload)?;
    Ok(Signed { description, bytes: bytes.to_vec(), hash: crypto::sha256(&[&env.payload]) })
}

/// True when `incoming` replaces `stored`: strictly greater (clock, hash).
pub fn is_newer(stored: Option<&Signed>, incoming: &Signed) -> bool {
    stored.is_none_or(|s| incoming.order() > s.order())
}

/// Merges two descriptions of one community (two devices of its control node): every member
/// entry from the side that changed it last, everything else from the description with the
/// greater clock. Commutative, associative and idempotent, so devices that exchange their
/// descriptions in any order end on the same one.
pub fn merge(a: &Description, b: &Description) -> Description {
    // The side whose fields other than members win: chosen on those fields alone, so that the
    // choice does not depend on entries merged in before (associativity).
    let (top, other) = if header_order(a) >= header_order(b) { (a, b) } else { (b, a) };
    let mut out = top.clone();
    for (key, theirs) in &other.members {
        match out.members.get(key) {
            Some(ours) if entry_order(ours) >= entry_order(theirs) => {}
            _ => {
                out.members.insert(*key, theirs.clone());
            }
        }
    }
    out
}

fn header_order(d: &Description) -> (u64, Vec<u8>) {
    let header = Description { members: BTreeMap::new(), ..d.clone() };
    (d.clock, header.encode())
}

/// A total order on entries that tells every two different entries apart (the encoding would
/// not: a ban at time 0 encodes like no ban).
type EntryOrder = (u64, Option<u64>, Vec<(u64, Option<u64>)>, Vec<u32>, Vec<u8>);

fn entry_order(m: &Member) -> EntryOrder {
    let spans = m.spans.iter().map(|s| (s.from, s.to)).collect();
    (m.updated, m.banned_at, spans, m.roles.clone(), m.sealed_key.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key() -> MemberKey {
        MemberKey::from_bytes(KeyPair::generate().public())
    }

    #[test]
    fn admit_remove_ban_unban_keep_the_history_of_spans() {
        let mut d = Description::new("c", Access::InvitationOnly, false);
        let k = key();
        d.clock = 5;
        assert!(d.admit(k, 100, &[]));
        assert!(!d.admit(k, 150, &[]), "already a member");
        assert!(d.remove(&k, 200));
        assert!(!d.remove(&k, 210), "no longer a member");
        assert!(d.admit(k, 300, &[]));
        let m = &d.members[&k];
        assert_eq!(m.spans, vec![Span { from: 100, to: Some(200) }, Span { from: 300, to: None }]);
        assert_eq!(m.updated, 5);
        assert!(m.was_member_at(150) && !m.was_member_at(250) && m.was_member_at(10_000));
        assert!(d.ban(k, 400));
        assert!(!d.members[&k].is_active() && !d.admit(k, 500, &[]), "a banned key is not admitted");
        assert!(d.unban(&k) && d.admit(k, 500, &[]));
    }

    #[test]
    fn sign_verify_and_forgeries() {
        let control = KeyPair::generate();
        let id: CommunityId = control.public_hex().parse().unwrap();
        let mut d = Description::new("dev", Access::OnRequest, true);
        d.clock = 1_700_000_000_000;
        d.admit(key(), 10, &[ROLE_OWNER]);
        d.ban(key(), 20);
        d.key_chain.push(KeyLink { key_id: [1; 8], previous: vec![] });
        let signed = sign(&control, &d);
        let back = verify(&id, &signed.bytes).unwrap();
        assert_eq!(back.description, d);
        assert_eq!(back.hash, signed.hash);

        let forged = sign(&KeyPair::generate(), &d);
        assert_eq!(verify(&id, &forged.bytes), Err(Error::WrongSigner));
        let announcement = envelope::sign(&control, Kind::Announcement, vec![]);
        assert_eq!(verify(&id, &announcement), Err(Error::WrongType(Kind::Announcement)));
    }

    #[test]
    fn decode_refuses_what_breaks_the_rules() {
        let bad_spans = pb::CommunityDescription {
            permissions: Some(pb::CommunityPermissions { access: 2, ..Default::default() }),
            members: [(
                key().to_string(),
                pb::CommunityMember {
                    spans: vec![
                        pb::MembershipSpan { from: 10, to: 0 },
                        pb::MembershipSpan { from: 20, to: 30 },
                    ],
                    ..Default::default()
                },
            )]
            .into(),
            ..Default::default()
        };
        assert!(Description::decode(&bad_spans.encode_to_vec()).is_err(), "open span before another");
        let no_access = pb::CommunityDescription::default();
        assert!(Description::decode(&no_access.encode_to_vec()).is_err(), "access must be known");
        let bad_key = pb::CommunityDescription {
            permissions: Some(pb::CommunityPermissions { access: 1, ..Default::default() }),
            members: [("0x1234".to_string(), pb::CommunityMember::default())].into(),
            ..Default::default()
        };
        assert!(Description::decode(&bad_key.encode_to_vec()).is_err());
    }

    #[test]
    fn newer_is_strictly_greater_clock_then_hash() {
        let control = KeyPair::generate();
        let mut d = Description::new("c", Access::Open, false);
        d.clock = 10;
        let a = sign(&control, &d);
        assert!(is_newer(None, &a));
        assert!(!is_newer(Some(&a), &a), "a replay");
        d.clock = 9;
        assert!(!is_newer(Some(&a), &sign(&control, &d)), "older");
        d.clock = 11;
        assert!(is_newer(Some(&a), &sign(&control, &d)));
    }

    fn arb_description() -> impl Strategy<Value = Description> {
        let keys: Vec<MemberKey> = (0..4u8)
            .map(|i| {
                let mut raw = [0u8; 32];
                raw[31] = i + 1;
                MemberKey::from_bytes(KeyPair::from_secret_bytes(&raw).unwrap().public())
            })
            .collect();
        (
            0u64..5,
            proptest::collection::vec((0usize..4, 0u64..5, any::<bool>(), 0u64..3), 0..6),
            any::<bool>(),
        )
            .prop_map(move |(clock, entries, open)| {
                let mut d =
                    Description::new("c", if open { Access::Open } else { Access::InvitationOnly }, false);
                d.clock = clock;
                for (k, updated, banned, t) in entries {
                    let m = Member {
                        spans: vec![Span { from: t, to: None }],
                        banned_at: banned.then_some(t),
                        updated,
                        ..Default::default()
                    };
                    d.members.insert(keys[k], m);
                }
                d
            })
    }

    proptest! {
        #[test]
        fn merge_is_commutative_associative_and_idempotent(
            a in arb_description(), b in arb_description(), c in arb_description()
        ) {
            prop_assert_eq!(merge(&a, &b), merge(&b, &a));
            prop_assert_eq!(merge(&merge(&a, &b), &c), merge(&a, &merge(&b, &c)));
            prop_assert_eq!(merge(&a, &a), a.clone());
            // Nothing a device wrote is lost unless the other side changed that entry later.
            let m = merge(&a, &b);
            for (k, entry) in &a.members {
                prop_assert!(m.members[k].updated >= entry.updated);
            }
        }

        #[test]
        fn encode_decode_round_trips(d in arb_description()) {
            prop_assert_eq!(Description::decode(&d.encode()).unwrap(), d);
        }
    }
}
