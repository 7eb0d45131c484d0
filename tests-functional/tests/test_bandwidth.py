"""Bandwidth limits on block data: a download limit from the config file and an upload limit
set at run time each hold a fetch to their rate (within 10 %), and `node_info.bandwidth`,
`/metrics` and `archive-node bandwidth` show them."""

import os
import time

from steps.communities import b64

MIB = 1024 * 1024
RATE = 4_000_000  # bytes/s
SIZE = 24 * MIB  # about 6 s at RATE: a fixed start-up cost stays well inside 10 %


def timed_fetch(seeder, member, cid: str) -> float:
    start = time.monotonic()
    stats = member.rpc.call("blocks_fetch", {"cid": cid, "peers": [seeder.addr]}, timeout=300)
    took = time.monotonic() - start
    assert stats["bytesFetched"] >= SIZE, stats
    return took


def assert_rate(took: float, what: str):
    rate = SIZE / took
    assert 0.9 * RATE <= rate <= 1.1 * RATE, f"{what}: {rate / 1e6:.2f} MB/s against a limit of {RATE / 1e6:.2f} MB/s"


def test_download_and_upload_limits_hold_a_fetch_to_their_rate(daemons):
    seeder = daemons()
    member = daemons(extra_config=f"[network]\nmax_download_rate = {RATE}\n")
    first = seeder.rpc.call("blocks_add", {"data": b64(os.urandom(SIZE))})["cid"]
    second = seeder.rpc.call("blocks_add", {"data": b64(os.urandom(SIZE))})["cid"]

    # The member's download limit, from its config file.
    assert member.rpc.call("node_info")["bandwidth"]["download"]["limit"] == RATE
    assert_rate(timed_fetch(seeder, member, first), "download limit")
    down = member.rpc.call("node_info")["bandwidth"]["download"]
    assert down["total"] >= SIZE, down

    # Lifted at run time from the CLI; the seeder's upload limit set at run time over RPC.
    lifted = member.cli("bandwidth", "--max-download-rate", "0").stdout
    assert '"limit": 0' in lifted, lifted
    set_up = seeder.rpc.call("node_setBandwidthLimits", {"maxUploadRate": RATE})
    assert set_up["upload"]["limit"] == RATE
    assert_rate(timed_fetch(seeder, member, second), "upload limit")
    up = seeder.rpc.call("node_info")["bandwidth"]["upload"]
    assert up["total"] >= 2 * SIZE, up
    metrics = seeder.metrics()
    assert f'archive_node_bandwidth_limit_bytes_per_second{{direction="upload"}} {RATE}' in metrics
    assert 'archive_node_bandwidth_bytes_total{direction="upload"}' in metrics
