"""Gossip benchmark: 30 daemons on loopback in a sparse random topology (each dials 3 others);
the time from the control node's announcement until every member has accepted it, over 20
announcements (p50, p99, max), plus every single member's latency.

Run by `scripts/bench.sh gossip` inside a private network namespace. Prints one RESULT line.
"""

import json
import os
import sys
import tempfile

import bench_daemons as bd

NODES = int(os.environ.get("BENCH_GOSSIP_NODES", "30"))
ANNOUNCEMENTS = 20
# Default gossip settings (a long-running node's), one-second archive windows so that every
# round makes a new archive and a new announcement.
# One author sends as fast as it can: no per-author rate limit.
CONFIG = "[archive]\npartition_secs = 1\n[membership]\nmax_messages_per_author_per_minute = 0\n"


def main() -> None:
    with tempfile.TemporaryDirectory(dir=bd.ROOT / "target") as tmp:
        work = bd.pathlib.Path(tmp)
        daemons = bd.start(NODES, work, CONFIG)
        listeners = []
        try:
            control, members = daemons[0], daemons[1:]
            bd.connect(daemons, bd.random_edges(NODES, 3, seed=7))
            cid, invite = bd.create_community(control, "gossip-bench")
            listeners = [bd.SignalListener(d.url, d.token) for d in daemons]
            for m in members:
                m.rpc.call("community_join", {"invite": invite})
            all_accepted, each = [], []
            # Round 0 warms the meshes up and is not counted.
            for k in range(ANNOUNCEMENTS + 1):
                marks = [l.mark() for l in listeners]
                sent = control.rpc.call("messages_send", {"communityId": cid, "topic": "chat", "payload": bd.b64(b"round %d" % k)})
                out = bd.round_after(control, cid, sent["timestamp"])
                index_cid = out["indexCid"]
                # Created is signalled right before the announcement is published.
                t0 = bd.wait_at(listeners[0], "community.historyArchivesCreated", lambda e: e["indexCid"] == index_cid, marks[0])
                latencies = []
                for l, mark in zip(listeners[1:], marks[1:]):
                    at = bd.wait_at(l, "community.archiveAnnouncementAccepted", lambda e: e["indexCid"] == index_cid, mark)
                    latencies.append(max(0.0, at - t0) * 1000)
                if k == 0:
                    continue
                each += latencies
                all_accepted.append(max(latencies))
                print(f"announcement {k}: every member accepted after {max(latencies):.1f} ms", file=sys.stderr)
        finally:
            for l in listeners:
                l.close()
            bd.stop(daemons)
    result = {
        "bench": "gossip",
        "nodes": NODES,
        "degree": 3,
        "announcements": ANNOUNCEMENTS,
        "all_accepted_ms": bd.spread(all_accepted),
        "each_member_ms": bd.spread(each),
    }
    print("RESULT " + json.dumps(result))


if __name__ == "__main__":
    main()
