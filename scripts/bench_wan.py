"""WAN benchmark: one fetch of the same file through a delaying forwarder (scripts/delay_proxy.py)
at 0, 20, 50 and 100 ms of round trip, in one run: ours -> ours, a raw libp2p stream with the
node's own transport settings (node/examples/raw_stream.rs: TCP, Noise, yamux, the same bytes on
four streams), Helia -> Helia, and a plain TCP stream through the same forwarder (the ceiling the
forwarder allows). Writes a PNG of throughput against RTT next to the JSON (matplotlib).

Run by `scripts/bench.sh wan` inside a private network namespace. Prints one RESULT line.
"""

import json
import os
import pathlib
import socket
import subprocess
import sys
import tempfile
import threading
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
JS = ROOT / "tests-functional" / "js"
BIN = ROOT / "target" / "release" / "archive-node"
RAW = ROOT / "target" / "release" / "examples" / "raw_stream"
RAW_STREAMS = 4
SIZE = int(os.environ.get("BENCH_WAN_MIB", "256")) * 1024 * 1024
RTTS = [int(r) for r in os.environ.get("BENCH_WAN_RTTS", "0,20,50,100").split(",")]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Proxy:
    def __init__(self, target_port: int, rtt_ms: int):
        self.port = free_port()
        self.proc = subprocess.Popen([sys.executable, ROOT / "scripts" / "delay_proxy.py", str(self.port), "127.0.0.1", str(target_port), str(rtt_ms)],
                                     stdout=subprocess.PIPE)
        assert self.proc.stdout.readline().strip() == b"ready"

    def close(self):
        self.proc.terminate()
        self.proc.wait(10)


def via(addr: str, proxy: Proxy) -> tuple[str, int]:
    """`addr` (/ip4/127.0.0.1/tcp/N/p2p/ID) with the proxy's port, and N."""
    parts = addr.split("/")
    port = int(parts[4])
    parts[4] = str(proxy.port)
    return "/".join(parts), port


def ours(file: pathlib.Path, work: pathlib.Path, rtt: int) -> float:
    server_dir, fetch_dir = work / f"s{rtt}", work / f"f{rtt}"
    cid = subprocess.run([BIN, "add", "--data-dir", server_dir, file], check=True, capture_output=True, text=True).stdout.strip()
    server = subprocess.Popen([BIN, "serve", "--data-dir", server_dir], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    proxy = None
    try:
        addr = server.stdout.readline().decode().strip()
        proxy = Proxy(int(addr.split("/")[4]), rtt)
        proc = subprocess.run([BIN, "fetch", cid, "--data-dir", fetch_dir, "--peer", via(addr, proxy)[0]],
                              capture_output=True, text=True, check=True)
    finally:
        server.send_signal(2)
        server.wait(30)
        if proxy:
            proxy.close()
    m = proc.stdout.split(" in ")[-1].split(" s,")[0]
    return SIZE / float(m) / 1e6


def helia(file: pathlib.Path, rtt: int) -> float:
    server = subprocess.Popen(["node", "--import", "./shim.mjs", "helia-peer.mjs", "serve", str(file)], cwd=JS,
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.PIPE)
    proxy = None
    try:
        info = json.loads(server.stdout.readline())
        addr = next(a for a in info["addrs"] if a.startswith("/ip4/127.0.0.1/tcp/"))
        proxy = Proxy(int(addr.split("/")[4]), rtt)
        proc = subprocess.run(["node", "--import", "./shim.mjs", "helia-peer.mjs", "fetch", info["cid"], via(addr, proxy)[0]],
                              cwd=JS, capture_output=True, text=True, check=True)
    finally:
        server.stdin.close()
        server.wait(30)
        if proxy:
            proxy.close()
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["size"] == SIZE, got
    return got["mb_per_s"]


def raw_stream(rtt: int) -> float:
    server = subprocess.Popen([RAW, "serve"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    proxy = None
    try:
        addr = server.stdout.readline().decode().strip()
        proxy = Proxy(int(addr.split("/")[4]), rtt)
        proc = subprocess.run([RAW, "fetch", via(addr, proxy)[0], str(SIZE), "--streams", str(RAW_STREAMS)],
                              capture_output=True, text=True, check=True)
    finally:
        server.kill()
        server.wait(30)
        if proxy:
            proxy.close()
    return json.loads(proc.stdout.strip().splitlines()[-1])["mb_per_s"]


def plain_tcp(rtt: int) -> float:
    """SIZE bytes from a socket to a socket through the forwarder."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    chunk = b"x" * (1 << 20)

    def send():
        conn, _ = listener.accept()
        for _ in range(SIZE // len(chunk)):
            conn.sendall(chunk)
        conn.close()

    threading.Thread(target=send, daemon=True).start()
    proxy = Proxy(listener.getsockname()[1], rtt)
    try:
        start = time.monotonic()
        with socket.create_connection(("127.0.0.1", proxy.port)) as c:
            got = 0
            while got < SIZE:
                data = c.recv(1 << 20)
                if not data:
                    break
                got += len(data)
        took = time.monotonic() - start
    finally:
        proxy.close()
        listener.close()
    assert got == SIZE, got
    return SIZE / took / 1e6


def plot(curve: dict, path: pathlib.Path) -> bool:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name in ("ours", "raw_stream", "helia", "plain_tcp"):
        ax.plot(RTTS, [curve[str(r)][name] for r in RTTS], marker="o", label=name.replace("_", " "))
    ax.set_xlabel("round trip (ms)")
    ax.set_ylabel("MB/s")
    ax.set_yscale("log")
    ax.set_title(f"one fetch of {SIZE >> 20} MiB through a delaying forwarder")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    return True


def main() -> None:
    curve = {}
    with tempfile.TemporaryDirectory(dir=ROOT / "target") as tmp:
        work = pathlib.Path(tmp)
        file = work / "input.bin"
        with open(file, "wb") as f:
            f.write(os.urandom(SIZE))
        for rtt in RTTS:
            point = {"ours": ours(file, work, rtt), "raw_stream": raw_stream(rtt), "helia": helia(file, rtt),
                     "plain_tcp": plain_tcp(rtt)}
            print(f"rtt {rtt:3d} ms: ours {point['ours']:7.1f} MB/s, raw stream {point['raw_stream']:7.1f} MB/s, "
                  f"helia {point['helia']:7.1f} MB/s, plain tcp {point['plain_tcp']:7.1f} MB/s", flush=True)
            curve[str(rtt)] = point
    png = ROOT / "bench" / "results" / "wan.png"
    at50 = curve.get("50")
    result = {
        "size_mib": SIZE >> 20,
        "curve_mb_per_s": curve,
        "ratio_ours_to_helia_at_50ms": at50 and at50["ours"] / at50["helia"],
        "ratio_ours_to_raw_stream_at_50ms": at50 and at50["ours"] / at50["raw_stream"],
        "ratio_ours_to_plain_tcp_at_50ms": at50 and at50["ours"] / at50["plain_tcp"],
        "plot": str(png.relative_to(ROOT)) if plot(curve, png) else None,
    }
    print("RESULT " + json.dumps(result))


if __name__ == "__main__":
    main()
