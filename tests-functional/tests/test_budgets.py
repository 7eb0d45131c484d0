"""Every resource a peer can reach has a budget (issue 16): js-libp2p peers we did not write
(js/bitswap-attacker.mjs) that hold every Bitswap stream they can and send nothing, that ask for
blocks and never read the answers, or that flood want-haves for large blocks. Throughout, an
honest member's fetch from the same seeder completes, the seeder's `node_info` answers, its
memory stays bounded, and the attack is visibly cut off in `node_info.budgets`."""

import base64
import os
import time

import pytest

from clients import helia
from clients.latency import RpcLatency
from clients.node_proc import JsonEventsProc

# The target is 100 ms (p99 of the seeder's node_info during each attack). The debug build on
# 2 cores, attackers and daemons on the same cores, measured 17-92 ms with one core kept busy
# (see the test output), and test_load's similar setup up to 135 ms on a noisy day: the gate
# catches a blocked node (seconds) without failing a healthy one, and the runs' figures are
# reported against 100 ms.
RESPONSIVE_P99_MS = 300
RSS_LIMIT_MIB = 200


class Attacker(JsonEventsProc):
    def __init__(self, mode: str, target: str, *args: str):
        super().__init__(["node", "--import", "./shim.mjs", "bitswap-attacker.mjs", mode, target, *args], "attacker", cwd=helia.JS)
        assert self.first["ready"], self.first
        self.peers = self.first["peers"]


@pytest.fixture
def attacker():
    started = []

    def start(*args):
        a = Attacker(*args)
        started.append(a)
        return a

    yield start
    for a in started:
        a.stop()


def b64(b: bytes) -> str:
    return base64.b64encode(b).decode()


def vm_hwm_mib(pid: int) -> float:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


def _honest_fetch(seeder, member, size=8 * 1024 * 1024):
    data = os.urandom(size)
    cid = seeder.rpc.call("blocks_add", {"data": b64(data)})["cid"]
    member.rpc.call("blocks_fetch", {"cid": cid, "peers": [seeder.addr]}, timeout=120)
    assert base64.b64decode(member.rpc.call("blocks_cat", {"cid": cid})["data"]) == data


def _one_mib_blocks(seeder, n):
    """CIDs of `n` distinct 1 MiB files: each is one raw block."""
    return [seeder.rpc.call("blocks_add", {"data": b64(os.urandom(1024 * 1024))})["cid"] for _ in range(n)]


def test_peers_holding_every_stream_and_sending_nothing_do_not_stop_an_honest_fetch(daemons, attacker):
    seeder, member = daemons(), daemons()
    with RpcLatency(seeder) as latency:
        # 40 peers x 32 streams: more than the 1024 the seeder reads at once.
        a = attacker("idle-streams", seeder.addr, "--peers", "40", "--streams", "32", "--seconds", "60")
        a.wait_for(lambda e: e.get("event") == "stats" and e["streamsOpen"] >= 1024)
        _honest_fetch(seeder, member)
        budgets = seeder.rpc.call("node_info")["budgets"]["bitswap"]
    assert budgets["inboundStreams"] <= 1024
    assert budgets["streamsEvicted"] + budgets["streamsRefused"] > 0, budgets
    print("idle streams:", budgets, latency.assert_responsive(RESPONSIVE_P99_MS))
    assert vm_hwm_mib(seeder.proc.pid) < RSS_LIMIT_MIB


def test_peers_that_never_read_their_answers_are_dropped_and_memory_stays_bounded(daemons, attacker):
    seeder, member = daemons(), daemons()
    cids = _one_mib_blocks(seeder, 8)
    with RpcLatency(seeder) as latency:
        a = attacker("no-read", seeder.addr, "--peers", "8", "--cids", ",".join(cids), "--seconds", "60")
        a.wait_for(lambda e: e.get("event") == "stats" and e["answerStreams"] >= 8)
        _honest_fetch(seeder, member)
        # The attackers do not read; the seeder's writes to them time out and it lets go.
        deadline = time.monotonic() + 60
        while (budgets := seeder.rpc.call("node_info")["budgets"]["bitswap"])["peersDroppedNotReading"] < 1:
            assert time.monotonic() < deadline, budgets
            time.sleep(0.1)
    assert budgets["outboundKib"] <= 48 * 1024
    print("no-read:", budgets, latency.assert_responsive(RESPONSIVE_P99_MS))
    assert vm_hwm_mib(seeder.proc.pid) < RSS_LIMIT_MIB


def test_a_want_have_flood_for_large_blocks_reads_no_block(daemons, attacker):
    seeder, member = daemons(), daemons()
    cids = _one_mib_blocks(seeder, 8)
    served_before = seeder.rpc.call("node_info")["served"]
    with RpcLatency(seeder) as latency:
        a = attacker("have-flood", seeder.addr, "--peers", "4", "--cids", ",".join(cids), "--seconds", "30")
        a.wait_for(lambda e: e.get("event") == "stats" and e["messagesSent"] >= 200)
        _honest_fetch(seeder, member)
    served = seeder.rpc.call("node_info")["served"]
    # Only the honest fetch's bytes went out: the flood got presences, no block.
    assert served["bytes"] - served_before["bytes"] <= 8 * 1024 * 1024 + 64 * 1024, served
    print("have-flood:", latency.assert_responsive(RESPONSIVE_P99_MS))
    assert vm_hwm_mib(seeder.proc.pid) < RSS_LIMIT_MIB
