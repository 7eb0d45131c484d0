"""Transfer benchmark: fetch the same 256 MiB over loopback between two archive-node processes,
through the raw pipeline (the limit: a libp2p stream with our transport settings whose receiver
hashes every MiB with SHA-256 and appends it to a file, one fdatasync per 16 MiB;
node/examples/raw_stream.rs --sink), between two Helia processes, and by Helia from our node
(interop), alternating, median of 3; also the fetcher's peak RSS. With BENCH_BASELINE_BIN
(another build of archive-node, say the last commit's), each run also fetches between two
baseline processes, for a side-by-side ratio.

Run by `scripts/bench.sh transfer` inside a private network namespace. Prints one RESULT line.
"""

import json
import os
import pathlib
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
JS = ROOT / "tests-functional" / "js"
BIN = ROOT / "target" / "release" / "archive-node"
RAW = ROOT / "target" / "release" / "examples" / "raw_stream"
# Bitswap answers a peer on 4 streams (bitswap::outbox): the raw pipeline uses as many.
RAW_STREAMS = 4
BASELINE = os.environ.get("BENCH_BASELINE_BIN")
SIZE = int(os.environ.get("BENCH_TRANSFER_MIB", "256")) * 1024 * 1024
RUNS = 3


def rss_kib(time_stderr: str) -> int:
    m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", time_stderr)
    return int(m.group(1)) if m else -1


def drop(*dirs: pathlib.Path) -> None:
    """Deletes a run's data dirs and syncs: measured, a run that follows another whose 512 MiB
    are still on disk is ~25 % slower (one run after the other, same binary: 363 then 277 MB/s),
    which made the order of runs, not the code, the larger effect."""
    for d in dirs:
        shutil.rmtree(d, ignore_errors=True)
    os.sync()


def ours(file: pathlib.Path, work: pathlib.Path, i: int, bin=BIN, tag: str = "") -> dict:
    server_dir, fetch_dir = work / f"s{tag}{i}", work / f"f{tag}{i}"
    cid = subprocess.run([bin, "add", "--data-dir", server_dir, file], check=True, capture_output=True, text=True).stdout.strip()
    server = subprocess.Popen([bin, "serve", "--data-dir", server_dir], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        addr = server.stdout.readline().decode().strip()
        proc = subprocess.run(["/usr/bin/time", "-v", bin, "fetch", cid, "--data-dir", fetch_dir, "--peer", addr],
                              capture_output=True, text=True, check=True)
    finally:
        server.send_signal(2)
        server.wait(30)
        drop(server_dir, fetch_dir)
    m = re.search(r"in ([0-9.]+) s, ([0-9.]+) MB/s", proc.stdout)
    return {"seconds": float(m.group(1)), "mb_per_s": SIZE / float(m.group(1)) / 1e6, "fetcher_rss_kib": rss_kib(proc.stderr)}


def raw_pipeline(work: pathlib.Path, i: int) -> dict:
    """The same bytes through the raw pipeline: what any Bitswap fetch pays at least."""
    sink = work / f"raw{i}.bin"
    server = subprocess.Popen([RAW, "serve"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        addr = server.stdout.readline().decode().strip()
        proc = subprocess.run([RAW, "fetch", addr, str(SIZE), "--streams", str(RAW_STREAMS), "--sink", sink],
                              capture_output=True, text=True, check=True)
    finally:
        server.kill()
        server.wait(30)
        sink.unlink(missing_ok=True)
        os.sync()
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    return {"seconds": got["secs"], "mb_per_s": got["mb_per_s"]}


def helia_from_ours(file: pathlib.Path, work: pathlib.Path, i: int) -> dict:
    """Helia fetching from our node (interop): our server must not be slower than Helia's."""
    server_dir = work / f"i{i}"
    cid = subprocess.run([BIN, "add", "--data-dir", server_dir, file], check=True, capture_output=True, text=True).stdout.strip()
    server = subprocess.Popen([BIN, "serve", "--data-dir", server_dir], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        addr = server.stdout.readline().decode().strip()
        proc = subprocess.run(["node", "--import", "./shim.mjs", "helia-peer.mjs", "fetch", cid, addr],
                              cwd=JS, capture_output=True, text=True, check=True)
    finally:
        server.send_signal(2)
        server.wait(30)
        drop(server_dir)
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["size"] == SIZE, got
    return {"seconds": got["seconds"], "mb_per_s": got["mb_per_s"]}


def helia(file: pathlib.Path) -> dict:
    server = subprocess.Popen(["node", "--import", "./shim.mjs", "helia-peer.mjs", "serve", str(file)], cwd=JS,
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.PIPE)
    try:
        info = json.loads(server.stdout.readline())
        proc = subprocess.run(["/usr/bin/time", "-v", "node", "--import", "./shim.mjs", "helia-peer.mjs", "fetch", info["cid"], info["addrs"][0]],
                              cwd=JS, capture_output=True, text=True, check=True)
    finally:
        server.stdin.close()
        server.wait(30)
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["size"] == SIZE, got
    return {"seconds": got["seconds"], "mb_per_s": got["mb_per_s"], "fetcher_rss_kib": rss_kib(proc.stderr)}


def summary(runs: list[dict], key: str) -> dict:
    v = [r[key] for r in runs]
    return {"median": statistics.median(v), "min": min(v), "max": max(v)}


def main() -> None:
    with tempfile.TemporaryDirectory(dir=ROOT / "target") as tmp:
        work = pathlib.Path(tmp)
        file = work / "input.bin"
        with open(file, "wb") as f:
            f.write(os.urandom(SIZE))
        a, h, x, b, raw = [], [], [], [], []
        for i in range(RUNS):
            if BASELINE:
                b.append(ours(file, work, i, BASELINE, "b"))
                print(f"run {i + 1}: baseline {b[-1]['mb_per_s']:.0f} MB/s", file=sys.stderr)
            a.append(ours(file, work, i))
            raw.append(raw_pipeline(work, i))
            h.append(helia(file))
            x.append(helia_from_ours(file, work, i))
            print(f"run {i + 1}: ours {a[-1]['mb_per_s']:.0f} MB/s, raw pipeline {raw[-1]['mb_per_s']:.0f} MB/s, Helia {h[-1]['mb_per_s']:.0f} MB/s, "
                  f"Helia from ours {x[-1]['mb_per_s']:.0f} MB/s", file=sys.stderr)
    ours_mb, helia_mb, interop_mb = summary(a, "mb_per_s"), summary(h, "mb_per_s"), summary(x, "mb_per_s")
    raw_mb = summary(raw, "mb_per_s")
    result = {
        "bench": "transfer",
        "bytes": SIZE,
        "ours_mb_per_s": ours_mb,
        "helia_mb_per_s": helia_mb,
        "raw_pipeline_mb_per_s": raw_mb,
        "raw_pipeline_streams": RAW_STREAMS,
        "ratio_ours_to_raw_pipeline": ours_mb["median"] / raw_mb["median"],
        "ratio_ours_to_helia": ours_mb["median"] / helia_mb["median"],
        "helia_from_ours_mb_per_s": interop_mb,
        "ratio_helia_from_ours_to_helia_from_helia": interop_mb["median"] / helia_mb["median"],
        "ours_fetcher_peak_rss_mib": max(r["fetcher_rss_kib"] for r in a) / 1024,
        "helia_fetcher_peak_rss_mib": max(r["fetcher_rss_kib"] for r in h) / 1024,
        **({"baseline_bin": BASELINE, "baseline_mb_per_s": summary(b, "mb_per_s"),
            "ratio_ours_to_baseline": ours_mb["median"] / summary(b, "mb_per_s")["median"]} if BASELINE else {}),
        "target": {"ratio_ours_to_raw_pipeline": 0.8, "ratio_ours_to_helia": 6,
                   "ratio_helia_from_ours_to_helia_from_helia": 1.5, "ours_fetcher_peak_rss_mib": 200},
    }
    print("RESULT " + json.dumps(result))


if __name__ == "__main__":
    main()
