//! Signals: named events streamed to RPC subscribers, like status-go's signals
//! (`{"type": "...", "event": {...}}`).

use serde::Serialize;
use tokio::sync::broadcast;

/// Signals buffered per subscriber; a subscriber further behind loses the oldest.
const SIGNAL_QUEUE: usize = 1024;

/// Signal names, in one place.
pub mod names {
    pub const PEER_CONNECTED: &str = "node.peerConnected";
    pub const PEER_DISCONNECTED: &str = "node.peerDisconnected";
    /// Every [`crate::daemon::BANDWIDTH_SIGNAL_EVERY`]: block data each way (archive-node's own).
    pub const BANDWIDTH: &str = "node.bandwidth";
    pub const FETCH_STARTED: &str = "blocks.fetchStarted";
    pub const FETCH_PROGRESS: &str = "blocks.fetchProgress";
    pub const FETCH_COMPLETED: &str = "blocks.fetchCompleted";
    pub const FETCH_FAILED: &str = "blocks.fetchFailed";
    pub const MESSAGES_NEW: &str = "messages.new";
    pub const CREATING_ARCHIVES: &str = "community.creatingHistoryArchives";
    pub const ARCHIVES_CREATED: &str = "community.historyArchivesCreated";
    pub const NO_ARCHIVES_CREATED: &str = "community.noHistoryArchivesCreated";
    pub const ARCHIVES_SEEDING: &str = "community.historyArchivesSeeding";
    pub const ARCHIVES_FAILED: &str = "community.historyArchivesFailed";
    pub const INDEX_DOWNLOADED: &str = "community.archiveIndexDownloadCompleted";
    pub const DOWNLOADING_STARTED: &str = "community.downloadingHistoryArchivesStarted";
    pub const ARCHIVE_DOWNLOADED: &str = "community.historyArchiveDownloaded";
    pub const DOWNLOADING_FINISHED: &str = "community.downloadingHistoryArchivesFinished";
    pub const IMPORT_STARTED: &str = "community.importingHistoryArchiveMessagesStarted";
    pub const IMPORT_FINISHED: &str = "community.importingHistoryArchiveMessagesFinished";
    pub const ANNOUNCEMENT_ACCEPTED: &str = "community.archiveAnnouncementAccepted";
    /// A newer IPNS record of a community's history root was kept (archive-node's own).
    pub const IPNS_ACCEPTED: &str = "community.ipnsRecordAccepted";
    pub const ANNOUNCEMENT_REJECTED: &str = "community.archiveAnnouncementRejected";
    pub const DESCRIPTION_UPDATED: &str = "community.descriptionUpdated";
    pub const MEMBER_JOINED: &str = "community.memberJoined";
    pub const MEMBER_REMOVED: &str = "community.memberRemoved";
    pub const MEMBER_BANNED: &str = "community.memberBanned";
    pub const REKEYED: &str = "community.rekeyed";
    pub const REQUEST_TO_JOIN: &str = "community.requestToJoin";
    pub const REQUEST_REJECTED: &str = "community.requestRejected";
    pub const KEY_MISSING: &str = "community.archiveKeyMissing";
}

/// One signal.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Signal {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub event: serde_json::Value,
}

/// The signal bus; cheap to clone.
#[derive(Clone)]
pub struct Signals {
    tx: broadcast::Sender<Signal>,
}

impl Default for Signals {
    fn default() -> Self {
        Self { tx: broadcast::channel(SIGNAL_QUEUE).0 }
    }
}

impl Signals {
    /// Emits a signal (dropped when nobody listens).
    pub fn emit(&self, kind: &'static str, event: serde_json::Value) {
        let _ = self.tx.send(Signal { kind, event });
    }

    /// Subscribes to every signal from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Signal> {
        self.tx.subscribe()
    }
}
