//! Per-peer writers: every message to a peer goes through one task that owns our outbound
//! streams to it (up to [`STREAMS_PER_PEER`], opened as needed; a failed write is tried once
//! more on a new stream). Helia reads our answers on streams we open, not on the one its
//! request came on.
//!
//! Budgets: a few messages queued per peer; the bytes queued over all peers draw from one
//! budget; a write that does not finish within [`WRITE_TIMEOUT`] drops the peer's writer (a
//! peer that does not read what it asked for stops costing memory).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use libp2p::PeerId;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

use super::{codec, message::Message, PROTOCOL_1_2};

/// Messages queued per peer before senders wait (backpressure on the server and the client):
/// at most 2 x 4 MiB held for one peer.
const OUTBOX_QUEUE: usize = 2;
/// Streams a writer keeps messages in flight on. Between archive-nodes the receive windows
/// auto-tune up to 32 MiB (see `network::muxer`); each stream grows its own window, so fewer
/// streams ramp up sooner. Measured (`scripts/bench.sh wan`, 128 MiB at 50 ms): 1 stream
/// 103 MB/s, 4 streams 107, 8 streams 91, 16 streams 71. Helia and kubo give streams windows of
/// up to 16 MiB. (With windows capped at 1 MiB, 16 streams did best: 37 MB/s.)
const STREAMS_PER_PEER: usize = 4;
/// Bytes queued for all peers at once, in KiB: 48 MiB, so 512 peers that stop reading cannot
/// hold more (and a node serving many members keeps a few messages in flight for each).
const OUTBOUND_BUDGET_KIB: usize = 48 * 1024;
/// A peer dropped for not reading gets no answers for this long (it would refill its queue at
/// once by asking again).
const NOT_READING_COOL_OFF: std::time::Duration = std::time::Duration::from_secs(60);
/// Peers remembered as not reading, at most (the oldest are forgotten first).
const MAX_NOT_READING: usize = 4096;
/// Notices of peers we could not open a Bitswap stream to, queued for the sessions. When full,
/// a notice is dropped and the sessions' wants to that peer end at their timeout instead.
const UNREACHABLE_QUEUE: usize = 64;
/// A write that makes no progress for this long: the peer does not read; its writer is dropped.
pub(super) const WRITE_TIMEOUT: std::time::Duration = super::STREAM_STALL_TIMEOUT;

/// A queued message with the budget it holds until written.
struct Queued {
    msg: Message,
    _budget: OwnedSemaphorePermit,
}

/// The writers, by peer.
#[derive(Clone)]
pub(super) struct Outboxes {
    control: libp2p_stream::Control,
    map: Arc<Mutex<HashMap<PeerId, mpsc::Sender<Queued>>>>,
    budget: Arc<Semaphore>,
    /// Writers dropped because their peer did not read within [`WRITE_TIMEOUT`].
    dropped: Arc<AtomicU64>,
    /// Peers dropped for not reading, and since when: no answers for them during the cool-off.
    not_reading: Arc<Mutex<HashMap<PeerId, std::time::Instant>>>,
    /// Peers a stream could not be opened to (no Bitswap there, or no connection left).
    unreachable: mpsc::Sender<PeerId>,
    cancel: CancellationToken,
}

impl Outboxes {
    /// The writers, and the peers they find they cannot reach: a session waiting on one of
    /// them would wait for its want timeout.
    pub fn new(control: libp2p_stream::Control, cancel: CancellationToken) -> (Self, mpsc::Receiver<PeerId>) {
        let (unreachable, rx) = mpsc::channel(UNREACHABLE_QUEUE);
        let outboxes = Self {
            control,
            map: Arc::default(),
            budget: Arc::new(Semaphore::new(OUTBOUND_BUDGET_KIB)),
            dropped: Arc::default(),
            not_reading: Arc::default(),
            unreachable,
            cancel,
        };
        (outboxes, rx)
    }

    fn sender(&self, peer: PeerId) -> mpsc::Sender<Queued> {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(tx) = map.get(&peer) {
            if !tx.is_closed() {
                return tx.clone();
            }
        }
        let (tx, rx) = mpsc::channel(OUTBOX_QUEUE);
        tokio::spawn(writer(self.clone(), peer, rx));
        map.insert(peer, tx.clone());
        tx
    }

    fn cooling_off(&self, peer: &PeerId) -> bool {
        let mut nr = self.not_reading.lock().unwrap_or_else(|p| p.into_inner());
        match nr.get(peer) {
            Some(since) if since.elapsed() < NOT_READING_COOL_OFF => true,
            Some(_) => {
                nr.remove(peer);
                false
            }
            None => false,
        }
    }

    fn mark_not_reading(&self, peer: PeerId) {
        self.dropped.fetch_add(1, Ordering::Relaxed);
        let mut nr = self.not_reading.lock().unwrap_or_else(|p| p.into_inner());
        if nr.len() >= MAX_NOT_READING {
            nr.retain(|_, since| since.elapsed() < NOT_READING_COOL_OFF);
            if nr.len() >= MAX_NOT_READING {
                if let Some(oldest) = nr.iter().min_by_key(|(_, s)| **s).map(|(p, _)| *p) {
                    nr.remove(&oldest);
                }
            }
        }
        nr.insert(peer, std::time::Instant::now());
    }

    /// Queues `msg` for `peer`, waiting while its queue is full or the byte budget is spent.
    /// False when the peer's writer gave up on it (it does not read) or the node shuts down.
    pub async fn send(&self, peer: PeerId, msg: Message) -> bool {
        if msg.is_empty() {
            return true;
        }
        if self.cooling_off(&peer) {
            return false;
        }
        let kib = (msg.byte_len() / 1024 + 1).min(OUTBOUND_BUDGET_KIB) as u32;
        let Ok(budget) = self.budget.clone().acquire_many_owned(kib).await else { return false };
        self.sender(peer).send(Queued { msg, _budget: budget }).await.is_ok()
    }

    /// The byte budget in use (KiB queued for peers), and writers dropped for not reading.
    pub fn usage(&self) -> (u64, u64) {
        let used = OUTBOUND_BUDGET_KIB - self.budget.available_permits();
        (used as u64, self.dropped.load(Ordering::Relaxed))
    }

    /// Forgets a disconnected peer: its writer ends once its queue drains.
    pub fn remove(&self, peer: &PeerId) {
        self.map.lock().unwrap_or_else(|p| p.into_inner()).remove(peer);
    }
}

/// One message written on one stream: the stream comes back with the outcome.
type Write = std::pin::Pin<
    Box<dyn std::future::Future<Output = (libp2p::Stream, Queued, usize, Result<(), codec::Error>)> + Send>,
>;

fn write(mut stream: libp2p::Stream, queued: Queued, attempt: usize) -> Write {
    Box::pin(async move {
        let r = codec::write_timed(&mut stream, &queued.msg, WRITE_TIMEOUT).await;
        (stream, queued, attempt, r)
    })
}

/// Takes the peer's messages in order and writes each on a free stream of up to
/// [`STREAMS_PER_PEER`] (opened as needed): several answers in flight at once, so one slow
/// write does not hold the others back. A
/// message without blocks (wants, cancels, presences) waits until nothing is in flight, so
/// wants and their cancels are never reordered; blocks may arrive in any order.
async fn writer(outboxes: Outboxes, peer: PeerId, mut rx: mpsc::Receiver<Queued>) {
    use futures::stream::{FuturesUnordered, StreamExt};
    let (mut control, cancel) = (outboxes.control.clone(), outboxes.cancel.clone());
    let mut idle: Vec<libp2p::Stream> = Vec::new();
    let mut open = 0usize;
    let mut writing: FuturesUnordered<Write> = FuturesUnordered::new();
    let mut next: Option<Queued> = None;
    let mut closed = false;
    loop {
        if let Some(queued) = next.take() {
            let may = if queued.msg.blocks.is_empty() {
                writing.is_empty()
            } else {
                writing.len() < STREAMS_PER_PEER
            };
            if !may {
                next = Some(queued);
            } else {
                let stream = match idle.pop() {
                    Some(s) => Some(s),
                    None => match control.open_stream(peer, PROTOCOL_1_2).await {
                        Ok(s) => {
                            open += 1;
                            Some(s)
                        }
                        Err(e) => {
                            tracing::debug!(%peer, error = %e, "cannot open bitswap stream; message dropped");
                            let _ = outboxes.unreachable.try_send(peer);
                            None
                        }
                    },
                };
                if let Some(s) = stream {
                    writing.push(write(s, queued, 0));
                }
            }
        }
        if closed && next.is_none() && writing.is_empty() {
            break;
        }
        tokio::select! {
            m = rx.recv(), if next.is_none() && !closed => match m {
                Some(queued) => next = Some(queued),
                None => closed = true,
            },
            Some((stream, queued, attempt, r)) = writing.next() => match r {
                Ok(()) => idle.push(stream),
                Err(codec::Error::Stalled(_)) => {
                    // The peer does not read what it asked for: stop holding memory for it.
                    tracing::info!(%peer, secs = WRITE_TIMEOUT.as_secs(), "peer does not read its bitswap answers: writer dropped");
                    outboxes.mark_not_reading(peer);
                    return;
                }
                Err(e) if attempt == 1 => {
                    // Twice in a row: the peer closes what we send (or is gone).
                    tracing::info!(%peer, error = %e, "bitswap answers keep failing: writer dropped");
                    outboxes.mark_not_reading(peer);
                    return;
                }
                Err(e) => {
                    tracing::debug!(%peer, error = %e, "bitswap write failed; again on a new stream");
                    drop(stream);
                    match control.open_stream(peer, PROTOCOL_1_2).await {
                        Ok(s) => writing.push(write(s, queued, 1)),
                        Err(e) => tracing::debug!(%peer, error = %e, "cannot reopen bitswap stream; message dropped"),
                    }
                }
            },
            _ = cancel.cancelled() => break,
        }
    }
    tracing::trace!(%peer, open, "bitswap writer done");
    for mut s in idle {
        let _ = futures::AsyncWriteExt::close(&mut s).await;
    }
}
