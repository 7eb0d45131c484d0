//! A member's history sync for one community: fetch the history root the latest accepted
//! announcement names (its block alone) and the index it holds, download the archives this node
//! lacks (newest first, a few at a time, from every peer that has them) and import each one as
//! soon as it is stored, so the network and the importer work at the same time; at the end, pin
//! the root, so this node keeps and serves the whole history under one CID. Every step is
//! recorded durably, so a sync cut by a crash or by a newer announcement resumes where it stopped.

use std::collections::BTreeSet;
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::{mpsc, watch};

use super::{Error, Event, Node};
use crate::archive::history::{self, Announced};
use crate::archive::index::ReadError;
use crate::archive::{importer, Entry, Index};
use crate::bitswap::{Progress, Scope};
use crate::blocks::cid::Cid;
use crate::community::CommunityId;
use crate::seal::KeyRing;

/// Attempts to fetch an index before a sync gives up (until the next announcement or restart).
const INDEX_FETCH_ATTEMPTS: u32 = 3;

/// How often a stalled sync is tried again while no peer connects.
const STALLED_RETRY: Duration = Duration::from_secs(30);

/// Errors of a sync.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("archive state: {0}")]
    State(#[from] crate::archive::state::Error),
    #[error("index {cid}: {reason}")]
    Index { cid: String, reason: String },
    #[error("archive {id}: {reason}")]
    Archive { id: String, reason: String },
    #[error("no description of community {0} yet: import waits for it (it says whose messages are valid)")]
    NoDescription(String),
}

fn index_err(cid: &str, reason: impl ToString) -> Error {
    SyncError::Index { cid: cid.to_string(), reason: reason.to_string() }.into()
}

fn archive_err(id: &str, reason: impl ToString) -> Error {
    SyncError::Archive { id: id.to_string(), reason: reason.to_string() }.into()
}

impl Node {
    /// (Re)starts the sync of a community: a running one is cancelled.
    pub fn start_sync(&self, id: CommunityId) {
        let Ok(handle) = tokio::runtime::Handle::try_current() else { return };
        let node = self.clone();
        let task = handle.spawn(async move {
            let result = node.sync_community(id).await;
            let mut stalled = node.stalled.lock().unwrap_or_else(|p| p.into_inner());
            match result {
                Ok(()) => {
                    stalled.remove(&id);
                }
                Err(e) => {
                    tracing::warn!(community = %id, error = %e, retry_secs = STALLED_RETRY.as_secs(), "history sync stopped; retried when a peer connects, and periodically");
                    stalled.insert(id);
                }
            }
        });
        let mut syncs = self.syncs.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(old) = syncs.insert(id, task) {
            old.abort();
        }
    }

    /// Retries the stalled syncs every [`STALLED_RETRY`] as well: a peer already connected may
    /// have fetched what they lacked since (a member syncing from the control node, say).
    pub(super) async fn stalled_sync_loop(self) {
        let mut tick = tokio::time::interval(STALLED_RETRY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => self.retry_stalled_syncs(),
                _ = self.cancel.cancelled() => return,
            }
        }
    }

    /// Starts again the syncs that failed and are not running: a peer just connected, and may
    /// have what they lacked (after a restart, the resumed sync runs before any peer is there).
    pub(super) fn retry_stalled_syncs(&self) {
        let ids: Vec<CommunityId> =
            self.stalled.lock().unwrap_or_else(|p| p.into_inner()).iter().copied().collect();
        for id in ids {
            let running = self
                .syncs
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(&id)
                .is_some_and(|t| !t.is_finished());
            if !running {
                self.start_sync(id);
            }
        }
    }

    /// Downloads the archives the latest accepted index lists that this node lacks, newest
    /// first, and imports every downloaded archive not imported yet (also those a crash left).
    /// Fetched blocks stay pinned and are provided, so members serve each other.
    pub async fn sync_community(&self, id: CommunityId) -> Result<(), Error> {
        let communities = self.communities.clone();
        let found = self
            .blocking(move |n| {
                let Some(record) = communities.get(&id)? else { return Ok(None) };
                let cid = n.latest_history(&id)?.map(|(_, cid)| cid);
                Ok(Some((n.key_ring(&record)?, cid, n.description(&id)?)))
            })
            .await?;
        let Some((keys, announced, members)) = found else { return Ok(()) };
        let members = match (&announced, members) {
            (None, _) => None,
            (Some(_), Some(members)) => Some(members),
            // No community peer told us whose messages are valid: the history root says it.
            (Some(cid), None) => Some(self.description_from_history(id, cid).await?),
        };
        let concurrency = self.seeder.config.fetch_concurrency.max(1);
        let (to_import, mut queue) = mpsc::channel::<(String, Entry)>(concurrency);
        let index_keys = keys.clone();
        // Owns the sender: when the download side is done, the import side's queue ends.
        let download = async move {
            // Downloaded before but not imported (a crash, or a sync cut by a newer
            // announcement): import them first, while the index is fetched.
            let mut deferred = Vec::new();
            for archive_id in
                self.downloaded(id).await?.into_iter().filter_map(|(a, imported)| (!imported).then_some(a))
            {
                match self.archive_entry(id, archive_id.clone()).await {
                    Ok(entry) => {
                        if to_import.send((archive_id, entry)).await.is_err() {
                            return Ok(None);
                        }
                    }
                    // Listed by an index not fetched yet.
                    Err(_) => deferred.push(archive_id),
                }
            }
            let Some(cid) = &announced else { return Ok(None) };
            let (announced, index) = self.fetch_index(id, cid, &index_keys).await?;
            // GC keeps what is under the root while the sync runs; it is pinned at the end.
            let hold = announced.root().map(|root| (root, self.blocks.hold(root)));
            for archive_id in deferred {
                if let Some(entry) = index.archives.get(&archive_id) {
                    if to_import.send((archive_id, entry.clone())).await.is_err() {
                        return Ok(hold);
                    }
                }
            }
            let have: BTreeSet<String> = self.downloaded(id).await?.into_keys().collect();
            let missing =
                index.missing_from(&have).into_iter().map(|(i, e)| (i.clone(), e.clone())).collect();
            self.download(id, missing, concurrency, &to_import).await?;
            Ok::<_, Error>(hold)
        };
        // Owns the receiver: if an import fails, the download side's next send fails too,
        // instead of waiting forever on a full queue.
        let import = async move {
            while let Some((archive_id, entry)) = queue.recv().await {
                self.import_archive(id, archive_id, entry, keys.clone(), members.clone()).await?;
            }
            Ok::<_, Error>(())
        };
        let (downloaded, imported) = tokio::join!(download, import);
        let root = downloaded?;
        imported?;
        if let Some((root, _hold)) = root {
            self.pin_history(id, root).await?;
        }
        let _ = self.events.send(Event::DownloadingFinished { community: id });
        Ok(())
    }

    /// The community's description taken from the history root `cid` names (its `description`
    /// entry, verified and ordered like one from a peer): what lets a member import history no
    /// community node is online to vouch for.
    async fn description_from_history(
        &self,
        id: CommunityId,
        cid: &str,
    ) -> Result<std::sync::Arc<crate::membership::Signed>, Error> {
        let no_description = move || Error::from(SyncError::NoDescription(id.to_string()));
        let root: Cid = cid.parse().map_err(|e| index_err(cid, e))?;
        self.fetch_retrying(id, root, Scope::Block).await?;
        let entry = self
            .blocking(move |n| {
                let entries =
                    history::entries_local(&n.blocks, root).map_err(|e| index_err(&root.to_string(), e))?;
                Ok(entries.into_iter().find(|e| e.name == history::DESCRIPTION_ENTRY))
            })
            .await?
            .ok_or_else(no_description)?;
        // Its size as the root states it, bounded before a byte is fetched.
        let limit = 2 * crate::membership::description::MAX_DESCRIPTION_BYTES as u64;
        if entry.tsize > limit {
            return Err(index_err(
                cid,
                format!("its description entry states {} bytes, over {limit}", entry.tsize),
            ));
        }
        let entry = entry.cid;
        self.fetch_retrying(id, entry, Scope::Dag).await?;
        self.blocking(move |n| {
            let mut bytes = Vec::new();
            crate::blocks::files::cat(&n.blocks, entry, &mut bytes)
                .map_err(|e| index_err(&root.to_string(), e))?;
            n.receive_description(&id, &bytes)?;
            n.description(&id)?.ok_or_else(no_description)
        })
        .await
    }

    /// Pins the history root of a finished sync in place of the previous one, and provides it
    /// when this node holds all of it: the one CID an IPFS node pins to keep the history.
    async fn pin_history(&self, id: CommunityId, root: Cid) -> Result<(), Error> {
        // What the root holds besides the archives (its description) is fetched too, so this
        // node serves all of it.
        let missing = self.blocking(move |n| Ok(n.blocks.missing(&root)?)).await?;
        if !missing.is_empty() {
            self.fetch_retrying(id, root, Scope::Held).await?;
        }
        let whole = self
            .blocking(move |n| {
                crate::archive::history::pin_latest(&n.blocks, &n.archive_state, &id, root)
                    .map_err(|e| index_err(&root.to_string(), e))
            })
            .await?;
        if whole {
            if let Err(e) = self.network.provide(root).await {
                tracing::debug!(%root, error = %e, "provide failed");
            }
        }
        Ok(())
    }

    /// The community's downloaded archives, each with whether it is imported (a sled scan, off
    /// the async threads).
    async fn downloaded(&self, id: CommunityId) -> Result<std::collections::BTreeMap<String, bool>, Error> {
        self.blocking(move |n| Ok(n.archive_state.downloaded(&id).map_err(SyncError::from)?)).await
    }

    /// Fetches `cid` (`scope`), with retries and backoff.
    async fn fetch_retrying(&self, id: CommunityId, cid: Cid, scope: Scope) -> Result<(), Error> {
        let mut attempt = 0;
        loop {
            let (tx, _rx) = watch::channel(Progress::default());
            match self.fetch_scoped(cid, scope, &[], tx).await {
                Ok(_) => return Ok(()),
                Err(e) if attempt + 1 < INDEX_FETCH_ATTEMPTS => {
                    attempt += 1;
                    tracing::debug!(community = %id, %cid, error = %e, attempt, "index fetch failed; retrying");
                    // After the backoff, or as soon as a peer connects (one that may have it).
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(1 << attempt)) => {}
                        _ = self.peer_connected.notified() => {}
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Fetches and opens the index an announcement names: the history root's block alone, then
    /// its `index` entry (or, for an announcement made before history roots, the index itself).
    async fn fetch_index(
        &self,
        id: CommunityId,
        cid: &str,
        keys: &KeyRing,
    ) -> Result<(Announced, Index), Error> {
        let announced_cid: Cid = cid.parse().map_err(|e| index_err(cid, e))?;
        self.fetch_retrying(id, announced_cid, Scope::Block).await?;
        let announced = self
            .blocking(move |n| {
                history::resolve_local(&n.blocks, announced_cid)
                    .map_err(|e| index_err(&announced_cid.to_string(), e))?
                    .ok_or_else(|| index_err(&announced_cid.to_string(), "fetched, yet not stored"))
            })
            .await?;
        let root = announced.index();
        self.fetch_retrying(id, root, Scope::Dag).await?;
        let _ = self.events.send(Event::IndexDownloaded {
            community: id,
            cid: root.to_string(),
            root: announced.root().map(|r| r.to_string()),
        });
        let ring = keys.clone();
        let index = self
            .blocking(move |n| {
                crate::archive::index::read(&n.blocks, root, &ring).map_err(|e| {
                    if let ReadError::Seal { source: crate::seal::Error::NoKey { key_id }, .. } = &e {
                        n.key_missing(&id, key_id);
                    }
                    index_err(&root.to_string(), e)
                })
            })
            .await?;
        Ok((announced, index))
    }

    /// Downloads `missing` archives, `concurrency` at a time, handing each stored one to the
    /// importer.
    ///
    /// Downloads never wait for the importer: a downloaded archive is in the block store and
    /// marked downloaded, and only its id and entry wait in `ready` (at most one per archive of
    /// the index) until the importer takes it. A fetch left unpolled while the importer worked
    /// would sit on its received blocks and its peers' answers.
    async fn download(
        &self,
        id: CommunityId,
        missing: Vec<(String, Entry)>,
        concurrency: usize,
        to_import: &mpsc::Sender<(String, Entry)>,
    ) -> Result<(), Error> {
        if missing.is_empty() {
            return Ok(());
        }
        let _ = self.events.send(Event::DownloadingStarted { community: id, archives: missing.len() });
        let mut fetches = futures::stream::iter(missing)
            .map(|(archive_id, entry)| async move {
                let root: Cid = entry.cid.parse().map_err(|e| archive_err(&archive_id, e))?;
                let (tx, _rx) = watch::channel(Progress::default());
                let stats = self.fetch(root, &[], tx).await?;
                Ok::<_, Error>((archive_id, entry, stats.bytes_fetched))
            })
            .buffer_unordered(concurrency);
        let mut ready: std::collections::VecDeque<(String, Entry)> = Default::default();
        let mut fetching = true;
        loop {
            tokio::select! {
                permit = to_import.reserve(), if !ready.is_empty() => match permit {
                    Ok(permit) => permit.send(ready.pop_front().expect("ready is not empty")),
                    // The importer failed: its error ends the sync.
                    Err(_) => return Ok(()),
                },
                done = fetches.next(), if fetching => match done {
                    None => fetching = false,
                    Some(done) => {
                        let (archive_id, entry, bytes) = done?;
                        let (state, aid) = (self.archive_state.clone(), archive_id.clone());
                        self.blocking(move |_| Ok(state.mark_downloaded(&id, &aid, false).map_err(SyncError::from)?))
                            .await?;
                        let (from, to) = (entry.metadata.from, entry.metadata.to);
                        let _ = self.events.send(Event::ArchiveDownloaded {
                            community: id,
                            archive_id: archive_id.clone(),
                            from,
                            to,
                            bytes,
                        });
                        ready.push_back((archive_id, entry));
                    }
                },
                else => return Ok(()),
            }
        }
    }

    /// Imports one downloaded archive and marks it imported.
    async fn import_archive(
        &self,
        id: CommunityId,
        archive_id: String,
        entry: Entry,
        keys: KeyRing,
        members: Option<std::sync::Arc<crate::membership::Signed>>,
    ) -> Result<(), Error> {
        let _ = self.events.send(Event::ImportStarted { community: id, archive_id: archive_id.clone() });
        let aid = archive_id.clone();
        let rate = std::num::NonZeroU64::new(self.seeder.config.import_rate);
        let outcome = self
            .blocking(move |n| {
                let root: Cid = entry.cid.parse().map_err(|e| archive_err(&aid, e))?;
                let members = members.as_ref().map(|m| &m.description);
                let options = importer::Options { threads: importer::threads(), rate, stop: Some(&n.cancel) };
                let imported = importer::import_file(&n.messages, &id, &n.blocks, root, &keys, options, members);
                let outcome = match imported {
                    Ok(o) => o,
                    // Its blocks hash right, yet it does not decode: its builder made it so. It
                    // must not block the rest of the history: skipped, counted as one rejected.
                    Err(importer::Error::Format(e)) => {
                        tracing::warn!(community = %id, archive = %aid, error = %e, "archive does not decode: skipped");
                        importer::Imported { rejected: 1, ..Default::default() }
                    }
                    Err(e) => {
                        if let importer::Error::Seal(crate::seal::Error::NoKey { key_id }) = &e {
                            n.key_missing(&id, key_id);
                        }
                        return Err(archive_err(&aid, e));
                    }
                };
                n.archive_state.mark_downloaded(&id, &aid, true).map_err(SyncError::from)?;
                Ok(outcome)
            })
            .await?;
        let _ = self.events.send(Event::Imported { community: id, archive_id, outcome });
        Ok(())
    }

    /// The entry of a downloaded archive in the latest accepted index, when that index is
    /// stored here.
    async fn archive_entry(&self, id: CommunityId, archive_id: String) -> Result<Entry, Error> {
        self.blocking(move |n| n.local_archive_entry(&id, &archive_id)).await
    }

    fn local_archive_entry(&self, id: &CommunityId, archive_id: &str) -> Result<Entry, Error> {
        let index =
            self.current_index(id)?.ok_or_else(|| archive_err(archive_id, "no accepted announcement"))?;
        index.archives.get(archive_id).cloned().ok_or_else(|| archive_err(archive_id, "not in the index"))
    }

    /// The index the community's latest history names (accepted announcement or IPNS record),
    /// read from the block store with the community's keys (blocking); `None` before any.
    pub fn current_index(&self, id: &CommunityId) -> Result<Option<Index>, Error> {
        let Some((_, cid)) = self.latest_history(id)? else {
            return Ok(None);
        };
        let announced: Cid = cid.parse().map_err(|e| index_err(&cid, e))?;
        let index = history::resolve_local(&self.blocks, announced)
            .map_err(|e| index_err(&cid, e))?
            .ok_or_else(|| index_err(&cid, "not stored here"))?
            .index();
        let ring = match self.communities.get(id)? {
            Some(r) => self.key_ring(&r)?,
            None => KeyRing::default(),
        };
        Ok(Some(crate::archive::index::read(&self.blocks, index, &ring).map_err(|e| index_err(&cid, e))?))
    }
}
