"""The hostile Bitswap peer (node/examples/hostile_peer.rs) as a background process whose JSON
event lines can be waited for."""

from clients.node_proc import JsonEventsProc


class HostilePeer(JsonEventsProc):
    def __init__(self, binary: str, *args: str):
        super().__init__([binary, *args], "hostile")
        self.addr, self.peer_id = self.first["listening"], self.first["peerId"]
