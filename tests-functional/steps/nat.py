"""Steps shared by the NAT tests: a public node and nodes behind home NAT routers in the test's
own topology (clients/netns.py), and what to wait for."""

import os
import time

import pytest

from clients.netns import PUBLIC_IP, Topology
from steps.communities import all_messages, send

PUBLIC_LISTEN = "/ip4/0.0.0.0/tcp/4001"
# One-second archive windows, so a test makes a few archives quickly.
ARCHIVES = "[archive]\npartition_secs = 1\n"


@pytest.fixture
def topology():
    t = Topology()
    yield t
    t.close()


def wait(what: str, probe, timeout: float = 120):
    """probe()'s first truthy value, polled until `timeout` (it reads state; it waits for no time)."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(0.2)


def public_node(daemons, topology):
    # A bootstrap node is told its public address: AutoNAT asks only peers we dialed, and
    # nobody here is dialed by it.
    external = f'[network]\nexternal = ["/ip4/{PUBLIC_IP}/tcp/4001"]\n'
    pub = daemons(netns=topology.public(), listen=PUBLIC_LISTEN, extra_config=external)
    return pub, f"/ip4/{PUBLIC_IP}/tcp/4001/p2p/{pub.rpc.call('node_info')['peerId']}"


def home_node(daemons, topology, name: str, bootstrap: str, symmetric=False, extra_config=ARCHIVES):
    ns = topology.home(name, symmetric=symmetric)
    return daemons(netns=ns, listen=PUBLIC_LISTEN, bootstrap=bootstrap, extra_config=extra_config)


def relayed(node) -> list[str]:
    """The node's `/p2p-circuit` addresses once it holds a reservation."""
    return node.rpc.call("node_info")["relayedAddrs"]


def link_to(node, peer_id: str) -> str | None:
    for p in node.rpc.call("node_peers"):
        if p["peerId"] == peer_id:
            return p["link"]
    return None


def synced(member, control_messages: list[dict], cid: str) -> bool:
    progress = member.rpc.call("archive_importProgress", {"communityId": cid})
    return progress["imported"] > 0 and progress["imported"] == progress["downloaded"] and all_messages(member, cid) == control_messages


def history(control, cid: str, messages: int, size: int) -> list[dict]:
    """`messages` messages of about `size` bytes over a few seconds, archived."""
    big = os.urandom(size)
    last = 0
    for i in range(messages):
        last = send(control, cid, bytes([i]) + big)["timestamp"]
    while time.time() < last + 1:
        time.sleep(0.05)
    made = control.rpc.call("archive_createNow", {"communityId": cid})
    assert made["archives"] >= 1, made
    return all_messages(control, cid)
