"""Real networks: nodes behind home NAT routers find each other through a public node (a
bootstrap and relay, not a community member), reach each other through its relay, punch holes
to connect directly, and move history over direct connections. The topology is built by the
test (clients/netns.py) inside the suite's private network namespace."""

import shutil

import pytest

from clients.netns import why_not
from steps.communities import create
from steps.nat import PUBLIC_LISTEN, history, home_node, link_to, public_node, relayed, synced, topology, wait  # noqa: F401 (topology: a fixture)

pytestmark = pytest.mark.skipif(why_not() is not None, reason=why_not() or "")


def test_members_behind_nats_find_each_other_and_sync_over_a_punched_direct_connection(daemons, topology):
    pub, bootstrap = public_node(daemons, topology)
    control = home_node(daemons, topology, "home-c", bootstrap)
    # The public node relays; the NATed node learns it is not reachable (the public node's
    # dial-back fails) and reserves a slot.
    wait("the public node is public", lambda: pub.rpc.call("node_info")["reachability"] == "public")
    wait("the control node holds a relay reservation", lambda: relayed(control))
    wait("the control node knows it is private", lambda: control.rpc.call("node_info")["reachability"] == "private")

    created = create(control, "behind-nat")
    cid = created["communityId"]
    ours = history(control, cid, messages=40, size=400 * 1024)
    size = sum(len(m["payload"]) for m in ours) * 3 // 4

    # Member B knows the invite and the bootstrap address, nothing else.
    b = home_node(daemons, topology, "home-b", bootstrap)
    b.rpc.call("community_join", {"invite": created["invite"]})
    control_id = control.rpc.call("node_info")["peerId"]
    wait("member B synced from the control node", lambda: synced(b, ours, cid), timeout=180)
    assert wait("B is directly connected to the control node", lambda: link_to(b, control_id) == "direct")
    punched = control.rpc.call("node_info")["holePunches"]["succeeded"] + b.rpc.call("node_info")["holePunches"]["succeeded"]
    assert punched >= 1, "the direct connection came from a hole punch"
    assert pub.rpc.call("community_list") == [], "the public node is no member"

    # The control node goes away. Member A joins late with the same two strings and gets the
    # whole history from B, directly: the public node carries far less than the history.
    control.terminate()
    a = home_node(daemons, topology, "home-a", bootstrap)
    before = pub.netns.link_bytes("eth0")
    a.rpc.call("community_join", {"invite": created["invite"]})
    wait("member A synced from member B", lambda: synced(a, ours, cid), timeout=180)
    carried = pub.netns.link_bytes("eth0") - before
    b_id = b.rpc.call("node_info")["peerId"]
    assert link_to(a, b_id) == "direct"
    assert carried < size / 4, f"the public node carried {carried} bytes of a {size}-byte history"


def test_behind_a_symmetric_nat_punching_fails_and_history_comes_from_the_public_node(daemons, topology):
    pub, bootstrap = public_node(daemons, topology)
    control = home_node(daemons, topology, "home-c", bootstrap)
    wait("the control node holds a relay reservation", lambda: relayed(control))
    created = create(control, "symmetric")
    cid = created["communityId"]
    ours = history(control, cid, messages=8, size=200 * 1024)

    # A member behind a NAT that picks a new port for every flow: reachable through the relay only.
    s = home_node(daemons, topology, "home-s", bootstrap, symmetric=True)
    wait("the member holds a relay reservation", lambda: relayed(s))
    s.rpc.call("community_join", {"invite": created["invite"]})
    control_id = control.rpc.call("node_info")["peerId"]
    # The announcement reaches it over the relayed connection, the only one it has to a member.
    announced = control.rpc.call("archive_latestAnnouncement", {"communityId": cid})
    wait("the member accepted the announcement", lambda: (s.rpc.call("archive_latestAnnouncement", {"communityId": cid}) or {}).get("cid") == announced["cid"])
    assert link_to(s, control_id) == "relayed"
    # The hole punch fails, and the node that led it (the one dialed through the relay) says
    # why. No block crosses the relay.
    punches = wait("a hole punch failed", lambda: (lambda p: p if p["failed"] >= 1 else None)(control.rpc.call("node_info")["holePunches"]))
    assert "dial attempts" in punches["lastError"], punches
    assert link_to(s, control_id) == "relayed"
    assert s.rpc.call("archive_importProgress", {"communityId": cid})["imported"] == 0

    # The public node joins and syncs from the control node (which dialed it: a direct link);
    # the member then fetches the whole history from it.
    pub.rpc.call("community_join", {"invite": created["invite"]})
    wait("the public node synced", lambda: synced(pub, ours, cid))
    wait("the member synced from the public node", lambda: synced(s, ours, cid), timeout=180)
    assert link_to(s, control_id) == "relayed", "still no direct connection to the control node"


UPNP = "[network]\nupnp = true\n"


def upnp_state(node) -> str | None:
    """`node_info.upnp` once the search is over."""
    state = node.rpc.call("node_info")["upnp"]
    return None if state == "searching" else state


@pytest.mark.skipif(shutil.which("miniupnpd") is None, reason="needs miniupnpd (scripts/functional.sh installs it)")
def test_upnp_asks_a_real_gateway_and_advertises_nothing_it_did_not_map(daemons, topology):
    """A real Internet gateway device (miniupnpd) on the home router: the node finds it by SSDP
    and asks it for its external address over SOAP. Every address here is on a documentation
    range, which miniupnpd (like rust-libp2p's UPnP) will not treat as public: it answers with
    an error, and the node maps nothing, confirms no address and says it found no usable
    gateway. (So the mapping itself cannot be exercised under the tests' network rule.)"""
    ns = topology.home("home-u", igd=True)
    node = daemons(netns=ns, listen=PUBLIC_LISTEN, extra_config=UPNP)
    state = wait("the UPnP search ended", lambda: upnp_state(node), timeout=60)
    log = open(ns.router.igd_log).read()
    assert state == "noGateway", (state, log)
    # The SSDP answer reached our node (it fetched the description the answer points to from
    # its LAN address), it called the gateway's WANIPConnection service, and it asked for no
    # mapping.
    asked = f"HTTP REQUEST from [::ffff:{ns.lan_ip}]"
    assert asked in log and "GET /rootDesc.xml" in log, log
    assert "POST /ctl/IPConn" in log and "#GetExternalIPAddress" in log, log
    assert "AddPortMapping" not in log, log
    assert "dnat" not in ns.router.sh("nft", "list", "chain", "inet", "filter", "prerouting_miniupnpd")
    assert node.rpc.call("node_info")["externalAddrs"] == []

    # Behind a router without one, the search ends the same way; without `upnp` the node
    # never searches.
    bare = daemons(netns=topology.home("home-v"), listen=PUBLIC_LISTEN, extra_config=UPNP)
    assert wait("the UPnP search ended", lambda: upnp_state(bare), timeout=60) == "noGateway"
    off = daemons(netns=topology.home("home-w"), listen=PUBLIC_LISTEN)
    assert off.rpc.call("node_info")["upnp"] == "off"
