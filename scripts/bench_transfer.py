"""Transfer benchmark: fetch the same 256 MiB over loopback between two archive-node processes,
between two Helia processes, and by Helia from our node (interop), alternating, median of 3; also
the fetcher's peak RSS.

Run by `scripts/bench.sh transfer` inside a private network namespace. Prints one RESULT line.
"""

import json
import os
import pathlib
import re
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
JS = ROOT / "tests-functional" / "js"
BIN = ROOT / "target" / "release" / "archive-node"
SIZE = int(os.environ.get("BENCH_TRANSFER_MIB", "256")) * 1024 * 1024
RUNS = 3


def rss_kib(time_stderr: str) -> int:
    m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", time_stderr)
    return int(m.group(1)) if m else -1


def ours(file: pathlib.Path, work: pathlib.Path, i: int) -> dict:
    server_dir, fetch_dir = work / f"s{i}", work / f"f{i}"
    cid = subprocess.run([BIN, "add", "--data-dir", server_dir, file], check=True, capture_output=True, text=True).stdout.strip()
    server = subprocess.Popen([BIN, "serve", "--data-dir", server_dir], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        addr = server.stdout.readline().decode().strip()
        proc = subprocess.run(["/usr/bin/time", "-v", BIN, "fetch", cid, "--data-dir", fetch_dir, "--peer", addr],
                              capture_output=True, text=True, check=True)
    finally:
        server.send_signal(2)
        server.wait(30)
    m = re.search(r"in ([0-9.]+) s, ([0-9.]+) MB/s", proc.stdout)
    return {"seconds": float(m.group(1)), "mb_per_s": SIZE / float(m.group(1)) / 1e6, "fetcher_rss_kib": rss_kib(proc.stderr)}


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
        a, h, x = [], [], []
        for i in range(RUNS):
            a.append(ours(file, work, i))
            h.append(helia(file))
            x.append(helia_from_ours(file, work, i))
            print(f"run {i + 1}: ours {a[-1]['mb_per_s']:.0f} MB/s, Helia {h[-1]['mb_per_s']:.0f} MB/s, "
                  f"Helia from ours {x[-1]['mb_per_s']:.0f} MB/s", file=sys.stderr)
    ours_mb, helia_mb, interop_mb = summary(a, "mb_per_s"), summary(h, "mb_per_s"), summary(x, "mb_per_s")
    result = {
        "bench": "transfer",
        "bytes": SIZE,
        "ours_mb_per_s": ours_mb,
        "helia_mb_per_s": helia_mb,
        "ratio_ours_to_helia": ours_mb["median"] / helia_mb["median"],
        "helia_from_ours_mb_per_s": interop_mb,
        "ratio_helia_from_ours_to_helia_from_helia": interop_mb["median"] / helia_mb["median"],
        "ours_fetcher_peak_rss_mib": max(r["fetcher_rss_kib"] for r in a) / 1024,
        "helia_fetcher_peak_rss_mib": max(r["fetcher_rss_kib"] for r in h) / 1024,
        "target": {"ratio_ours_to_helia": 10, "ours_mb_per_s": 400, "ours_fetcher_peak_rss_mib": 200},
    }
    print("RESULT " + json.dumps(result))


if __name__ == "__main__":
    main()
