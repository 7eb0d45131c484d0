"""Swarm and memory benchmarks, real daemons on loopback.

    bench_swarm.py swarm   1 control node and 20 members fetch a 64 MiB history at once: total
                           time, and bytes the control node uploaded / history size (target <= 4:
                           members serve each other; a client-server design pays 20).
    bench_swarm.py memory  peak RSS of a member fetching and importing a 1 GiB history, the control
                           node's RSS after archiving it, the same member's peak after a restart
                           and a walk of every message (targets <= 128 MiB each), an idle daemon's
                           RSS, and the disk each data dir uses (target <= 1.5x the history).

Run by `scripts/bench.sh swarm|memory` inside a private network namespace. Prints one RESULT line.
"""

import json
import os
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

import bench_daemons as bd

PAYLOAD = 256 * 1024
# The benchmark's one author sends its whole history at once: no per-author rate limit.
NO_RATE_LIMIT = "[membership]\nmax_messages_per_author_per_minute = 0\n"


def seed_history(control, cid: str, mib: int) -> tuple[int, int]:
    """Sends `mib` MiB of messages and archives them; returns (archives, history bytes)."""
    last = 0
    for i in range(mib * 1024 * 1024 // PAYLOAD):
        payload = i.to_bytes(8, "big") + os.urandom(PAYLOAD - 8)
        last = control.rpc.call("messages_send", {"communityId": cid, "topic": "chat", "payload": bd.b64(payload)})["timestamp"]
    out = bd.round_after(control, cid, last)
    return out["archives"], bd.history_bytes(control, cid)


def catch_up(members, listeners, invite: str) -> list[float]:
    """Every member joins at once; seconds until each one imported everything."""
    marks = [l.mark() for l in listeners]
    t0 = time.monotonic()
    with ThreadPoolExecutor(len(members)) as pool:
        list(pool.map(lambda m: m.rpc.call("community_join", {"invite": invite}), members))
    done = [bd.wait_at(l, "community.downloadingHistoryArchivesFinished", lambda e: True, mark, timeout=900)
            for l, mark in zip(listeners, marks)]
    return [d - t0 for d in done]


def swarm_run(control, cid: str, invite: str, archives: int, work, run: int, members_n: int,
              bin: str = bd.BIN, tag: str = "") -> dict:
    """Fresh members all catch up at once; seconds and bytes each side uploaded."""
    members = bd.start(members_n, work, "", prefix=f"r{tag}{run}m", bin=bin)
    listeners = []
    try:
        # Every member knows the control node and 3 other members.
        bd.connect([control, *members], [(i, 0) for i in range(1, members_n + 1)]
                   + [(i + 1, j + 1) for i, j in bd.random_edges(members_n, 3, seed=11 + run)])
        listeners = [bd.SignalListener(m.url, m.token) for m in members]
        before = control.rpc.call("node_info")["served"]["bytes"]
        each = catch_up(members, listeners, invite)
        uploaded = control.rpc.call("node_info")["served"]["bytes"] - before
        infos = [m.rpc.call("node_info") for m in members]
        for m in members:
            p = m.rpc.call("archive_importProgress", {"communityId": cid})
            assert p["imported"] == archives, p
    finally:
        for l in listeners:
            l.close()
        bd.stop(members)
    return {"seconds": max(each), "each": each, "control": uploaded,
            "members": sum(i["served"]["bytes"] for i in infos),
            "each_upload": [i["served"]["bytes"] for i in infos],
            # A baseline build may not count it.
            "twice": sum(i.get("receivedTwice", {}).get("bytes", 0) for i in infos)}


def percentiles(v: list[float]) -> dict:
    v = sorted(v)
    at = lambda q: v[min(len(v) - 1, int(q * len(v)))]
    return {"min": v[0], "p50": at(0.5), "p90": at(0.9), "max": v[-1]}


def summarise(runs: list[dict], size: int) -> dict:
    return {
        "seconds": bd.median_spread([r["seconds"] for r in runs]),
        "control_upload_ratio": bd.median_spread([r["control"] / size for r in runs]),
        "members_upload_ratio": bd.median_spread([r["members"] / size for r in runs]),
        # Every member's fetch time and upload (over all runs), and what arrived twice.
        "member_seconds": percentiles([t for r in runs for t in r["each"]]),
        "member_upload_ratio": percentiles([u / size for r in runs for u in r["each_upload"]]),
        "received_twice_ratio": bd.median_spread([r["twice"] / size for r in runs]),
    }


def swarm() -> dict:
    """Three runs of fresh members against one control node; with BENCH_BASELINE_BIN, each run
    also against a control node and members of that build (alternating, same history size)."""
    members_n = int(os.environ.get("BENCH_SWARM_MEMBERS", "20"))
    mib = int(os.environ.get("BENCH_SWARM_MIB", "64"))
    baseline = os.environ.get("BENCH_BASELINE_BIN")
    builds = [("", bd.BIN)] + ([("b", baseline)] if baseline else [])
    runs = {tag: [] for tag, _ in builds}
    with tempfile.TemporaryDirectory(dir=bd.ROOT / "target") as tmp:
        work = bd.pathlib.Path(tmp)
        controls, started = {}, []
        try:
            for tag, bin in builds:
                [control] = bd.start(1, work, NO_RATE_LIMIT, prefix=f"control{tag}", bin=bin)
                started.append(control)
                cid, invite = bd.create_community(control, f"swarm-bench{tag}")
                archives, size = seed_history(control, cid, mib)
                controls[tag] = (control, cid, invite, archives, size)
            for run in range(int(os.environ.get("BENCH_SWARM_RUNS", "3"))):
                for tag, bin in reversed(builds):
                    control, cid, invite, archives, size = controls[tag]
                    runs[tag].append(swarm_run(control, cid, invite, archives, work, run, members_n, bin, tag))
                    r = runs[tag][-1]
                    print(f"swarm run {run + 1}{' (baseline)' if tag else ''}: {members_n} members, "
                          f"{size / 2**20:.0f} MiB in {r['seconds']:.1f} s; control uploaded {r['control'] / size:.2f}x "
                          f"the history, members {r['members'] / size:.2f}x, received twice {r['twice'] / size:.2f}x",
                          file=sys.stderr)
        finally:
            bd.stop(started)
    _, _, _, archives, size = controls[""]
    return {
        "bench": "swarm",
        "members": members_n,
        "history_bytes": size,
        "archives": archives,
        **summarise(runs[""], size),
        **({"baseline_bin": baseline, "baseline": summarise(runs["b"], controls["b"][4])} if baseline else {}),
        "target_ratio": 1.5,
    }


def disk_mib(path) -> float:
    """Bytes of every file under `path` (what the data dir holds, not blocks allocated)."""
    return sum(f.stat().st_size for f in bd.pathlib.Path(path).rglob("*") if f.is_file()) / 2**20


def walk_messages(node, cid: str) -> int:
    """Reads every stored message through `messages_query`, a page of 8 at a time."""
    n, cursor = 0, None
    while True:
        params = {"communityId": cid, "limit": 8, **({"cursor": cursor} if cursor else {})}
        page = node.rpc.call("messages_query", params, timeout=120)
        n += len(page["messages"])
        cursor = page.get("cursor")
        if not cursor:
            return n


def memory() -> dict:
    mib = int(os.environ.get("BENCH_MEMORY_MIB", "1024"))
    with tempfile.TemporaryDirectory(dir=bd.ROOT / "target") as tmp:
        work = bd.pathlib.Path(tmp)
        # BENCH_MEMORY_CONFIG: more TOML for both daemons (e.g. "[archive]\nfetch_concurrency = 1").
        extra = os.environ.get("BENCH_MEMORY_CONFIG", "").replace("\\n", "\n")
        control, member = bd.start(2, work, NO_RATE_LIMIT + extra)
        listener = None
        try:
            time.sleep(5)  # idle: started, nothing to do
            idle = bd.rss_mib(member)
            cid, invite = bd.create_community(control, "memory-bench")
            archives, size = seed_history(control, cid, mib)
            control_rss = bd.rss_mib(control)
            member.rpc.call("node_connect", {"multiaddr": control.addr})
            listener = bd.SignalListener(member.url, member.token)
            seconds = catch_up([member], [listener], invite)
            peak = bd.peak_rss_mib(member)
            p = member.rpc.call("archive_importProgress", {"communityId": cid})
            assert p["imported"] == archives, p
            control_disk, member_disk = disk_mib(control.data_dir), disk_mib(member.data_dir)
            listener.close()
            listener = None
            # Restarted, the member reads its whole history back.
            member.stop()
            member = bd.Daemon(bd.BIN, member.data_dir, extra=("--config", str(work / "d.toml")))
            walked = walk_messages(member, cid)
            walk_peak = bd.peak_rss_mib(member)
        finally:
            if listener:
                listener.close()
            bd.stop([control, member])
    print(f"memory: {size / 2**20:.0f} MiB history caught up in {seconds:.1f} s, member peak RSS {peak:.0f} MiB, "
          f"idle {idle:.0f} MiB, control RSS after archiving {control_rss:.0f} MiB, disk control/member "
          f"{control_disk:.0f}/{member_disk:.0f} MiB, {walked} messages walked after a restart at peak "
          f"{walk_peak:.0f} MiB", file=sys.stderr)
    return {
        "bench": "memory",
        "history_bytes": size,
        "archives": archives,
        "seconds": seconds,
        "member_peak_rss_mib": peak,
        "idle_rss_mib": idle,
        "control_rss_after_archiving_mib": control_rss,
        "control_disk_mib": control_disk,
        "member_disk_mib": member_disk,
        "walked_messages": walked,
        "walk_after_restart_peak_rss_mib": walk_peak,
        "target_rss_mib": 128,
        "target_disk_ratio": 1.5,
    }


def memory_small() -> dict:
    """The member's peak RSS catching up 1,000,000 messages of 200 bytes in 52 weekly archives:
    the catch-up bench's control data dir (BENCH_CATCHUP_DIR, prepared by `cargo bench --bench
    catchup`), copied and served by a real control daemon."""
    src = bd.pathlib.Path(os.environ["BENCH_CATCHUP_DIR"])
    archives = json.loads((src / "prepared.json").read_text())["archives"]
    with tempfile.TemporaryDirectory(dir=bd.ROOT / "target") as tmp:
        work = bd.pathlib.Path(tmp)
        shutil.copytree(src, work / "control")
        cfg = work / "d.toml"
        cfg.write_text(NO_RATE_LIMIT + "[archive]\npartition_secs = 604800\n")
        control = bd.Daemon(bd.BIN, work / "control", extra=("--config", str(cfg)))
        member = bd.Daemon(bd.BIN, work / "member", extra=("--config", str(cfg)))
        listener = None
        try:
            (community,) = control.rpc.call("community_list")
            cid = community["communityId"]
            invite = control.rpc.call("community_invite", {"communityId": cid})["invite"]
            member.rpc.call("node_connect", {"multiaddr": control.addr})
            listener = bd.SignalListener(member.url, member.token)
            seconds = catch_up([member], [listener], invite)
            peak = bd.peak_rss_mib(member)
            p = member.rpc.call("archive_importProgress", {"communityId": cid})
            assert p["imported"] == archives, (p, archives)
            listener.mark()
            finished = [s["event"] for s in listener.seen if s["type"] == "community.importingHistoryArchiveMessagesFinished"]
            stored = sum(e["imported"] for e in finished)
            assert stored == 1_000_000 and not any(e["rejected"] for e in finished), (stored, finished[:3])
            member_disk = disk_mib(member.data_dir)
        finally:
            if listener:
                listener.close()
            bd.stop([control, member])
    print(f"memory-small: {stored} messages in {archives} archives caught up in {seconds:.1f} s, "
          f"member peak RSS {peak:.0f} MiB, member disk {member_disk:.0f} MiB", file=sys.stderr)
    return {
        "bench": "memory-small",
        "messages": stored,
        "archives": archives,
        "seconds": seconds,
        "member_peak_rss_mib": peak,
        "member_disk_mib": member_disk,
        "target_rss_mib": 128,
    }


if __name__ == "__main__":
    result = {"swarm": swarm, "memory": memory, "memory-small": memory_small}[sys.argv[1]]()
    print("RESULT " + json.dumps(result))
