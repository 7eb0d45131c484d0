"""A full block-store quota: a clear error on the RPC and in the log, and nothing stored before
is damaged (issue 9, disk and quota)."""

import base64
import random
import time

import pytest

from clients.rpc import RpcError
from steps.communities import archive_now, create, send

MIB = 1024 * 1024


def b64(b: bytes) -> str:
    return base64.b64encode(b).decode()


def wait_for_log(daemon, text: str, timeout: float = 60) -> bool:
    """Waits until the daemon's log holds `text`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in daemon.stderr_path.read_text():
            return True
        time.sleep(0.1)
    return False


def test_adding_past_the_quota_is_refused_whole_and_earlier_data_survives(daemons):
    node = daemons(extra_config="[store]\nquota = 3000000\n")
    first = random.Random(1).randbytes(MIB + 1)
    cid = node.rpc.call("blocks_add", {"data": b64(first)})["cid"]
    used = node.rpc.call("blocks_stat", {"cid": cid})["block_bytes"]
    with pytest.raises(RpcError) as e:
        node.rpc.call("blocks_add", {"data": b64(random.Random(2).randbytes(3 * MIB))})
    assert e.value.code == -32000 and "quota exceeded" in e.value.message
    assert wait_for_log(node, "quota exceeded")
    # The refused file left nothing behind, and the first one is whole.
    assert base64.b64decode(node.rpc.call("blocks_cat", {"cid": cid})["data"]) == first
    assert node.rpc.call("blocks_stat", {"cid": cid})["block_bytes"] == used
    small = node.rpc.call("blocks_add", {"data": b64(b"still room for this")})["cid"]
    assert base64.b64decode(node.rpc.call("blocks_cat", {"cid": small})["data"]) == b"still room for this"


def test_a_member_whose_quota_is_full_says_so_and_keeps_its_history(daemons):
    control = daemons()
    member = daemons(extra_config="[store]\nquota = 2000000\n")
    created = create(control, "quota")
    cid, invite = created["communityId"], created["invite"]
    member.rpc.call("community_join", {"invite": invite})
    member.rpc.call("node_connect", {"multiaddr": control.addr})
    # Live messages reach the member by gossip and are stored (the message store has no quota).
    last = send(control, cid, b"before the archives")["timestamp"]
    # Then a history larger than the member's block quota.
    for i in range(6):
        last = send(control, cid, random.Random(i).randbytes(400 * 1024))["timestamp"]
    archive_now(control, cid, last)
    assert wait_for_log(member, "quota exceeded"), "the member's log names the full quota"
    # Nothing stored before is damaged: the member still answers and has its messages.
    got = member.rpc.call("messages_query", {"communityId": cid})
    assert any(base64.b64decode(m["payload"]) == b"before the archives" for m in got["messages"])
    assert member.rpc.call("node_info")["peerId"]
