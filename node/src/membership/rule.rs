//! Who may write a community's history at a time, as pure functions of the description in force.
//!
//! The description carries every member's spans, so the latest one answers for any past time:
//! a removed member's earlier messages stay valid and its later ones are refused.

use crate::community::MemberKey;

use super::description::{Access, Description};

/// How far in the future a message's timestamp may be (clock skew).
pub const MAX_FUTURE_SECS: u64 = 5 * 60;

/// A message this close to (or after) the time its description was issued may come from a
/// member admitted since: it is held for a newer description instead of refused at once.
pub const FRESH_SECS: u64 = 120;

/// An author's standing at a time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Standing {
    Member,
    Banned,
    NotMember,
}

/// The rule: banned keys never write; in an open community anyone else may; otherwise only a
/// member whose spans contain `t`.
pub fn standing(d: &Description, author: &MemberKey, t: u64) -> Standing {
    let entry = d.members.get(author);
    if entry.is_some_and(|m| m.banned_at.is_some()) {
        return Standing::Banned;
    }
    if d.access == Access::Open || entry.is_some_and(|m| m.was_member_at(t)) {
        return Standing::Member;
    }
    Standing::NotMember
}

/// What gossip validation does with a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Check {
    /// Valid: store and forward.
    Accept,
    /// Not decidable yet (no description, or an author a newer description may admit): wait for
    /// a newer description, then decide with `may_hold = false`.
    Hold,
    /// Drop without blaming the forwarder: it could not know better.
    Ignore(&'static str),
    /// Invalid: drop and penalise the forwarder.
    Reject(&'static str),
}

/// The gossip verdict on a message of `author` at `t`, received at `now` (unix seconds).
///
/// No description yet: the relay cannot be blamed (Ignore). An author that is not a member:
/// Reject, unless the message is fresh and a newer description may admit its author (Hold).
pub fn check_gossip(d: Option<&Description>, author: &MemberKey, t: u64, now: u64, may_hold: bool) -> Check {
    if t > now.saturating_add(MAX_FUTURE_SECS) {
        return Check::Ignore("timestamp too far ahead");
    }
    let Some(d) = d else {
        return if may_hold { Check::Hold } else { Check::Ignore("no community description yet") };
    };
    match standing(d, author, t) {
        Standing::Member => Check::Accept,
        Standing::Banned => Check::Reject("author is banned"),
        Standing::NotMember if may_hold && t.saturating_add(FRESH_SECS) >= d.issued_secs() => Check::Hold,
        Standing::NotMember => Check::Reject("author is not a member"),
    }
}

/// The verdict on a stored or archived message (builder, importer): a member's, or refused.
pub fn may_store(d: &Description, author: &MemberKey, t: u64) -> bool {
    standing(d, author, t) == Standing::Member
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::KeyPair;
    use crate::membership::description::Span;
    use proptest::prelude::*;

    fn key() -> MemberKey {
        MemberKey::from_bytes(KeyPair::generate().public())
    }

    fn private_with(k: MemberKey, from: u64, to: Option<u64>) -> Description {
        let mut d = Description::new("c", Access::InvitationOnly, false);
        d.clock = 1_000_000;
        d.members.entry(k).or_default().spans.push(Span { from, to });
        d
    }

    #[test]
    fn members_write_inside_their_spans_only() {
        let k = key();
        let d = private_with(k, 100, Some(200));
        assert_eq!(standing(&d, &k, 150), Standing::Member);
        assert_eq!(standing(&d, &k, 99), Standing::NotMember);
        assert_eq!(standing(&d, &k, 200), Standing::NotMember, "spans end exclusive");
        assert_eq!(standing(&d, &key(), 150), Standing::NotMember);
        let mut open = d.clone();
        open.access = Access::Open;
        assert_eq!(standing(&open, &key(), 150), Standing::Member, "open: anyone");
        open.ban(k, 300);
        assert_eq!(standing(&open, &k, 150), Standing::Banned, "banned: not even earlier messages");
    }

    #[test]
    fn gossip_blames_only_what_a_relay_could_know() {
        let (k, stranger) = (key(), key());
        let d = private_with(k, 100, None);
        let now = d.issued_secs() + 10;
        assert_eq!(check_gossip(Some(&d), &k, now, now, true), Check::Accept);
        assert_eq!(check_gossip(None, &k, now, now, true), Check::Hold);
        assert!(matches!(check_gossip(None, &k, now, now, false), Check::Ignore(_)), "no description");
        assert!(
            matches!(check_gossip(Some(&d), &k, now + MAX_FUTURE_SECS + 1, now, true), Check::Ignore(_)),
            "a skewed clock is no offence"
        );
        assert_eq!(check_gossip(Some(&d), &stranger, now, now, true), Check::Hold, "may be admitted since");
        assert!(matches!(check_gossip(Some(&d), &stranger, now, now, false), Check::Reject(_)));
        let old = d.issued_secs() - FRESH_SECS - 1;
        assert!(matches!(check_gossip(Some(&d), &stranger, old, now, true), Check::Reject(_)), "long before");
    }

    proptest! {
        /// A kicked member's messages before the kick stay valid, none after it is.
        #[test]
        fn removal_splits_history_at_its_time(join in 0u64..1000, len in 1u64..1000, t in 0u64..3000) {
            let k = key();
            let mut d = Description::new("c", Access::OnRequest, false);
            d.admit(k, join, &[]);
            d.remove(&k, join + len);
            prop_assert_eq!(may_store(&d, &k, t), t >= join && t < join + len);
        }

        /// A later description (more admissions, removals, bans) never turns a message that was
        /// refused as "long before the description" into an accepted one, unless its author was
        /// admitted for that time.
        #[test]
        fn accept_means_member_at_t(
            spans in proptest::collection::vec((0u64..100, 1u64..100), 0..5), t in 0u64..1200, open in any::<bool>()
        ) {
            let k = key();
            let mut d = Description::new("c", if open { Access::Open } else { Access::InvitationOnly }, false);
            let mut at = 0;
            for (gap, len) in spans {
                d.admit(k, at + gap, &[]);
                d.remove(&k, at + gap + len);
                at += gap + len;
            }
            let accepted = check_gossip(Some(&d), &k, t, t, false) == Check::Accept;
            let inside = d.members.get(&k).is_some_and(|m| m.was_member_at(t));
            prop_assert_eq!(accepted, open || inside);
        }
    }
}
