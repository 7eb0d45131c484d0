"""The hostile Bitswap peer (node/examples/hostile_peer.rs) as a background process whose JSON
event lines can be waited for."""

import json
import queue
import threading
import time

from clients.node_proc import Proc


class HostilePeer(Proc):
    def __init__(self, binary: str, *args: str):
        super().__init__([binary, *args], "hostile")
        first = json.loads(self.first_line())
        self.addr, self.peer_id = first["listening"], first["peerId"]
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
        raise AssertionError(f"no such event from the hostile peer within {timeout}s; seen: {self.seen[-20:]}")
