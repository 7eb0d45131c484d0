//! `archive_syncStatus`: how much of a community's latest index this node holds, archive by
//! archive, with the messages stored here for each archive's window (the dashboard's progress
//! bars and chart).

use serde::Serialize;

use crate::blocks::cid::Cid;
use crate::community::CommunityId;
use crate::node::Node;

/// Held and total, of archives or of bytes.
#[derive(Serialize, Default, Debug, PartialEq, Eq)]
pub struct Count {
    pub held: u64,
    pub total: u64,
}

/// One archive of the index.
#[derive(Serialize, Debug)]
pub struct Window {
    pub id: String,
    pub from: u64,
    pub to: u64,
    /// Messages stored here with a timestamp in `[from, to)`.
    pub messages: u64,
    /// The archive's blocks are all here (built here, or downloaded).
    pub held: bool,
    /// The archive's file size (0 until its root block is here).
    pub bytes: u64,
}

/// The answer.
#[derive(Serialize, Debug, Default)]
#[serde(rename_all = "camelCase")]
pub struct SyncStatus {
    pub archives: Count,
    pub bytes: Count,
    /// Archives downloaded and imported here (a member's).
    pub imported: u64,
    /// Oldest first.
    pub windows: Vec<Window>,
    /// Why there is no index to report on yet, when there is none.
    pub waiting: Option<String>,
}

/// The sync status of `id` (blocking: reads the index, the block store and the message store).
pub fn sync_status(node: &Node, id: &CommunityId) -> Result<SyncStatus, String> {
    let index = match node.current_index(id) {
        Ok(Some(index)) => index,
        Ok(None) => {
            return Ok(SyncStatus { waiting: Some("no history announced yet".into()), ..Default::default() })
        }
        Err(e) => return Ok(SyncStatus { waiting: Some(e.to_string()), ..Default::default() }),
    };
    let downloaded = node.archive_state().downloaded(id).map_err(|e| e.to_string())?;
    let mut status =
        SyncStatus { imported: downloaded.values().filter(|i| **i).count() as u64, ..Default::default() };
    for (archive_id, entry) in &index.archives {
        let (from, to) = (entry.metadata.from, entry.metadata.to);
        let messages = node.messages().count_range(id, from, to).map_err(|e| e.to_string())?;
        let stat = match entry.cid.parse::<Cid>() {
            Ok(cid) => Some(node.blocks().stat(&cid).map_err(|e| e.to_string())?),
            Err(_) => None,
        };
        let size = stat.as_ref().and_then(|s| s.size).unwrap_or(0);
        let held = downloaded.contains_key(archive_id) || stat.as_ref().is_some_and(|s| s.complete);
        let held_bytes = if held { size } else { stat.as_ref().map_or(0, |s| s.block_bytes.min(size)) };
        status.archives.total += 1;
        status.archives.held += u64::from(held);
        status.bytes.total += size;
        status.bytes.held += held_bytes;
        status.windows.push(Window { id: archive_id.clone(), from, to, messages, held, bytes: size });
    }
    status.windows.sort_by_key(|w| (w.from, w.to));
    Ok(status)
}
