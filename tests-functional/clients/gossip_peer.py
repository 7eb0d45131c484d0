"""The js-libp2p gossipsub peer of js/gossip-peer.mjs (a stranger we did not write) as a
background process whose JSON event lines can be waited for."""

from clients import helia
from clients.node_proc import JsonEventsProc


class GossipPeer(JsonEventsProc):
    def __init__(self, connect: str, community: str, publish: int = 0, interval_ms: int = 50):
        args = ["node", "--import", "./shim.mjs", "gossip-peer.mjs", "--connect", connect, "--community", community,
                "--publish", str(publish), "--interval-ms", str(interval_ms)]
        super().__init__(args, "gossip-peer", cwd=helia.JS)
        self.peer_id, self.author = self.first["peerId"], self.first["author"]
