"""Calls `node_info` on a daemon in a loop from a background thread and records each latency:
proof that the RPC stays responsive while the node is under attack or load."""

import threading
import time

from clients.rpc import RpcClient


class RpcLatency:
    def __init__(self, daemon, interval: float = 0.05):
        # Its own client: one HTTP connection, not shared with the test's calls.
        self.rpc = RpcClient(daemon.url, daemon.token)
        self.interval = interval
        self.latencies_ms: list[float] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> "RpcLatency":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def _run(self):
        while not self._stop.is_set():
            start = time.perf_counter()
            try:
                self.rpc.call("node_info", timeout=10)
                self.latencies_ms.append((time.perf_counter() - start) * 1000)
            except Exception as e:  # a timeout or a refused connection is what we look for
                self.errors.append(repr(e))
            self._stop.wait(self.interval)

    def percentile(self, p: float) -> float:
        xs = sorted(self.latencies_ms)
        return xs[min(len(xs) - 1, int(len(xs) * p / 100))]

    def summary(self) -> dict:
        return {"calls": len(self.latencies_ms), "errors": len(self.errors), "p50_ms": round(self.percentile(50), 1),
                "p99_ms": round(self.percentile(99), 1), "max_ms": round(max(self.latencies_ms), 1)}

    def assert_responsive(self, p99_ms: float, min_calls: int = 3) -> dict:
        assert not self.errors, f"RPC failed under attack: {self.errors[:3]}"
        assert len(self.latencies_ms) >= min_calls, self.latencies_ms
        s = self.summary()
        assert s["p99_ms"] <= p99_ms, f"node_info latency {s}"
        return s
