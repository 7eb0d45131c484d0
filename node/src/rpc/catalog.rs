//! Every JSON-RPC method with its parameters and what it does: the answer of `rpc_methods`
//! and of `archive-node rpc --list`. A parameter ending in `?` is optional; by position, the
//! parameters come in this order and trailing optional ones may be left out.

use serde::Serialize;

/// One method.
#[derive(Serialize, Clone, Debug, PartialEq)]
pub struct Method {
    pub name: &'static str,
    pub params: Vec<Param>,
    pub summary: &'static str,
}

/// One parameter.
#[derive(Serialize, Clone, Debug, PartialEq)]
pub struct Param {
    pub name: &'static str,
    pub optional: bool,
}

/// (name, parameters, summary).
const TABLE: &[(&str, &str, &str)] = &[
    ("rpc_methods", "", "every method, its parameters and what it does"),
    ("node_info", "", "peer id, addresses, reachability, bandwidth, budgets, version"),
    ("node_peers", "", "connected peers: addresses, direct or relayed, gossip score, bytes up and down"),
    ("node_connect", "multiaddr", "dial a peer"),
    ("node_setBandwidthLimits", "maxUploadRate? maxDownloadRate?", "limit block data (bytes/s, 0: none)"),
    ("node_rotateToken", "", "a new RPC token; every connection and UI session opened before is closed"),
    ("node_uiLogin", "", "a one-time login URL of the dashboard"),
    ("blocks_add", "data chunkSize? maxLinks?", "add bytes (base64) as a pinned UnixFS file"),
    ("blocks_addPath", "path chunkSize? maxLinks?", "add a file of the daemon's machine"),
    ("blocks_cat", "cid", "a file's bytes (base64), up to about 36 MiB"),
    ("blocks_fetch", "cid peers?", "fetch a DAG over Bitswap (progress as signals)"),
    ("blocks_stat", "cid", "size, blocks present, completeness and pins of a DAG"),
    ("blocks_verify", "", "read back and hash every complete DAG"),
    ("blocks_gc", "", "drop unpinned blocks and compact the pack files"),
    ("community_create", "name encrypted? access?", "a community this node controls"),
    ("community_join", "invite", "join with an invite"),
    ("community_requestToJoin", "invite", "ask to join an on-request community"),
    ("community_leave", "communityId", "leave a community"),
    ("community_list", "", "joined communities"),
    ("community_invite", "communityId memberKey?", "an invite (per member key when invitation-only)"),
    ("community_description", "communityId", "the latest community description"),
    ("community_members", "communityId", "members, their spans and bans"),
    ("community_setAccess", "communityId access", "open, invitation-only or on-request (control node)"),
    ("community_pendingRequests", "communityId", "requests to join waiting for a decision (control node)"),
    ("community_acceptRequest", "communityId memberKey", "admit who asked (control node)"),
    ("community_rejectRequest", "communityId memberKey", "refuse who asked (control node)"),
    ("community_kick", "communityId memberKey", "remove a member (control node)"),
    ("community_ban", "communityId memberKey", "remove and ban a member (control node)"),
    ("community_unban", "communityId memberKey", "lift a ban (control node)"),
    ("messages_send", "communityId topic payload", "sign, store and publish a message"),
    (
        "messages_query",
        "communityId topics? from? to? limit? cursor?",
        "stored messages, oldest first, by page",
    ),
    ("archive_createNow", "communityId", "one seeding round now (control node)"),
    ("archive_setEnabled", "communityId enabled", "turn seeding rounds on or off"),
    ("archive_getInterval", "communityId", "seconds between seeding rounds"),
    ("archive_setInterval", "communityId seconds", "set the seconds between seeding rounds"),
    ("archive_latestAnnouncement", "communityId", "the accepted announcement and its history root"),
    ("archive_resolve", "communityId", "look the community's IPNS name up on the DHT now"),
    ("archive_index", "communityId", "the latest index, decrypted"),
    ("archive_hasCommunityArchive", "communityId", "whether an announcement was accepted"),
    ("archive_downloadedArchiveIds", "communityId", "archives this node downloaded"),
    ("archive_importProgress", "communityId", "archives downloaded and imported"),
    (
        "archive_syncStatus",
        "communityId",
        "archives and bytes held of the latest index, and messages per window",
    ),
    ("subscribe_signals", "", "a WebSocket subscription to every signal"),
    ("debug_publish", "topic data", "publish raw bytes on a gossip topic (debug methods only)"),
    (
        "debug_signMessage",
        "communityId topic payload",
        "a message signed without checks (debug methods only)",
    ),
];

fn method(&(name, params, summary): &(&'static str, &'static str, &'static str)) -> Method {
    let params = params
        .split_whitespace()
        .map(|p| match p.strip_suffix('?') {
            Some(name) => Param { name, optional: true },
            None => Param { name: p, optional: false },
        })
        .collect();
    Method { name, params, summary }
}

/// Every method the catalog knows, in its order.
pub fn all() -> Vec<Method> {
    TABLE.iter().map(method).collect()
}

/// The entry of `name`.
pub fn get(name: &str) -> Option<Method> {
    TABLE.iter().find(|(n, _, _)| *n == name).map(method)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_parameter_list_is_what_the_method_decodes_in_that_order() {
        for m in all() {
            let names: Vec<_> = m.params.iter().map(|p| p.name).collect();
            let decoded = crate::rpc::params::fields_of(m.name);
            assert_eq!(names, decoded, "{}", m.name);
            // Optional parameters come last: only they may be left out by position.
            let first_optional = m.params.iter().position(|p| p.optional).unwrap_or(m.params.len());
            assert!(m.params[first_optional..].iter().all(|p| p.optional), "{}", m.name);
        }
    }

    #[test]
    fn every_method_is_listed_once() {
        let mut names: Vec<_> = all().iter().map(|m| m.name).collect();
        let n = names.len();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), n);
        assert!(get("blocks_add").is_some_and(|m| m.params[1] == Param { name: "chunkSize", optional: true }));
        assert!(get("no_such_method").is_none());
    }
}
