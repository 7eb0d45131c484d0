"""A real kubo peer (go-ipfs 0.22.0, go-libp2p 0.29.2, boxo 0.11.0 bitswap) for the functional tests.

kubo comes from the PyPI package kubo-python 0.1.5, which ships kubo built as a cgo shared library
(`ipfs_node/libkubo/libkubo_linux_x86_64.so` + its header) with a Python wrapper, `ipfs_node`.
That wrapper does not import as published: its `libkubo` loader looks for the .so in
`libkubo/` instead of `ipfs_node/libkubo/`, and `ipfs_node` imports `ipfs_tk_generics`, which the
package does not declare. So we load the shipped .so with cffi (a dependency of kubo-python) from
the shipped header and call the same exported functions the wrapper calls: CreateRepo, RunNode,
GetNodeID, GetNodeMultiAddrs, AddFile, Download, PinCID, ListPins, ConnectToPeer, ListPeers,
CleanupNode.

The node runs in a worker process (this file run as a script) and `Kubo` talks to it with one JSON
line per call: the Go calls take no timeout (`Download` waits forever for a block nobody has), and a
worker can be killed. The library starts no HTTP RPC API or gateway, so there is no `ipfs` HTTP
API to use. Its Go `log` goes to `kubo.log` in the worker's working directory, which is a fresh
folder under tests-functional/logs/ (with the worker's stderr, where go-log writes; set
GOLOG_LOG_LEVEL, e.g. "error,bitswap=debug", to see more).

Before the node starts, the repo's config is rewritten for loopback only (`LOOPBACK_CONFIG`).
Note: the library builds the node with `Routing: DHTOption` whatever `Routing.Type` says, so a
DHT runs, but with no bootstrap peers, mDNS off and no listen address but 127.0.0.1 it only ever
talks to the peers a test connects it to.
"""

import importlib.metadata
import json
import os
import pathlib
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time

LOGS = pathlib.Path(__file__).resolve().parent.parent / "logs"
LIB = "ipfs_node/libkubo/libkubo_linux_x86_64"

# (dotted key, value) set in the repo's config before the node starts.
LOOPBACK_CONFIG = [
    ("Bootstrap", []),
    ("Peering.Peers", None),
    ("Routing.Type", "none"),
    ("Discovery.MDNS.Enabled", False),
    ("Swarm.DisableNatPortMap", True),
    ("Swarm.RelayClient.Enabled", False),
    ("Swarm.RelayService.Enabled", False),
    ("Swarm.EnableHolePunching", False),
    ("Swarm.Transports.Network.TCP", True),
    ("Swarm.Transports.Network.QUIC", False),
    ("Swarm.Transports.Network.WebTransport", False),
    ("Swarm.Transports.Network.Websocket", False),
    ("Swarm.Transports.Network.Relay", False),
    ("AutoNAT.ServiceMode", "disabled"),
    ("Addresses.Swarm", ["/ip4/127.0.0.1/tcp/0"]),
    ("Addresses.Announce", []),
    ("Addresses.AppendAnnounce", []),
    ("Addresses.API", ["/ip4/127.0.0.1/tcp/0"]),
    ("Addresses.Gateway", ["/ip4/127.0.0.1/tcp/0"]),
    ("Reprovider.Interval", "0"),
]


def library() -> pathlib.Path:
    """The kubo shared library of the installed kubo-python (raises if it is not installed)."""
    dist = importlib.metadata.distribution("kubo-python")
    so = pathlib.Path(dist.locate_file(LIB + ".so"))
    if not so.exists():
        raise FileNotFoundError(f"kubo-python {dist.version} has no {LIB}.so")
    return so


def unavailable() -> str | None:
    """Why kubo cannot be used here, or None when it can."""
    try:
        import cffi  # noqa: F401

        library()
    except (ImportError, importlib.metadata.PackageNotFoundError, FileNotFoundError) as e:
        return f"kubo-python is not installed (pip install kubo-python==0.1.5): {e}"
    return None


def _set(config: dict, dotted: str, value) -> None:
    *path, last = dotted.split(".")
    for key in path:
        config = config.setdefault(key, {})
    config[last] = value


class KuboError(AssertionError):
    pass


class Kubo:
    """A kubo node on 127.0.0.1 in a worker process: `peer_id`, `addrs`, `add`, `cat`, `connect`."""

    def __init__(self, repo: str | os.PathLike | None = None, start_timeout: float = 60):
        LOGS.mkdir(exist_ok=True)
        self.log_dir = LOGS / f"kubo-{os.getpid()}-{time.monotonic_ns()}"
        self.log_dir.mkdir()
        self._tmp = None
        if repo is None:
            self._tmp = tempfile.mkdtemp(prefix="kubo-repo-")
            repo = self._tmp
        self.repo = pathlib.Path(repo)
        self.repo.mkdir(parents=True, exist_ok=True)
        self._stderr = open(self.log_dir / "stderr.log", "wb")
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "worker", str(library())],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr, cwd=self.log_dir,
        )
        self._replies = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        try:
            self._call("init", timeout=start_timeout, repo=str(self.repo))
            cfg_path = self.repo / "config"
            config = json.loads(cfg_path.read_text())
            for key, value in LOOPBACK_CONFIG:
                _set(config, key, value)
            cfg_path.write_text(json.dumps(config, indent=2))
            self._call("run", timeout=start_timeout)
            self.peer_id = self._call("id")
            self.listen = self._call("addrs")
            self.addrs = [f"{a}/p2p/{self.peer_id}" for a in self.listen]
            if not self.addrs or not all(a.startswith("/ip4/127.0.0.1/tcp/") for a in self.addrs):
                raise KuboError(f"kubo listens on {self.listen}, wanted /ip4/127.0.0.1/tcp/ only")
        except BaseException:
            self.stop()
            raise

    def _read(self):
        for line in self.proc.stdout:
            self._replies.put(json.loads(line))
        self._replies.put(None)

    def log_tail(self, chars=4000) -> str:
        parts = []
        for name in ("kubo.log", "stderr.log"):
            p = self.log_dir / name
            if p.exists():
                parts.append(f"--- {p}:\n{p.read_text(errors='replace')[-chars:]}")
        return "\n".join(parts)

    def _call(self, op: str, timeout: float = 30, **args):
        if self.proc.poll() is not None:
            raise KuboError(f"kubo worker exited ({self.proc.returncode}) before {op}\n{self.log_tail()}")
        self.proc.stdin.write((json.dumps({"op": op, **args}) + "\n").encode())
        self.proc.stdin.flush()
        try:
            reply = self._replies.get(timeout=timeout)
        except queue.Empty:
            self.stop(kill=True)
            raise KuboError(f"kubo {op} {args} took over {timeout}s; worker killed\n{self.log_tail()}") from None
        if reply is None:
            self.proc.wait()
            raise KuboError(f"kubo worker died ({self.proc.returncode}) during {op}\n{self.log_tail()}")
        if "error" in reply:
            raise KuboError(f"kubo {op} {args}: {reply['error']}\n{self.log_tail()}")
        return reply["ok"]

    def add(self, path) -> str:
        """`ipfs add` with kubo's defaults (CIDv0, 256 KiB chunks, dag-pb leaves), pinned; the root CID."""
        return self._call("add", timeout=120, path=os.path.abspath(path))

    def cat(self, cid: str, timeout: float = 60) -> bytes:
        """Fetches the UnixFS file `cid` (over Bitswap if it is not local) and returns its bytes."""
        fd, dest = tempfile.mkstemp(prefix="kubo-cat-")
        os.close(fd)
        os.unlink(dest)
        try:
            self._call("get", timeout=timeout, cid=cid, dest=dest)
            return pathlib.Path(dest).read_bytes()
        finally:
            if os.path.exists(dest):
                os.unlink(dest)

    def get(self, cid: str, dest, timeout: float = 60) -> pathlib.Path:
        """`ipfs get CID -o DEST`: fetches the whole DAG (a directory becomes a folder of files)."""
        self._call("get", timeout=timeout, cid=cid, dest=os.path.abspath(dest))
        return pathlib.Path(dest)

    def pin(self, cid: str, timeout: float = 60) -> None:
        """`ipfs pin add CID` (recursive: fetches every block under it first)."""
        self._call("pin", timeout=timeout, cid=cid)

    def pins(self) -> str:
        """`ipfs pin ls`, as the library prints it."""
        return self._call("pins")

    def connect(self, multiaddr: str, timeout: float = 30) -> None:
        """`ipfs swarm connect MULTIADDR` (the address ends with /p2p/<peer id>)."""
        self._call("connect", timeout=timeout, addr=multiaddr)

    def peers(self) -> list[str]:
        """`ipfs swarm peers`: connected peers' addresses, each ending in /<peer id>."""
        return self._call("peers")

    def stop(self, kill: bool = False, timeout: float = 20) -> int:
        if self.proc.poll() is None and not kill:
            try:
                self.proc.stdin.write(b'{"op": "stop"}\n')
                self.proc.stdin.flush()
                self.proc.wait(timeout)
            except (BrokenPipeError, subprocess.TimeoutExpired):
                pass
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for f in (self.proc.stdin, self._stderr):
            try:
                f.close()
            except OSError:
                pass
        if self._tmp:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None
        return self.proc.returncode

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def _worker(so_path: str) -> None:
    """Serves `Kubo`'s calls: one JSON request a line on stdin, one JSON reply a line on stdout."""
    # Replies go on a private copy of stdout; the Go side gets /dev/null as stdin and stderr as
    # stdout (config.Init prints its key generation to os.Stdin).
    requests = os.fdopen(os.dup(0), "rb")
    replies = os.fdopen(os.dup(1), "w")
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(2, 1)

    from cffi import FFI

    ffi = FFI()
    header = pathlib.Path(so_path).with_suffix(".h").read_text()
    ffi.cdef("\n".join(ln.strip() for ln in header.splitlines() if ln.strip().startswith("extern ") and ln.strip().endswith(";")))
    lib = ffi.dlopen(so_path)
    repo = None

    def s(x: str):
        return ffi.new("char[]", x.encode())

    def string(ptr) -> str:
        return ffi.string(ptr).decode() if ptr != ffi.NULL else ""

    def handle(req: dict):
        nonlocal repo
        op = req["op"]
        if op == "init":
            repo = req["repo"]
            rc = lib.CreateRepo(s(repo))
            if rc < 0:
                raise RuntimeError(f"CreateRepo returned {rc}")
            return rc
        if op == "run":
            if lib.RunNode(s(repo)) != 1:
                raise RuntimeError("RunNode failed (see kubo.log)")
            return True
        if op == "id":
            pid = string(lib.GetNodeID(s(repo)))
            if not pid:
                raise RuntimeError("GetNodeID failed")
            return pid
        if op == "addrs":
            return json.loads(string(lib.GetNodeMultiAddrs(s(repo))) or "null")
        if op == "add":
            cid = string(lib.AddFile(s(repo), s(req["path"]), False))
            if not cid:
                raise RuntimeError("AddFile failed (see kubo.log)")
            return cid
        if op == "get":
            rc = lib.Download(s(repo), s(req["cid"]), s(req["dest"]))
            if rc != 0:
                raise RuntimeError(f"Download returned {rc} (see kubo.log)")
            return True
        if op == "pin":
            rc = lib.PinCID(s(repo), s(req["cid"]))
            if rc != 0:
                raise RuntimeError(f"PinCID returned {rc} (see kubo.log)")
            return True
        if op == "pins":
            return string(lib.ListPins(s(repo)))
        if op == "connect":
            rc = lib.ConnectToPeer(s(repo), s(req["addr"]))
            if rc != 0:
                raise RuntimeError(f"ConnectToPeer returned {rc} (see kubo.log)")
            return True
        if op == "peers":
            return json.loads(string(lib.ListPeers(s(repo))) or "[]")
        raise ValueError(f"unknown op {op}")

    for line in requests:
        req = json.loads(line)
        if req["op"] == "stop":
            if repo is not None:
                lib.CleanupNode(s(repo))
            break
        try:
            reply = {"ok": handle(req)}
        except Exception as e:  # noqa: BLE001 - reported to the caller
            reply = {"error": f"{type(e).__name__}: {e}"}
        replies.write(json.dumps(reply) + "\n")
        replies.flush()
    # Go's goroutines do not stop with CleanupNode; leave without running Python's teardown.
    replies.flush()
    os._exit(0)


if __name__ == "__main__" and len(sys.argv) == 3 and sys.argv[1] == "worker":
    _worker(sys.argv[2])
