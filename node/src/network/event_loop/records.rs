//! The event loop's part in DHT records: putting and getting them for the node, and admitting
//! the records peers put to us ([`crate::network::records::admit`]). Kademlia runs with record
//! filtering on, so nothing a peer sends is stored before this check (provider records are
//! stored as they come, bounded by the split store).

use libp2p::kad::{self, store::RecordStore};
use libp2p::PeerId;
use tokio::sync::oneshot;

use super::EventLoop;
use crate::network::{records, Error, Event};

/// Records a lookup collects at most (one per answering peer; the rest are not kept).
const MAX_RECORDS_PER_GET: usize = 20;

/// A record found, and the peer that gave it (`None`: our own store).
pub type Found = (Option<PeerId>, Vec<u8>);

pub(super) type GetReply = oneshot::Sender<Result<Vec<Found>, Error>>;

/// Queries under way.
#[derive(Default)]
pub(super) struct Queries {
    puts: std::collections::HashMap<kad::QueryId, oneshot::Sender<Result<(), Error>>>,
    gets: std::collections::HashMap<kad::QueryId, (Vec<Found>, GetReply)>,
}

impl EventLoop {
    pub(super) fn put_record(
        &mut self,
        key: Vec<u8>,
        value: Vec<u8>,
        reply: oneshot::Sender<Result<(), Error>>,
    ) {
        let record = kad::Record::new(kad::RecordKey::new(&key), value);
        match self.swarm.behaviour_mut().kad.put_record(record, kad::Quorum::One) {
            Ok(q) => {
                self.records.puts.insert(q, reply);
            }
            Err(e) => {
                let _ = reply.send(Err(Error::Dht(e.to_string())));
            }
        }
    }

    pub(super) fn get_records(&mut self, key: Vec<u8>, reply: GetReply) {
        let key = kad::RecordKey::new(&key);
        let mut found = Vec::new();
        if let Some(own) = self.swarm.behaviour_mut().kad.store_mut().get(&key) {
            found.push((None, own.value.clone()));
        }
        let q = self.swarm.behaviour_mut().kad.get_record(key);
        self.records.gets.insert(q, (found, reply));
    }

    /// A peer puts a record to us: stored only when admitted; the node hears of it.
    pub(super) fn on_inbound_put(&mut self, source: PeerId, record: kad::Record) {
        let held = self.swarm.behaviour_mut().kad.store_mut().get(&record.key).map(|r| r.value.clone());
        match records::admit(record.key.as_ref(), &record.value, held.as_deref(), crate::ipns::now_ns()) {
            Ok(_) => {
                let (key, value) = (record.key.to_vec(), record.value.clone());
                if let Err(e) = self.swarm.behaviour_mut().kad.store_mut().put(record) {
                    tracing::debug!(peer = %source, error = %e, "cannot store a DHT record");
                    return;
                }
                self.emit(Event::RecordStored { key, value, source });
            }
            Err(e) => tracing::debug!(peer = %source, error = %e, "refused a DHT record"),
        }
    }

    /// A peer says it provides a key: stored as it comes (the split store bounds what others
    /// may have us hold).
    pub(super) fn on_inbound_provider(&mut self, record: kad::ProviderRecord) {
        if let Err(e) = self.swarm.behaviour_mut().kad.store_mut().add_provider(record) {
            tracing::debug!(error = %e, "cannot store a provider record");
        }
    }

    pub(super) fn on_put_result(
        &mut self,
        id: kad::QueryId,
        r: Result<kad::PutRecordOk, kad::PutRecordError>,
    ) {
        if let Some(reply) = self.records.puts.remove(&id) {
            // Stored locally, and served to whoever asks, even when no peer took it (a small
            // private network): a failure to reach a quorum is logged, not an error.
            if let Err(e) = &r {
                tracing::debug!(error = %e, "DHT put reached no peer");
            }
            let _ = reply.send(Ok(()));
        }
    }

    pub(super) fn on_get_result(
        &mut self,
        id: kad::QueryId,
        r: Result<kad::GetRecordOk, kad::GetRecordError>,
        last: bool,
    ) {
        if let Some((found, _)) = self.records.gets.get_mut(&id) {
            if let Ok(kad::GetRecordOk::FoundRecord(peer_record)) = r {
                if found.len() < MAX_RECORDS_PER_GET {
                    found.push((peer_record.peer, peer_record.record.value));
                }
            }
        }
        if last {
            if let Some((found, reply)) = self.records.gets.remove(&id) {
                let _ = reply.send(Ok(found));
            }
        }
    }
}
