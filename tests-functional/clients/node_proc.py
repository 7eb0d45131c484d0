"""Long-running archive-node and Helia processes for the functional tests."""

import json
import os
import pathlib
import queue
import threading
import signal
import subprocess
import time

from clients import helia

LOGS = pathlib.Path(__file__).resolve().parent.parent / "logs"

# Every process started by the running test, so a failure can show their logs (conftest.py).
STARTED: list["Proc"] = []
# Log lines shown per process when a test fails.
TAIL_LINES = 40


class Proc:
    """A background process whose first stdout line is read at start; stopped with SIGINT."""

    def __init__(self, args, name, cwd=None, env=None):
        LOGS.mkdir(exist_ok=True)
        self.name = name
        self.stderr_path = LOGS / f"{name}-{os.getpid()}-{time.monotonic_ns()}.log"
        self.stderr = open(self.stderr_path, "wb")
        # Our daemons log at info unless the caller chose a level: enough to understand a
        # failure from CI output alone.
        env = dict(os.environ if env is None else env)
        env.setdefault("RUST_LOG", "info")
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=self.stderr, stdin=subprocess.PIPE, cwd=cwd, env=env)
        STARTED.append(self)

    def log_tail(self, lines: int = TAIL_LINES) -> str:
        """The last `lines` lines of the process's stderr log."""
        try:
            text = self.stderr_path.read_text(errors="replace")
        except OSError as e:
            return f"(cannot read {self.stderr_path}: {e})"
        return "\n".join(text.splitlines()[-lines:])

    def first_line(self, timeout=60) -> str:
        deadline = time.monotonic() + timeout
        line = self.proc.stdout.readline().decode().strip()
        if not line:
            self.stop()
            raise AssertionError(f"{self.name} printed nothing (exit {self.proc.returncode}); log: {self.stderr_path.read_text()}")
        assert time.monotonic() < deadline
        return line

    def stop(self, sig=signal.SIGINT, timeout=20) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.stderr.close()
        return self.proc.returncode


class JsonEventsProc(Proc):
    """A process that prints one JSON object a line on stdout: the first one is read at start
    (`self.first`), the others can be waited for."""

    def __init__(self, args, name, cwd=None):
        super().__init__(args, name, cwd=cwd)
        self.first = json.loads(self.first_line())
        self.events: queue.Queue = queue.Queue()
        self.seen: list[dict] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self.events.put(json.loads(line))

    def wait_for(self, predicate, timeout: float = 60) -> dict:
        """The first event (seen before or arriving within `timeout`) that satisfies `predicate`."""
        for e in self.seen:
            if predicate(e):
                return e
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                e = self.events.get(timeout=left)
            except queue.Empty:
                break
            self.seen.append(e)
            if predicate(e):
                return e
        raise AssertionError(f"no such event from {self.name} within {timeout}s; seen: {self.seen[-20:]}")

    def drain(self) -> list[dict]:
        """Every event so far."""
        while not self.events.empty():
            self.seen.append(self.events.get_nowait())
        return self.seen


class Serve(Proc):
    """`archive-node serve` on a data dir; `.addr` is its first listen address."""

    def __init__(self, binary, data_dir):
        super().__init__([binary, "serve", "--data-dir", str(data_dir)], "serve")
        self.addr = self.first_line()


class HeliaServe(Proc):
    """A networked Helia serving N pseudo-random bytes; `.info` has peer_id, addrs, cid, size, sha256."""

    def __init__(self, size, seed):
        super().__init__(["node", "--import", "./shim.mjs", "helia-peer.mjs", "serve", "--size", str(size), "--seed", str(seed)], "helia", cwd=helia.JS)
        self.info = json.loads(self.first_line())


class HeliaPin(Proc):
    """A networked Helia that pinned `cid` from `addr` (helia.pins.add) and serves it:
    `.info` has peer_id, addrs, cid, pinned, blocks, and entries (a directory's links)."""

    def __init__(self, cid, addr, timeout_ms=120_000):
        super().__init__(["node", "--import", "./shim.mjs", "helia-peer.mjs", "pin", cid, addr, "--timeout-ms", str(timeout_ms)], "helia-pin", cwd=helia.JS)
        self.info = json.loads(self.first_line())


def helia_fetch(cid, addr, timeout_ms=120_000) -> dict:
    """A networked Helia fetches `cid` from `addr`: {cid, size, sha256, seconds, mb_per_s}."""
    proc = subprocess.run(
        ["node", "--import", "./shim.mjs", "helia-peer.mjs", "fetch", cid, addr, "--timeout-ms", str(timeout_ms)],
        cwd=helia.JS, capture_output=True, text=True, timeout=timeout_ms / 1000 + 30,
    )
    if proc.returncode != 0:
        raise AssertionError(f"helia fetch failed: {proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])
