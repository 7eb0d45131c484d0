//! Gossip validation: every gossip message waits in one bounded queue; a few workers check it on
//! the blocking pool and report Accept / Ignore / Reject to gossipsub, which forwards only what
//! was accepted (lighthouse's beacon processor is the model).
//!
//! A message that cannot be decided yet — no community description, or an author a newer
//! description may admit — is held (bounded, for a few heartbeats: gossipsub keeps it that long)
//! and decided again when a newer description arrives, or finally when its time is up.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, Semaphore};
use tokio_util::sync::CancellationToken;

use super::{Error, Event, Node};
use crate::community::{CommunityId, MemberKey};
use crate::gossip::Verdict;
use crate::membership::rule::{self, Check};
use crate::message::Message;
use crate::network::PeerId;

/// Gossip messages waiting for a worker; past this, new ones are ignored (and counted): a flood
/// cannot grow memory or delay the network task.
pub const VALIDATION_QUEUE: usize = 1024;
/// Validations running at once, each on the blocking pool.
pub const VALIDATION_WORKERS: usize = 4;
/// Messages held for a newer description, at most; past this, the oldest is decided at once.
pub const MAX_HELD: usize = 1024;
/// Heartbeats a message is held for (gossipsub keeps unvalidated messages for
/// [`crate::network::GOSSIP_HISTORY_HEARTBEATS`]).
pub const HOLD_HEARTBEATS: u32 = 4;
const _: () = assert!((HOLD_HEARTBEATS as usize) + 2 <= crate::network::GOSSIP_HISTORY_HEARTBEATS);

/// Which topic of a community a message came on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Topic {
    /// Members' messages.
    Messages,
    /// Signed control traffic: announcements, descriptions, requests to join and to leave.
    Control,
}

/// One gossip message to decide.
#[derive(Debug)]
pub struct Job {
    pub community: CommunityId,
    pub topic: Topic,
    pub data: Vec<u8>,
    /// The gossipsub message id, to report the verdict with.
    pub id: Vec<u8>,
    pub source: PeerId,
    /// When a held message must be decided for good.
    deadline: Option<Instant>,
}

impl Job {
    pub fn new(community: CommunityId, topic: Topic, data: Vec<u8>, id: Vec<u8>, source: PeerId) -> Self {
        Self { community, topic, data, id, source, deadline: None }
    }
}

/// Parses a community topic name into its community and kind.
pub fn parse_topic(topic: &str) -> Option<(CommunityId, Topic)> {
    let (c, kind) = topic.strip_prefix("/archive-node/1/")?.split_once('/')?;
    let kind = match kind {
        "messages" => Topic::Messages,
        "archives" => Topic::Control,
        _ => return None,
    };
    Some((c.parse().ok()?, kind))
}

/// The handle: submit messages, release those held for a community.
#[derive(Clone)]
pub struct Validator {
    tx: mpsc::Sender<Job>,
    held: Arc<Mutex<VecDeque<Job>>>,
    hold: Duration,
}

impl Validator {
    /// Queues a message; gives it back when the queue is full (the caller reports Ignore).
    pub fn submit(&self, job: Job) -> Result<(), Box<Job>> {
        self.tx.try_send(job).map_err(|e| match e {
            mpsc::error::TrySendError::Full(j) | mpsc::error::TrySendError::Closed(j) => Box::new(j),
        })
    }

    /// Messages waiting for a worker, and messages held for a newer description.
    pub fn usage(&self) -> (usize, usize) {
        let queued = self.tx.max_capacity() - self.tx.capacity();
        (queued, self.held.lock().unwrap_or_else(|p| p.into_inner()).len())
    }

    /// Decides again the messages held for `community` (a newer description arrived).
    pub fn release(&self, community: &CommunityId) {
        let released: Vec<Job> = {
            let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
            let (mine, rest): (VecDeque<Job>, VecDeque<Job>) =
                std::mem::take(&mut *held).into_iter().partition(|j| &j.community == community);
            *held = rest;
            mine.into()
        };
        for job in released {
            // A full queue: the job is decided at its deadline by the holder instead.
            if let Err(job) = self.submit(job) {
                self.held.lock().unwrap_or_else(|p| p.into_inner()).push_back(*job);
            }
        }
    }

    fn hold(&self, mut job: Job) -> Option<Job> {
        job.deadline.get_or_insert_with(|| Instant::now() + self.hold);
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        held.push_back(job);
        // Over the bound: the oldest is decided now.
        (held.len() > MAX_HELD).then(|| held.pop_front()).flatten()
    }

    fn take_expired(&self, now: Instant) -> Vec<Job> {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        let (expired, rest): (VecDeque<Job>, VecDeque<Job>) =
            std::mem::take(&mut *held).into_iter().partition(|j| j.deadline.is_some_and(|d| d <= now));
        *held = rest;
        expired.into()
    }
}

/// Starts the queue and its workers; returns the handle.
pub(super) fn start(
    node: Node,
    heartbeat: Duration,
    cancel: CancellationToken,
) -> (Validator, impl std::future::Future<Output = ()>) {
    let (tx, rx) = mpsc::channel(VALIDATION_QUEUE);
    let validator = Validator { tx, held: Default::default(), hold: heartbeat * HOLD_HEARTBEATS };
    let run = run(node, validator.clone(), rx, heartbeat, cancel);
    (validator, run)
}

async fn run(
    node: Node,
    validator: Validator,
    mut rx: mpsc::Receiver<Job>,
    heartbeat: Duration,
    cancel: CancellationToken,
) {
    let workers = Arc::new(Semaphore::new(VALIDATION_WORKERS));
    let mut tick = tokio::time::interval(heartbeat);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let (job, may_hold) = tokio::select! {
            job = rx.recv() => match job {
                Some(j) => (j, true),
                None => return,
            },
            _ = tick.tick() => {
                for job in validator.take_expired(Instant::now()) {
                    tokio::spawn(node.clone().decide(validator.clone(), job, false, None));
                }
                continue;
            }
            _ = cancel.cancelled() => return,
        };
        let Ok(permit) = workers.clone().acquire_owned().await else { return };
        tokio::spawn(node.clone().decide(validator.clone(), job, may_hold, Some(permit)));
    }
}

impl Node {
    /// Submits a gossip message for validation (answers Ignore at once when the queue is full).
    pub(super) async fn on_gossip(&self, topic: String, data: Vec<u8>, id: Vec<u8>, source: PeerId) {
        let Some((community, kind)) = parse_topic(&topic) else {
            let _ = self.network.report(id, source, Verdict::Ignore).await;
            return;
        };
        if let Err(job) = self.validator().submit(Job::new(community, kind, data, id, source)) {
            self.counters.refused("validation_queue_full");
            let _ = self.network.report(job.id, job.source, Verdict::Ignore).await;
        }
    }

    async fn decide(
        self,
        validator: Validator,
        job: Job,
        may_hold: bool,
        _permit: Option<tokio::sync::OwnedSemaphorePermit>,
    ) {
        let (community, topic, data, source) = (job.community, job.topic, job.data.clone(), job.source);
        let check = self
            .blocking(move |n| match topic {
                Topic::Messages => n.check_message(&community, &data, may_hold),
                Topic::Control => n.check_control(&community, &data, source, may_hold),
            })
            .await
            .unwrap_or_else(|e| {
                tracing::warn!(error = %e, "cannot validate a gossip message");
                Check::Ignore("local error")
            });
        let verdict = match check {
            Check::Hold => match validator.hold(job) {
                None => return,
                // The hold is full: the oldest held message is decided now, for good.
                Some(oldest) => {
                    Box::pin(self.clone().decide(validator, oldest, false, None)).await;
                    return;
                }
            },
            Check::Accept => Verdict::Accept,
            Check::Ignore(reason) => {
                self.counters.refused(reason);
                tracing::debug!(%source, %community, reason, "ignored a gossip message");
                Verdict::Ignore
            }
            Check::Reject(reason) => {
                self.counters.refused(reason);
                tracing::info!(%source, %community, reason, "rejected a gossip message");
                Verdict::Reject
            }
        };
        let _ = self.network.report(job.id, job.source, verdict).await;
    }

    /// Checks a member message (blocking): opens it in an encrypted community, verifies hash and
    /// signature, applies the membership rule in force, the author's rate and the community's
    /// quota, and stores it when all pass.
    fn check_message(&self, community: &CommunityId, data: &[u8], may_hold: bool) -> Result<Check, Error> {
        let Some(record) = self.communities.get(community)? else {
            return Ok(Check::Ignore("community not joined"));
        };
        let plain = if record.encrypted() {
            if !crate::seal::is_sealed(data) {
                return Ok(Check::Reject("message in clear in an encrypted community"));
            }
            match crate::seal::open(data, &self.key_ring(&record)?) {
                Ok(p) => p,
                Err(crate::seal::Error::NoKey { key_id }) => {
                    self.key_missing(community, &key_id);
                    return Ok(Check::Ignore("sealed with a key this node lacks"));
                }
                Err(_) => return Ok(Check::Reject("sealed message does not open")),
            }
        } else {
            data.to_vec()
        };
        let Ok(m) = Message::decode(&plain) else { return Ok(Check::Reject("malformed message")) };
        let (timestamp, hash) = (m.timestamp, m.hash);
        let Ok(verified) = m.verify(community) else {
            return Ok(Check::Reject("bad message hash or signature"));
        };
        if self.messages.contains(community, timestamp, &hash)? {
            return Ok(Check::Ignore("duplicate"));
        }
        let author = MemberKey::from_bytes(*verified.author());
        let description = self.description(community)?;
        let now = super::now_secs();
        match rule::check_gossip(
            description.as_deref().map(|s| &s.description),
            &author,
            timestamp,
            now,
            may_hold,
        ) {
            Check::Accept => {}
            other => return Ok(other),
        }
        if !self.allow_rate(&author) {
            return Ok(Check::Ignore("author over its message rate"));
        }
        let outcome = match self.messages.insert(community, &[verified]) {
            Ok(o) => o,
            Err(crate::message_store::Error::Quota { .. }) => {
                return Ok(Check::Ignore("community over its store quota"))
            }
            Err(e) => return Err(e.into()),
        };
        if outcome.inserted == 0 {
            return Ok(Check::Ignore("duplicate"));
        }
        self.messages.flush()?;
        let _ = self.events.send(Event::MessageStored { community: *community, hash, received: true });
        Ok(Check::Accept)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::KeyPair;

    #[test]
    fn topics_name_their_community_and_kind() {
        let id: CommunityId = KeyPair::generate().public_hex().parse().unwrap();
        assert_eq!(parse_topic(&crate::gossip::messages_topic(&id)), Some((id, Topic::Messages)));
        assert_eq!(parse_topic(&crate::gossip::archives_topic(&id)), Some((id, Topic::Control)));
        assert_eq!(parse_topic("/archive-node/1/0x12/messages"), None);
        assert_eq!(parse_topic(&format!("/archive-node/1/{id}/other")), None);
    }
}
