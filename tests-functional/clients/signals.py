"""Listens to a daemon's `subscribe_signals` WebSocket subscription, like status-go's signal client."""

import json
import queue
import threading
import time

import websocket


class SignalListener:
    def __init__(self, url: str, token: str):
        ws_url = url.replace("http://", "ws://", 1)
        self.ws = websocket.create_connection(ws_url, header=[f"Authorization: Bearer {token}"], timeout=10)
        self.ws.send(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "subscribe_signals", "params": []}))
        reply = json.loads(self.ws.recv())
        assert "result" in reply, reply
        self.received: queue.Queue = queue.Queue()
        self.seen: list[dict] = []
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        self.ws.settimeout(None)
        while True:
            try:
                msg = json.loads(self.ws.recv())
            except Exception:
                return
            if msg.get("method") == "signal":
                signal = msg["params"]["result"]
                signal["receivedAt"] = time.monotonic()  # for latency measurements
                self.received.put(signal)

    def mark(self) -> int:
        """A position in the stream: `wait_for_signal(..., since=mark)` ignores what came before."""
        while not self.received.empty():
            self.seen.append(self.received.get_nowait())
        return len(self.seen)

    def wait_for_signal(self, kind: str, predicate=lambda event: True, timeout: float = 30, since: int = 0) -> dict:
        """Returns the first signal of `kind` whose event satisfies `predicate`, among those seen
        from position `since` on (earlier ones count by default)."""
        for s in self.seen[since:]:
            if s["type"] == kind and predicate(s["event"]):
                return s["event"]
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {kind} signal within {timeout} s; saw {[s['type'] for s in self.seen if s['type'] != 'node.bandwidth']}")
            try:
                s = self.received.get(timeout=left)
            except queue.Empty:
                continue
            self.seen.append(s)
            if s["type"] == kind and predicate(s["event"]):
                return s["event"]

    def close(self):
        self.ws.close()
