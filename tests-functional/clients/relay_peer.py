"""The js-libp2p peer of js/relay-peer.mjs (a relay, or a peer relayed by ours, that we did not
write) run inside a test's network namespace, as a background process whose JSON event lines
can be waited for."""

from clients import helia
from clients.node_proc import JsonEventsProc


class RelayPeer(JsonEventsProc):
    """`serve`: a circuit relay v2 server listening on `listen`. Else: a peer that holds a
    reservation on the relay at `reserve` and listens through it. `.peer_id`, `.addrs`."""

    def __init__(self, netns, listen: str | None = None, reserve: str | None = None):
        mode = ["--serve", "--listen", listen] if reserve is None else ["--reserve", reserve]
        args = ["ip", "netns", "exec", netns.name, "node", "--import", "./shim.mjs", "relay-peer.mjs", *mode]
        super().__init__(args, "relay-peer", cwd=helia.JS)
        self.peer_id, self.addrs = self.first["peerId"], self.first["addrs"]
