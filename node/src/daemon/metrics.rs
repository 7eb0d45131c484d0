//! The daemon's `/metrics` page, in Prometheus text (names per its guide: `archive_node_`,
//! base units, `_total` for counters; labels only where their values are bounded).

use std::time::Instant;

use crate::node::Node;

/// The `/metrics` page.
pub fn text(node: &Node, started: Instant) -> String {
    format!(
        "# HELP archive_node_uptime_seconds Seconds since the daemon started.\n\
         # TYPE archive_node_uptime_seconds gauge\narchive_node_uptime_seconds {}\n\
         # HELP archive_node_block_store_bytes Bytes of blocks stored.\n\
         # TYPE archive_node_block_store_bytes gauge\narchive_node_block_store_bytes {}\n\
         # HELP archive_node_bitswap_served_blocks_total Blocks sent to peers.\n\
         # TYPE archive_node_bitswap_served_blocks_total counter\narchive_node_bitswap_served_blocks_total {}\n\
         # HELP archive_node_bitswap_served_bytes_total Block bytes sent to peers.\n\
         # TYPE archive_node_bitswap_served_bytes_total counter\narchive_node_bitswap_served_bytes_total {}\n\
         # HELP archive_node_bitswap_received_twice_bytes_total Block bytes received when the block was here already.\n\
         # TYPE archive_node_bitswap_received_twice_bytes_total counter\narchive_node_bitswap_received_twice_bytes_total {}\n",
        started.elapsed().as_secs(),
        node.blocks().used_bytes(),
        node.bitswap().served().blocks,
        node.bitswap().served().bytes,
        node.bitswap().received_twice().bytes,
    ) + &refusals_text(node)
        + &budgets_text(node)
        + &bandwidth_text(node)
        + &communities_text(node)
}

fn budgets_text(node: &Node) -> String {
    let b = node.budgets();
    let gauge = |name: &str, help: &str, v: u64| {
        format!(
            "# HELP archive_node_{name} {help}\n# TYPE archive_node_{name} gauge\narchive_node_{name} {v}\n"
        )
    };
    let counter = |name: &str, help: &str, v: u64| {
        format!("# HELP archive_node_{name} {help}\n# TYPE archive_node_{name} counter\narchive_node_{name} {v}\n")
    };
    [
        gauge(
            "bitswap_inbound_streams",
            "Inbound Bitswap stream permits held.",
            b.bitswap.inbound_streams as u64,
        ),
        counter(
            "bitswap_streams_evicted_total",
            "Idle Bitswap streams closed for newcomers.",
            b.bitswap.streams_evicted,
        ),
        counter(
            "bitswap_streams_refused_total",
            "Bitswap streams refused (peer limit, or none could be evicted).",
            b.bitswap.streams_refused,
        ),
        gauge(
            "bitswap_outbound_bytes",
            "Bytes of Bitswap answers queued for peers.",
            b.bitswap.outbound_kib * 1024,
        ),
        gauge(
            "bitswap_received_unstored_bytes",
            "Bytes of received blocks not yet stored (one budget for every fetch).",
            b.bitswap.received_unstored_kib * 1024,
        ),
        counter(
            "bitswap_peers_dropped_not_reading_total",
            "Peers whose answers were dropped because they did not read.",
            b.bitswap.peers_dropped_not_reading,
        ),
        gauge(
            "gossip_validation_queued",
            "Gossip messages waiting for a validation worker.",
            b.validation_queued as u64,
        ),
        gauge(
            "gossip_validation_held",
            "Gossip messages held for a newer community description.",
            b.validation_held as u64,
        ),
        counter(
            "requests_dropped_total",
            "Gossip messages ignored and requests refused because the node's queue was full.",
            b.requests_dropped,
        ),
        counter(
            "gossip_publishes_dropped_total",
            "Publishes dropped while waiting for a subscribed peer (over 256 or 4 MiB per topic).",
            b.publishes_dropped,
        ),
        counter(
            "network_notices_missed_total",
            "Network notices a lagging subscriber missed.",
            b.notices_missed,
        ),
        gauge("fetches_held", "Roots held against GC by fetches in progress.", b.fetches_held as u64),
    ]
    .concat()
}

fn bandwidth_text(node: &Node) -> String {
    let (up, down) = node.bitswap().bandwidth().usage();
    let mut out = String::new();
    for (name, kind, help, get) in [
        (
            "bandwidth_bytes_total",
            "counter",
            "Bytes of blocks moved, by direction.",
            (|u: &crate::bitswap::bandwidth::Usage| u.total) as fn(&_) -> u64,
        ),
        (
            "bandwidth_bytes_per_second",
            "gauge",
            "Bytes of blocks moved in the last second, by direction.",
            |u| u.rate,
        ),
        (
            "bandwidth_limit_bytes_per_second",
            "gauge",
            "Limit on bytes of blocks per second, by direction (0: none).",
            |u| u.limit,
        ),
    ] {
        out.push_str(&format!("# HELP archive_node_{name} {help}\n# TYPE archive_node_{name} {kind}\n"));
        for (direction, u) in [("upload", &up), ("download", &down)] {
            out.push_str(&format!("archive_node_{name}{{direction=\"{direction}\"}} {}\n", get(u)));
        }
    }
    out
}

fn refusals_text(node: &Node) -> String {
    let mut out = String::from(
        "# HELP archive_node_messages_refused_total Gossip messages refused, by reason.\n\
         # TYPE archive_node_messages_refused_total counter\n",
    );
    for (reason, n) in node.counters().refusals() {
        out.push_str(&format!("archive_node_messages_refused_total{{reason=\"{reason}\"}} {n}\n"));
    }
    out
}

/// Reads one community's gauge.
type CommunityGauge = fn(&Node, &crate::community::CommunityId) -> u64;

/// Gauges per joined community (a label each: communities are few, and joined by the operator).
fn communities_text(node: &Node) -> String {
    let records = node.communities().list().unwrap_or_default();
    let mut out = String::new();
    let gauges: [(&str, &str, CommunityGauge); 3] = [
        ("community_archives_downloaded", "Archives of the community downloaded as a member.", |n, id| {
            n.archive_state().downloaded(id).map_or(0, |d| d.len() as u64)
        }),
        ("community_archives_imported", "Downloaded archives whose messages are imported.", |n, id| {
            n.archive_state().downloaded(id).map_or(0, |d| d.values().filter(|i| **i).count() as u64)
        }),
        ("community_message_bytes", "Bytes of the community's messages stored.", |n, id| {
            n.messages().used_bytes(id).unwrap_or(0)
        }),
    ];
    for (name, help, get) in gauges {
        out.push_str(&format!("# HELP archive_node_{name} {help}\n# TYPE archive_node_{name} gauge\n"));
        for r in &records {
            let Ok(id) = r.id.parse::<crate::community::CommunityId>() else { continue };
            out.push_str(&format!("archive_node_{name}{{community=\"{id}\"}} {}\n", get(node, &id)));
        }
    }
    out
}
