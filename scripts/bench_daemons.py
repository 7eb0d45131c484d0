"""Shared by the multi-daemon benchmarks (gossip, swarm, memory): real `archive-node daemon`
processes (release build) on 127.0.0.1, driven over JSON-RPC with the tests-functional clients.
Run inside `unshare -n` by scripts/bench.sh.
"""

import base64
import os
import pathlib
import random
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests-functional"))

from clients.daemon import Daemon  # noqa: E402
from clients.signals import SignalListener  # noqa: E402

# BENCH_BIN: another binary (or a wrapper, e.g. one that runs it under heaptrack).
BIN = os.environ.get("BENCH_BIN", str(ROOT / "target" / "release" / "archive-node"))


def start(n: int, work: pathlib.Path, config: str, prefix: str = "d", bin: str = BIN) -> list[Daemon]:
    """`n` daemons of `bin` with the TOML `config`, started a few at a time."""
    cfg = work / f"{prefix}.toml"
    cfg.write_text(config)

    def one(i):
        return Daemon(bin, work / f"{prefix}{i}", extra=("--config", str(cfg)))

    with ThreadPoolExecutor(4) as pool:
        return list(pool.map(one, range(n)))


def stop(daemons) -> None:
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda d: d.stop(), daemons))


def random_edges(n: int, degree: int, seed: int) -> list[tuple[int, int]]:
    """Each node dials `degree` distinct random others; redrawn until the graph is connected."""
    rng = random.Random(seed)
    while True:
        edges = [(i, j) for i in range(n) for j in rng.sample([k for k in range(n) if k != i], degree)]
        adj = {i: set() for i in range(n)}
        for i, j in edges:
            adj[i].add(j)
            adj[j].add(i)
        seen, todo = {0}, [0]
        while todo:
            for j in adj[todo.pop()] - seen:
                seen.add(j)
                todo.append(j)
        if len(seen) == n:
            return edges


def connect(daemons, edges) -> None:
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda e: daemons[e[0]].rpc.call("node_connect", {"multiaddr": daemons[e[1]].addr}), edges))


def b64(b: bytes) -> str:
    return base64.b64encode(b).decode()


def create_community(control, name: str) -> tuple[str, str]:
    """A community whose seeding rounds the bench drives; returns (id, invite)."""
    created = control.rpc.call("community_create", {"name": name, "encrypted": False})
    control.rpc.call("archive_setEnabled", {"communityId": created["communityId"], "enabled": False})
    return created["communityId"], created["invite"]


def round_after(control, cid: str, timestamp: int) -> dict:
    """One seeding round once the wall clock passed `timestamp` (windows are whole seconds)."""
    while time.time() < timestamp + 1:
        time.sleep(0.02)
    return control.rpc.call("archive_createNow", {"communityId": cid}, timeout=600)


def wait_at(listener, kind: str, predicate, since: int, timeout: float = 120) -> float:
    """Waits for a signal like `wait_for_signal`; returns when the listener received it
    (`time.monotonic()`)."""
    event = listener.wait_for_signal(kind, predicate, since=since, timeout=timeout)
    return next(s["receivedAt"] for s in listener.seen[since:] if s["event"] is event)


def history_bytes(node, cid: str) -> int:
    index = node.rpc.call("archive_index", {"communityId": cid})
    return sum(node.rpc.call("blocks_stat", {"cid": a["cid"]})["size"] for a in index["archives"])


def peak_rss_mib(daemon) -> float:
    for line in open(f"/proc/{daemon.proc.pid}/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return -1.0


def rss_mib(daemon) -> float:
    for line in open(f"/proc/{daemon.proc.pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return -1.0


def spread(v: list[float]) -> dict:
    s = sorted(v)
    return {"p50": statistics.median(s), "p99": s[min(len(s) - 1, round(0.99 * (len(s) - 1)))], "max": s[-1], "min": s[0]}


def median_spread(v: list[float]) -> dict:
    return {"median": statistics.median(v), "min": min(v), "max": max(v)}
