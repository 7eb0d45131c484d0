//! Per-peer writers: every message to a peer goes through one task that owns our outbound stream
//! to it (opened on first use, reopened once on error). Helia reads our answers on streams we
//! open, not on the one its request came on.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use libp2p::PeerId;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{codec, message::Message, PROTOCOL_1_2};

/// Messages queued per peer before senders wait (backpressure on the server and the client).
const OUTBOX_QUEUE: usize = 8;

/// The writers, by peer.
#[derive(Clone)]
pub(super) struct Outboxes {
    control: libp2p_stream::Control,
    map: Arc<Mutex<HashMap<PeerId, mpsc::Sender<Message>>>>,
    cancel: CancellationToken,
}

impl Outboxes {
    pub fn new(control: libp2p_stream::Control, cancel: CancellationToken) -> Self {
        Self { control, map: Arc::default(), cancel }
    }

    fn sender(&self, peer: PeerId) -> mpsc::Sender<Message> {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(tx) = map.get(&peer) {
            if !tx.is_closed() {
                return tx.clone();
            }
        }
        let (tx, rx) = mpsc::channel(OUTBOX_QUEUE);
        tokio::spawn(writer(self.control.clone(), peer, rx, self.cancel.clone()));
        map.insert(peer, tx.clone());
        tx
    }

    /// Queues `msg` for `peer`, waiting while its queue is full.
    pub async fn send(&self, peer: PeerId, msg: Message) {
        if msg.is_empty() {
            return;
        }
        // A closed writer (shut down) drops the message: nothing to do.
        let _ = self.sender(peer).send(msg).await;
    }

    /// Forgets a disconnected peer: its writer ends once its queue drains.
    pub fn remove(&self, peer: &PeerId) {
        self.map.lock().unwrap_or_else(|p| p.into_inner()).remove(peer);
    }
}

async fn writer(
    mut control: libp2p_stream::Control,
    peer: PeerId,
    mut rx: mpsc::Receiver<Message>,
    cancel: CancellationToken,
) {
    let mut stream: Option<libp2p::Stream> = None;
    loop {
        let msg = tokio::select! {
            m = rx.recv() => match m { Some(m) => m, None => break },
            _ = cancel.cancelled() => break,
        };
        for attempt in 0..2 {
            if stream.is_none() {
                match control.open_stream(peer, PROTOCOL_1_2).await {
                    Ok(s) => stream = Some(s),
                    Err(e) => {
                        tracing::debug!(%peer, error = %e, "cannot open bitswap stream; message dropped");
                        break;
                    }
                }
            }
            let Some(s) = stream.as_mut() else { break };
            match codec::write(s, &msg).await {
                Ok(()) => break,
                Err(e) => {
                    tracing::debug!(%peer, attempt, error = %e, "bitswap write failed");
                    stream = None;
                }
            }
        }
    }
    if let Some(mut s) = stream {
        let _ = futures::AsyncWriteExt::close(&mut s).await;
    }
}
