"""The Helia DHT peer of js/dht-peer.mjs (Helia 7 with @libp2p/kad-dht on /ipfs/kad/1.0.0 and
@helia/ipns's validator: a peer we did not write), driven by one JSON command a line."""

import json
import queue
import time

from clients import helia
from clients.node_proc import JsonEventsProc


class DhtPeer(JsonEventsProc):
    """`.peer_id`, `.addrs`, and `call(op, **args)` -> the reply (raises on `ok: false`)."""

    def __init__(self):
        super().__init__(["node", "--import", "./shim.mjs", "dht-peer.mjs"], "dht-peer", cwd=helia.JS)
        self.peer_id = self.first["peer_id"]
        self.addrs = [a if "/p2p/" in a else f"{a}/p2p/{self.peer_id}" for a in self.first["addrs"]]

    def call(self, op: str, timeout: float = 90, **args) -> dict:
        self.proc.stdin.write((json.dumps({"op": op, **args}) + "\n").encode())
        self.proc.stdin.flush()
        # Commands run one at a time: the next line is this one's reply.
        try:
            reply = self.events.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"dht-peer {op} did not answer within {timeout}s\n{self.log_tail()}") from None
        self.seen.append(reply)
        if not reply["ok"]:
            raise AssertionError(f"dht-peer {op} {args}: {reply['error']}\n{self.log_tail()}")
        return reply


def wait_resolved(peer: DhtPeer, key: str, root: str, timeout: float = 60) -> dict:
    """The peer's resolution of the name of key `key` (hex) once it names `root` (our control
    node puts its record after the round's announcement)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            r = peer.call("resolve", key=key)
            if r["value"] == f"/ipfs/{root}":
                return r
        except AssertionError as e:
            r = str(e)
        if time.monotonic() > deadline:
            raise AssertionError(f"{peer.name} never resolved the name to {root}: {r}")
        time.sleep(0.2)
