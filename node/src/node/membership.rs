//! Membership on a node: the control node issues descriptions (admit, kick, ban, access,
//! re-key), every node takes the newest signed one it hears of and the keys it opens, and
//! requests to join and to leave travel on the community's control topic.

use std::sync::Arc;

use super::{now_secs, Error, Event, Node};
use crate::communities::{self, Invite, Record};
use crate::community::{CommunityId, MemberKey};
use crate::crypto::ArchiveKey;
use crate::envelope::{self, Kind};
use crate::gossip;
use crate::membership::description::{self, Access, Description, ROLE_OWNER};
use crate::membership::requests::{self, Grant, RequestToJoin, RequestToLeave};
use crate::membership::rule::Check;
use crate::membership::{keys, store, Signed};
use crate::network::PeerId;
use crate::seal::KeyRing;

/// Errors of membership operations.
#[derive(Debug, thiserror::Error)]
pub enum MembershipError {
    #[error("community {0} is not controlled by this node (only its control node can do this)")]
    NotControlled(String),
    #[error("no description of community {0} yet: it arrives from any peer of the community once one is connected")]
    NoDescription(String),
    #[error("this node's key {member} is not a member of community {community}")]
    NotMember { community: String, member: String },
    #[error("{member} is not a member of community {community}")]
    UnknownMember { community: String, member: String },
    #[error("no pending request to join from {0}")]
    NoRequest(String),
    #[error("{0}")]
    Access(String),
    #[error("the invite is for member key {invited}, but this node's key is {ours}")]
    InviteForAnother { invited: String, ours: String },
    #[error("invalid grant in the invite: {0}")]
    Grant(requests::Error),
    #[error("author {0} is over its message rate; try again shortly")]
    RateLimited(String),
    #[error(transparent)]
    Store(#[from] store::Error),
}

fn millis() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// How a description changed, for signals.
fn diff(community: CommunityId, old: Option<&Description>, new: &Description) -> Vec<Event> {
    let mut out = Vec::new();
    for (key, m) in &new.members {
        let before = old.and_then(|o| o.members.get(key));
        let was_active = before.is_some_and(|b| b.is_active());
        let was_banned = before.is_some_and(|b| b.banned_at.is_some());
        if m.is_active() && !was_active {
            out.push(Event::MemberJoined { community, member: *key });
        }
        if m.banned_at.is_some() && !was_banned {
            out.push(Event::MemberBanned { community, member: *key });
        } else if was_active && !m.is_active() {
            out.push(Event::MemberRemoved { community, member: *key });
        }
    }
    if let Some(id) = new.current_key_id() {
        if old.and_then(|o| o.current_key_id()) != Some(id) && old.is_some() {
            out.push(Event::Rekeyed { community, key_id: hex::encode(id) });
        }
    }
    out.push(Event::DescriptionUpdated { community, clock: new.clock });
    out
}

impl Node {
    /// The archive keys this node holds for a community (the one place a key ring is built).
    pub fn key_ring(&self, record: &Record) -> Result<KeyRing, Error> {
        Ok(record.keys()?.into_iter().collect())
    }

    /// The key new archives and messages of an encrypted community are sealed with: the
    /// description's current key when this node holds it, else the newest key it holds.
    pub fn current_key(&self, record: &Record) -> Result<Option<ArchiveKey>, Error> {
        let d = self.description(&record.community_id()?)?;
        Ok(keys::current(&record.keys()?, d.as_ref().map(|d| &d.description)).cloned())
    }

    /// The latest accepted description of a community.
    pub fn description(&self, id: &CommunityId) -> Result<Option<Arc<Signed>>, Error> {
        Ok(self.membership.description(id).map_err(MembershipError::from)?)
    }

    /// Waits until a description of the community is held, up to `timeout` (a node that just
    /// joined and connected gets it from its first peer within moments).
    pub async fn wait_description(
        &self,
        id: CommunityId,
        timeout: std::time::Duration,
    ) -> Option<Arc<Signed>> {
        self.wait_description_since(id, 0, timeout).await
    }

    /// Waits until a description of the community at least as new as `clock` is held.
    pub async fn wait_description_since(
        &self,
        id: CommunityId,
        clock: u64,
        timeout: std::time::Duration,
    ) -> Option<Arc<Signed>> {
        let mut events = self.subscribe();
        tokio::time::timeout(timeout, async {
            loop {
                if let Ok(Some(d)) = self.description(&id) {
                    if d.description.clock >= clock {
                        return Some(d);
                    }
                }
                match events.recv().await {
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
                    _ => continue,
                }
            }
        })
        .await
        .ok()
        .flatten()
    }

    /// Pending requests to join (control node).
    pub fn pending_requests(&self, id: &CommunityId) -> Result<Vec<RequestToJoin>, Error> {
        Ok(self.membership.pending(id).map_err(MembershipError::from)?.into_iter().map(|(r, _)| r).collect())
    }

    /// This node's own author key as a member key.
    pub fn member_key(&self) -> MemberKey {
        MemberKey::from_bytes(self.author.public())
    }

    /// Takes a verified description when it is newer than the one held (blocking): stores it,
    /// adds the keys it opens for this node, and tells what changed. Returns whether it was new.
    pub(super) fn take_description(&self, id: &CommunityId, signed: Signed) -> Result<bool, Error> {
        let old = self.description(id)?;
        let clock = signed.description.clock;
        let new = signed.description.clone();
        if !self.membership.accept(id, signed).map_err(MembershipError::from)? {
            return Ok(false);
        }
        // Left meanwhile (leave_community leaves, then forgets): whichever of the two runs last
        // forgets, so a left community never keeps a description.
        if self.communities.get(id)?.is_none() {
            self.membership.forget(id).map_err(MembershipError::from)?;
            return Ok(false);
        }
        let mut state_clock = self.archive_state.clock(id).map_err(|e| Error::Join(e.to_string()))?;
        state_clock.observe(clock);
        self.archive_state.set_clock(id, state_clock).map_err(|e| Error::Join(e.to_string()))?;
        if let Some(mut record) = self.communities.get(id)? {
            if new.encrypted {
                match keys::member_ring(id, &self.author, &new, &self.key_ring(&record)?) {
                    Ok(ring) => {
                        let mut changed = false;
                        for k in ring.keys() {
                            let hex = hex::encode(k.as_bytes());
                            if !record.archive_keys.contains(&hex) {
                                record.archive_keys.push(hex);
                                changed = true;
                            }
                        }
                        if changed {
                            self.communities.put(&record)?;
                        }
                    }
                    Err(e) => {
                        tracing::warn!(community = %id, error = %e, "cannot open the keys of a description")
                    }
                }
            }
            let me = new.members.get(&self.member_key());
            if me.is_some_and(|m| m.is_active()) {
                self.membership.set_own_request(id, None).map_err(MembershipError::from)?;
            } else if record.control_secret.is_some() && me.is_none() {
                // Another device of the control node: its own key becomes a member too.
                self.spawn_admit_own_key(*id);
            }
        }
        for e in diff(*id, old.as_deref().map(|s| &s.description), &new) {
            let _ = self.events.send(e);
        }
        self.validator().release(id);
        self.retry_stalled_syncs();
        Ok(true)
    }

    /// Issues a new description of a controlled community: `edit` changes a copy of the latest
    /// one (at a fresh clock); removing a member of a private encrypted community makes a new
    /// archive key, sealed to every remaining member. Returns the signed description.
    pub(super) async fn issue(
        &self,
        id: CommunityId,
        edit: impl FnOnce(&mut Description) -> Result<(), Error> + Send + 'static,
    ) -> Result<Signed, Error> {
        let _one_at_a_time = self.issuing.lock().await;
        let signed = self
            .blocking(move |n| {
                let mut record =
                    n.communities.get(&id)?.ok_or_else(|| communities::Error::NotJoined(id.to_string()))?;
                let key =
                    record.control_key()?.ok_or_else(|| MembershipError::NotControlled(id.to_string()))?;
                let old = n.description(&id)?;
                let mut d = match &old {
                    Some(s) => s.description.clone(),
                    None => Description::new(&record.name, Access::Open, record.encrypted()),
                };
                let mut clock = n.archive_state.clock(&id).map_err(|e| Error::Join(e.to_string()))?;
                d.clock = clock.issue(millis());
                let before: Vec<MemberKey> = d.active_members().map(|(k, _)| *k).collect();
                edit(&mut d)?;
                if d.encrypted {
                    let removed = before.iter().any(|k| !d.members.get(k).is_some_and(|m| m.is_active()));
                    let first = d.current_key_id().is_none();
                    let current = n.current_key(&record)?;
                    let key_now = match current {
                        Some(k) if !(first || removed && d.access != Access::Open) => k,
                        current => {
                            // The chain's first link (the key the community was created with),
                            // or a re-key: a removed member is never given the new key.
                            let (new_key, previous) = match (first, current) {
                                (true, Some(k)) => (k, None),
                                (_, previous) => (ArchiveKey::generate(), previous),
                            };
                            d.key_chain.push(keys::link(&new_key, previous.as_ref()));
                            record.archive_keys.push(hex::encode(new_key.as_bytes()));
                            n.communities.put(&record)?;
                            for m in d.members.values_mut() {
                                m.sealed_key.clear();
                            }
                            new_key
                        }
                    };
                    let clock_now = d.clock;
                    for (k, m) in d.members.iter_mut() {
                        if m.is_active() && m.sealed_key.is_empty() {
                            m.sealed_key = keys::seal_to_member(&id, k, &key_now);
                            m.updated = clock_now;
                        }
                    }
                }
                n.archive_state.set_clock(&id, clock).map_err(|e| Error::Join(e.to_string()))?;
                let signed = description::sign(&key, &d);
                n.take_description(&id, signed.clone())?;
                Ok(signed)
            })
            .await?;
        self.network.publish(gossip::archives_topic(&id), signed.bytes.clone()).await?;
        Ok(signed)
    }

    fn spawn_admit_own_key(&self, id: CommunityId) {
        let Ok(handle) = tokio::runtime::Handle::try_current() else { return };
        let (node, me) = (self.clone(), self.member_key());
        handle.spawn(async move {
            let r = node
                .issue(id, move |d| {
                    d.admit(me, now_secs(), &[ROLE_OWNER]);
                    Ok(())
                })
                .await;
            if let Err(e) = r {
                tracing::warn!(community = %id, error = %e, "cannot admit this device's own key");
            }
        });
    }

    /// The first description of a community this node controls, when it has none (a new
    /// community, or one created before descriptions existed: it becomes an open one). The
    /// control node's own author key is a member, with the owner role.
    pub(super) async fn ensure_description(&self, id: CommunityId, access: Access) -> Result<(), Error> {
        if self.description(&id)?.is_some() {
            return Ok(());
        }
        let me = self.member_key();
        self.issue(id, move |d| {
            d.access = access;
            d.admit(me, now_secs(), &[ROLE_OWNER]);
            Ok(())
        })
        .await?;
        Ok(())
    }

    /// An invite to a controlled community. Invitation-only: for `member` alone, who is
    /// admitted now and whose invite carries a grant signed by the community key (and no
    /// archive key: the description seals it to the member).
    pub async fn invite_member(&self, id: CommunityId, member: Option<MemberKey>) -> Result<Invite, Error> {
        let access = self.description(&id)?.map_or(Access::Open, |d| d.description.access);
        let mut invite = self.communities.invite(&id)?;
        if access == Access::Open {
            return Ok(invite);
        }
        invite.key = None;
        if access == Access::OnRequest && member.is_none() {
            return Ok(invite);
        }
        let member = member.ok_or_else(|| {
            MembershipError::Access(
                "an invitation-only community's invite names the member key it is for".into(),
            )
        })?;
        let signed = self
            .issue(id, move |d| {
                if d.members.get(&member).is_some_and(|m| m.banned_at.is_some()) {
                    return Err(MembershipError::Access(format!("{member} is banned; unban it first")).into());
                }
                d.admit(member, now_secs(), &[]);
                Ok(())
            })
            .await?;
        let record =
            self.communities.get(&id)?.ok_or_else(|| communities::Error::NotJoined(id.to_string()))?;
        let key = record.control_key()?.ok_or_else(|| MembershipError::NotControlled(id.to_string()))?;
        let grant = Grant { member, clock: signed.description.clock }.sign(&key);
        invite.grant = Some(crate::json::b64(&grant));
        Ok(invite)
    }

    /// Checks that an invite with a grant is for this node's key (before joining); returns the
    /// grant's clock.
    pub(super) fn check_grant(&self, invite: &Invite) -> Result<Option<u64>, Error> {
        let Some(grant) = &invite.grant else { return Ok(None) };
        let id: CommunityId =
            invite.id.parse().map_err(|e: crate::crypto::Error| communities::Error::Invite(e.to_string()))?;
        let raw =
            crate::json::from_b64(grant).map_err(|e| communities::Error::Invite(format!("grant: {e}")))?;
        let g = Grant::verify(&id, &raw).map_err(MembershipError::Grant)?;
        if g.member != self.member_key() {
            return Err(MembershipError::InviteForAnother {
                invited: g.member.to_string(),
                ours: self.member_key().to_string(),
            }
            .into());
        }
        Ok(Some(g.clock))
    }

    /// Asks to join an on-request community: joins it locally (to hear its description) and
    /// publishes a request signed by this node's author key, again whenever a peer connects,
    /// until the control node admits this key.
    pub async fn request_to_join(&self, invite: Invite) -> Result<Record, Error> {
        let record = self.join_community(invite).await?;
        let id = record.community_id()?;
        if self
            .description(&id)?
            .is_some_and(|d| d.description.members.get(&self.member_key()).is_some_and(|m| m.is_active()))
        {
            return Ok(record);
        }
        let envelope = RequestToJoin::sign(&self.author, &id, millis(), "");
        self.blocking(move |n| {
            Ok(n.membership.set_own_request(&id, Some(&envelope)).map_err(MembershipError::from)?)
        })
        .await?;
        self.republish_request(id).await?;
        Ok(record)
    }

    /// Publishes this node's pending request to join again, freshly signed (gossip drops
    /// repeats of identical bytes); nothing when none is pending.
    pub(super) async fn republish_request(&self, id: CommunityId) -> Result<(), Error> {
        let pending =
            self.blocking(move |n| Ok(n.membership.own_request(&id).map_err(MembershipError::from)?)).await?;
        if pending.is_none() {
            return Ok(());
        }
        let envelope = RequestToJoin::sign(&self.author, &id, millis(), "");
        self.network.publish(gossip::archives_topic(&id), envelope).await?;
        Ok(())
    }

    /// Accepts a pending request: the requester becomes a member now.
    pub async fn accept_request(&self, id: CommunityId, member: MemberKey) -> Result<(), Error> {
        let had = self
            .blocking(move |n| {
                Ok(n.membership
                    .pending(&id)
                    .map_err(MembershipError::from)?
                    .iter()
                    .any(|(r, _)| r.requester == member))
            })
            .await?;
        if !had {
            return Err(MembershipError::NoRequest(member.to_string()).into());
        }
        self.issue(id, move |d| {
            if d.members.get(&member).is_some_and(|m| m.banned_at.is_some()) {
                return Err(MembershipError::Access(format!("{member} is banned; unban it first")).into());
            }
            d.admit(member, now_secs(), &[]);
            Ok(())
        })
        .await?;
        self.blocking(move |n| {
            Ok(n.membership.remove_pending(&id, &member).map_err(MembershipError::from)?)
        })
        .await?;
        Ok(())
    }

    /// Rejects a pending request: it is dropped, the requester never becomes a member by it.
    pub async fn reject_request(&self, id: CommunityId, member: MemberKey) -> Result<(), Error> {
        self.controlled(&id)?;
        let had = self
            .blocking(move |n| {
                Ok(n.membership.remove_pending(&id, &member).map_err(MembershipError::from)?)
            })
            .await?;
        if !had {
            return Err(MembershipError::NoRequest(member.to_string()).into());
        }
        let _ = self.events.send(Event::RequestRejected { community: id, member });
        Ok(())
    }

    /// Ends a member's membership now (its earlier messages stay valid).
    pub async fn kick(&self, id: CommunityId, member: MemberKey) -> Result<(), Error> {
        self.issue(id, move |d| {
            if !d.remove(&member, now_secs()) {
                return Err(MembershipError::UnknownMember {
                    community: id.to_string(),
                    member: member.to_string(),
                }
                .into());
            }
            Ok(())
        })
        .await?;
        Ok(())
    }

    /// Bans a key: it may not write any more, and its messages are not archived or served.
    pub async fn ban(&self, id: CommunityId, member: MemberKey) -> Result<(), Error> {
        self.issue(id, move |d| {
            d.ban(member, now_secs());
            Ok(())
        })
        .await?;
        Ok(())
    }

    /// Lifts a ban (the key is not a member again until admitted).
    pub async fn unban(&self, id: CommunityId, member: MemberKey) -> Result<(), Error> {
        self.issue(id, move |d| {
            if !d.unban(&member) {
                return Err(MembershipError::Access(format!("{member} is not banned")).into());
            }
            Ok(())
        })
        .await?;
        Ok(())
    }

    /// Changes how one joins a controlled community.
    pub async fn set_access(&self, id: CommunityId, access: Access) -> Result<(), Error> {
        self.issue(id, move |d| {
            d.access = access;
            Ok(())
        })
        .await?;
        Ok(())
    }

    /// Tells the community this node's key leaves (signed), when it is a member of a community
    /// with membership; the control node then ends its membership.
    pub(super) async fn announce_leave(&self, id: CommunityId) -> Result<(), Error> {
        let member = self.description(&id)?.is_some_and(|d| {
            d.description.access != Access::Open
                && d.description.members.get(&self.member_key()).is_some_and(|m| m.is_active())
        });
        if member {
            let envelope = RequestToLeave::sign(&self.author, &id, millis());
            self.network.publish(gossip::archives_topic(&id), envelope).await?;
        }
        Ok(())
    }

    fn controlled(&self, id: &CommunityId) -> Result<(), Error> {
        let r = self.communities.get(id)?.ok_or_else(|| communities::Error::NotJoined(id.to_string()))?;
        if r.control_secret.is_none() {
            return Err(MembershipError::NotControlled(id.to_string()).into());
        }
        Ok(())
    }

    /// Checks a message of a community's control topic (blocking), by its envelope type.
    pub(super) fn check_control(
        &self,
        id: &CommunityId,
        data: &[u8],
        source: PeerId,
        may_hold: bool,
    ) -> Result<Check, Error> {
        if self.communities.get(id)?.is_none() {
            return Ok(Check::Ignore("community not joined"));
        }
        Ok(match envelope::peek_kind(data) {
            Some(Kind::Announcement) => match self.receive_announcement(id, data, source)? {
                crate::gossip::Verdict::Accept => Check::Accept,
                crate::gossip::Verdict::Ignore => Check::Ignore("announcement not newer"),
                crate::gossip::Verdict::Reject => Check::Reject("forged or malformed announcement"),
            },
            Some(Kind::Description) => self.receive_description(id, data)?,
            Some(Kind::RequestToJoin) => self.receive_request_to_join(id, data)?,
            Some(Kind::RequestToLeave) => self.receive_request_to_leave(id, data, may_hold)?,
            Some(Kind::Grant) | None => Check::Reject("not a control message"),
        })
    }

    /// A description from gossip or a peer's answer (blocking). On a device of the control
    /// node, a newer one from another device is merged with ours and re-issued when it lacks
    /// something ours had.
    pub(super) fn receive_description(&self, id: &CommunityId, data: &[u8]) -> Result<Check, Error> {
        let signed = match description::verify(id, data) {
            Ok(s) => s,
            Err(e) => {
                tracing::info!(community = %id, error = %e, "refused a community description");
                return Ok(Check::Reject("forged or malformed description"));
            }
        };
        let ours = self.description(id)?;
        if !description::is_newer(ours.as_deref(), &signed) {
            return Ok(Check::Ignore("description not newer"));
        }
        let controlled = self.communities.get(id)?.is_some_and(|r| r.control_secret.is_some());
        let incoming = signed.description.clone();
        self.take_description(id, signed)?;
        if let (true, Some(ours)) = (controlled, ours) {
            let merged = description::merge(&ours.description, &incoming);
            if merged.members != incoming.members {
                let (node, id, ours) = (self.clone(), *id, ours.description.clone());
                if let Ok(handle) = tokio::runtime::Handle::try_current() {
                    handle.spawn(async move {
                        let r = node
                            .issue(id, move |d| {
                                let clock = d.clock;
                                *d = description::merge(d, &ours);
                                d.clock = clock;
                                Ok(())
                            })
                            .await;
                        if let Err(e) = r {
                            tracing::warn!(community = %id, error = %e, "cannot merge another device's description");
                        }
                    });
                }
            }
        }
        Ok(Check::Accept)
    }

    fn receive_request_to_join(&self, id: &CommunityId, data: &[u8]) -> Result<Check, Error> {
        let r = match RequestToJoin::verify(id, data) {
            Ok(r) => r,
            Err(_) => return Ok(Check::Reject("forged or malformed request to join")),
        };
        if !self.allow_rate(&r.requester) {
            return Ok(Check::Ignore("requester over its rate"));
        }
        let d = self.description(id)?;
        let entry = d.as_ref().and_then(|d| d.description.members.get(&r.requester).cloned());
        if entry.as_ref().is_some_and(|m| m.is_active() || m.banned_at.is_some()) {
            return Ok(Check::Ignore("requester is a member or banned"));
        }
        let controlled = self.communities.get(id)?.is_some_and(|rec| rec.control_secret.is_some());
        if controlled && d.is_some_and(|d| d.description.access == Access::OnRequest) {
            match self.membership.add_pending(id, &r, data) {
                Ok(true) => {
                    let _ = self.events.send(Event::RequestToJoin {
                        community: *id,
                        member: r.requester,
                        display_name: r.display_name.clone(),
                    });
                }
                Ok(false) => return Ok(Check::Ignore("request already pending")),
                Err(store::Error::TooManyPending(n)) => {
                    tracing::warn!(community = %id, pending = n, "too many requests to join pending: one refused");
                    return Ok(Check::Ignore("too many requests pending"));
                }
                Err(e) => return Err(MembershipError::from(e).into()),
            }
        }
        Ok(Check::Accept)
    }

    fn receive_request_to_leave(
        &self,
        id: &CommunityId,
        data: &[u8],
        _may_hold: bool,
    ) -> Result<Check, Error> {
        let r = match RequestToLeave::verify(id, data) {
            Ok(r) => r,
            Err(_) => return Ok(Check::Reject("forged or malformed request to leave")),
        };
        let d = self.description(id)?;
        if !d.as_ref().is_some_and(|d| d.description.members.get(&r.member).is_some_and(|m| m.is_active())) {
            return Ok(Check::Ignore("leaver is not a member"));
        }
        let controlled = self.communities.get(id)?.is_some_and(|rec| rec.control_secret.is_some());
        if controlled {
            let (node, id, member) = (self.clone(), *id, r.member);
            if let Ok(handle) = tokio::runtime::Handle::try_current() {
                handle.spawn(async move {
                    if let Err(e) = node.kick(id, member).await {
                        tracing::warn!(community = %id, %member, error = %e, "cannot end a leaving member's membership");
                    }
                });
            }
        }
        Ok(Check::Accept)
    }
}
