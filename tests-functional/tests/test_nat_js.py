"""Relays we did not write: a js-libp2p circuit relay v2 server carries our nodes' relayed
connections and their hole punch, and a js-libp2p peer behind a NAT holds a reservation on our
relay and is reached through it. Same topology as test_nat.py (clients/netns.py)."""

import pytest

from clients.netns import PUBLIC_IP, why_not
from clients.relay_peer import RelayPeer
from steps.communities import create
from steps.nat import PUBLIC_LISTEN, history, home_node, link_to, public_node, relayed, synced, topology, wait  # noqa: F401 (topology: a fixture)

pytestmark = pytest.mark.skipif(why_not() is not None, reason=why_not() or "")


@pytest.fixture
def relay_peers():
    """Starts js-libp2p relay peers (clients/relay_peer.py); stops them before the topology goes."""
    started = []

    def start(netns, **kw):
        p = RelayPeer(netns, **kw)
        started.append(p)
        return p

    yield start
    for p in started:
        p.stop()


def test_a_js_libp2p_relay_carries_our_hole_punch_and_the_history_flows_directly(daemons, topology, relay_peers):
    # The only public node is js-libp2p's relay, with its default limits (128 KiB and two
    # minutes per circuit): our nodes must reserve on it, reach each other through it and punch.
    pub = topology.public()
    relay = relay_peers(pub, listen=PUBLIC_LISTEN)
    bootstrap = f"/ip4/{PUBLIC_IP}/tcp/4001/p2p/{relay.peer_id}"
    control = home_node(daemons, topology, "home-c", bootstrap)
    circuit = wait("the control node holds a reservation on the js relay", lambda: relayed(control))
    assert relay.peer_id in circuit[0], circuit
    created = create(control, "js-relay")
    cid = created["communityId"]
    # Far more than the relay's circuits may carry (128 KiB each way, each).
    ours = history(control, cid, messages=40, size=400 * 1024)
    size = sum(len(m["payload"]) for m in ours) * 3 // 4

    # The relay speaks none of our protocols but the relay's: the member is told the control
    # node's relayed address, and dials it through the js relay.
    member = home_node(daemons, topology, "home-m", bootstrap)
    wait("the member holds a reservation on the js relay", lambda: relayed(member))
    before = pub.link_bytes("eth0")
    member.rpc.call("node_connect", {"multiaddr": circuit[0]})
    member.rpc.call("community_join", {"invite": created["invite"]})
    control_id = control.rpc.call("node_info")["peerId"]
    wait("the member synced from the control node", lambda: synced(member, ours, cid), timeout=180)
    assert link_to(member, control_id) == "direct"
    punched = control.rpc.call("node_info")["holePunches"]["succeeded"] + member.rpc.call("node_info")["holePunches"]["succeeded"]
    assert punched >= 1, "the direct connection came from a hole punch through the js relay"
    carried = pub.link_bytes("eth0") - before
    assert carried < size / 4, f"the js relay carried {carried} bytes of a {size}-byte history"


def test_a_js_libp2p_peer_behind_a_nat_reserves_on_our_relay_and_is_reached_through_it(daemons, topology, relay_peers):
    pub, bootstrap = public_node(daemons, topology)
    wait("the public node is public (and relays)", lambda: pub.rpc.call("node_info")["reachability"] == "public")
    # js-libp2p's circuit transport asks our relay server for a reservation and listens
    # through it.
    js = relay_peers(topology.home("home-j"), reserve=bootstrap)
    circuit = [a for a in js.addrs if "/p2p-circuit" in a]
    assert circuit and circuit[0].startswith(bootstrap), js.addrs

    # One of our nodes, behind another NAT, reaches it through our relay only.
    member = home_node(daemons, topology, "home-m", bootstrap)
    member_id = member.rpc.call("node_info")["peerId"]
    wait("the member is connected to our relay (and holds a reservation)", lambda: relayed(member))
    member.rpc.call("node_connect", {"multiaddr": circuit[0]})
    assert wait("the member lists the js peer", lambda: link_to(member, js.peer_id)) == "relayed"
    came = js.wait_for(lambda e: e.get("event") == "connected" and e["peerId"] == member_id)
    assert came["limited"] and "/p2p-circuit" in came["addr"], came
    # A stream through our relay between js-libp2p and our node: the js peer pings the member.
    pinged = js.wait_for(lambda e: e.get("event") in ("pinged", "pingFailed") and e["peerId"] == member_id)
    assert pinged["event"] == "pinged", pinged
    assert link_to(member, js.peer_id) == "relayed"
